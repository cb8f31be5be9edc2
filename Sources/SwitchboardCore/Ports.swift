/// The source of truth for communications (SQLite embedded, MongoDB later).
public protocol CommunicationStore: Sendable {
    /// Stores new communications as `pending`, honouring idempotency keys. Durable when it returns.
    func create(_ items: [NewCommunication]) async throws -> [CreateOutcome]
    /// One communication with its full history, or nil.
    func communication(id: String) async throws -> Communication?
    /// The communication a provider knows by `providerMessageID`, or nil.
    func communication(providerMessageID: String) async throws -> Communication?
    /// Applies each transition atomically (compare-and-set through `StatusMachine`), in order.
    func apply(_ transitions: [StatusTransition]) async throws -> [TransitionOutcome]
    /// Takes up to `limit` communications whose outbox time has come (`dispatchAt <= now`) and leases them
    /// by moving `dispatchAt` to `now + lease`, so that concurrent schedulers do not take the same one.
    func claimDue(now: Timestamp, lease: Duration, limit: Int) async throws -> [Communication]
    /// Communications created at or after `since`, in creation order (`createdAt`, then `id`), without their
    /// history: up to `limit` of them, starting after the communication `after` (the last one of the previous
    /// page), or at the first when nil. A search index that missed updates catches up from here.
    func communications(createdSince since: Timestamp, after: String?, limit: Int) async throws -> [Communication]
    /// Count of communications per channel and status.
    func statusCounts() async throws -> [StatusCount]
    /// Checks that the store answers.
    func ping() async throws
}

/// Implemented by the adapters that delete their own old data for the retention service
/// (`SWITCHBOARD_RETENTION_DAYS`). What "old" means is the adapter's: a store deletes the communications
/// past dispatch (`CommunicationStatus.isPastDispatch`) whose last change is before the cutoff, never one still
/// on its way; a search index deletes the log records from before it (and the copies of such communications);
/// a queue the dead-letter entries added before it; a sandbox mailbox the messages recorded before it. Work is
/// done in small transactions, so that accepting and delivering go on meanwhile. Engines with a lifecycle of
/// their own (Elasticsearch's ILM) leave it out.
public protocol Purging: Sendable {
    /// Deletes what is older than `cutoff`; returns how many records (rows, documents) were deleted.
    func purge(before cutoff: Timestamp) async throws -> Int
}

/// An engine's error that means "not now" rather than "never": the engine cannot take work for the moment
/// (its disk is full, another process holds its lock past the busy timeout, it does not answer, it is
/// closing). The API answers it with 503 and `Retry-After` instead of 500, so clients know a retry is right.
public protocol TemporaryFailure: Error {
    /// Why, in a few words a client may read (no path, address or secret); nil when this error is not temporary.
    var temporaryReason: String? { get }
}

/// How many communications of one channel are in one status.
public struct StatusCount: Sendable, Hashable {
    public var channel: Channel
    public var status: CommunicationStatus
    public var count: Int

    public init(channel: Channel, status: CommunicationStatus, count: Int) {
        self.channel = channel
        self.status = status
        self.count = count
    }
}

/// One entry read from a stream through a consumer group.
public struct QueueEntry: Sendable, Hashable {
    public var id: String
    public var stream: String
    public var fields: [String: String]
    /// How many times the entry was handed to a consumer, this time included.
    public var deliveryCount: Int

    public init(id: String, stream: String, fields: [String: String], deliveryCount: Int) {
        self.id = id
        self.stream = stream
        self.fields = fields
        self.deliveryCount = deliveryCount
    }
}

/// Length and backlog of one stream and group.
public struct StreamInfo: Sendable, Hashable {
    public var stream: String
    /// Entries in the stream.
    public var length: Int
    /// Entries handed out and not yet acknowledged.
    public var pending: Int
    /// Entries in the dead-letter stream.
    public var deadLetters: Int

    public init(stream: String, length: Int, pending: Int, deadLetters: Int) {
        self.stream = stream
        self.length = length
        self.pending = pending
        self.deadLetters = deadLetters
    }
}

