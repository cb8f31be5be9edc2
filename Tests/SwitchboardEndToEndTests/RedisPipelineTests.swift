import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
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
    @Test("a message stored but never published (router died in between) is published by the outbox through Redis")
    func outbox() async throws {
        try await withPersistentRedis { redis in
            let system = try SwitchboardSystem(settings: redisSettings(redis), logger: quietLogger())
            #expect(system.engine.names.queue == "redis")
            let now = SystemTime.now()
            let orphan = NewCommunication(id: "0000000000000000000000bb", request: CommunicationRequest(channel: .sms, from: "+15550000000", to: "+15551112222", msg: "orphan"), idempotencyKey: nil, createdAt: now, dispatchAt: now.adding(.milliseconds(300)))
            _ = try await system.engine.store.create([orphan])
            let client = try RedisClient(url: redis.url)
            #expect(try await client.xlen("sms_stream") == 0)
            let running = Running(system)
            try await eventually(timeout: .seconds(30), "orphan sent") { try await system.engine.store.communication(id: orphan.id)?.status == .sent }
            let c = try #require(try await system.engine.store.communication(id: orphan.id))
            // Published by the outbox (its `queued` may be overtaken by the worker, which is then recorded instead).
            #expect(c.history.filter { $0.status == .queued }.allSatisfy { $0.service == "scheduler" })
            #expect(try await system.engine.mailbox!.messages(channel: .sms, to: nil, limit: 10).map(\.communicationId) == [orphan.id])
            // It went through Redis: the group delivered it and it was acknowledged.
            try await eventually(timeout: .seconds(20), "acknowledged") { try await client.xinfoGroups("sms_stream").first?.pending == 0 }
            let groups = try await client.xinfoGroups("sms_stream")
            #expect(groups.map(\.name) == [StreamNames.workerGroup] && groups.first?.lastDeliveredID != "0-0")
            try await running.stop()
            await client.shutdown()
            await system.close()
        }
    }

    @Test("while Redis is down the API answers 200 at once and keeps the message in the outbox; once Redis is back it is sent")
    func redisDown() async throws {
        try await withPersistentRedis { redis in
            // The outage makes every service log errors: keep the test output readable.
            var silent = quietLogger()
            silent.logLevel = .critical
            let system = try SwitchboardSystem(settings: redisSettings(redis), logger: silent)
            let running = Running(system)
            try await system.application().test(.router) { client in
                let first = try await post(client, .sms, to: recipient(.sms, 0), msg: "before")
                try await eventually("first sent") { try await system.engine.store.communication(id: first)?.status == .sent }
                let ready = try json(try await client.execute(uri: "/health/ready", method: .get))
                #expect(ready["dependencies"]?["queue"] == .object(["engine": .string("redis"), "status": .string("up"), "error": .null]))

                await redis.terminate()
                var accepted: [String] = []
                for i in 1...20 {
                    let type = Channel.allCases[i % 3]
                    let started = ContinuousClock.now
                    accepted.append(try await post(client, type, to: recipient(type, i), msg: "while down \(i)"))
                    #expect(ContinuousClock.now - started < .seconds(3), "request \(i) waited \(ContinuousClock.now - started)")
                }
                for id in accepted {
                    #expect(try await system.engine.store.communication(id: id)?.status == .pending)
                }
                let down = try await client.execute(uri: "/health/ready", method: .get)
                #expect(down.status == .serviceUnavailable)
                #expect(try json(down)["dependencies"]?["queue"]?["status"] == .string("down"))
                #expect(try json(down)["dependencies"]?["store"]?["status"] == .string("up"))

                try await redis.launch()
                try await eventually(timeout: .seconds(30), "all sent after Redis came back") {
                    for id in accepted where try await system.engine.store.communication(id: id)?.status != .sent { return false }
                    return true
                }
                let delivered = try await system.engine.mailbox!.messages(channel: nil, to: nil, limit: 100)
                #expect(delivered.count == 21 && Set(delivered.map(\.communicationId)) == Set(accepted + [first]))
                for id in accepted {
                    let c = try #require(try await system.engine.store.communication(id: id))
                    #expect(c.history.filter { $0.status == .queued }.allSatisfy { $0.service == "scheduler" })
                }
                #expect(try await client.execute(uri: "/health/ready", method: .get).status == .ok)
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
                try await eventually(timeout: .seconds(30), "sent once Redis is up") { try await system.engine.store.communication(id: id)?.status == .sent }
                try await eventually(timeout: .seconds(30), "logged") {
                    let logs = try json(try await client.execute(uri: "/api/v1/logs?communicationId=\(id)&status=sent", method: .get))
                    return logs["count"] == .number(1)
                }
            }
            try await running.stop()
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
