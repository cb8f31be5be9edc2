/// The source of truth for communications (`SQLiteStore` embedded, `MongoStore` with `MONGODB_URL`).
public protocol CommunicationStore: Sendable {
    /// Stores new communications as `pending`, honouring idempotency keys. Durable when it returns.
    func create(_ items: [NewCommunication]) async throws -> [CreateOutcome]
    /// One communication with its full history, or nil.
    func communication(id: String) async throws -> Communication?
    /// The communications stored with these idempotency keys, by key, without their history (a key no message
    /// has is absent): how a batch tells a replay from a key used before for another batch.
    func communications(idempotencyKeys: [String]) async throws -> [String: Communication]
    /// The communication a provider knows by `providerMessageID`, or nil.
    func communication(providerMessageID: String) async throws -> Communication?
    /// Applies each transition atomically (compare-and-set through `StatusMachine`), in order.
    func apply(_ transitions: [StatusTransition]) async throws -> [TransitionOutcome]
    /// Records that the stream entries of these dispatches were published (by an engine apart from the store):
    /// a communication still `queued` in that dispatch (`StatusMachine.publicationConfirmed`) gets `due` as its
    /// outbox due time (the stall watchdog; nil clears it). Others — a worker already moved them on — are left as they are.
    func confirmPublished(_ publications: [Publication], due: Timestamp?) async throws
    /// Takes up to `limit` communications whose outbox time has come (`dispatchAt <= now`) and leases them
    /// by moving `dispatchAt` to `now + lease`, so that concurrent schedulers do not take the same one.
    func claimDue(now: Timestamp, lease: Duration, limit: Int) async throws -> [Communication]
    /// Communications created at or after `since`, in creation order (`createdAt`, then `id`), without their
    /// history: up to `limit` of them, starting after the communication `after` (the last one of the previous
    /// page), or at the first when nil. A search index that missed updates catches up from here.
    func communications(createdSince since: Timestamp, after: String?, limit: Int) async throws -> [Communication]
    /// Failed communications (`failed`: dead-lettered, the ones a redrive takes) matching `query`, oldest failure
    /// first (then by id, or creation order), without their history: at most `query.limit`. A failed message's
    /// last change is its failure (nothing moves a final status but a redrive), so its `updatedAt` is when it failed.
    func failed(_ query: FailedQuery) async throws -> [Communication]
    /// How many communications the outbox has due at `now` (`dispatchAt <= now`): what the next `claimDue`
    /// calls would take, leases that ran out included. Cheap: read from the index on the due time.
    func outboxDue(now: Timestamp) async throws -> Int
    /// Count of communications per channel and status.
    func statusCounts() async throws -> [StatusCount]
    /// Checks that the store answers.
    func ping() async throws
}

/// How many communications of one channel are in one status.
public struct StatusCount: Sendable, Hashable {
    public var channel: MessageChannel
    public var status: CommunicationStatus
    public var count: Int

    public init(channel: MessageChannel, status: CommunicationStatus, count: Int) {
        self.channel = channel
        self.status = status
        self.count = count
    }
}

/// A dispatch whose stream entry was published.
public struct Publication: Sendable, Hashable {
    public var id: String
    public var dispatchSeq: Int

    public init(id: String, dispatchSeq: Int) {
        self.id = id
        self.dispatchSeq = dispatchSeq
    }
}

/// Which failed communications `CommunicationStore.failed` finds; every condition given must hold.
public struct FailedQuery: Sendable, Hashable {
    /// Only this channel's (its stream's) messages.
    public var channel: MessageChannel?
    /// Failed at or after this time.
    public var since: Timestamp?
    /// Failed before this time.
    public var until: Timestamp?
    /// Failed with this provider error code (`ProviderError.code` of `lastError`: `21211`, `SANDBOX_REJECTED`).
    public var errorCode: String?
    /// At most this many.
    public var limit: Int

    public init(channel: MessageChannel? = nil, since: Timestamp? = nil, until: Timestamp? = nil, errorCode: String? = nil, limit: Int) {
        self.channel = channel
        self.since = since
        self.until = until
        self.errorCode = errorCode
        self.limit = limit
    }
}
