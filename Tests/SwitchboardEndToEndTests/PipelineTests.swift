import Foundation
import Synchronization
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import SwitchboardTestSystem
import Testing
import SwitchboardApp
import SwitchboardCore
import SwitchboardSandbox
import SwitchboardServer
import SwitchboardSQLite

@Suite("End to end, in one process", .serialized)
struct PipelineTests {
    /// The atomic pipeline with each commit synced by the writer's sync thread (the default), without syncs,
    /// and the port-by-port path.
    @Test("300 messages, 100 per channel, all reach sent; logs and search see them", arguments: [(true, SQLiteSynchronous.full), (true, .normal), (false, .normal)])
    func threeHundred(atomic: Bool, synchronous: SQLiteSynchronous) async throws {
        var settings = testSettings()
        settings.synchronous = synchronous
        var configured = try SwitchboardSystem(settings: settings, logger: quietLogger())
        if !atomic { configured.usePortByPortPipeline() }  // the port-by-port path other engines use
        let system = configured
        let running = Running(system)
        try await system.application().test(.router) { client in
            var ids: [String] = []
            try await withThrowingTaskGroup(of: String.self) { group in
                for type in MessageChannel.allCases {
                    for i in 0..<100 {
                        group.addTask { try await post(client, type, to: recipient(type, i), msg: "e2e \(type.rawValue) number \(i)") }
                    }
                }
                for try await id in group { ids.append(id) }
            }
            try await eventually("300 sent") { try await count(system, .sent) == 300 }
            #expect(try await total(system) == 300)

            // Every message went through the sandbox exactly once (the guarantee is at least once: an entry
            // whose lease runs out while its batch is still being delivered is taken over and delivered again;
            // the history then says so).
            let delivered = try await system.adapters.mailbox!.messages(channel: nil, to: nil, limit: 1000)
            #expect(delivered.count == 300)
            if let twice = Dictionary(grouping: delivered, by: \.communicationId).first(where: { $0.value.count > 1 })?.key,
               let c = try await system.adapters.store.communication(id: twice) {
                Issue.record("delivered more than once: \(twice), history \(c.history.map { "\($0.status.rawValue)@\($0.at.milliseconds) \($0.detail ?? "")" })")
            }
            #expect(Set(delivered.map(\.communicationId)) == Set(ids))

            // Search: the communications index follows the status.
            let found = try json(try await client.execute(uri: "/api/v1/communications?q=whatsapp%20number%2042", method: .get))
            guard case .array(let items)? = found["items"] else { Issue.record("no items"); return }
            #expect(items.count == 1)
            #expect(items.first?["status"] == .string("sent"))
            #expect(items.first?["to"] == .string(recipient(.whatsapp, 42)))

            // Logs: the logging service indexed every transition of a message.
            let id = try #require(items.first?["communicationId"]?.stringValue)
            try await eventually("logs of \(id)") {
                let logs = try json(try await client.execute(uri: "/api/v1/logs?communicationId=\(id)", method: .get))
                guard case .array(let entries)? = logs["items"] else { return false }
                let statuses = Set(entries.compactMap { $0["status"]?.stringValue })
                // On the port-by-port path a worker may take the entry before the router records `queued`;
                // the message then goes pending → processing, and `queued` is (rightly) not logged.
                return atomic ? statuses == ["pending", "queued", "processing", "sent"] : statuses.isSuperset(of: ["pending", "processing", "sent"])
            }
            let shown = try json(try await client.execute(uri: "/api/v1/communication/\(id)", method: .get))
            #expect(shown["provider"] == .string("sandbox"))
            #expect(shown["providerMessageId"]?.stringValue?.hasPrefix("sbx_") == true)
            #expect(shown["attempts"] == .number(1))
            let sandbox = try json(try await client.execute(uri: "/api/v1/sandbox/messages?type=whatsapp&limit=5", method: .get))
            #expect(sandbox["count"] == .number(5))
        }
        try await running.stop()
        await system.database.close()
    }

