import Logging
import ServiceLifecycle
import SwitchboardCore

/// Publishes what the store says is due: messages whose publication was never confirmed (the router died
/// or the queue was down) and retries whose backoff has passed. Safe to run in several processes: the store
/// leases each due message to one scheduler.
public struct OutboxScheduler: Service {
    let engine: Engine
    let recorder: StatusRecorder
    let options: PipelineOptions
    let clock: @Sendable () -> Timestamp
    let logger: Logger
    /// How long a claimed message is left to this scheduler before another may publish it again.
    public var claimLease: Duration = .seconds(30)

    public init(engine: Engine, options: PipelineOptions, logger: Logger, clock: @escaping @Sendable () -> Timestamp = SystemTime.now) {
        self.engine = engine
        self.recorder = StatusRecorder(engine: engine, logger: logger)
        self.options = options
        self.clock = clock
        self.logger = logger
    }

    public func run() async throws {
        logger.info("outbox scheduler started", metadata: ["interval": "\(options.schedulerInterval)"])
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                while try await runOnce() == 500 {}
            } catch {
                logger.warning("outbox pass failed", metadata: ["error": "\(error)"])
            }
            await pause(for: options.schedulerInterval)
        }
        logger.info("outbox scheduler stopped")
    }

    /// One pass: claims up to 500 due messages, publishes them, records `queued`. Returns how many it claimed.
    @discardableResult
    public func runOnce() async throws -> Int {
        // While the queue is unreachable (Redis down), leave due messages unclaimed: a claim that cannot be
        // published would hold them back for `claimLease` after the queue returns.
        do {
            try await engine.queue.ping()
        } catch {
            logger.warning("outbox waits for the queue", metadata: ["error": "\(error)"])
            return 0
        }
        var due = try await engine.store.claimDue(now: clock(), lease: claimLease, limit: 500)
        guard !due.isEmpty else { return 0 }
        let claimedCount = due.count
        // Due while queued or processing: the watchdog fired, the stream entry is presumed lost. A new
        // dispatch makes any surviving entry of the old one stale (skipped by the worker), then goes out below.
        let inFlight: (Communication) -> Bool = { $0.status == .queued || $0.status == .processing }
        let stalled = due.filter(inFlight)
        if !stalled.isEmpty {
            due.removeAll(where: inFlight)
            let reason = "no progress since \(options.stallTimeout.map { "\($0)" } ?? "?") ago: stream entry presumed lost, redispatched"
            let outcomes = try await recorder.record(stalled.map { StatusTransition(id: $0.id, event: .redispatch(dispatchSeq: $0.dispatchSeq, reason: reason), at: clock(), service: "scheduler") })
            for case .applied(let c, _) in outcomes { due.append(c) }
            logger.warning("redispatched stalled messages", metadata: ["count": "\(stalled.count)"])
        }
        var published: [StatusTransition] = []
        for channel in Channel.allCases {
            let items = due.filter { $0.channel == channel }
            guard !items.isEmpty else { continue }
            do {
                try await engine.queue.publish(stream: channel.stream, entries: items.map { DispatchEntry($0).fields })
                let at = clock()
                published += items.map { StatusTransition(id: $0.id, event: .queued(dispatchSeq: $0.dispatchSeq), at: at, service: "scheduler", watchdog: options.watchdog(from: at)) }
            } catch {
                logger.warning("outbox could not publish", metadata: ["stream": "\(channel.stream)", "count": "\(items.count)", "error": "\(error)"])
            }
        }
        try await recorder.record(published)
        if !published.isEmpty { logger.debug("outbox published", metadata: ["count": "\(published.count)"]) }
        return claimedCount
    }
}
