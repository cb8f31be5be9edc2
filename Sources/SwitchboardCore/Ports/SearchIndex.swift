/// Search over communications and logs (`SQLiteSearchIndex` on FTS5 embedded, `ElasticsearchSearchIndex` with `ELASTICSEARCH_NODE`).
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

/// A communication as the search index holds it (the seed's `communications` index).
public struct CommunicationDocument: Sendable, Hashable {
    public var communicationId: String
    public var type: MessageChannel
    public var from: String
    public var to: String
    public var msg: String
    public var status: CommunicationStatus
    public var createdAt: Timestamp
    /// Time of the last change.
    public var timestamp: Timestamp
    /// The id of the API key that created it, if any.
    public var keyID: String?
    /// `data.metadata` (empty: none): searchable by exact key and value (`CommunicationQuery.metadata`).
    public var metadata: [String: String]

    public var stream: String { type.stream }

    public init(communicationId: String, type: MessageChannel, from: String, to: String, msg: String, status: CommunicationStatus, createdAt: Timestamp, timestamp: Timestamp, keyID: String? = nil, metadata: [String: String] = [:]) {
        self.metadata = metadata
        self.communicationId = communicationId
        self.type = type
        self.from = from
        self.to = to
        self.msg = msg
        self.status = status
        self.createdAt = createdAt
        self.timestamp = timestamp
        self.keyID = keyID
    }

    public init(_ c: Communication) {
        self.init(communicationId: c.id, type: c.channel, from: c.request.from, to: c.request.to, msg: c.request.msg, status: c.status, createdAt: c.createdAt, timestamp: c.updatedAt, keyID: c.keyID, metadata: c.request.metadata)
    }
}

/// One record of the seed's `communication-logs` index.
///
/// Most records are a communication's status changes. Records of the service `auth` (`AuditLog`: key created,
/// revoked, first used, admin actions, authentication failures) concern no communication: they have no status
/// and no channel, `communicationId` names their subject (a key id, a client address), `msg` the event and
/// `error` its details.
public struct LogRecord: Sendable, Hashable {
    public var communicationId: String
    /// The service that wrote it: `router`, `email`, `sms`, `whatsapp`, `scheduler`, `webhook`; `auth` for audit records.
    public var service: String
    /// The communication's status after the change; nil for an audit record.
    public var status: CommunicationStatus?
    /// The communication's channel; nil for an audit record.
    public var type: MessageChannel?
    public var from: String
    public var to: String
    public var msg: String
    public var error: String?
    public var attempt: Int
    public var provider: String?
    public var timestamp: Timestamp
    /// A record of a test message (sent with a test key).
    public var test: Bool
    /// The communication's trace context (its record's): documents show its trace id (`traceId`); the logging
    /// service's indexing span is its child. Nil for audit records and records of messages without one.
    public var traceParent: TraceParent?
    /// The id of the API key that sent the communication (field `keyId`): the status feed's `key` filter and
    /// the callbacks' per-key endpoints use it. Nil for audit records and messages sent without a key.
    public var keyID: String?
    /// The communication's `data.metadata` (field `metadata`, its JSON object as text, present only when not
    /// empty): shown in live events and status callbacks.
    public var metadata: [String: String]

    public init(communicationId: String, service: String, status: CommunicationStatus?, type: MessageChannel?, from: String, to: String, msg: String, error: String?, attempt: Int, provider: String?, timestamp: Timestamp, test: Bool = false, traceParent: TraceParent? = nil, keyID: String? = nil, metadata: [String: String] = [:]) {
        self.keyID = keyID
        self.metadata = metadata
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
        self.test = test
        self.traceParent = traceParent
    }
}

/// Filters of `GET /api/v1/communications`.
public struct CommunicationQuery: Sendable, Hashable {
    public var type: MessageChannel?
    public var status: CommunicationStatus?
    public var to: String?
    /// Full text over msg, from and to.
    public var text: String?
    public var since: Timestamp?
    public var until: Timestamp?
    /// Only those created with this API key (its id).
    public var key: String?
    /// Only those whose `data.metadata` holds every one of these keys with exactly this value.
    public var metadata: [String: String]
    public var limit: Int
    /// Opaque cursor from a previous page.
    public var cursor: String?

    public init(type: MessageChannel? = nil, status: CommunicationStatus? = nil, to: String? = nil, text: String? = nil, since: Timestamp? = nil, until: Timestamp? = nil, key: String? = nil, metadata: [String: String] = [:], limit: Int = 50, cursor: String? = nil) {
        self.metadata = metadata
        self.type = type
        self.status = status
        self.to = to
        self.text = text
        self.since = since
        self.until = until
        self.key = key
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
