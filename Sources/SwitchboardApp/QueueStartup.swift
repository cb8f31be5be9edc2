import Logging
import ServiceLifecycle
import SwitchboardCore

/// How long a service loop waits after `failures` consecutive failures: 200 ms, doubling up to 5 s.
public func failureBackoff(_ failures: Int) -> Duration {
    .milliseconds(min(5000, 100 << min(max(failures, 0), 6)))
}

extension MessageQueue {
    /// Creates the consumer group, retrying with backoff while the queue is unreachable (a worker started
    /// while Redis is down waits for it instead of exiting). Returns false if the service was asked to stop first.
    func createGroupWhenReachable(stream: String, group: String, logger: Logger) async -> Bool {
        var failures = 0
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                try await createGroup(stream: stream, group: group)
                if failures > 0 { logger.notice("queue reachable; consumer group ready", metadata: ["stream": "\(stream)", "group": "\(group)"]) }
                return true
            } catch {
                failures += 1
                logger.error("could not create the consumer group; retrying", metadata: ["stream": "\(stream)", "group": "\(group)", "error": "\(error)"])
                try? await Task.sleep(for: failureBackoff(failures))
            }
        }
        return false
    }
}
