import Logging
import ServiceLifecycle
import SwitchboardLifecycle
import SwitchboardCore

/// Deletes what is older than the retention period (`SWITCHBOARD_RETENTION_DAYS`) from every adapter that
/// can (`Purging`): at start, then every `interval`. Runs in the router's process (`serve`, `router`); several
/// routers purging at once only repeat each other's deletes.
///
/// A communication goes only once it is past dispatch and unchanged for the period (a message still on its
/// way is never deleted); log records, dead-letter entries and sandbox messages go by their own time. After a
/// purge, a deleted message's id answers 404 and its idempotency key can be used again.
public struct RetentionService: Service {
    /// Something to purge and what to call it in logs ("store", "search index", "sandbox").
    public struct Target: Sendable {
        public var name: String
        public var purging: any Purging

        public init(name: String, purging: any Purging) {
            self.name = name
            self.purging = purging
        }
    }

    let period: Duration
    let interval: Duration
    let targets: [Target]
    let logger: Logger
    let clock: @Sendable () -> Timestamp

    public init(period: Duration, interval: Duration = .seconds(3600), targets: [Target], logger: Logger, clock: @escaping @Sendable () -> Timestamp = SystemTime.now) {
        self.period = period
        self.interval = interval
        self.targets = targets
        self.logger = logger
        self.clock = clock
    }

    public func run() async throws {
        logger.info("retention started", metadata: ["period": "\(period)", "purges": "\(targets.map(\.name).joined(separator: ", "))"])
        await ServiceLoop.run("retention", logger: logger) {
            await purgeOnce()
            return interval
        }
    }

    /// One pass over every target with the cutoff `now - period`; returns how many records each deleted (a
    /// target that failed is logged and left out: the next pass tries again).
    @discardableResult
    public func purgeOnce() async -> [String: Int] {
        let cutoff = clock().adding(.zero - period)
        var deleted: [String: Int] = [:]
        for target in targets {
            do {
                deleted[target.name] = try await target.purging.purge(before: cutoff)
            } catch {
                logger.warning("retention: purge failed; tried again at the next pass", metadata: ["target": "\(target.name)", "error": "\(error)"])
            }
        }
        if deleted.values.contains(where: { $0 > 0 }) {
            logger.notice("retention: deleted what was older than the period", metadata: [
                "before": "\(cutoff.iso8601)", "deleted": "\(deleted.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))",
            ])
        }
        return deleted
    }
}