/// Streams with consumer groups (SQLite embedded, Redis Streams later).
///
/// Semantics are those of Redis Streams consumer groups: an entry read by a consumer stays pending under
/// a lease until acknowledged; an entry whose lease has run out is handed out again with its delivery count
/// raised.
public protocol MessageQueue: Sendable {
    /// Creates the consumer group (and stream) if missing.
    func createGroup(stream: String, group: String) async throws
    /// Appends entries; returns their ids.
    @discardableResult
    func publish(stream: String, entries: [[String: String]]) async throws -> [String]
    /// Reads up to `count` entries for `consumer`: expired leases first, then new entries. Waits up to
    /// `block` for something to arrive.
    func read(stream: String, group: String, consumer: String, count: Int, block: Duration) async throws -> [QueueEntry]
    /// Acknowledges entries: they will not be handed out again.
    func ack(stream: String, group: String, ids: [String]) async throws
    /// How long a read entry stays with its consumer before another may take it over.
    var lease: Duration { get }
    /// Starts the lease of entries `consumer` holds again (the delivery count is unchanged), so a consumer still
    /// working on them when the lease would run out keeps them. Entries another consumer has taken over, or
    /// that were acknowledged, are left alone. Returns the ids renewed.
    func renew(stream: String, group: String, consumer: String, ids: [String]) async throws -> [String]
    /// Moves entries to the dead-letter stream `<stream>:dead` with `reason`, and acknowledges them.
    func deadLetter(stream: String, group: String, entries: [QueueEntry], reason: String) async throws
    /// Entries of a stream, oldest first (for dead-letter inspection).
    func entries(stream: String, limit: Int) async throws -> [QueueEntry]
    /// Length, pending count and dead-letter count.
    func info(stream: String, group: String) async throws -> StreamInfo
    /// Checks that the queue answers.
    func ping() async throws
}

/// A communication as the search index holds it (the seed's `communications` index).
public struct CommunicationDocument: Sendable, Hashable {
    public var communicationId: String
    public var type: Channel
    public var from: String
    public var to: String
    public var msg: String
    public var status: CommunicationStatus
    public var createdAt: Timestamp
    /// Time of the last change.
    public var timestamp: Timestamp

    public var stream: String { type.stream }

    public init(communicationId: String, type: Channel, from: String, to: String, msg: String, status: CommunicationStatus, createdAt: Timestamp, timestamp: Timestamp) {
        self.communicationId = communicationId
        self.type = type
        self.from = from
        self.to = to
        self.msg = msg
        self.status = status
        self.createdAt = createdAt
        self.timestamp = timestamp
    }

    public init(_ c: Communication) {
        self.init(communicationId: c.id, type: c.channel, from: c.request.from, to: c.request.to, msg: c.request.msg, status: c.status, createdAt: c.createdAt, timestamp: c.updatedAt)
    }
}

/// One record of the seed's `communication-logs` index.
public struct LogRecord: Sendable, Hashable {
    public var communicationId: String
    /// The service that wrote it: `router`, `email`, `sms`, `whatsapp`, `scheduler`, `webhook`.
    public var service: String
    public var status: CommunicationStatus
    public var type: Channel
    public var from: String
    public var to: String
    public var msg: String
    public var error: String?
    public var attempt: Int
    public var provider: String?
    public var timestamp: Timestamp

    public init(communicationId: String, service: String, status: CommunicationStatus, type: Channel, from: String, to: String, msg: String, error: String?, attempt: Int, provider: String?, timestamp: Timestamp) {
        self.communicationId = communicationId
        self.service = service
        self.status = status
        self.type = type
        self.from = from
        self.to = to
        self.msg = msg
        self.error = error
        self.attempt = attempt
        self.provider = provider
        self.timestamp = timestamp
    }
}

/// Filters of `GET /api/v1/communications`.
public struct CommunicationQuery: Sendable, Hashable {
    public var type: Channel?
    public var status: CommunicationStatus?
    public var to: String?
    /// Full text over msg, from and to.
    public var text: String?
    public var since: Timestamp?
    public var until: Timestamp?
    public var limit: Int
    /// Opaque cursor from a previous page.
    public var cursor: String?

    public init(type: Channel? = nil, status: CommunicationStatus? = nil, to: String? = nil, text: String? = nil, since: Timestamp? = nil, until: Timestamp? = nil, limit: Int = 50, cursor: String? = nil) {
        self.type = type
        self.status = status
        self.to = to
        self.text = text
        self.since = since
        self.until = until
        self.limit = limit
        self.cursor = cursor
    }
}

/// Filters of `GET /api/v1/logs`.
public struct LogQuery: Sendable, Hashable {
    public var communicationId: String?
    public var service: String?
    public var status: CommunicationStatus?
    /// Full text over msg and error.
    public var text: String?
    public var limit: Int
    public var cursor: String?

    public init(communicationId: String? = nil, service: String? = nil, status: CommunicationStatus? = nil, text: String? = nil, limit: Int = 50, cursor: String? = nil) {
        self.communicationId = communicationId
        self.service = service
        self.status = status
        self.text = text
        self.limit = limit
        self.cursor = cursor
    }
}

