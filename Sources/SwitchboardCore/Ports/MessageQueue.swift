/// Streams with consumer groups (`SQLiteQueue` embedded, `RedisStreamQueue` with `REDIS_URL`).
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
    /// Deletes from the dead-letter stream `<stream>:dead` the entries of the dispatches a redrive replaced:
    /// those whose `_id` is a key of `dispatches` and whose `seq` is at most its value (the dispatch that failed).
    /// An entry of a later dispatch (the redriven message failed again) is kept, as are entries without them
    /// (malformed). Returns how many were deleted.
    @discardableResult
    func removeDeadLetters(stream: String, through dispatches: [String: Int]) async throws -> Int
    /// Entries of a stream, oldest first (for dead-letter inspection).
    func entries(stream: String, limit: Int) async throws -> [QueueEntry]
    /// Length, pending count, age of the oldest pending entry and dead-letter count.
    func info(stream: String, group: String) async throws -> StreamBacklog
    /// Checks that the queue answers.
    func ping() async throws
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
public struct StreamBacklog: Sendable, Hashable {
    public var stream: String
    /// Entries in the stream.
    public var length: Int
    /// Entries handed out and not yet acknowledged.
    public var pending: Int
    /// Entries in the dead-letter stream.
    public var deadLetters: Int
    /// Age of the oldest pending entry (handed out and not yet acknowledged), counted from when it was
    /// published (not from when it was handed out, nor from its last delivery): how long the oldest message a
    /// consumer holds has been waiting for its outcome. Nil when nothing is pending. Entries not yet handed out
    /// are in `length` only.
    public var oldestPendingAge: Duration?

    public init(stream: String, length: Int, pending: Int, deadLetters: Int, oldestPendingAge: Duration? = nil) {
        self.stream = stream
        self.length = length
        self.pending = pending
        self.deadLetters = deadLetters
        self.oldestPendingAge = oldestPendingAge
    }

    /// `oldestPendingAge` in seconds, 0 when nothing is pending (the gauge's value).
    public var oldestPendingSeconds: Double {
        guard let age = oldestPendingAge else { return 0 }
        let (seconds, attoseconds) = age.components
        return max(0, Double(seconds) + Double(attoseconds) / 1e18)
    }

    /// The age of an entry published at `published` (ms since the epoch) seen at `now`; never negative (clocks
    /// of two machines may disagree).
    public static func age(publishedAt published: Int64, now: Int64) -> Duration {
        .milliseconds(max(0, now - published))
    }
}
