import Foundation
import Logging
import NIOCore
import Testing

@testable import SwitchboardRedis
import SwitchboardTestSupport

/// A client with short reconnect waits so that failures show quickly. The lease timeout is generous: these
/// tests check behaviour, and a loaded CI machine must not turn a slow lease into a failure.
private func makeClient(
    _ url: String,
    maximumConnections: Int = 4,
    reconnectWait: Duration = .seconds(2)
) throws -> RedisClient {
    try RedisClient(
        url: url,
        options: .init(
            maximumConnections: maximumConnections,
            maximumBlockingConnections: 4,
            leaseTimeout: .seconds(60),
            reconnect: .init(initialDelay: .milliseconds(20), maximumDelay: .milliseconds(200), maximumWait: reconnectWait)
        )
    )
}

/// Runs `body` with a client, shutting the client down afterwards.
@discardableResult
private func withClient<T>(
    _ url: String,
    maximumConnections: Int = 4,
    reconnectWait: Duration = .seconds(2),
    _ body: (RedisClient) async throws -> T
) async throws -> T {
    let client = try makeClient(url, maximumConnections: maximumConnections, reconnectWait: reconnectWait)
    do {
        let result = try await body(client)
        await client.shutdown()
        return result
    } catch {
        await client.shutdown()
        throw error
    }
}

