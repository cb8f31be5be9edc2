import CoreMetrics
import SwitchboardCore

// What each engine adapter records, as one value per adapter holding its handles, made once (at the adapter's
// init): the hot paths (a group commit, a pool lease) only increment or record on a handle.
// The adapters take these values (not a factory), so they need no metrics import; tests pass values made with a
// test factory.

/// A duration in nanoseconds, for `Timer.recordNanoseconds` (never negative).
public func nanoseconds(_ d: Duration) -> Int64 {
    let (seconds, attoseconds) = d.components
    return max(0, seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
}

/// A store's commits and failed requests (`engine`: `sqlite`, `mongodb`).
public struct StoreEngineMetrics: Sendable {
    private let duration: Timer
    private let batchSize: Recorder
    private let errors: Counter

    public init(engine: String, factory: any MetricsFactory = MetricsSystem.factory) {
        duration = Timer(label: MetricName.storeCommitDuration, dimensions: [("engine", engine)], factory: factory)
        batchSize = Recorder(label: MetricName.storeCommitBatchSize, dimensions: [("engine", engine)], aggregate: true, factory: factory)
        errors = Counter(label: MetricName.engineErrors, dimensions: [("engine", engine)], factory: factory)
    }

    /// One commit took `nanoseconds`.
    public func committed(nanoseconds: Int64) { duration.recordNanoseconds(max(0, nanoseconds)) }

    /// One commit took `duration`.
    public func committed(_ elapsed: Duration) { duration.recordNanoseconds(SwitchboardTelemetry.nanoseconds(elapsed)) }

    /// One group commit held `transactions` writes (SQLite's group commit).
    public func grouped(transactions: Int) { batchSize.record(transactions) }

    /// A request to the engine failed (connection or server error).
    public func failed() { errors.increment() }
}

/// One Redis connection pool's gauges and counters (`pool`: `commands` or `blocking`, the client's two pools).
/// Every pool of the process with the same `pool` label adds to the same series (increments, not sets).
public struct RedisPoolMetrics: Sendable {
    private let open: Meter
    private let inUse: Meter
    private let waits: Counter
    private let errors: Counter

    public init(pool: String, factory: any MetricsFactory = MetricsSystem.factory) {
        open = Meter(label: MetricName.redisPoolConnections, dimensions: [("pool", pool)], factory: factory)
        inUse = Meter(label: MetricName.redisPoolConnectionsInUse, dimensions: [("pool", pool)], factory: factory)
        waits = Counter(label: MetricName.redisPoolWaits, dimensions: [("pool", pool)], factory: factory)
        errors = Counter(label: MetricName.engineErrors, dimensions: [("engine", "redis")], factory: factory)
    }

    /// Connections opened (`n` > 0) or closed (`n` < 0).
    public func opened(_ n: Int) { if n > 0 { open.increment(by: Double(n)) } else if n < 0 { open.decrement(by: Double(-n)) } }
    /// Connections lent out (`n` > 0) or returned (`n` < 0).
    public func lent(_ n: Int) { if n > 0 { inUse.increment(by: Double(n)) } else if n < 0 { inUse.decrement(by: Double(-n)) } }
    /// A borrower had to wait for a connection.
    public func waited() { waits.increment() }
    /// A connection could not be opened, or broke under a command.
    public func failed() { errors.increment() }
}

/// A search engine's failed requests and the documents its bulk requests failed to index (`engine`:
/// `elasticsearch`).
public struct SearchEngineMetrics: Sendable {
    private let bulkFailures: Counter
    private let errors: Counter

    public init(engine: String, factory: any MetricsFactory = MetricsSystem.factory) {
        bulkFailures = Counter(label: MetricName.searchBulkFailures, factory: factory)
        errors = Counter(label: MetricName.engineErrors, dimensions: [("engine", engine)], factory: factory)
    }

    /// `documents` of a bulk request were not indexed (items the cluster refused for good).
    public func bulkFailed(documents: Int) { if documents > 0 { bulkFailures.increment(by: documents) } }
    /// A request to the cluster failed (unreachable, timeout, 5xx or 429).
    public func failed() { errors.increment() }
}

/// The logging service's indexing lag: the age of the oldest log record of the batch it just indexed.
public struct IndexingLagMetrics: Sendable {
    private let lag: Gauge

    public init(factory: any MetricsFactory = MetricsSystem.factory) {
        lag = Gauge(label: MetricName.searchIndexingLag, factory: factory)
    }

    /// The batch just indexed held a record `milliseconds` old (0 when none is older than now).
    public func indexed(oldestAgeMilliseconds milliseconds: Int64) { lag.record(Double(max(0, milliseconds)) / 1000) }
}

/// The gauges sampled when scraped (`QueueMetricsCollector`): each stream's backlog, the outbox's due count,
/// and whether each engine answered.
public struct BacklogGauges: Sendable {
    private struct Stream: Sendable {
        var length: Gauge, pending: Gauge, oldestPendingAge: Gauge, deadLetters: Gauge
    }
    private let streams: [String: Stream]
    private let due: Gauge
    private let up: [String: Gauge]

    /// - Parameters:
    ///   - streams: the streams whose backlog is reported (label `stream`).
    ///   - engines: each role (`store`, `queue`, `search`) and the engine behind it (labels `role`, `engine`).
    public init(streams: [String], engines: [(role: String, engine: String)], factory: any MetricsFactory = MetricsSystem.factory) {
        var byName: [String: Stream] = [:]
        for s in streams {
            let d = [("stream", s)]
            byName[s] = Stream(
                length: Gauge(label: MetricName.queueLength, dimensions: d, factory: factory),
                pending: Gauge(label: MetricName.queuePending, dimensions: d, factory: factory),
                oldestPendingAge: Gauge(label: MetricName.queueOldestPendingAge, dimensions: d, factory: factory),
                deadLetters: Gauge(label: MetricName.queueDeadLetters, dimensions: d, factory: factory))
        }
        self.streams = byName
        due = Gauge(label: MetricName.outboxDue, factory: factory)
        var up: [String: Gauge] = [:]
        for e in engines {
            up[e.role] = Gauge(label: MetricName.engineUp, dimensions: [("engine", e.engine), ("role", e.role)], factory: factory)
        }
        self.up = up
    }

    /// One stream's backlog (a stream not given at init is ignored).
    public func record(_ backlog: StreamBacklog) {
        guard let g = streams[backlog.stream] else { return }
        g.length.record(backlog.length)
        g.pending.record(backlog.pending)
        g.oldestPendingAge.record(backlog.oldestPendingSeconds)
        g.deadLetters.record(backlog.deadLetters)
    }

    /// Messages the outbox has due now.
    public func outboxDue(_ count: Int) { due.record(count) }

    /// Whether the engine of `role` answered its check.
    public func engine(role: String, up isUp: Bool) { up[role]?.record(isUp ? 1 : 0) }
}
