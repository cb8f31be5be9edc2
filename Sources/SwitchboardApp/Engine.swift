import Foundation
import Logging
import SwitchboardCore

/// The wall clock as a `Timestamp`.
public enum SystemTime {
    /// Now.
    @Sendable public static func now() -> Timestamp {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Timestamp(milliseconds: Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000)
    }
}

/// The adapters a process runs on: one per port.
public struct Engine: Sendable {
    public var store: any CommunicationStore
    public var queue: any MessageQueue
    public var search: any SearchIndex
    /// Present when the sandbox provider records into this engine.
    public var mailbox: (any SandboxMailbox)?
    /// Present when store, queue and search share transactions (the embedded engine): the services then
    /// do each step of the pipeline in one atomic write.
    public var pipeline: (any AtomicPipeline)?
    /// Names of the engines, for logs and health (`sqlite`, `redis`, …).
    public var names: (store: String, queue: String, search: String)
    /// `log_stream` entries waiting for the queue to come back (shared by every copy of this engine).
    public let logSpool = LogSpool()

    public init(store: any CommunicationStore, queue: any MessageQueue, search: any SearchIndex, mailbox: (any SandboxMailbox)?, pipeline: (any AtomicPipeline)? = nil, names: (store: String, queue: String, search: String)) {
        self.store = store
        self.queue = queue
        self.search = search
        self.mailbox = mailbox
        self.pipeline = pipeline
        self.names = names
    }
}

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

/// Applies status transitions to the store, then writes each applied one to `log_stream` and to the
/// search index. Every service changes statuses through it.
public struct StatusRecorder: Sendable {
    let engine: Engine
    let logger: Logger

    public init(engine: Engine, logger: Logger) {
        self.engine = engine
        self.logger = logger
    }

    /// Applies `transitions` (one store call), then publishes the log entries and index updates of those
    /// that were applied (with `alsoLog` first, in the same write). Store errors are thrown; log and index
    /// errors are logged, never thrown, because the status is already committed (the history in the store
    /// keeps every change). `processing` is logged but not indexed: it lasts milliseconds, and the search
    /// index shows the status before and after it.
    @discardableResult
    public func record(_ transitions: [StatusTransition], alsoLog: [[String: String]] = []) async throws -> [TransitionOutcome] {
        guard !transitions.isEmpty else { return [] }
        if let pipeline = engine.pipeline, alsoLog.isEmpty {
            return try await pipeline.record(transitions, settle: [], group: "")
        }
        let outcomes = try await engine.store.apply(transitions)
        var logs = alsoLog
        var docs: [CommunicationDocument] = []
        for case .applied(let c, let change) in outcomes {
            logs.append(LogRecord(c, change: change).fields)
            if c.status != .processing { docs.append(CommunicationDocument(c)) }
        }
        await publish(logs: logs, documents: docs)
        return outcomes
    }

    /// Applies `transitions` and settles their stream entries: `entries[i]` is acknowledged once transition
    /// `i` is committed, or moved to the dead-letter stream when it left its communication `failed`.
    /// Nothing is acknowledged if the store fails (the entries are then delivered again).
    @discardableResult
    public func record(_ transitions: [StatusTransition], settling entries: [QueueEntry], group: String) async throws -> [TransitionOutcome] {
        precondition(entries.count == transitions.count, "one entry per transition")
        guard !transitions.isEmpty else { return [] }
        if let pipeline = engine.pipeline {
            return try await pipeline.record(transitions, settle: entries, group: group)
        }
        let outcomes = try await record(transitions)
        var acks: [String: [String]] = [:]
        for (outcome, entry) in zip(outcomes, entries) {
            if case .applied(let c, _) = outcome, c.status == .failed {
                try await engine.queue.deadLetter(stream: entry.stream, group: group, entries: [entry], reason: c.lastError?.description ?? "failed")
            } else {
                acks[entry.stream, default: []].append(entry.id)
            }
        }
        for (stream, ids) in acks { try await engine.queue.ack(stream: stream, group: group, ids: ids) }
        return outcomes
    }

    /// Writes log entries and search documents concurrently; failures are logged, and log entries that could
    /// not be written wait in the engine's `LogSpool` for `LogSpoolService`.
    public func publish(logs: [[String: String]], documents: [CommunicationDocument]) async {
        async let logged: Void = {
            guard !logs.isEmpty else { return }
            do { try await engine.queue.publish(stream: StreamNames.log, entries: logs) } catch {
                let dropped = await engine.logSpool.keep(logs)
                logger.warning("could not write to log_stream; entries kept for a later attempt", metadata: ["error": "\(error)", "entries": "\(logs.count)", "dropped": "\(dropped)"])
            }
        }()
        async let indexed: Void = {
            do { try await engine.search.index(communications: documents) } catch {
                logger.warning("could not index communications", metadata: ["error": "\(error)", "documents": "\(documents.count)"])
            }
        }()
        _ = await (logged, indexed)
    }
}