@Suite("Integration: commands against redis-server", .timeLimit(.minutes(5)))
struct CommandIntegrationTests {
    @Test("typed commands", arguments: [RESPProtocolVersion.resp2, .resp3])
    func typedCommands(version: RESPProtocolVersion) async throws {
        try await withRedisServer { server in
            try await withClient("\(server.url)?protocol=\(version.rawValue)") { redis in
                #expect(try await redis.ping() == "PONG")
                #expect(try await redis.ping("hello") == "hello")
                let info = try await redis.info("server")
                #expect(info.contains("redis_version:"))
                #expect(info.contains("tcp_port:\(server.port)"))

                let negotiated = try await redis.withConnection { $0.protocolVersion }
                #expect(negotiated == version)

                // XADD with explicit IDs, ordered fields and MAXLEN trimming.
                #expect(try await redis.xadd("s", id: "1-1", fields: [("b", "2"), ("a", "1")]) == "1-1")
                let autoID = try await redis.xadd("s", fields: [StreamField("k", "v")])
                #expect(autoID.contains("-"))
                #expect(try await redis.xlen("s") == 2)
                for i in 0..<300 {
                    try await redis.xadd("trimmed", fields: [("i", String(i))], trim: .maxLength(10, approximate: false))
                }
                #expect(try await redis.xlen("trimmed") == 10)
                for i in 0..<300 {
                    try await redis.xadd("approx", fields: [("i", String(i))], trim: .maxLength(10))
                }
                #expect(try await redis.xlen("approx") < 300)

                // XGROUP CREATE: created, then BUSYGROUP tolerated or thrown.
                #expect(try await redis.xgroupCreate("s", group: "g", startID: "0") == true)
                #expect(try await redis.xgroupCreate("s", group: "g", startID: "0", ignoreExisting: true) == false)
                await #expect(throws: RedisError.busyGroup(message: "Consumer Group name already exists")) {
                    try await redis.xgroupCreate("s", group: "g")
                }
                #expect(try await redis.xgroupCreate("new-stream", group: "g", makeStream: true))
                #expect(try await redis.xlen("new-stream") == 0)
                await #expect(throws: RedisError.self) {
                    try await redis.xgroupCreate("missing", group: "g", makeStream: false)
                }

                // XREADGROUP returns ordered fields.
                let entries = try await redis.xreadgroup(group: "g", consumer: "c1", stream: "s", count: 10)
                #expect(entries.count == 2)
                #expect(entries[0] == StreamEntry(id: "1-1", fields: [StreamField("b", "2"), StreamField("a", "1")]))
                #expect(entries[0].fieldPairs.map(\.0) == ["b", "a"])
                #expect(entries[1].id == autoID)
                #expect(try await redis.xreadgroup(group: "g", consumer: "c1", stream: "s").isEmpty)

                // XPENDING, both forms.
                let summary = try await redis.xpending("s", group: "g")
                #expect(summary.count == 2)
                #expect(summary.smallestID == "1-1")
                #expect(summary.greatestID == autoID)
                #expect(summary.consumers == [StreamConsumerPendingCount(name: "c1", pending: 2)])
                let pending = try await redis.xpending("s", group: "g", count: 10)
                #expect(pending.map(\.id) == ["1-1", autoID])
                #expect(pending.allSatisfy { $0.consumer == "c1" && $0.deliveryCount == 1 })
                #expect(try await redis.xpending("s", group: "g", count: 10, consumer: "nobody").isEmpty)
                #expect(try await redis.xpending("s", group: "g", count: 10, minIdleTime: .seconds(3600)).isEmpty)

                // XINFO.
                let groups = try await redis.xinfoGroups("s")
                #expect(groups.count == 1)
                #expect(groups[0].name == "g")
                #expect(groups[0].consumers == 1)
                #expect(groups[0].pending == 2)
                #expect(groups[0].lastDeliveredID == autoID)
                #expect(groups[0].entriesRead == 2)
                #expect(groups[0].lag == 0)
                let streamInfo = try await redis.xinfoStream("s")
                #expect(streamInfo.length == 2)
                #expect(streamInfo.groups == 1)
                #expect(streamInfo.lastGeneratedID == autoID)
                #expect(streamInfo.firstEntry?.id == "1-1")
                #expect(streamInfo.lastEntry?[field: "k"] == "v")
                #expect(try await redis.xinfoStream("new-stream").firstEntry == nil)

                // XACK, XDEL, DEL.
                #expect(try await redis.xack("s", group: "g", ids: ["1-1", "9-9"]) == 1)
                #expect(try await redis.xpending("s", group: "g").count == 1)
                #expect(try await redis.xdel("s", ids: ["1-1", "9-9"]) == 1)
                #expect(try await redis.xlen("s") == 1)
                #expect(try await redis.del(["s", "trimmed", "nothing"]) == 2)
                #expect(try await redis.del("approx") == 1)

                // The escape hatch and typed errors.
                #expect(try await redis.send("SET", "plain", "value") == .simpleString("OK"))
                #expect(try await redis.send(command: ["GET", "plain"]).string == "value")
                #expect(try await redis.send(command: ["GET", "absent"]) == .null)
                await #expect(throws: RedisError.wrongType(message: "Operation against a key holding the wrong kind of value")) {
                    try await redis.xlen("plain")
                }
                await #expect(throws: RedisError.self) {
                    try await redis.xpending("absent", group: "g")
                }
                do {
                    _ = try await redis.xreadgroup(group: "nogroup", consumer: "c", stream: "new-stream")
                    Issue.record("expected NOGROUP")
                } catch {
                    guard case .noGroup? = error as? RedisError else {
                        Issue.record("expected NOGROUP, got \(error)")
                        return
                    }
                }
                await #expect(throws: RedisError.server(prefix: "ERR", message: "unknown command 'NOSUCHCOMMAND', with args beginning with: ")) {
                    try await redis.send("NOSUCHCOMMAND")
                }
                #expect(try await redis.xgroupDestroy("new-stream", group: "g"))
            }
        }
    }

    @Test("consumer-group flow: read, pending delivery counts, autoclaim after idle, ack, dead-letter", arguments: [RESPProtocolVersion.resp2, .resp3])
    func consumerGroupFlow(version: RESPProtocolVersion) async throws {
        try await withRedisServer { server in
            try await withClient("\(server.url)?protocol=\(version.rawValue)") { redis in
                let stream = "jobs"
                let dead = "jobs:dead"
                try await redis.xgroupCreate(stream, group: "workers", startID: "$", makeStream: true)
                var ids: [String] = []
                for i in 0..<3 {
                    ids.append(try await redis.xadd(stream, fields: [("job", "\(i)")]))
                }

                // Consumer a takes everything but crashes without acknowledging.
                let first = try await redis.xreadgroup(group: "workers", consumer: "a", stream: stream, count: 10)
                #expect(first.map(\.id) == ids)
                #expect(try await redis.xpending(stream, group: "workers", count: 10).map(\.deliveryCount) == [1, 1, 1])

                // Re-reading a's history counts as another delivery.
                let history = try await redis.xreadgroup(group: "workers", consumer: "a", stream: stream, id: "0")
                #expect(history.map(\.id) == ids)
                #expect(try await redis.xpending(stream, group: "workers", count: 10).map(\.deliveryCount) == [2, 2, 2])

                // Nothing is idle long enough yet.
                let early = try await redis.xautoclaim(stream, group: "workers", consumer: "b", minIdleTime: .seconds(60))
                #expect(early.entries.isEmpty)
                #expect(early.nextCursor == "0-0")

                try await Task.sleep(for: .milliseconds(150))
                // Entry 2 was deleted meanwhile: autoclaim reports it as deleted.
                #expect(try await redis.xdel(stream, ids: [ids[2]]) == 1)
                let claimed = try await redis.xautoclaim(stream, group: "workers", consumer: "b", minIdleTime: .milliseconds(100), count: 10)
                #expect(claimed.entries.map(\.id) == [ids[0], ids[1]])
                #expect(claimed.entries[0][field: "job"] == "0")
                #expect(claimed.deletedIDs == [ids[2]])
                #expect(claimed.nextCursor == "0-0")

                let afterClaim = try await redis.xpending(stream, group: "workers", count: 10)
                #expect(afterClaim.map(\.consumer) == ["b", "b"])
                #expect(afterClaim.map(\.deliveryCount) == [3, 3])

                // b processes job 0 and acknowledges it.
                #expect(try await redis.xack(stream, group: "workers", ids: [ids[0]]) == 1)

                // Job 1 has been delivered too often: move it to the dead-letter stream.
                let poison = try #require(try await redis.xpending(stream, group: "workers", count: 10).first)
                #expect(poison.id == ids[1])
                #expect(poison.deliveryCount >= 3)
                let original = try #require(claimed.entries.first { $0.id == poison.id })
                try await redis.xadd(
                    dead,
                    fields: original.fields + [
                        StreamField("original-id", original.id),
                        StreamField("deliveries", String(poison.deliveryCount)),
                    ]
                )
                #expect(try await redis.xack(stream, group: "workers", ids: [poison.id]) == 1)

                let summary = try await redis.xpending(stream, group: "workers")
                #expect(summary.count == 0)
                #expect(summary.smallestID == nil)
                #expect(summary.consumers.isEmpty)
                let deadEntries = try await redis.xinfoStream(dead)
                #expect(deadEntries.length == 1)
                #expect(deadEntries.firstEntry?[field: "original-id"] == ids[1])
                #expect(deadEntries.firstEntry?[field: "job"] == "1")
                #expect(try await redis.xinfoGroups(stream).first?.pending == 0)
            }
        }
    }

    @Test("blocking XREADGROUP does not starve other callers, times out empty, and wakes on new entries")
    func blockingReads() async throws {
        try await withRedisServer { server in
            try await withClient(server.url, maximumConnections: 1) { redis in
                try await redis.xgroupCreate("events", group: "g")

                // A blocked read times out with an empty result.
                let clock = ContinuousClock()
                let start = clock.now
                let none = try await redis.xreadgroup(group: "g", consumer: "c", stream: "events", block: .milliseconds(300))
                #expect(none.isEmpty)
                #expect(clock.now - start >= .milliseconds(250))

                // Two readers block (on the blocking pool); the single ordinary connection stays free.
                // (They block for up to 30 s; the pings below must not wait for them, whatever the machine's load.)
                async let blocked1 = redis.xreadgroup(group: "g", consumer: "c1", stream: "events", count: 1, block: .seconds(30))
                async let blocked2 = redis.xreadgroup(group: "g", consumer: "c2", stream: "events", count: 1, block: .seconds(30))
                try await Task.sleep(for: .milliseconds(200))
                let pingStart = clock.now
                for _ in 0..<20 {
                    try await redis.ping()
                }
                #expect(clock.now - pingStart < .seconds(10))
                try await redis.xadd("events", fields: [("n", "1")])
                try await redis.xadd("events", fields: [("n", "2")])
                let results = try await [blocked1, blocked2]
                #expect(results.map(\.count) == [1, 1])
                #expect(Set(results.flatMap { $0.compactMap { $0[field: "n"] } }) == ["1", "2"])
            }
        }
    }

    @Test("cancelling a task blocked in XREADGROUP BLOCK 0 ends it promptly")
    func cancellation() async throws {
        try await withRedisServer { server in
            try await withClient(server.url) { redis in
                try await redis.xgroupCreate("events", group: "g")
                let task = Task {
                    try await redis.xreadgroup(group: "g", consumer: "c", stream: "events", block: .zero)
                }
                try await Task.sleep(for: .milliseconds(200))
                task.cancel()
                let result = await task.result
                #expect(throws: RedisError.cancelled) { try result.get() }
                #expect(try await redis.ping() == "PONG")
            }
        }
    }

    @Test("a command that exceeds its timeout fails with .timeout and the client recovers")
    func commandTimeout() async throws {
        try await withRedisServer { server in
            try await withClient(server.url) { (redis) async throws in
                await #expect(throws: RedisError.timeout) {
                    try await redis.send(command: ["BLPOP", "nothing", "5"], options: .init(timeout: .exactly(.milliseconds(200))))
                }
                #expect(try await redis.ping() == "PONG")
            }
            // The URL's commandTimeout applies by default.
            try await withClient("\(server.url)?commandTimeout=150ms") { redis in
                await #expect(throws: RedisError.timeout) {
                    try await redis.send("BLPOP", "nothing", "5")
                }
            }
        }
    }
}

