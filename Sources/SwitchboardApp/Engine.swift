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
    /// Names of the engines, for logs and health (`sqlite`, `redis`, …).
    public var names: (store: String, queue: String, search: String)

    public init(store: any CommunicationStore, queue: any MessageQueue, search: any SearchIndex, mailbox: (any SandboxMailbox)?, names: (store: String, queue: String, search: String)) {
        self.store = store
        self.queue = queue
        self.search = search
        self.mailbox = mailbox
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

    public init(retry: RetryPolicy = RetryPolicy(), maxDeliveries: Int = 5, batchSize: Int = 128, concurrency: Int = 64, readBlock: Duration = .milliseconds(250), outboxGrace: Duration = .seconds(10), schedulerInterval: Duration = .milliseconds(500)) {
        self.retry = retry
        self.maxDeliveries = max(1, maxDeliveries)
        self.batchSize = max(1, batchSize)
        self.concurrency = max(1, concurrency)
        self.readBlock = readBlock
        self.outboxGrace = outboxGrace
        self.schedulerInterval = schedulerInterval
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
    /// that were applied. Store errors are thrown; log and index errors are logged, never thrown, because
    /// the status is already committed (the history in the store keeps every change).
    @discardableResult
    public func record(_ transitions: [StatusTransition]) async throws -> [TransitionOutcome] {
        guard !transitions.isEmpty else { return [] }
        let outcomes = try await engine.store.apply(transitions)
        var logs: [[String: String]] = []
        var docs: [CommunicationDocument] = []
        for case .applied(let c, let change) in outcomes {
            logs.append(LogRecord(c, change: change).fields)
            docs.append(CommunicationDocument(c))
        }
        await publish(logs: logs, documents: docs)
        return outcomes
    }

    /// Writes log entries and search documents concurrently; failures are logged.
    public func publish(logs: [[String: String]], documents: [CommunicationDocument]) async {
        async let logged: Void = {
            do { try await engine.queue.publish(stream: StreamNames.log, entries: logs) } catch {
                logger.error("could not write to log_stream", metadata: ["error": "\(error)", "entries": "\(logs.count)"])
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
