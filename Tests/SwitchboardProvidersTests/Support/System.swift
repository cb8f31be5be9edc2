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
import SwitchboardTestSystem


/// Settings for fast end-to-end runs over a temporary database, with the provider variables of `env`.
func e2eSettings(_ env: [String: String], maxAttempts: Int = 3) throws -> Settings {
    fastSettings(try Settings.fromEnvironment(env), name: "providers", maxAttempts: maxAttempts, lease: .seconds(5), concurrency: 8)
}

func quiet() -> Logger {
    var l = Logger(label: "providers-e2e")
    l.logLevel = .critical
    return l
}

/// A whole system (router API through Hummingbird's test client, workers, logger, outbox) for one test.
func withSystem(_ settings: Settings, _ body: @Sendable (SwitchboardSystem, any TestClientProtocol) async throws -> Void) async throws {
    let system = try SwitchboardSystem(settings: settings, logger: quiet())
    let group = ServiceGroup(configuration: .init(services: system.backgroundServices(role: .all).map { .init(service: $0) }, logger: quiet()))
    let task = Task { try await group.run() }
    do {
        try await system.application().test(.router) { client in try await body(system, client) }
    } catch {
        await group.triggerGracefulShutdown()
        _ = try? await task.value
        await system.shutdownProviders()
        await system.database.close()
        throw error
    }
    await group.triggerGracefulShutdown()
    try await task.value
    await system.shutdownProviders()
    await system.database.close()
}

/// Sends one request and returns the new communication's id.
func send(_ client: any TestClientProtocol, _ data: JSONValue, type: String) async throws -> String {
    let body = JSONValue.object(["type": .string(type), "data": data]).canonicalText
    let r = try await client.execute(uri: "/api/v1/communication", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: body))
    #expect(r.status == .ok, "\(String(buffer: r.body))")
    return try #require(try JSONParser.parse(Array(r.body.readableBytesView))["id"]?.stringValue)
}

/// Polls until the communication reaches `status` (or a final status), and returns it.
@discardableResult
func waitFor(_ system: SwitchboardSystem, _ id: String, _ status: CommunicationStatus, timeout: Duration = .seconds(60)) async throws -> Communication {
    let deadline = ContinuousClock.now + timeout
    var last: Communication?
    while ContinuousClock.now < deadline {
        last = try await system.adapters.store.communication(id: id)
        if last?.status == status { return last! }
        try await Task.sleep(for: .milliseconds(25))
    }
    Issue.record("\(id) did not reach \(status.rawValue); it is \(last?.status.rawValue ?? "missing") (last error \(String(describing: last?.lastError)))")
    throw CancellationError()
}

/// The log records `GET <uri>` returns once there are any (the logging service indexes a moment after the
/// status is committed); empty after `timeout`.
func logItems(_ client: some TestClientProtocol, _ uri: String, timeout: Duration = .seconds(60)) async throws -> [JSONValue] {
    let deadline = ContinuousClock.now + timeout
    while true {
        var items: [JSONValue] = []
        if case .array(let a)? = try json(try await client.execute(uri: uri, method: .get))["items"] { items = a }
        if !items.isEmpty || ContinuousClock.now >= deadline { return items }
        try await Task.sleep(for: .milliseconds(50))
    }
}

/// The JSON of a response.
func json(_ r: TestResponse) throws -> JSONValue { try JSONParser.parse(Array(r.body.readableBytesView)) }
