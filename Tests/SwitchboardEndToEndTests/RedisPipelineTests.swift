import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import HummingbirdTesting
import SwitchboardTestSystem
import Testing
import SwitchboardApp
import SwitchboardCore
import SwitchboardRedis
import SwitchboardServer
import SwitchboardTestSupport

/// Fast test settings with the streams on `redis`.
func redisSettings(_ redis: RedisServer) -> Settings {
    var s = testSettings()
    s.redisURL = redis.url
    s.redisUnavailableWait = .milliseconds(300)
    return s
}

/// Runs `body` with a persistent redis-server, stopped afterwards even when the test fails.
func withPersistentRedis(_ body: (RedisServer) async throws -> Void) async throws {
    let redis = try await persistentRedis()
    do {
        try await body(redis)
    } catch {
        await redis.stop()
        throw error
    }
    await redis.stop()
}

@Suite("On Redis Streams, in one process", .serialized, .timeLimit(.minutes(2)))
struct RedisPipelineTests {
    @Test("a batch through Redis: one store write, its entries on the streams, every message sent; its scheduled item only at its time")
    func batchAndSchedule() async throws {
        try await withPersistentRedis { redis in
            let system = try SwitchboardSystem(settings: redisSettings(redis), logger: quietLogger())
            let running = Running(system)
            try await system.application().test(.router) { client in
                let sendAt = Timestamp(milliseconds: SystemTime.now().milliseconds + 2_000)
                var items: [JSONValue] = (0..<300).map { i in
                    .object(["type": .string("sms"), "data": .object(["from": .string("+15550000000"), "to": .string(recipient(.sms, i)), "msg": .string("batch \(i)")])])
                }
                items.append(.object(["type": .string("sms"), "data": .object(["from": .string("+15550000000"), "to": .string("+15559999999"), "msg": .string("later"), "sendAt": .string(sendAt.iso8601)])]))
                let r = try await client.execute(uri: "/api/v1/communications/batch", method: .post, headers: jsonHeaders, body: ByteBuffer(string: JSONValue.object(["items": .array(items)]).canonicalText))
                #expect(r.status == .ok)
                let answer = try json(r)
                #expect(answer["accepted"] == .number(301))
                guard case .array(let results)? = answer["items"] else { Issue.record("\(answer)"); return }
                let later = try #require(results.last?["id"]?.stringValue)
                #expect(results.last?["status"] == .string("scheduled"))
                try await eventually("300 sent") { try await count(system, .sent) == 300 }
                #expect(try await system.adapters.store.communication(id: later)?.status == .scheduled)
                try await eventually("the scheduled one sent") { try await system.adapters.store.communication(id: later)?.status == .sent }
                let c = try #require(try await system.adapters.store.communication(id: later))
                #expect(c.history.first { $0.status == .queued }.map { $0.at >= sendAt } == true, "\(c.history)")
            }
            try await running.stop()
            await system.close()
        }
    }

    @Test("a message stored but never published (router died in between) is published by the outbox through Redis")
    func outbox() async throws {
        try await withPersistentRedis { redis in
            let system = try SwitchboardSystem(settings: redisSettings(redis), logger: quietLogger())
            #expect(system.adapters.names.queue == "redis")
            let now = SystemTime.now()
            let orphan = NewCommunication(id: "0000000000000000000000bb", request: CommunicationRequest(channel: .sms, from: "+15550000000", to: "+15551112222", msg: "orphan"), idempotencyKey: nil, createdAt: now, dispatchAt: now.adding(.milliseconds(300)))
            _ = try await system.adapters.store.create([orphan])
            let client = try RedisClient(url: redis.url)
            #expect(try await client.xlen("sms_stream") == 0)
            let running = Running(system)
            try await eventually("orphan sent") { try await system.adapters.store.communication(id: orphan.id)?.status == .sent }
            let c = try #require(try await system.adapters.store.communication(id: orphan.id))
            // Published by the outbox (its `queued` may be overtaken by the worker, which is then recorded instead).
            #expect(c.history.filter { $0.status == .queued }.allSatisfy { $0.service == "scheduler" })
            #expect(try await system.adapters.mailbox!.messages(channel: .sms, to: nil, limit: 10).map(\.communicationId) == [orphan.id])
            // It went through Redis: the group delivered it and it was acknowledged.
            try await eventually("acknowledged") { try await client.xinfoGroups("sms_stream").first?.pending == 0 }
            let groups = try await client.xinfoGroups("sms_stream")
            #expect(groups.map(\.name) == [StreamNames.workerGroup] && groups.first?.lastDeliveredID != "0-0")
            try await running.stop()
            await client.shutdown()
            await system.close()
        }
    }

