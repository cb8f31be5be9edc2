import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import ServiceLifecycle
import Synchronization
import SwitchboardApp
import SwitchboardCore
import SwitchboardServer
import SwitchboardTestSupport
import SwitchboardTestSystem
import Testing

/// A provider that rejects every message for good while `rejecting` (a recipient's number being wrong, say),
/// and sends once the cause is fixed; it counts its calls and its sends per message, so a test sees exactly how
/// often each message reached a provider.
final class FixableProvider: DeliveryProvider {
    let name = "fixable"
    private let state = Mutex<(rejecting: Bool, calls: [String: Int], sends: [String: Int])>((true, [:], [:]))

    var rejecting: Bool {
        get { state.withLock { $0.rejecting } }
        set { state.withLock { $0.rejecting = newValue } }
    }
    var calls: [String: Int] { state.withLock { $0.calls } }
    var sends: [String: Int] { state.withLock { $0.sends } }

    func deliver(_ message: OutboundMessage) async -> DeliveryResult {
        state.withLock { s in
            s.calls[message.id, default: 0] += 1
            if s.rejecting { return .permanent(ProviderError(code: "FIXABLE_REJECTED", message: "rejected until fixed")) }
            s.sends[message.id, default: 0] += 1
            return .sent(providerMessageID: "fx_\(message.id)_\(message.attempt)")
        }
    }
}

@Suite("Redrive: dead-lettered messages sent again once, by the key that asked", .serialized, .timeLimit(.minutes(3)))
struct RedriveTests {
    /// The engines a redrive is tried on: the embedded pipeline, the port-by-port one on the same SQLite file, the
    /// port-by-port one with the streams on Redis, and with the store on MongoDB.
    enum Engines: String, CustomStringConvertible {
        case embedded, portByPort, redis, mongo
        var description: String { rawValue }
        /// Every one this build has (MongoDB only with the trait).
        static var available: [Engines] { Settings.mongoDBAvailable ? [.embedded, .portByPort, .redis, .mongo] : [.embedded, .portByPort, .redis] }
    }

    /// Runs `body` with a system on `engines` whose keys are required (a bootstrap admin key, passed to `body`);
    /// the throwaway servers are stopped and the system closed afterwards.
    static func withSystem(_ engines: Engines, _ body: @escaping (SwitchboardSystem, String) async throws -> Void) async throws {
        let admin = KeyAdministration.generateSecret()
        func run(_ settings: Settings, portByPort: Bool = false) async throws {
            var settings = settings
            settings.adminKey = admin
            // The checks count dispatches: an outbox republication of a publication confirmed late on a loaded
            // machine (right, but a dispatch more) must not happen within a scenario.
            settings.pipeline.outboxGrace = .seconds(5)
            var configured = try SwitchboardSystem(settings: settings, logger: quietLogger(), metrics: PrometheusExposition())
            if portByPort { configured.usePortByPortPipeline() }
            let system = configured
            do {
                try await body(system, admin)
            } catch {
                await system.close()
                throw error
            }
            await system.close()
        }
        switch engines {
        case .embedded: try await run(testSettings())
        case .portByPort: try await run(testSettings(), portByPort: true)
        case .redis: try await withPersistentRedis { redis in try await run(redisSettings(redis)) }
        case .mongo:
            try await withSecantusServer { mongo in
                // The default lease, as `MongoPipelineTests` explains: the Python peer can be slow under load.
                var settings = fastSettings(name: "e2e-redrive-mongo", lease: .seconds(30))
                settings.mongoURL = mongo.url(database: "switchboard-redrive")
                try await run(settings)
            }
        }
    }