/// One page of results, newest first, and the cursor of the next page if there is one.
public struct Page<Item: Sendable>: Sendable {
    public var items: [Item]
    public var nextCursor: String?

    public init(items: [Item], nextCursor: String?) {
        self.items = items
        self.nextCursor = nextCursor
    }
}

/// Thrown by search adapters for a cursor they did not issue.
public struct InvalidCursor: Error, Sendable {
    public init() {}
}

/// Search over communications and logs (SQLite FTS5 embedded, Elasticsearch later).
public protocol SearchIndex: Sendable {
    /// Inserts or updates communication documents (by `communicationId`).
    func index(communications: [CommunicationDocument]) async throws
    /// Adds log records to `communication-logs`.
    func index(logs: [LogRecord]) async throws
    /// Communications matching `query`, newest first.
    func search(_ query: CommunicationQuery) async throws -> Page<CommunicationDocument>
    /// Log records matching `query`, newest first.
    func search(_ query: LogQuery) async throws -> Page<LogRecord>
    /// Checks that the index answers.
    func ping() async throws
}

/// A message the sandbox provider "delivered".
public struct SandboxMessage: Sendable, Hashable {
    public var communicationId: String
    public var channel: Channel
    public var from: String
    public var to: String
    public var msg: String
    public var subject: String?
    public var attempt: Int
    public var providerMessageID: String
    public var at: Timestamp

    public init(communicationId: String, channel: Channel, from: String, to: String, msg: String, subject: String?, attempt: Int, providerMessageID: String, at: Timestamp) {
        self.communicationId = communicationId
        self.channel = channel
        self.from = from
        self.to = to
        self.msg = msg
        self.subject = subject
        self.attempt = attempt
        self.providerMessageID = providerMessageID
        self.at = at
    }
}

/// Where the sandbox provider records what it delivered.
public protocol SandboxMailbox: Sendable {
    func record(_ message: SandboxMessage) async throws
    /// Newest first.
    func messages(channel: Channel?, to: String?, limit: Int) async throws -> [SandboxMessage]
}

/// Implemented by an engine whose store, queue and search index share transactions (the embedded SQLite
/// engine). The services then do in one atomic write what otherwise takes several: the transactional outbox
/// in its plainest form. Engines that cannot (a Redis queue beside a SQLite store) leave it out and the
/// services use the ports one by one.
public protocol AtomicPipeline: Sendable {
    /// Stores each new communication, records `pending` then `queued` (dispatch 1), appends its entry to its
    /// channel stream and both log entries to `log_stream` — atomically (the engine's search index reads the
    /// stored row, so the message is searchable with it).
    /// Idempotency keys behave as in `CommunicationStore.create`.
    func accept(_ items: [NewCommunication], queuedAt: Timestamp, service: String) async throws -> [CreateOutcome]

    /// Applies `transitions` like `CommunicationStore.apply`, and in the same transaction writes a log entry
    /// for each applied one and settles stream entries:
    /// `settle[i]`, when present, is acknowledged — or moved to the dead-letter stream when transition `i`
    /// left its communication `failed`.
    func record(_ transitions: [StatusTransition], settle: [QueueEntry?], group: String) async throws -> [TransitionOutcome]

    /// The logging service's read of `log_stream` for `group`: entries whose lease ran out are claimed as
    /// `MessageQueue.read` would; otherwise new entries are only read, not claimed (no pending list), and are
    /// consumed by `indexLogs` in the transaction that indexes them. Blocks up to `block` when there is nothing.
    func readLogs(group: String, consumer: String, count: Int, block: Duration) async throws -> LogBatch

    /// In one transaction: indexes `records`, moves the `deadLetters` entries to `log_stream:dead` with `reason`,
    /// and consumes every entry of `batch` (acknowledges claimed entries; moves the group past read ones). A
    /// batch read past a position another logging service has meanwhile moved throws `StaleLogBatch` and
    /// writes nothing.
    func indexLogs(_ records: [LogRecord], consuming batch: LogBatch, deadLetters: [QueueEntry], reason: String, group: String) async throws
}

/// `log_stream` entries handed to the logging service by `AtomicPipeline.readLogs`.
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

    public init(entries: [QueueEntry], origin: Origin) {
        self.entries = entries
        self.origin = origin
    }
}

/// Another consumer of the group consumed the entries of a `LogBatch` first; nothing was written. Read again.
public struct StaleLogBatch: Error, CustomStringConvertible, Sendable {
    public init() {}
    public var description: String { "the log batch was consumed by another logging service first" }
}