    @Test("magic recipients: permanent and exhausted retries end failed with the error and a dead letter; flaky ends sent", arguments: [true, false])
    func failures(atomic: Bool) async throws {
        var configured = try SwitchboardSystem(settings: testSettings(maxAttempts: 3), logger: quietLogger())
        if !atomic { configured.usePortByPortPipeline() }
        let system = configured
        let running = Running(system)
        try await system.application().test(.router) { client in
            let permanent = try await post(client, .sms, to: SandboxProvider.MagicRecipient.permanentPhone, msg: "p")
            let transient = try await post(client, .email, to: SandboxProvider.MagicRecipient.transientEmail, msg: "t")
            let flaky = try await post(client, .whatsapp, to: SandboxProvider.MagicRecipient.flakyPhone, msg: "f")
            try await eventually("final statuses") {
                let failed = try await count(system, .failed)
                let sent = try await count(system, .sent)
                return failed == 2 && sent == 1
            }

            let p = try #require(try await system.adapters.store.communication(id: permanent))
            #expect(p.status == .failed && p.attempts == 1 && p.lastError?.code == "SANDBOX_REJECTED")
            let t = try #require(try await system.adapters.store.communication(id: transient))
            #expect(t.status == .failed && t.attempts == 3 && t.lastError?.code == "SANDBOX_UNAVAILABLE")
            // A retry's `queued` may be overtaken by the worker that takes the republished entry: it is then skipped.
            let statuses = t.history.map(\.status).filter { $0 != .queued }
            #expect(statuses == [.pending, .processing, .retrying, .processing, .retrying, .processing, .failed])
            let f = try #require(try await system.adapters.store.communication(id: flaky))
            #expect(f.status == .sent && f.attempts == 3 && f.lastError?.code == "SANDBOX_FLAKY")

            let smsDead = try json(try await client.execute(uri: "/api/v1/dead-letters?stream=sms_stream", method: .get))
            #expect(smsDead["count"] == .number(1))
            #expect(smsDead["items"].flatMap { if case .array(let a) = $0 { a.first?["fields"]?["_id"] } else { nil } } == .string(permanent))
            // On the port-by-port path the entry is dead-lettered just after `failed` is committed.
            try await eventually("dead letter of the transient failure") {
                try await !system.adapters.queue.entries(stream: "email_stream:dead", limit: 10).isEmpty
            }
            let emailDead = try await system.adapters.queue.entries(stream: "email_stream:dead", limit: 10)
            #expect(emailDead.map { $0.fields["_id"] } == [transient])
            #expect(emailDead.first?.fields["dead_reason"]?.contains("SANDBOX_UNAVAILABLE") == true)
            #expect(try await system.adapters.queue.entries(stream: "whatsapp_stream:dead", limit: 10).isEmpty)

            let shown = try json(try await client.execute(uri: "/api/v1/communication/\(transient)", method: .get))
            #expect(shown["status"] == .string("failed"))
            #expect(shown["lastError"]?["code"] == .string("SANDBOX_UNAVAILABLE"))
            try await eventually("failure logged") {
                let logs = try json(try await client.execute(uri: "/api/v1/logs?communicationId=\(permanent)&status=failed", method: .get))
                return logs["count"] == .number(1) && { if case .array(let a)? = logs["items"] { a.first?["error"]?.stringValue?.contains("SANDBOX_REJECTED") == true } else { false } }()
            }
        }
        try await running.stop()
        await system.database.close()
    }