    /// Runs the router's services (the outbox among them) and an SMS worker on `provider` while `body` runs,
    /// structured: the services end with the call.
    static func running<T: Sendable>(_ system: SwitchboardSystem, sms provider: FixableProvider, _ body: () async throws -> T) async throws -> T {
        let worker = ChannelWorker(channel: .sms, adapters: system.adapters, providers: [provider], options: system.pipelineOptions, consumer: "redrive-test-sms", logger: quietLogger())
        let services = system.backgroundServices(role: .router) + [worker]
        let group = ServiceGroup(configuration: .init(services: services.map { .init(service: $0) }, logger: quietLogger()))
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            do {
                let result = try await body()
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
                return result
            } catch {
                await group.triggerGracefulShutdown()
                throw error
            }
        }
    }

    static func redrive(_ client: some TestClientProtocol, key: String, _ body: String) async throws -> JSONValue {
        let r = try await client.execute(uri: "/api/v1/dead-letters/redrive", method: .post, headers: [.authorization: "Bearer \(key)", .contentType: "application/json"], body: ByteBuffer(string: body))
        #expect(r.status == .ok, "\(String(buffer: r.body))")
        return try json(r)
    }

    static func createKey(_ client: some TestClientProtocol, admin: String, scopes: String) async throws -> (id: String, key: String) {
        let r = try await client.execute(uri: "/api/v1/keys", method: .post, headers: [.authorization: "Bearer \(admin)", .contentType: "application/json"], body: ByteBuffer(string: #"{"name":"redrive","scopes":\#(scopes)}"#))
        let j = try json(r)
        return (try #require(j["id"]?.stringValue), try #require(j["key"]?.stringValue))
    }

    static func deadLetters(_ system: SwitchboardSystem) async throws -> Int {
        try await system.adapters.queue.info(stream: MessageChannel.sms.stream, group: StreamNames.workerGroup).deadLetters
    }

    @Test("failed, redriven and failed again, fixed, redriven by filter: each sent once, the redrives and their key in the history, the dead letters gone; a further redrive sends nothing", arguments: Engines.available)
    func redriveAfterFix(engines: Engines) async throws {
        try await Self.withSystem(engines) { system, admin in
        let provider = FixableProvider()
        try await system.application().test(.router) { client in
            let (keyID, key) = try await Self.createKey(client, admin: admin, scopes: #"["send","read"]"#)
            let auth: HTTPFields = [.authorization: "Bearer \(key)", .contentType: "application/json"]
            try await Self.running(system, sms: provider) {
                var ids: [String] = []
                for i in 0..<5 { ids.append(try await post(client, .sms, to: recipient(.sms, i), msg: "redrive \(i)", headers: auth)) }
                try await eventually("all failed") { try await count(system, .failed) == 5 }
                try await eventually("all dead-lettered") { try await Self.deadLetters(system) == 5 }
                #expect(provider.calls.values.sorted() == [1, 1, 1, 1, 1] && provider.sends.isEmpty)

                // Redriven before the cause is fixed: each gets a fresh attempt, fails again, and is dead-lettered
                // again — its first entry deleted by the redrive, its new one kept.
                let early = try await Self.redrive(client, key: key, #"{"filter":{"stream":"sms_stream"}}"#)
                #expect(early["counts"]?["redriven"] == .number(5) && early["deadLettersRemoved"] == .number(5), "\(early)")
                try await eventually("all failed again") {
                    guard provider.calls.values.allSatisfy({ $0 == 2 }) else { return false }
                    return try await count(system, .failed) == 5
                }
                try await eventually("dead-lettered again") { try await Self.deadLetters(system) == 5 }
                let dead = try await system.adapters.queue.entries(stream: StreamNames.deadLetter(of: MessageChannel.sms.stream), limit: 100)
                #expect(dead.map { $0.fields["seq"] } == Array(repeating: "2", count: 5), "the second dispatch's entries only")

                // The cause fixed, the failures are redriven: found by stream and error code, oldest failure first
                // (the second failures came in the order the worker's concurrent deliveries ended; ties in creation order).
                provider.rejecting = false
                var failedAt: [String: Timestamp] = [:]
                for id in ids { failedAt[id] = try #require(try await system.adapters.store.communication(id: id)).updatedAt }
                let oldestFirst = ids.enumerated().sorted { (failedAt[$0.element]!, $0.offset) < (failedAt[$1.element]!, $1.offset) }.map(\.element)
                let report = try await Self.redrive(client, key: key, #"{"filter":{"stream":"sms_stream","error":"FIXABLE_REJECTED"},"limit":1000}"#)
                guard case .array(let items)? = report["items"] else { Issue.record("no items: \(report)"); return }
                #expect(items.compactMap { $0["id"]?.stringValue } == oldestFirst, "oldest failure first")
                #expect(items.allSatisfy { $0["outcome"] == .string("redriven") })
                #expect(report["counts"]?["redriven"] == .number(5) && report["deadLettersRemoved"] == .number(5), "\(report)")
                #expect(try await Self.deadLetters(system) == 0)

                try await eventually("all sent") { try await count(system, .sent) == 5 }
                #expect(provider.sends == Dictionary(uniqueKeysWithValues: ids.map { ($0, 1) }))
                #expect(provider.calls == Dictionary(uniqueKeysWithValues: ids.map { ($0, 3) }))
                let c = try #require(try await system.adapters.store.communication(id: ids[0]))
                #expect(c.history.map(\.status) == [.pending, .queued, .processing, .failed, .pending, .queued, .processing, .failed, .pending, .queued, .processing, .sent], "\(c.history)")
                let redrives = c.history.filter { $0.status == .pending && $0.detail != nil }
                #expect(redrives.count == 2 && redrives.allSatisfy { $0.detail == "redriven by \(keyID)" && $0.service == "router" && $0.attempt == 0 }, "\(redrives)")
                #expect(c.attempts == 1 && c.dispatchSeq == 3 && c.provider == "fixable")

                // Again, by id: every one is reported not_failed (sent) and nothing is published or sent again.
                let again = try await Self.redrive(client, key: key, JSONValue.object(["ids": .array(ids.map(JSONValue.string))]).canonicalText)
                #expect(again["counts"] == .object(["redriven": .number(0), "not_failed": .number(5), "not_found": .number(0)]), "\(again)")
                guard case .array(let second)? = again["items"] else { Issue.record("no items"); return }
                #expect(second.allSatisfy { $0["status"] == .string("sent") })
                try await Task.sleep(for: .milliseconds(500))  // ten outbox passes
                #expect(provider.sends.values.allSatisfy { $0 == 1 } && provider.calls.values.reduce(0, +) == 15)
                // Nothing is due in the outbox now (only the stall watchdogs of separate engines, minutes ahead).
                #expect(try await system.adapters.store.outboxDue(now: SystemTime.now()) == 0)
                try await eventually("the sms stream drained") {
                    try await system.adapters.queue.info(stream: MessageChannel.sms.stream, group: StreamNames.workerGroup).length == 0
                }
            }
        }
        }
    }

    @Test("redrives racing each other and the running workers: every dead message redriven exactly once and sent exactly once", arguments: [Engines.embedded, .portByPort, .redis])
    func racingRedrives(engines: Engines) async throws {
        try await Self.withSystem(engines) { system, admin in
        let provider = FixableProvider()
        let n = 120
        try await system.application().test(.router) { client in
            let (_, key) = try await Self.createKey(client, admin: admin, scopes: #"["send"]"#)
            let auth: HTTPFields = [.authorization: "Bearer \(key)", .contentType: "application/json"]
            try await Self.running(system, sms: provider) {
                let ids = try await withThrowingTaskGroup(of: String.self) { group in
                    for i in 0..<n { group.addTask { try await post(client, .sms, to: recipient(.sms, i), msg: "race \(i)", headers: auth) } }
                    return try await group.reduce(into: [String]()) { $0.append($1) }
                }
                try await eventually("all failed") { try await count(system, .failed) == n }
                try await eventually("all dead-lettered") { try await Self.deadLetters(system) == n }
                provider.rejecting = false

                // 40 concurrent redrives: each message is named by three requests by id (overlapping slices), and
                // filters take whatever is still failed — while the workers send what the first ones redrove.
                let answers = try await withThrowingTaskGroup(of: JSONValue.self) { group in
                    for r in 0..<40 {
                        group.addTask {
                            if r % 8 == 7 { return try await Self.redrive(client, key: key, #"{"filter":{"stream":"sms_stream"},"limit":25}"#) }
                            let slice = (0..<9).map { ids[(r * 9 + $0) % n] }
                            return try await Self.redrive(client, key: key, JSONValue.object(["ids": .array(slice.map(JSONValue.string))]).canonicalText)
                        }
                    }
                    return try await group.reduce(into: [JSONValue]()) { $0.append($1) }
                }
                var redriven: [String: Int] = [:]
                for answer in answers {
                    guard case .array(let items)? = answer["items"] else { Issue.record("no items: \(answer)"); continue }
                    for item in items where item["outcome"] == .string("redriven") { redriven[item["id"]?.stringValue ?? "", default: 0] += 1 }
                    #expect(!items.contains { $0["outcome"] == .string("not_found") })
                }
                #expect(redriven.count == n && redriven.values.allSatisfy { $0 == 1 }, "redriven more than once: \(redriven.filter { $0.value > 1 })")
                try await eventually("all sent") { try await count(system, .sent) == n }
                #expect(provider.sends.count == n && provider.sends.values.allSatisfy { $0 == 1 }, "sent twice: \(provider.sends.filter { $0.value > 1 })")
                #expect(provider.calls.values.allSatisfy { $0 == 2 })
                #expect(try await Self.deadLetters(system) == 0)
                try await eventually("the sms stream drained") {
                    try await system.adapters.queue.info(stream: MessageChannel.sms.stream, group: StreamNames.workerGroup).length == 0
                }
                #expect(Set(ids) == Set(redriven.keys))
            }
        }
        }
    }
}
