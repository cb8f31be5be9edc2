import Logging
import ServiceLifecycle
@_exported import SwitchboardBackoff

/// Waits `duration` in a service loop, or less: returns as soon as the service is asked to stop (graceful
/// shutdown) or its task is cancelled, so that no loop's pause (a backoff of seconds, a long interval) holds
/// up a shutdown.
public func pause(for duration: Duration) async {
    guard !Task.isShuttingDownGracefully else { return }
    try? await cancelWhenGracefulShutdown { try await Task.sleep(for: duration) }
}

/// The one way a service loops: a pass, a pause, a backoff after failures, and a prompt stop on graceful
/// shutdown or cancellation. Every long-running service of the project (workers, the logging service, the
/// outbox, the engines' own maintenance) is written on it.
public enum ServiceLoop {
    /// True while the calling service should go on.
    public static var shouldContinue: Bool { !Task.isShuttingDownGracefully && !Task.isCancelled }

    /// Runs `pass` until graceful shutdown or cancellation. After a pass that succeeded it waits the duration
    /// the pass returned (`.zero`: the next pass starts at once); after one that threw, it logs the error as
    /// `name failed` and waits `backoff` for the number of consecutive failures. Every wait ends on shutdown.
    public static func run(_ name: String, logger: Logger, backoff: Backoff = .serviceLoop, level: Logger.Level = .error, metadata: Logger.Metadata = [:], pass: () async throws -> Duration) async {
        var failures = 0
        while shouldContinue {
            let wait: Duration
            do {
                wait = try await pass()
                failures = 0
            } catch {
                failures += 1
                var m = metadata
                m["error"] = "\(error)"
                logger.log(level: level, "\(name) failed", metadata: m)
                wait = backoff.delay(afterFailures: failures)
            }
            if wait > .zero { await pause(for: wait) }
        }
    }

    /// Runs `body` until it succeeds, waiting `backoff` after each failure (logged as a warning the first time
    /// and every 20th). On graceful shutdown or cancellation the last error is thrown instead of waiting again.
    public static func retrying<T>(_ what: String, logger: Logger, backoff: Backoff = .serviceLoop, _ body: () async throws -> T) async throws -> T {
        var failures = 0
        while true {
            do {
                return try await body()
            } catch {
                failures += 1
                if !shouldContinue { throw error }
                if failures == 1 || failures % 20 == 0 {
                    logger.warning("could not \(what); retrying", metadata: ["error": "\(error)", "failures": "\(failures)"])
                }
                await pause(for: backoff.delay(afterFailures: failures))
            }
        }
    }
}

/// Runs `body` every `interval` until shutdown; failures are logged and retried at the next tick.
public struct PeriodicTask: Service {
    let name: String
    let interval: Duration
    let logger: Logger
    let body: @Sendable () async throws -> Void

    public init(name: String, interval: Duration, logger: Logger, body: @escaping @Sendable () async throws -> Void) {
        self.name = name
        self.interval = interval
        self.logger = logger
        self.body = body
    }

    public func run() async throws {
        await ServiceLoop.run(name, logger: logger, backoff: Backoff(initial: interval, maximum: interval), level: .warning) {
            await pause(for: interval)
            guard ServiceLoop.shouldContinue else { return .zero }
            try await body()
            return .zero
        }
    }
}