    @Test("retention: once the period has passed, finished messages, their logs, dead letters and sandbox copies are gone; search and new messages work on")
    func retention() async throws {
        #expect(try Settings.fromEnvironment(["SWITCHBOARD_RETENTION_DAYS": "7"]).retention == .seconds(7 * 86_400))
        #expect(try Settings.fromEnvironment(["SWITCHBOARD_RETENTION_DAYS": "0"]).retention == nil)
        #expect(try Settings.fromEnvironment([:]).retention == nil)
        for bad in ["-1", "seven", "1.5"] {
            #expect(throws: SettingsError.self) { try Settings.fromEnvironment(["SWITCHBOARD_RETENTION_DAYS": bad]) }
        }
        var settings = testSettings()
        settings.retention = .seconds(86_400)
        let system = try SwitchboardSystem(settings: settings, logger: quietLogger())
        #expect(system.retentionTargets.map(\.name) == ["store", "dead letters", "search index", "sandbox", "callback deliveries", "attachments"])
        let running = Running(system)
        try await system.application().test(.router) { client in
            var ids: [String] = []
            for (i, type) in MessageChannel.allCases.enumerated() { ids.append(try await post(client, type, to: recipient(type, i), msg: "kept for a day \(i)")) }
            // And one that fails for good: a failed message and a dead letter.
            ids.append(try await post(client, .sms, to: SandboxProvider.MagicRecipient.permanentPhone, msg: "kept for a day too"))
            try await eventually("3 sent, 1 failed, all logged") {
                let logs = try json(try await client.execute(uri: "/api/v1/logs?limit=100", method: .get))
                let sent = try await count(system, .sent), failed = try await count(system, .failed)
                return sent == 3 && failed == 1 && logs["count"] == .number(16)
            }
            try await eventually("the dead letter") { try await !system.adapters.queue.entries(stream: "sms_stream:dead", limit: 1).isEmpty }
            // A day later, nothing is old enough yet; a day and a minute later, everything is.
            let now = SystemTime.now()
            let tooEarly = RetentionService(period: .seconds(86_400), targets: system.retentionTargets, logger: quietLogger(), clock: { now.adding(.seconds(86_000)) })
            #expect(await tooEarly.purgeOnce() == ["store": 0, "dead letters": 0, "search index": 0, "sandbox": 0, "callback deliveries": 0, "attachments": 0])
            let later = RetentionService(period: .seconds(86_400), targets: system.retentionTargets, logger: quietLogger(), clock: { now.adding(.seconds(86_460)) })
            #expect(await later.purgeOnce() == ["store": 4, "dead letters": 1, "search index": 16, "sandbox": 3, "callback deliveries": 0, "attachments": 0])

            #expect(try await client.execute(uri: "/api/v1/communication/\(ids[0])", method: .get).status == .notFound)
            #expect(try json(try await client.execute(uri: "/api/v1/communications?q=kept", method: .get))["count"] == .number(0))
            #expect(try json(try await client.execute(uri: "/api/v1/logs", method: .get))["count"] == .number(0))
            #expect(try json(try await client.execute(uri: "/api/v1/sandbox/messages", method: .get))["count"] == .number(0))
            #expect(try json(try await client.execute(uri: "/api/v1/dead-letters?stream=sms_stream", method: .get))["count"] == .number(0))

            // The system carries on: a new message is delivered, found by text and logged.
            let id = try await post(client, .sms, to: recipient(.sms, 9), msg: "after the purge")
            try await eventually("the new message sent and logged") {
                let logs = try json(try await client.execute(uri: "/api/v1/logs?communicationId=\(id)", method: .get))
                return try await count(system, .sent) == 1 && logs["count"] == .number(4)
            }
            let found = try json(try await client.execute(uri: "/api/v1/communications?q=purge", method: .get))
            #expect(found["items"].flatMap { if case .array(let a) = $0 { a.first?["communicationId"] } else { nil } } == .string(id))
        }
        try await running.stop()
        await system.database.close()
    }

    @Test("stopping and restarting the services on the same file mid-run loses nothing and sends nothing twice")
    func restart() async throws {
        let settings = testSettings()
        var system = try SwitchboardSystem(settings: settings, logger: quietLogger())
        let ids = try await system.application().test(.router) { client in
            var ids: [String] = []
            for i in 0..<300 {
                let type = MessageChannel.allCases[i % 3]
                // Every tenth is flaky, so some are waiting for a retry when we stop.
                let to = i % 10 == 0 ? (type == .email ? SandboxProvider.MagicRecipient.flakyEmail : SandboxProvider.MagicRecipient.flakyPhone) : recipient(type, i)
                ids.append(try await post(client, type, to: to, msg: "restart \(i)"))
            }
            return ids
        }
        var running = Running(system)
        try await eventually("some sent") { try await count(system, .sent) >= 50 }
        try await running.stop()
        await system.database.close()
        let sentAtStop = try await {
            let s = try SwitchboardSystem(settings: settings, logger: quietLogger())
            defer { Task { await s.database.close() } }
            return try await count(s, .sent)
        }()
        #expect(sentAtStop < 300, "stopped too late to test a restart")

        system = try SwitchboardSystem(settings: settings, logger: quietLogger())
        running = Running(system)
        try await eventually("all sent after restart") { try await count(system, .sent) == 300 }
        try await running.stop()
        let delivered = try await system.adapters.mailbox!.messages(channel: nil, to: nil, limit: 1000)
        #expect(delivered.count == 300)
        #expect(Set(delivered.map(\.communicationId)) == Set(ids))
        for type in MessageChannel.allCases {
            let info = try await system.adapters.queue.info(stream: type.stream, group: StreamNames.workerGroup)
            #expect(info.pending == 0 && info.deadLetters == 0)
        }
        await system.database.close()
    }

