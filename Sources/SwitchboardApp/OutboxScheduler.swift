import Logging
import ServiceLifecycle
import SwitchboardCore
import SwitchboardLifecycle

/// Publishes what the store says is due: messages whose publication was never confirmed (the router died
/// or the queue was down) and retries whose backoff has passed. Safe to run in several processes: the store
/// leases each due message to one scheduler.
public struct OutboxScheduler: Service {
    let adapters: Adapters
    let options: PipelineOptions
    let clock: @Sendable () -> Timestamp
    let logger: Logger
    /// When this scheduler was made: messages accepted before were accepted by another (perhaps crashed) process.
    let startedAt: Timestamp
    /// How long a claimed message is left to this scheduler before another may publish it again.
    public var claimLease: Duration = .seconds(30)

    public init(adapters: Adapters, options: PipelineOptions, logger: Logger, clock: @escaping @Sendable () -> Timestamp = SystemTime.now) {
        self.adapters = adapters
        self.options = options
        self.clock = clock
        self.logger = logger
        self.startedAt = clock()
    }

    public func run() async throws {
        logger.info("outbox scheduler started", metadata: ["interval": "\(options.schedulerInterval)"])
        let interval = options.schedulerInterval
        await ServiceLoop.run("outbox pass", logger: logger, backoff: Backoff(initial: interval, maximum: interval), level: .warning) {
            while try await runOnce() == 500 {}
            return interval
        }
        logger.info("outbox scheduler stopped")
    }

    /// One pass: claims up to 500 due messages, publishes them, records `queued`. Returns how many it claimed.
    @discardableResult
    public func runOnce() async throws -> Int {
        // While the queue is unreachable (Redis down), leave due messages unclaimed: a claim that cannot be
        // published would hold them back for `claimLease` after the queue returns.
        do {
            try await adapters.queue.ping()
        } catch {
            logger.warning("outbox waits for the queue", metadata: ["error": "\(error)"])
            return 0
        }
        var due = try await adapters.store.claimDue(now: clock(), lease: claimLease, limit: 500)
        guard !due.isEmpty else { return 0 }
        let claimedCount = due.count
        // Due while queued or processing: the router's publication was never confirmed (it died, or the queue
        // was down), or the watchdog fired (the stream entry is presumed lost). A new dispatch makes any
        // surviving entry of the old one stale (skipped by the worker), then goes out below.
        let inFlight: (Communication) -> Bool = { $0.status == .queued || $0.status == .processing }
        let stalled = due.filter(inFlight)
        if !stalled.isEmpty {
            due.removeAll(where: inFlight)
            let reason = "still \(stalled.count == 1 ? stalled[0].status.rawValue : "in flight") at its outbox time (publication unconfirmed, or no progress for \(options.stallTimeout.map { "\($0)" } ?? "?")): redispatched"
            // A message accepted by a process that is gone (a router that crashed) and never taken by a worker may
            // have lost its accept's log entries with that process's spool (the queue was down): write them again.
            // (Elasticsearch keeps one record per log id; the embedded index may then show them twice.) Messages
            // accepted by this process had theirs written or kept in this process's spool.
            let acceptLogs = stalled.filter { $0.status == .queued && $0.dispatchSeq == 1 && $0.attempts == 0 && $0.createdAt < startedAt }.flatMap(Self.acceptLogs)
            let outcomes = try await adapters.pipeline.record(stalled.map { StatusTransition(id: $0.id, event: .redispatch(dispatchSeq: $0.dispatchSeq, reason: reason), at: clock(), service: "scheduler") }, settle: [], group: "")
            if !acceptLogs.isEmpty { _ = await PortByPortPipeline.writeLogs(acceptLogs, queue: adapters.queue, spool: adapters.logSpool, logger: logger) }
            for case .applied(let c, _) in outcomes { due.append(c) }
            logger.warning("redispatched messages still in flight at their outbox time", metadata: ["count": "\(stalled.count)"])
        }
        var published: [StatusTransition] = []
        for channel in Channel.allCases {
            let items = due.filter { $0.channel == channel }
            guard !items.isEmpty else { continue }
            do {
                try await adapters.queue.publish(stream: channel.stream, entries: items.map { DispatchEntry($0).fields })
                let at = clock()
                published += items.map { StatusTransition(id: $0.id, event: .queued(dispatchSeq: $0.dispatchSeq), at: at, service: "scheduler", watchdog: options.watchdog(from: at)) }
            } catch {
                logger.warning("outbox could not publish", metadata: ["stream": "\(channel.stream)", "count": "\(items.count)", "error": "\(error)"])
            }
        }
        try await adapters.pipeline.record(published, settle: [], group: "")
        if !published.isEmpty { logger.debug("outbox published", metadata: ["count": "\(published.count)"]) }
        return claimedCount
    }

    /// The log entries of a message's accept (`pending`, then `queued`, both at its creation), as the pipeline wrote them.
    static func acceptLogs(_ c: Communication) -> [[String: String]] {
        let service = c.history.first?.service ?? "router"
        return [CommunicationStatus.pending, .queued].map { LogRecord(c, change: StatusChange(status: $0, at: c.createdAt, attempt: 0, service: service)).fields }
    }
}
