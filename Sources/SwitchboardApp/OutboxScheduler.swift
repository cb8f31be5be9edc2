import Logging
import ServiceLifecycle
import SwitchboardCore
import SwitchboardLifecycle
import SwitchboardTelemetry

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
        let due = try await adapters.store.claimDue(now: clock(), lease: claimLease, limit: 500)
        guard !due.isEmpty else { return 0 }
        // Due while queued or processing: the router's publication was never confirmed (it died, or the queue
        // was down), or the watchdog fired (the stream entry is presumed lost). A new dispatch makes any
        // surviving entry of the old one stale (skipped by the worker).
        let inFlight: (Communication) -> Bool = { $0.status == .queued || $0.status == .processing }
        let stalled = due.filter(inFlight)
        let now = clock()
        let reason = "still \(stalled.count == 1 ? stalled[0].status.rawValue : "in flight") at its outbox time (publication unconfirmed, or no progress for \(options.stallTimeout.map { "\($0)" } ?? "?")): redispatched"
        // `queued` is recorded before publishing, as the router does, so that a worker's `processing` can never
        // come first: each message then reads pending → queued → processing. It stays due for the claim lease
        // until its publication is confirmed below (a failed publication is tried again then).
        var transitions: [StatusTransition] = []
        for c in due {
            var seq = c.dispatchSeq
            if inFlight(c) {
                transitions.append(StatusTransition(id: c.id, event: .redispatch(dispatchSeq: seq, reason: reason, seen: c.status), at: now, service: "scheduler"))
                seq += 1
            }
            transitions.append(StatusTransition(id: c.id, event: .queued(dispatchSeq: seq), at: now, service: "scheduler", watchdog: now.adding(claimLease)))
        }
        // A message accepted by a process that is gone (a router that crashed) and never taken by a worker may
        // have lost its accept's log entries with that process's spool (the queue was down): write them again.
        // (Elasticsearch keeps one record per log id; the embedded index may then show them twice.) Messages
        // accepted by this process had theirs written or kept in this process's spool.
        let acceptLogs = stalled.filter { $0.status == .queued && $0.dispatchSeq == 1 && $0.attempts == 0 && $0.createdAt < startedAt }.flatMap(Self.acceptLogs)
        if !acceptLogs.isEmpty { _ = await PortByPortPipeline.writeLogs(acceptLogs, queue: adapters.queue, spool: adapters.logSpool, feed: adapters.feed, logger: logger) }
        let outcomes = try await adapters.pipeline.record(transitions, settle: [], group: "")
        if !stalled.isEmpty { logger.warning("redispatched messages still in flight at their outbox time", metadata: ["count": "\(stalled.count)", "trace_id": "\(stalled.compactMap { $0.traceParent?.traceID }.joined(separator: ","))"]) }
        var queued: [Communication] = []
        for case .applied(let c, _) in outcomes where c.status == .queued { queued.append(c) }
        var published: [Publication] = []
        for channel in MessageChannel.allCases {
            let items = queued.filter { $0.channel == channel }
            guard !items.isEmpty else { continue }
            // Tracing on: one span per republished message, child of the trace its record keeps (a retry an hour
            // later is still in the message's trace); its entry carries the span, so the delivery is its child.
            let spans = items.map { c in Self.republicationSpan(c, tracing: options.tracing) }
            defer { for span in spans { span?.end() } }
            do {
                try await adapters.queue.publish(stream: channel.stream, entries: zip(items, spans).map { DispatchEntry($0, traceParent: $1?.traceParent).fields })
                published += items.map { Publication(id: $0.id, dispatchSeq: $0.dispatchSeq) }
            } catch {
                for span in spans { span?.recordError(error) }
                logger.warning("outbox could not publish; tried again after the claim lease", metadata: ["stream": "\(channel.stream)", "count": "\(items.count)", "error": "\(error)"])
            }
        }
        try await adapters.store.confirmPublished(published, due: options.watchdog(from: clock()))
        if !published.isEmpty { logger.debug("outbox published", metadata: ["count": "\(published.count)"]) }
        return due.count
    }

    /// The span of `c`'s republication (nil with tracing off).
    static func republicationSpan(_ c: Communication, tracing: MessageTracing) -> MessageSpan? {
        guard let span = tracing.startSpan("outbox republication", parent: c.traceParent, kind: .producer) else { return nil }
        span.set("switchboard.communication_id", c.id)
        span.set("switchboard.dispatch_seq", c.dispatchSeq)
        span.set("switchboard.attempts", c.attempts)
        span.set("switchboard.stream", c.channel.stream)
        return span
    }

    /// The log entries of a message's accept (`pending`, then `queued`, both at its creation), as the pipeline wrote them.
    static func acceptLogs(_ c: Communication) -> [LogRecord] {
        let service = c.history.first?.service ?? "router"
        return [CommunicationStatus.pending, .queued].map { LogRecord(c, change: StatusChange(status: $0, at: c.createdAt, attempt: 0, service: service)) }
    }
}
