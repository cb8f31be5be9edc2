import Foundation
import Logging
import ServiceLifecycle
import SwitchboardApp
import SwitchboardCore
import SwitchboardServer
import Testing

/// Settings for fast whole-system runs over a fresh temporary SQLite file: short backoffs, polls and outbox
/// times, on top of `base` (engines, providers). The suites differ only in the values they pass.
public func fastSettings(
    _ base: Settings = Settings(), name: String, path: String? = nil, maxAttempts: Int = 3, lease: Duration, maxDeliveries: Int = 5, concurrency: Int = 32
) -> Settings {
    var s = base
    s.databasePath = path ?? FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-\(name)-\(UUID().uuidString)/e2e.sqlite").path
    s.port = 0
    s.synchronous = .normal
    s.lease = lease
    s.pollInterval = .milliseconds(20)
    s.pipeline = PipelineOptions(
        retry: RetryPolicy(maxAttempts: maxAttempts, baseDelay: .milliseconds(50), maxDelay: .milliseconds(200), jitter: 0.5),
        maxDeliveries: maxDeliveries, batchSize: 64, concurrency: concurrency, readBlock: .milliseconds(200), outboxGrace: .milliseconds(500),
        schedulerInterval: .milliseconds(50))
    return s
}

/// The background services of a system (workers, logger, outbox) running until `stop()`.
public final class Running: Sendable {
    let group: ServiceGroup
    let task: Task<Void, any Error>

    public init(_ system: SwitchboardSystem, role: Role = .all) {
        var logger = Logger(label: "test-services")
        logger.logLevel = .critical
        let group = ServiceGroup(configuration: .init(services: (system.backgroundServices(role: role) + system.liveServices(role: role)).map { .init(service: $0) }, logger: logger))
        self.group = group
        task = Task { try await group.run() }
    }

    /// Graceful shutdown: workers finish the batch in hand.
    public func stop() async throws {
        await group.triggerGracefulShutdown()
        try await task.value
    }
}

/// Polls `condition` every `poll` until it holds or `timeout` passes (then records an issue and throws).
/// With `toleratingErrors`, a throwing condition counts as not yet (for checks against an engine that is down).
public func eventually(
    timeout: Duration = .seconds(60), poll: Duration = .milliseconds(50), _ what: String, toleratingErrors: Bool = false,
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if toleratingErrors {
            if (try? await condition()) == true { return }
        } else if try await condition() {
            return
        }
        try await Task.sleep(for: poll)
    }
    Issue.record("timed out waiting for \(what)")
    throw CancellationError()
}