    @Test("idempotent requests create one message and one delivery")
    func idempotency() async throws {
        let system = try SwitchboardSystem(settings: testSettings(), logger: quietLogger())
        let running = Running(system)
        try await system.application().test(.router) { client in
            var headers = jsonHeaders
            headers[HTTPField.Name("Idempotency-Key")!] = "welcome-7"
            let a = try await post(client, .email, to: "ada@example.com", msg: "Welcome", headers: headers)
            let b = try await post(client, .email, to: "ada@example.com", msg: "Welcome", headers: headers)
            #expect(a == b)
            try await eventually("sent") { try await count(system, .sent) == 1 }
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await system.adapters.mailbox!.messages(channel: .email, to: nil, limit: 10).count == 1)
        }
        try await running.stop()
        await system.database.close()
    }

    @Test("a message stored but never published (router died in between) is published by the outbox")
    func outbox() async throws {
        let system = try SwitchboardSystem(settings: testSettings(), logger: quietLogger())
        let now = SystemTime.now()
        let orphan = NewCommunication(id: "0000000000000000000000aa", request: CommunicationRequest(channel: .sms, from: "+15550000000", to: "+15551112222", msg: "orphan"), idempotencyKey: nil, createdAt: now, dispatchAt: now.adding(.milliseconds(300)))
        _ = try await system.adapters.store.create([orphan])
        #expect(try await system.adapters.queue.info(stream: "sms_stream", group: StreamNames.workerGroup).length == 0)
        let running = Running(system)
        try await eventually("orphan sent") { try await system.adapters.store.communication(id: orphan.id)?.status == .sent }
        let c = try #require(try await system.adapters.store.communication(id: orphan.id))
        // The scheduler published it; its `queued` record may be overtaken by the worker (then not recorded).
        let queued = c.history.filter { $0.status == .queued }
        #expect(queued.allSatisfy { $0.service == "scheduler" })
        #expect(c.history.map(\.status).filter { $0 != .queued } == [.pending, .processing, .sent])
        try await running.stop()
        await system.database.close()
    }

    @Test("entries held by a crashed worker are taken over when their lease runs out")
    func crashedWorker() async throws {
        let system = try SwitchboardSystem(settings: testSettings(), logger: quietLogger())
        let ids = try await system.application().test(.router) { client in
            var ids: [String] = []
            for i in 0..<20 { ids.append(try await post(client, .sms, to: recipient(.sms, i), msg: "held \(i)")) }
            return ids
        }
        // A "worker" that reads everything, marks it processing, and dies without acknowledging.
        let queue = system.adapters.queue
        try await queue.createGroup(stream: "sms_stream", group: StreamNames.workerGroup)
        let held = try await queue.read(stream: "sms_stream", group: StreamNames.workerGroup, consumer: "crashed", count: 100, block: .zero)
        #expect(held.count == 20)
        _ = try await system.adapters.store.apply(held.compactMap { DispatchEntry(fields: $0.fields) }.map { StatusTransition(id: $0.communicationId, event: .processing(dispatchSeq: $0.dispatchSeq, redelivery: false), at: SystemTime.now(), service: "sms") })
        let running = Running(system)
        try await eventually("taken over") { try await count(system, .sent) == 20 }
        for id in ids {
            let c = try #require(try await system.adapters.store.communication(id: id))
            #expect(c.attempts == 2)  // the crashed attempt and the takeover
        }
        #expect(try await system.adapters.mailbox!.messages(channel: .sms, to: nil, limit: 100).count == 20)
        try await running.stop()
        await system.database.close()
    }

    /// A provider that takes `delay` to deliver, and counts its calls.
    final class SlowProvider: DeliveryProvider {
        let name = "slow"
        let delay: Duration
        let calls = Mutex(0)
        init(delay: Duration) { self.delay = delay }
        func deliver(_ message: OutboundMessage) async -> DeliveryResult {
            calls.withLock { $0 += 1 }
            try? await Task.sleep(for: delay)
            return .sent(providerMessageID: "slow-\(message.id)")
        }
    }

    @Test("a delivery slower than the lease keeps its entry: a second worker does not take it over, the provider is called once")
    func slowDeliveryKeepsItsLease() async throws {
        var settings = testSettings()
        // A lease renewed every third of it: two seconds leave a loaded machine's late wake-ups over a second of
        // room (at 600 ms, 400 ms of lateness let the second worker in).
        settings.lease = .seconds(2)
        let system = try SwitchboardSystem(settings: settings, logger: quietLogger())
        let id = try await system.application().test(.router) { client in
            try await post(client, .sms, to: recipient(.sms, 1), msg: "slow")
        }
        let slow = SlowProvider(delay: .seconds(5))  // over two leases
        let workers = (1...2).map { n in
            ChannelWorker(channel: .sms, adapters: system.adapters, providers: [slow], options: system.pipelineOptions, consumer: "slow-\(n)", logger: quietLogger())
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in workers { group.addTask { try await worker.run() } }
            try await eventually("sent") { try await system.adapters.store.communication(id: id)?.status == .sent }
            // Two more leases: nothing is taken over afterwards either.
            try await Task.sleep(for: settings.lease * 2)
            group.cancelAll()
        }
        let c = try #require(try await system.adapters.store.communication(id: id))
        #expect(slow.calls.withLock { $0 } == 1)
        #expect(c.attempts == 1 && c.provider == "slow")
        #expect(c.history.filter { $0.status == .processing }.count == 1, "\(c.history)")
        let info = try await system.adapters.queue.info(stream: "sms_stream", group: StreamNames.workerGroup)
        #expect(info.length == 0 && info.pending == 0)
        await system.close()
    }

    @Test("channel entries without _id or dispatch number go to the dead-letter stream; one for an unknown communication is acknowledged; neither sends")
    func malformedChannelEntries() async throws {
        let system = try SwitchboardSystem(settings: testSettings(), logger: quietLogger())
        let queue = system.adapters.queue
        try await queue.createGroup(stream: "sms_stream", group: StreamNames.workerGroup)
        try await queue.publish(stream: "sms_stream", entries: [
            ["to": "+15550000001", "msg": "no id", "seq": "1"],
            ["_id": "6b14fae1d219cbfa0300aaaa", "to": "+15550000001", "msg": "no seq"],
            ["_id": "6b14fae1d219cbfa0300bbbb", "seq": "1", "data": "not json", "type": "sms"],
        ])
        let running = Running(system)
        try await eventually("settled") {
            let info = try await queue.info(stream: "sms_stream", group: StreamNames.workerGroup)
            return info.length == 0 && info.pending == 0
        }
        let dead = try await queue.entries(stream: "sms_stream:dead", limit: 10)
        #expect(dead.map { $0.fields["msg"] } == ["no id", "no seq"])
        #expect(dead.allSatisfy { $0.fields["dead_reason"] == "malformed entry" })
        #expect(try await system.adapters.mailbox!.messages(channel: nil, to: nil, limit: 10).isEmpty)
        try await running.stop()
        await system.close()
    }

    @Test("an entry handed out more than maxDeliveries times without an ack ends failed and dead-lettered")
    func poisonEntry() async throws {
        var settings = testSettings()
        settings.pipeline.maxDeliveries = 2
        settings.lease = .milliseconds(300)
        let system = try SwitchboardSystem(settings: settings, logger: quietLogger())
        let id = try await system.application().test(.router) { client in
            try await post(client, .sms, to: recipient(.sms, 1), msg: "poison")
        }
        // Two consumers take the entry and die without acknowledging it.
        let queue = system.adapters.queue
        try await queue.createGroup(stream: "sms_stream", group: StreamNames.workerGroup)
        for consumer in ["crash-1", "crash-2"] {
            let got = try await queue.read(stream: "sms_stream", group: StreamNames.workerGroup, consumer: consumer, count: 10, block: .seconds(2))
            #expect(got.count == 1)
            try await Task.sleep(for: .milliseconds(400))
        }
        let running = Running(system)
        try await eventually("failed") { try await system.adapters.store.communication(id: id)?.status == .failed }
        let c = try #require(try await system.adapters.store.communication(id: id))
        #expect(c.lastError?.code == "max_deliveries")
        let dead = try await queue.entries(stream: "sms_stream:dead", limit: 10)
        #expect(dead.map { $0.fields["_id"] } == [id])
        #expect(dead.first?.fields["dead_deliveries"] == "3")
        #expect(try await system.adapters.mailbox!.messages(channel: .sms, to: nil, limit: 10).isEmpty)
        try await running.stop()
        await system.database.close()
    }
}
