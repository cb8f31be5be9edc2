import SwitchboardCore
import SwitchboardTelemetry

/// Tunables of the pipeline (workers, retries, outbox).
public struct PipelineOptions: Sendable {
    public var retry: RetryPolicy
    /// Deliveries of one stream entry before it goes to the dead-letter stream.
    public var maxDeliveries: Int
    /// Entries a worker reads at once.
    public var batchSize: Int
    /// Deliveries a channel worker runs in parallel.
    public var concurrency: Int
    /// How long a blocked read waits before looking again. Readers in this process are woken at once on
    /// publication; this bounds how long a reader takes to notice a graceful shutdown.
    public var readBlock: Duration
    /// How long after creation the outbox republishes a message whose publication was not confirmed.
    public var outboxGrace: Duration
    /// How often the outbox scheduler looks for due messages.
    public var schedulerInterval: Duration
    /// How long a message may stay `queued` or `processing` before the outbox redispatches it (its stream
    /// entry is presumed lost, e.g. with a Redis that restarted empty). Nil: never — right when the streams
    /// share the store's transactions (the embedded engine), where an entry cannot be lost on its own.
    /// Must be well above the time a backlog takes to drain and a provider call can last: an entry that was
    /// only late is then stale and skipped, but a delivery still running when it fires can be repeated.
    public var stallTimeout: Duration?
    /// Whether this process records spans (`OTEL_*` configured); off by default. The trace context travels with
    /// every message either way.
    public var tracing: MessageTracing = .off

    /// The watchdog time for a message entering `queued` or `processing` at `at`.
    public func watchdog(from at: Timestamp) -> Timestamp? {
        stallTimeout.map { at.adding($0) }
    }

    public init(retry: RetryPolicy = RetryPolicy(), maxDeliveries: Int = 5, batchSize: Int = 128, concurrency: Int = 64, readBlock: Duration = .milliseconds(250), outboxGrace: Duration = .seconds(10), schedulerInterval: Duration = .milliseconds(500), stallTimeout: Duration? = nil) {
        self.retry = retry
        self.maxDeliveries = max(1, maxDeliveries)
        self.batchSize = max(1, batchSize)
        self.concurrency = max(1, concurrency)
        self.readBlock = readBlock
        self.outboxGrace = outboxGrace
        self.schedulerInterval = schedulerInterval
        self.stallTimeout = stallTimeout
    }
}
