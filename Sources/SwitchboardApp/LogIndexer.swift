import Logging
import ServiceLifecycle
import SwitchboardCore

/// The logging service: consumes `log_stream` and indexes each entry into `communication-logs`.
public struct LogIndexer: Service {
    let engine: Engine
    let options: PipelineOptions
    let consumer: String
    let logger: Logger

    public init(engine: Engine, options: PipelineOptions, consumer: String, logger: Logger) {
        self.engine = engine
        self.options = options
        self.consumer = consumer
        self.logger = logger
    }

    public func run() async throws {
        guard await engine.queue.createGroupWhenReachable(stream: StreamNames.log, group: StreamNames.loggerGroup, logger: logger) else { return }
        logger.info("logging service started", metadata: ["consumer": "\(consumer)"])
        var failures = 0
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                if let pipeline = engine.pipeline {
                    let batch = try await pipeline.readLogs(group: StreamNames.loggerGroup, consumer: consumer, count: 1024, block: options.readBlock)
                    if !batch.entries.isEmpty { try await index(batch, through: pipeline) }
                } else {
                    let entries = try await engine.queue.read(stream: StreamNames.log, group: StreamNames.loggerGroup, consumer: consumer, count: 1024, block: options.readBlock)
                    if !entries.isEmpty { try await index(entries) }
                }
                failures = 0
            } catch is StaleLogBatch {
                // Another logging service on the same file indexed these entries first: read again.
                logger.debug("log batch consumed elsewhere; reading again")
            } catch {
                failures += 1
                logger.error("log indexing failed; entries stay pending", metadata: ["error": "\(error)"])
                await pause(for: failureBackoff(failures))
            }
        }
        logger.info("logging service stopped")
    }

    /// Splits entries into log records and the malformed (or too often delivered) ones.
    func sort(_ entries: [QueueEntry]) -> (records: [LogRecord], good: [String], bad: [QueueEntry]) {
        var records: [LogRecord] = []
        var good: [String] = []
        var bad: [QueueEntry] = []
        for e in entries {
            if let r = LogRecord(fields: e.fields), e.deliveryCount <= options.maxDeliveries {
                records.append(r)
                good.append(e.id)
            } else {
                bad.append(e)
            }
        }
        return (records, good, bad)
    }

    static let deadReason = "malformed or delivered too often"

    /// Indexes a batch and consumes its entries in one transaction of the atomic pipeline.
    func index(_ batch: LogBatch, through pipeline: any AtomicPipeline) async throws {
        let (records, _, bad) = sort(batch.entries)
        if !bad.isEmpty { logger.error("log entries moved to the dead-letter stream", metadata: ["count": "\(bad.count)"]) }
        try await pipeline.indexLogs(records, consuming: batch, deadLetters: bad, reason: Self.deadReason, group: StreamNames.loggerGroup)
    }

    func index(_ entries: [QueueEntry]) async throws {
        // An unavailable search index (Elasticsearch down) is retried here with the batch in hand, its leases
        // renewed meanwhile, not by letting them expire: redelivery would raise the delivery counts and
        // dead-letter the entries.
        try await engine.queue.keepingLeases(
            stream: StreamNames.log, group: StreamNames.loggerGroup, consumer: consumer, ids: entries.map(\.id), maxRenewals: .max, logger: logger
        ) {
            try await indexRetrying(entries)
        }
    }

    /// Indexes the well-formed records, retrying while the search index is unavailable; then acknowledges
    /// them and moves the others to the dead-letter stream.
    private func indexRetrying(_ entries: [QueueEntry]) async throws {
        let (records, good, bad) = sort(entries)
        var failures = 0
        while true {
            do {
                try await engine.search.index(logs: records)
                break
            } catch {
                failures += 1
                if Task.isShuttingDownGracefully || Task.isCancelled { throw error }
                if failures == 1 || failures % 20 == 0 {
                    logger.warning("could not index log records; retrying the batch", metadata: ["error": "\(error)", "records": "\(records.count)", "failures": "\(failures)"])
                }
                await pause(for: failureBackoff(failures))
            }
        }
        try await engine.queue.ack(stream: StreamNames.log, group: StreamNames.loggerGroup, ids: good)
        if !bad.isEmpty {
            logger.error("log entries moved to the dead-letter stream", metadata: ["count": "\(bad.count)"])
            try await engine.queue.deadLetter(stream: StreamNames.log, group: StreamNames.loggerGroup, entries: bad, reason: Self.deadReason)
        }
    }
}