@Suite("Integration: pipelining and pooling", .timeLimit(.minutes(5)))
struct PipelineIntegrationTests {
    @Test("10,000 pipelined XADDs")
    func tenThousandXAdds() async throws {
        try await withRedisServer { server in
            // A generous command timeout: a loaded machine may take seconds over 10,000 replies in a debug build.
            try await withClient("\(server.url)?commandTimeout=60s") { redis in
                let entries = (0..<10_000).map { [StreamField("n", String($0)), StreamField("body", "payload-\($0)")] }
                let ids = try await redis.xaddBatch("bulk", entries: entries)
                #expect(ids.count == 10_000)
                #expect(try await redis.xlen("bulk") == 10_000)
                #expect(Set(ids).count == 10_000)

                let commands = (0..<10_000).map { RedisCommands.xadd("bulk2", fields: [StreamField("n", String($0))]) }
                let replies = try await redis.pipeline(commands)
                #expect(replies.count == 10_000)
                #expect(replies.allSatisfy { $0.string != nil })
                #expect(try await redis.xlen("bulk2") == 10_000)

                // Reading them back preserves order.
                try await redis.xgroupCreate("bulk", group: "g", startID: "0")
                let read = try await redis.xreadgroup(group: "g", consumer: "c", stream: "bulk", count: 10_000)
                #expect(read.map(\.id) == ids)
                #expect(read.last?[field: "n"] == "9999")

                // Errors inside a pipeline are returned in place.
                let mixed = try await redis.pipeline([["SET", "k", "v"], ["XLEN", "k"], ["GET", "k"]])
                #expect(mixed[0] == .simpleString("OK"))
                #expect(mixed[1].errorMessage?.hasPrefix("WRONGTYPE") == true)
                #expect(mixed[2].string == "v")
                await #expect(throws: RedisError.self) {
                    try await redis.xaddBatch("k", entries: [[StreamField("a", "b")]])
                }
                #expect(try await redis.pipeline([]).isEmpty)
            }
        }
    }

    @Test("many concurrent callers on one connection get their own replies (FIFO matching)")
    func concurrentOnOneConnection() async throws {
        try await withRedisServer { server in
            // Replies are matched in order; a loaded machine may take long over 2,000 of them, hence the timeout.
            let connection = try await RedisConnection.connect(configuration: try RedisConfiguration(url: "\(server.url)?commandTimeout=60s"))
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<2000 {
                    group.addTask {
                        let reply = try await connection.send(command: ["ECHO", "message-\(i)"])
                        #expect(reply.string == "message-\(i)")
                    }
                }
                try await group.waitForAll()
            }
            await connection.close()
            #expect(!connection.isConnected)
            await #expect(throws: RedisError.connectionClosed) {
                try await connection.ping()
            }
        }
    }

    @Test("the pool never exceeds its size and reuses connections")
    func poolLimits() async throws {
        try await withRedisServer { server in
            let pool = try RedisConnectionPool(
                configuration: try RedisConfiguration(url: "\(server.url)?commandTimeout=60s"),
                options: .init(maximumConnections: 3, leaseTimeout: .seconds(60))
            )
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<200 {
                    group.addTask {
                        let statistics = pool.statistics
                        #expect(statistics.idle + statistics.leased + statistics.connecting <= 3)
                        let reply = try await pool.send(command: ["ECHO", "\(i)"])
                        #expect(reply.string == "\(i)")
                    }
                }
                try await group.waitForAll()
            }
            let clients = try await pool.send(command: ["CLIENT", "LIST"]).string ?? ""
            #expect(clients.split(separator: "\n").count <= 3)

            // All leased: the next caller waits, and times out after the lease timeout.
            let small = try RedisConnectionPool(
                configuration: try RedisConfiguration(url: server.url),
                options: .init(maximumConnections: 1, leaseTimeout: .milliseconds(200))
            )
            let only = try await small.lease()
            let clock = ContinuousClock()
            let start = clock.now
            await #expect(throws: RedisError.poolTimeout) {
                _ = try await small.lease()
            }
            #expect(clock.now - start >= .milliseconds(150))
            small.release(only)
            #expect(try await small.ping() == "PONG")
            await small.shutdown()

            let a = try await pool.lease()
            let b = try await pool.lease()
            let c = try await pool.lease()
            // A returned connection goes to a waiter.
            async let waiter = pool.lease()
            try await Task.sleep(for: .milliseconds(50))
            pool.release(a)
            let d = try await waiter
            #expect(d === a)
            // A closed connection is discarded on return; a new one replaces it.
            await b.close()
            pool.release(b)
            let e = try await pool.lease()
            #expect(e !== b)
            #expect(e.isConnected)
            pool.release(c)
            pool.release(d)
            pool.release(e)
            let used = try await pool.withConnection { connection in
                try await connection.ping()
            }
            #expect(used == "PONG")
            await pool.shutdown()
            await #expect(throws: RedisError.shutdown) {
                try await pool.ping()
            }
        }
    }
}

