import Logging
import ServiceLifecycle
import SwitchboardCore
import SwitchboardLifecycle
import SwitchboardTelemetry

/// The logging service: consumes `log_stream` and indexes each entry into `communication-logs`, through the
/// pipeline (one transaction per batch on the embedded engine; on separate engines the batch is indexed,
/// retried while the search index is down with its leases renewed, then acknowledged).
public struct LogIndexer: Service {
    let adapters: Adapters
    let options: PipelineOptions
    let consumer: String
    let logger: Logger
    /// `switchboard_search_indexing_lag_seconds`, set after each batch indexed.
    let lag: IndexingLagMetrics
    let clock: @Sendable () -> Timestamp

    /// - Parameter lag: where the age of each indexed batch's oldest record is recorded (made once; by default
    ///   on the process's metrics backend).
    public init(
        adapters: Adapters, options: PipelineOptions, consumer: String, logger: Logger, lag: IndexingLagMetrics = IndexingLagMetrics(),
        clock: @escaping @Sendable () -> Timestamp = SystemTime.now
    ) {
        self.adapters = adapters
        self.options = options
        self.consumer = consumer
        self.logger = logger
        self.lag = lag
        self.clock = clock
    }

    public func run() async throws {
        guard await adapters.queue.createGroupWhenReachable(stream: StreamNames.log, group: StreamNames.loggerGroup, logger: logger) else { return }
        logger.info("logging service started", metadata: ["consumer": "\(consumer)"])
        await ServiceLoop.run("log indexing (entries stay pending)", logger: logger) {
            do {
                let batch = try await adapters.pipeline.readLogs(group: StreamNames.loggerGroup, consumer: consumer, count: 1024, block: options.readBlock)
                if !batch.entries.isEmpty { try await index(batch) }
            } catch is StaleLogBatch {
                // Another logging service on the same file indexed these entries first: read again.
                logger.debug("log batch consumed elsewhere; reading again")
            }
            return .zero
        }
        logger.info("logging service stopped")
    }

    /// Splits entries into log records and the malformed (or too often delivered) ones.
    func sort(_ entries: [QueueEntry]) -> (records: [LogRecord], bad: [QueueEntry]) {
        var records: [LogRecord] = []
        var bad: [QueueEntry] = []
        for e in entries {
            if let r = LogRecord(fields: e.fields), e.deliveryCount <= options.maxDeliveries {
                records.append(r)
            } else {
                bad.append(e)
            }
        }
        return (records, bad)
    }

    static let deadReason = "malformed or delivered too often"

    /// Indexes a batch and consumes its entries. Once indexed, the age of its oldest record (from the record's
    /// own timestamp, when its status changed) is the indexing lag: how far behind the logs index is.
    func index(_ batch: LogBatch) async throws {
        let (records, bad) = sort(batch.entries)
        if !bad.isEmpty { logger.error("log entries moved to the dead-letter stream", metadata: ["count": "\(bad.count)"]) }
        // Tracing on: one span per record of a traced message, child of its trace, for the batch's indexing.
        let spans = options.tracing.enabled ? records.map { Self.indexingSpan($0, tracing: options.tracing) } : []
        do {
            try await adapters.pipeline.indexLogs(records, consuming: batch, deadLetters: bad, reason: Self.deadReason, group: StreamNames.loggerGroup)
        } catch {
            for span in spans { span?.recordError(error); span?.end() }
            throw error
        }
        for span in spans { span?.end() }
        if let oldest = records.lazy.map(\.timestamp.milliseconds).min() {
            lag.indexed(oldestAgeMilliseconds: clock().milliseconds - oldest)
        }
    }

    static func indexingSpan(_ r: LogRecord, tracing: MessageTracing) -> MessageSpan? {
        guard let trace = r.traceParent, let span = tracing.startSpan("index log record", parent: trace, kind: .consumer) else { return nil }
        span.set("switchboard.communication_id", r.communicationId)
        span.set("switchboard.status", r.status?.rawValue ?? "")
        span.set("switchboard.service", r.service)
        return span
    }
}