    @Test("while Redis is down the API answers 200 at once and keeps the message, queued as answered, in the outbox; once Redis is back it is sent")
    func redisDown() async throws {
        try await withPersistentRedis { redis in
            // The outage makes every service log errors: keep the test output readable.
            var silent = quietLogger()
            silent.logLevel = .critical
            let system = try SwitchboardSystem(settings: redisSettings(redis), logger: silent)
            let running = Running(system)
            try await system.application().test(.router) { client in
                let first = try await post(client, .sms, to: recipient(.sms, 0), msg: "before")
                try await eventually("first sent") { try await system.adapters.store.communication(id: first)?.status == .sent }
                let ready = try json(try await client.execute(uri: "/api/v1/health", method: .get))
                #expect(ready["dependencies"]?["queue"] == .object(["engine": .string("redis"), "status": .string("up"), "error": .null]))

                await redis.terminate()
                var accepted: [String] = []
                for i in 1...20 {
                    let type = MessageChannel.allCases[i % 3]
                    let started = ContinuousClock.now
                    accepted.append(try await post(client, type, to: recipient(type, i), msg: "while down \(i)"))
                    #expect(ContinuousClock.now - started < .seconds(3), "request \(i) waited \(ContinuousClock.now - started)")
                }
                // Stored as answered: `queued` (pending, then queued, by the router), still due in the outbox.
                for id in accepted {
                    let c = try await system.adapters.store.communication(id: id)
                    #expect(c?.status == .queued && c?.history.map(\.status) == [.pending, .queued] && c?.dispatchAt != nil)
                }
                let down = try await client.execute(uri: "/health/ready", method: .get)
                #expect(down.status == .ok)  // degraded, not unavailable: the router still accepts
                #expect(try json(down)["status"] == .string("degraded"))
                #expect(try json(down)["dependencies"]?["queue"]?["status"] == .string("down"))
                #expect(try json(down)["dependencies"]?["store"]?["status"] == .string("up"))

                try await redis.launch()
                try await eventually("all sent after Redis came back") {
                    for id in accepted where try await system.adapters.store.communication(id: id)?.status != .sent { return false }
                    return true
                }
                let delivered = try await system.adapters.mailbox!.messages(channel: nil, to: nil, limit: 100)
                #expect(delivered.count == 21 && Set(delivered.map(\.communicationId)) == Set(accepted + [first]))
                for id in accepted {
                    let c = try #require(try await system.adapters.store.communication(id: id))
                    // The router's accept, then the outbox's new dispatch once Redis answered again.
                    #expect(Array(c.history.prefix(4).map(\.status)) == [.pending, .queued, .pending, .queued])
                    #expect(c.history.dropFirst(2).prefix(2).allSatisfy { $0.service == "scheduler" } && c.dispatchSeq == 2)
                }
                #expect(try await client.execute(uri: "/health/ready", method: .get).status == .ok)
                // The router's log entries of the outage waited in the spool: communication-logs has no holes.
                try await eventually("every status change of the outage in communication-logs") {
                    for id in accepted {
                        let logs = try json(try await client.execute(uri: "/api/v1/logs?communicationId=\(id)", method: .get))
                        guard case .array(let items)? = logs["items"] else { return false }
                        let statuses = items.compactMap { $0["status"]?.stringValue }.sorted()
                        // Exactly the history in the store (the scheduler's `queued` may have been overtaken).
                        let history = try #require(try await system.adapters.store.communication(id: id)).history.map(\.status.rawValue).sorted()
                        if statuses != history { return false }
                    }
                    return true
                }
                #expect(await system.adapters.logSpool.count == 0)
            }
            try await running.stop()
            await system.close()
        }
    }

    @Test("workers and the logger started while Redis is down wait for it, then deliver")
    func startedWhileDown() async throws {
        try await withPersistentRedis { redis in
            await redis.terminate()
            var silent = quietLogger()
            silent.logLevel = .critical
            let system = try SwitchboardSystem(settings: redisSettings(redis), logger: silent)
            let running = Running(system)
            try await system.application().test(.router) { client in
                let id = try await post(client, .whatsapp, to: recipient(.whatsapp, 7), msg: "early")
                try await Task.sleep(for: .milliseconds(700))
                try await redis.launch()
                try await eventually("sent once Redis is up") { try await system.adapters.store.communication(id: id)?.status == .sent }
                try await eventually("logged") {
                    let logs = try json(try await client.execute(uri: "/api/v1/logs?communicationId=\(id)&status=sent", method: .get))
                    return logs["count"] == .number(1)
                }
            }
            try await running.stop()
            await system.close()
        }
    }

