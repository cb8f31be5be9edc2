/// The write path every service takes: how a message is accepted, how a status change is recorded with its
/// log entry and search document, and how the logging service consumes `log_stream`. One port, two adapters:
///
/// - the embedded engine's (`SQLitePipeline`), where store, streams and search share one SQLite file and each
///   step is one transaction: the transactional outbox in its plainest form;
/// - the port-by-port one (`PortByPortPipeline`, in the App module), which writes the store, the queue and the
///   search index one after the other when they are different engines (a Redis queue, a MongoDB store,
///   Elasticsearch), batching each step across concurrent callers and leaning on the store's outbox
///   (`dispatchAt`) for a publication that a crash or an outage kept from happening.
///
/// Every status change goes through `StatusMachine`, on both.
public protocol Pipeline: Sendable {
    /// Accepts new communications: each is stored already `queued` (history `pending`, `queued`, dispatch 1,
    /// both decided by `StatusMachine`), its entry appended to its channel stream, its two log entries written
    /// to `log_stream` and its search document indexed. Idempotency keys behave as in
    /// `CommunicationStore.create`. Returns once each is durably stored; an adapter that cannot publish in the
    /// store's transaction leaves the message due in the outbox until its publication is confirmed.
    func accept(_ items: [NewCommunication], queuedAt: Timestamp, service: String) async throws -> [CreateOutcome]

    /// Applies `transitions` like `CommunicationStore.apply`, writes a log entry and the search document of
    /// each applied one, and settles stream entries: `settle[i]`, when present, is acknowledged — or moved to
    /// the dead-letter stream when transition `i` left its communication `failed` — once transition `i` is
    /// committed (nothing is settled if the store fails). `settle` is empty or has one element per transition.
    @discardableResult
    func record(_ transitions: [StatusTransition], settle: [QueueEntry?], group: String) async throws -> [TransitionOutcome]

    /// The logging service's read of `log_stream` for `group`, blocking up to `block` when there is nothing.
    func readLogs(group: String, consumer: String, count: Int, block: Duration) async throws -> LogBatch

    /// Indexes `records`, moves the `deadLetters` entries to `log_stream:dead` with `reason`, and consumes every
    /// entry of `batch`. A batch read past a position another logging service has meanwhile moved throws
    /// `StaleLogBatch` and writes nothing.
    func indexLogs(_ records: [LogRecord], consuming batch: LogBatch, deadLetters: [QueueEntry], reason: String, group: String) async throws
}

/// `log_stream` entries handed to the logging service by `Pipeline.readLogs`.
public struct LogBatch: Sendable, Hashable {
    /// How the entries were handed out.
    public enum Origin: Sendable, Hashable {
        /// Claimed into the group's pending list (their lease had run out): acknowledged when indexed.
        case claimed
        /// Read past the group's position `after`, up to and including `through`, without claiming.
        case read(after: String, through: String)
    }

    /// Oldest first.
    public var entries: [QueueEntry]
    public var origin: Origin
    /// The consumer that holds claimed entries (their leases are renewed while they are being indexed).
    public var consumer: String

    public init(entries: [QueueEntry], origin: Origin, consumer: String = "") {
        self.entries = entries
        self.origin = origin
        self.consumer = consumer
    }
}

/// Another consumer of the group consumed the entries of a `LogBatch` first; nothing was written. Read again.
public struct StaleLogBatch: Error, CustomStringConvertible, Sendable {
    public init() {}
    public var description: String { "the log batch was consumed by another logging service first" }
}