@Suite("Integration: authentication, databases, TLS, restarts", .timeLimit(.minutes(5)))
struct ConnectionIntegrationTests {
    @Test("requirepass", arguments: [RESPProtocolVersion.resp2, .resp3])
    func requirePass(version: RESPProtocolVersion) async throws {
        try await withRedisServer(extraArguments: ["--requirepass", "s3cret/pass"]) { server in
            let base = "redis://127.0.0.1:\(server.port)"
            // No password: RESP3's HELLO is refused at once; on RESP2 the first command is.
            do {
                let connection = try await RedisConnection.connect(
                    configuration: try RedisConfiguration(url: "\(base)?protocol=\(version.rawValue)")
                )
                #expect(version == .resp2)
                await #expect(throws: RedisError.noAuth(message: "Authentication required.")) {
                    try await connection.ping()
                }
                await connection.close()
            } catch {
                #expect(version == .resp3)
                #expect((error as? RedisError)?.serverPrefix == "NOAUTH")
            }
            // Wrong password.
            await #expect(throws: RedisError.self) {
                _ = try await RedisConnection.connect(
                    configuration: try RedisConfiguration(url: "redis://:wrong@127.0.0.1:\(server.port)?protocol=\(version.rawValue)")
                )
            }
            do {
                _ = try await RedisConnection.connect(
                    configuration: try RedisConfiguration(url: "redis://:wrong@127.0.0.1:\(server.port)?protocol=\(version.rawValue)")
                )
            } catch {
                #expect((error as? RedisError)?.serverPrefix == "WRONGPASS")
            }
            // Right password, percent-encoded in the URL.
            let connection = try await RedisConnection.connect(
                configuration: try RedisConfiguration(url: "redis://:s3cret%2Fpass@127.0.0.1:\(server.port)?protocol=\(version.rawValue)")
            )
            #expect(connection.protocolVersion == version)
            #expect(try await connection.ping() == "PONG")
            #expect(!"\(connection.configuration)".contains("s3cret"))
            await connection.close()
        }
    }

    @Test("ACL user with AUTH username password", arguments: [RESPProtocolVersion.resp2, .resp3])
    func aclUser(version: RESPProtocolVersion) async throws {
        try await withRedisServer { server in
            try await withClient(server.url) { admin in
                let reply = try await admin.send(command: ["ACL", "SETUSER", "switchboard", "on", ">app-pass", "~app:*", "+@all", "-flushall"])
                #expect(reply == .simpleString("OK"))
            }
            try await withClient("redis://switchboard:app-pass@127.0.0.1:\(server.port)?protocol=\(version.rawValue)") { redis in
                #expect(try await redis.send(command: ["ACL", "WHOAMI"]).string == "switchboard")
                try await redis.xadd("app:events", fields: [("a", "b")])
                #expect(try await redis.xlen("app:events") == 1)
                do {
                    _ = try await redis.xadd("other:events", fields: [("a", "b")])
                    Issue.record("expected NOPERM")
                } catch {
                    guard case .noPerm? = error as? RedisError else {
                        Issue.record("expected NOPERM, got \(error)")
                        return
                    }
                }
            }
            await #expect(throws: RedisError.self) {
                _ = try await RedisConnection.connect(
                    configuration: try RedisConfiguration(url: "redis://switchboard:nope@127.0.0.1:\(server.port)?protocol=\(version.rawValue)")
                )
            }
        }
    }

    @Test("SELECT via the URL path")
    func selectDatabase() async throws {
        try await withRedisServer { server in
            try await withClient("\(server.url)/3") { db3 in
                try await db3.send("SET", "where", "three")
                #expect(try await db3.send(command: ["CLIENT", "INFO"]).string?.contains("db=3") == true)
            }
            try await withClient(server.url) { (db0) async throws in
                #expect(try await db0.send(command: ["GET", "where"]) == .null)
                #expect(try await db0.send(command: ["SELECT", "3"]) == .simpleString("OK"))
            }
            let connection = try await RedisConnection.connect(configuration: try RedisConfiguration(url: "\(server.url)?db=3&clientName=sb-test"))
            #expect(try await connection.send(command: ["GET", "where"]).string == "three")
            #expect(try await connection.send(command: ["CLIENT", "GETNAME"]).string == "sb-test")
            try await connection.select(database: 0)
            #expect(try await connection.send(command: ["GET", "where"]) == .null)
            await connection.close()
        }
    }

    @Test("the client reconnects after redis-server restarts on the same port")
    func restart() async throws {
        try await withRedisServer { server in
            try await withClient(server.url, reconnectWait: .milliseconds(500)) { redis in
                try await redis.xadd("before", fields: [("a", "1")])
                // Open several pooled connections.
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<4 { group.addTask { try await redis.ping() } }
                    try await group.waitForAll()
                }

                await server.terminate()

                // While the server is down, commands fail with a connection error, quickly.
                let clock = ContinuousClock()
                for _ in 0..<3 {
                    let start = clock.now
                    do {
                        try await redis.ping()
                        Issue.record("expected a connection error while the server is down")
                    } catch {
                        #expect((error as? RedisError)?.isConnectionError == true, "\(error)")
                    }
                    #expect(clock.now - start < .seconds(3))
                }

                try await server.launch()

                // After the restart the same client works again.
                var recovered = false
                for _ in 0..<50 where !recovered {
                    do {
                        recovered = try await redis.ping() == "PONG"
                    } catch {
                        try await Task.sleep(for: .milliseconds(100))
                    }
                }
                #expect(recovered)
                #expect(try await redis.xlen("before") == 0)  // no persistence: a fresh dataset
                try await redis.xadd("after", fields: [("a", "1")])
                #expect(try await redis.xlen("after") == 1)
                // Every pooled connection works (stale ones were replaced).
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<16 { group.addTask { try await redis.ping() } }
                    try await group.waitForAll()
                }
            }

            // A command issued while the server is down succeeds if it returns within the reconnect wait.
            try await withClient(server.url, reconnectWait: .seconds(10)) { redis in
                try await redis.ping()
                await server.terminate()
                let restarter = Task {
                    try await Task.sleep(for: .milliseconds(400))
                    try await server.launch()
                }
                // The idle connection to the killed server may not have been noticed closed yet on a loaded
                // machine: then the first command is written to it and fails with `.connectionClosed` (commands
                // that may have reached the server are never retried). The next one waits for the restart.
                let pong: String
                do {
                    pong = try await redis.ping()
                } catch RedisError.connectionClosed {
                    pong = try await redis.ping()
                }
                #expect(pong == "PONG")
                try await restarter.value
            }
        }
    }

    @Test("connecting to a closed port fails with connectionFailed")
    func unreachable() async throws {
        let port = try await freeLoopbackPort()
        await #expect(throws: RedisError.self) {
            _ = try await RedisConnection.connect(configuration: RedisConfiguration(host: "127.0.0.1", port: port))
        }
        let client = try makeClient("redis://127.0.0.1:\(port)", reconnectWait: .zero)
        do {
            try await client.ping()
            Issue.record("expected connectionFailed")
        } catch {
            guard case .connectionFailed = error else {
                Issue.record("expected connectionFailed, got \(error)")
                return
            }
        }
        await client.shutdown()
    }

    @Test("TLS with a custom CA (rediss://)")
    func tls() async throws {
        let files = try await TLSFiles.generate()
        defer { files.remove() }
        let server: RedisServer
        do {
            server = try await RedisServer.start(tls: files)
        } catch {
            let reason = String(describing: error)
            if reason.contains("not built with TLS") || reason.contains("TLS support") {
                print("Skipping TLS test: this redis-server was built without TLS support (\(reason.prefix(300)))")
                return
            }
            throw error
        }
        do {
            for url in [
                "rediss://localhost:\(server.port)?caFile=\(files.caCertificate)",
                "rediss://127.0.0.1:\(server.port)?caFile=\(files.caCertificate)&serverName=localhost",
            ] {
                try await withClient(url) { redis in
                    #expect(try await redis.ping() == "PONG")
                    try await redis.xadd("tls", fields: [("secure", "yes")])
                    #expect(try await redis.xlen("tls") >= 1)
                }
            }
            // Certificates are verified by default: the test CA is not trusted by the system.
            do {
                _ = try await RedisConnection.connect(configuration: try RedisConfiguration(url: "rediss://localhost:\(server.port)"))
                Issue.record("expected certificate verification to fail")
            } catch {
                guard case .connectionFailed(let reason) = error else {
                    Issue.record("expected connectionFailed, got \(error)")
                    return
                }
                #expect(reason.contains("TLS"), "\(reason)")
            }
            // The host name is checked against the certificate (which names only "localhost").
            for url in [
                "rediss://localhost:\(server.port)?caFile=\(files.caCertificate)&serverName=wrong.example",
                "rediss://127.0.0.1:\(server.port)?caFile=\(files.caCertificate)",
            ] {
                await #expect(throws: RedisError.self) {
                    _ = try await RedisConnection.connect(configuration: try RedisConfiguration(url: url))
                }
            }
            // Verification can be disabled explicitly.
            let insecure = try await RedisConnection.connect(
                configuration: try RedisConfiguration(url: "rediss://127.0.0.1:\(server.port)?verifyPeer=false")
            )
            #expect(try await insecure.ping() == "PONG")
            await insecure.close()
            // A missing CA file is a configuration error.
            #expect(throws: RedisError.self) {
                _ = try RedisClient(url: "rediss://localhost:\(server.port)?caFile=/nonexistent/ca.pem")
            }
            await server.stop()
        } catch {
            await server.stop()
            throw error
        }
    }
}