    @Test("Redis restarted empty (no persistence): the stall watchdog redispatches every message that was queued, each is sent once")
    func restartedEmpty() async throws {
        let redis = try await RedisServer.start()  // --save "" --appendonly no: a restart loses everything
        defer { Task { await redis.stop() } }
        var settings = redisSettings(redis)
        settings.stallTimeout = .seconds(2)
        var silent = quietLogger()
        silent.logLevel = .critical
        let system = try SwitchboardSystem(settings: settings, logger: silent)
        #expect(system.pipelineOptions.stallTimeout == .seconds(2))
        // Only the router side runs: the messages wait on their streams in Redis.
        let router = Running(system, role: .router)
        let ids = try await system.application().test(.router) { client in
            var ids: [String] = []
            for i in 0..<30 {
                let type = MessageChannel.allCases[i % 3]
                ids.append(try await post(client, type, to: recipient(type, i), msg: "lost \(i)"))
            }
            return ids
        }
        try await eventually("all queued") {
            for id in ids where try await system.adapters.store.communication(id: id)?.status != .queued { return false }
            return true
        }
        let client = try RedisClient(url: redis.url)
        // At least the 10 SMS entries; on a loaded machine the 2 s watchdog may already have redispatched some.
        #expect(try await client.xlen("sms_stream") >= 10)
        _ = try await client.send("SET", "restart-marker", "1")
        await client.shutdown()
        try await redis.restart()
        // Redis came back empty. (Not checked on the streams: the router's 2 s watchdog may already be filling
        // them again.)
        let check = try RedisClient(url: redis.url)
        #expect(try await check.send("EXISTS", "restart-marker").int == 0)
        await check.shutdown()
        let workers = MessageChannel.allCases.map { Running(system, role: .worker($0)) }
        try await eventually(timeout: .seconds(40), "all sent after the watchdog fired") {
            for id in ids where try await system.adapters.store.communication(id: id)?.status != .sent { return false }
            return true
        }
        let delivered = try await system.adapters.mailbox!.messages(channel: nil, to: nil, limit: 100)
        #expect(delivered.count == 30 && Set(delivered.map(\.communicationId)) == Set(ids))
        let c = try #require(try await system.adapters.store.communication(id: ids[0]))
        #expect(c.dispatchSeq >= 2 && c.attempts == 1)
        // pending, queued, then the scheduler's redispatch to pending, (queued, possibly overtaken), processing, sent.
        #expect(Array(c.history.map(\.status).prefix(3)) == [.pending, .queued, .pending] && c.history.last?.status == .sent)
        #expect(c.history[2].service == "scheduler" && c.history[2].detail?.contains("redispatched") == true)
        for w in workers { try await w.stop() }
        try await router.stop()
        await system.close()
    }

    @Test("a watchdog that fires on a message only waiting in a backlog sends it once: the old entry is stale")
    func watchdogFalseAlarm() async throws {
        try await withPersistentRedis { redis in
            var settings = redisSettings(redis)
            settings.stallTimeout = .seconds(1)
            let system = try SwitchboardSystem(settings: settings, logger: quietLogger())
            let router = Running(system, role: .router)
            let ids = try await system.application().test(.router) { client in
                var ids: [String] = []
                for i in 0..<12 { ids.append(try await post(client, .sms, to: recipient(.sms, i), msg: "slow \(i)")) }
                return ids
            }
            // Nobody consumes for a while: the watchdog fires and a second dispatch is published beside the first.
            try await eventually("redispatched") {
                for id in ids where (try await system.adapters.store.communication(id: id)?.dispatchSeq ?? 0) < 2 { return false }
                return true
            }
            try await router.stop()
            let client = try RedisClient(url: redis.url)
            #expect(try await client.xlen("sms_stream") >= 24)
            let worker = Running(system, role: .worker(.sms))
            try await eventually("all sent") {
                for id in ids where try await system.adapters.store.communication(id: id)?.status != .sent { return false }
                return true
            }
            try await eventually("every entry settled") { try await client.xinfoGroups("sms_stream").first?.pending == 0 }
            let delivered = try await system.adapters.mailbox!.messages(channel: .sms, to: nil, limit: 100)
            #expect(delivered.count == 12 && Set(delivered.map(\.communicationId)) == Set(ids))
            try await worker.stop()
            await client.shutdown()
            await system.close()
        }
    }

    @Test("REDIS_URL is read, validated and masked in the logged summary")
    func settings() throws {
        let s = try Settings.fromEnvironment(["REDIS_URL": "redis://app:s3cr%40t@cache.internal:6380/2", "SWITCHBOARD_REDIS_WAIT_MS": "250"])
        #expect(s.redisURL == "redis://app:s3cr%40t@cache.internal:6380/2")
        #expect(s.redisUnavailableWait == .milliseconds(250))
        let queue = try #require(s.summary.first { $0.0 == "queue" }?.1)
        #expect(queue.contains("redis://app:****@cache.internal:6380/2"))
        #expect(!s.summary.contains { $0.1.contains("s3cr") })
        #expect(Settings.mask("redis://:p@ss@host:1") == "redis://:****@host:1")
        #expect(throws: SettingsError.self) { try Settings.fromEnvironment(["REDIS_URL": "http://x:secret@host"]) }
        do {
            _ = try Settings.fromEnvironment(["REDIS_URL": "redis://u:secret@host:notaport"])
            Issue.record("a bad port was accepted")
        } catch {
            #expect(!"\(error)".contains("secret"))
        }
        #expect(try Settings.fromEnvironment([:]).redisURL == nil)
    }
}
