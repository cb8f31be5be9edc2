import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import ServiceLifecycle
import Testing
import SwitchboardApp
import SwitchboardCore
import SwitchboardServer

/// NIO has a `Channel` too; in these tests the word means ours.
typealias Channel = SwitchboardCore.Channel

/// Settings for fast end-to-end runs: short backoffs, leases and polls.
func testSettings(path: String? = nil, maxAttempts: Int = 3) -> Settings {
    var s = Settings()
    s.databasePath = path ?? FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-e2e-\(UUID().uuidString)/e2e.sqlite").path
    s.port = 0
    s.synchronous = .normal
    // Long enough that a batch slowed down by a loaded machine (the whole suite runs in parallel) is not taken
    // over and delivered twice; tests of takeover set a short lease themselves.
    s.lease = .seconds(4)
    s.pollInterval = .milliseconds(20)
    s.pipeline = PipelineOptions(
        retry: RetryPolicy(maxAttempts: maxAttempts, baseDelay: .milliseconds(50), maxDelay: .milliseconds(200), jitter: 0.5),
        maxDeliveries: 5, batchSize: 64, concurrency: 32, readBlock: .milliseconds(200), outboxGrace: .milliseconds(500), schedulerInterval: .milliseconds(50))
    return s
}

func quietLogger() -> Logger {
    var l = Logger(label: "e2e")
    l.logLevel = .error
    return l
}

/// The background services of a system (workers, logger, outbox) running until `stop()`.
final class Running: Sendable {
    let group: ServiceGroup
    let task: Task<Void, any Error>

    init(_ system: SwitchboardSystem, role: Role = .all) {
        let group = ServiceGroup(configuration: .init(services: system.backgroundServices(role: role).map { .init(service: $0) }, logger: quietLogger()))
        self.group = group
        task = Task { try await group.run() }
    }

    /// Graceful shutdown: workers finish the batch in hand.
    func stop() async throws {
        await group.triggerGracefulShutdown()
        try await task.value
    }
}

/// Polls `condition` until it holds or `timeout` passes.
func eventually(timeout: Duration = .seconds(60), _ what: String, _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    Issue.record("timed out waiting for \(what)")
    throw CancellationError()
}

func count(_ system: SwitchboardSystem, _ status: CommunicationStatus) async throws -> Int {
    try await system.engine.store.statusCounts().filter { $0.status == status }.reduce(0) { $0 + $1.count }
}

func total(_ system: SwitchboardSystem) async throws -> Int {
    try await system.engine.store.statusCounts().reduce(0) { $0 + $1.count }
}

let jsonHeaders: HTTPFields = [.contentType: "application/json"]

func body(_ type: Channel, to: String, msg: String, from: String? = nil) -> ByteBuffer {
    let sender = from ?? (type == .email ? "noreply@example.com" : "+15550000000")
    return ByteBuffer(string: JSONValue.object(["type": .string(type.rawValue), "data": .object(["from": .string(sender), "to": .string(to), "msg": .string(msg)])]).canonicalText)
}

func recipient(_ type: Channel, _ i: Int) -> String {
    type == .email ? "user\(i)@example.com" : "+1555\(String(format: "%07d", i))"
}

func json(_ r: TestResponse) throws -> JSONValue { try JSONParser.parse(Array(r.body.readableBytesView)) }

/// Sends one message through the API and returns its id.
@discardableResult
func post(_ client: some TestClientProtocol, _ type: Channel, to: String, msg: String, headers: HTTPFields = jsonHeaders) async throws -> String {
    let r = try await client.execute(uri: "/api/v1/communication", method: .post, headers: headers, body: body(type, to: to, msg: msg))
    #expect(r.status == .ok)
    return try #require(try json(r)["id"]?.stringValue)
}
