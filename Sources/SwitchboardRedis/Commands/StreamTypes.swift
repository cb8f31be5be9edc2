/// One field/value pair of a stream entry.
public struct StreamField: Sendable, Hashable {
    /// The field name.
    public var name: String
    /// The value.
    public var value: String

    /// Creates a field.
    /// - Parameters:
    ///   - name: The field name.
    ///   - value: The value.
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// An entry of a Redis stream: its ID and its fields, in the order they were added.
public struct StreamEntry: Sendable, Hashable {
    /// The entry ID, such as `"1526919030474-55"`.
    public var id: String
    /// The fields, in order. Empty for a deleted entry.
    public var fields: [StreamField]
    /// Whether the entry was deleted (`XDEL`) while it was pending: `XREADGROUP` with an ID
    /// other than `>` reports such entries with no fields.
    public var isDeleted: Bool

    /// Creates an entry.
    /// - Parameters:
    ///   - id: The entry ID.
    ///   - fields: The fields, in order.
    ///   - isDeleted: Whether the entry was deleted.
    public init(id: String, fields: [StreamField], isDeleted: Bool = false) {
        self.id = id
        self.fields = fields
        self.isDeleted = isDeleted
    }

    /// The value of the first field with this name, if any.
    /// - Parameter name: The field name.
    public subscript(field name: String) -> String? {
        self.fields.first { $0.name == name }?.value
    }

    /// The fields as `(name, value)` tuples, in order.
    public var fieldPairs: [(String, String)] {
        self.fields.map { ($0.name, $0.value) }
    }
}

/// How `XADD` trims the stream.
public enum StreamTrim: Sendable, Hashable {
    /// `MAXLEN [~] n`: keep at most about (`approximate`) or exactly `n` entries.
    /// Approximate trimming (`~`) is much cheaper and is what Redis recommends.
    case maxLength(Int, approximate: Bool = true)
    /// `MINID [~] id`: drop entries with IDs lower than `id`.
    case minID(String, approximate: Bool = true)

    var arguments: [String] {
        switch self {
        case .maxLength(let count, let approximate):
            return approximate ? ["MAXLEN", "~", String(count)] : ["MAXLEN", "=", String(count)]
        case .minID(let id, let approximate):
            return approximate ? ["MINID", "~", id] : ["MINID", "=", id]
        }
    }
}

/// The reply of `XAUTOCLAIM`.
public struct StreamAutoClaimResult: Sendable, Hashable {
    /// The cursor to pass as `start` to continue scanning; `"0-0"` when the scan is complete.
    public var nextCursor: String
    /// The entries now owned by the claiming consumer.
    public var entries: [StreamEntry]
    /// IDs that were pending but no longer exist in the stream; Redis removed them from
    /// the pending list (Redis 7 and later; always empty before).
    public var deletedIDs: [String]

    /// Creates a result.
    /// - Parameters:
    ///   - nextCursor: The cursor for the next call.
    ///   - entries: The claimed entries.
    ///   - deletedIDs: IDs removed from the pending list because the entries were deleted.
    public init(nextCursor: String, entries: [StreamEntry], deletedIDs: [String]) {
        self.nextCursor = nextCursor
        self.entries = entries
        self.deletedIDs = deletedIDs
    }
}

/// One consumer's share of a group's pending entries.
public struct StreamConsumerPendingCount: Sendable, Hashable {
    /// The consumer name.
    public var name: String
    /// How many entries it has pending.
    public var pending: Int

    /// Creates a count.
    /// - Parameters:
    ///   - name: The consumer name.
    ///   - pending: Its number of pending entries.
    public init(name: String, pending: Int) {
        self.name = name
        self.pending = pending
    }
}

/// The summary form of `XPENDING key group`.
public struct StreamPendingSummary: Sendable, Hashable {
    /// The number of pending entries in the group.
    public var count: Int
    /// The lowest pending ID, or `nil` if nothing is pending.
    public var smallestID: String?
    /// The highest pending ID, or `nil` if nothing is pending.
    public var greatestID: String?
    /// The consumers with pending entries.
    public var consumers: [StreamConsumerPendingCount]

    /// Creates a summary.
    /// - Parameters:
    ///   - count: The number of pending entries.
    ///   - smallestID: The lowest pending ID.
    ///   - greatestID: The highest pending ID.
    ///   - consumers: The consumers with pending entries.
    public init(count: Int, smallestID: String?, greatestID: String?, consumers: [StreamConsumerPendingCount]) {
        self.count = count
        self.smallestID = smallestID
        self.greatestID = greatestID
        self.consumers = consumers
    }
}

/// One entry of the extended form of `XPENDING`.
public struct StreamPendingEntry: Sendable, Hashable {
    /// The entry ID.
    public var id: String
    /// The consumer that owns it.
    public var consumer: String
    /// Milliseconds since it was last delivered.
    public var idleMilliseconds: Int64
    /// How many times it was delivered.
    public var deliveryCount: Int

    /// Creates a pending entry.
    /// - Parameters:
    ///   - id: The entry ID.
    ///   - consumer: The owning consumer.
    ///   - idleMilliseconds: Milliseconds since the last delivery.
    ///   - deliveryCount: The number of deliveries.
    public init(id: String, consumer: String, idleMilliseconds: Int64, deliveryCount: Int) {
        self.id = id
        self.consumer = consumer
        self.idleMilliseconds = idleMilliseconds
        self.deliveryCount = deliveryCount
    }

    /// The time since the last delivery.
    public var idle: Duration {
        .milliseconds(self.idleMilliseconds)
    }
}

/// One group of `XINFO GROUPS`.
public struct StreamGroupInfo: Sendable, Hashable {
    /// The group name.
    public var name: String
    /// The number of consumers.
    public var consumers: Int
    /// The number of pending (delivered, not acknowledged) entries.
    public var pending: Int
    /// The ID of the last entry delivered to the group.
    public var lastDeliveredID: String
    /// The logical read counter (Redis 7 and later).
    public var entriesRead: Int?
    /// How many entries are still to be delivered, when Redis can tell (Redis 7 and later).
    public var lag: Int?

    /// Creates group information.
    /// - Parameters:
    ///   - name: The group name.
    ///   - consumers: The number of consumers.
    ///   - pending: The number of pending entries.
    ///   - lastDeliveredID: The last delivered ID.
    ///   - entriesRead: The read counter, if known.
    ///   - lag: The lag, if known.
    public init(name: String, consumers: Int, pending: Int, lastDeliveredID: String, entriesRead: Int?, lag: Int?) {
        self.name = name
        self.consumers = consumers
        self.pending = pending
        self.lastDeliveredID = lastDeliveredID
        self.entriesRead = entriesRead
        self.lag = lag
    }
}

/// One element of the reply of `XINFO CONSUMERS`.
public struct StreamConsumerInfo: Sendable, Hashable {
    /// The consumer name.
    public var name: String
    /// Entries delivered to it and not yet acknowledged.
    public var pending: Int
    /// Milliseconds since it last interacted with the group (any read or claim).
    public var idleMilliseconds: Int
    /// Milliseconds since its last successful read or claim (Redis 7.2 and later).
    public var inactiveMilliseconds: Int?

    /// Creates consumer information.
    public init(name: String, pending: Int, idleMilliseconds: Int, inactiveMilliseconds: Int?) {
        self.name = name
        self.pending = pending
        self.idleMilliseconds = idleMilliseconds
        self.inactiveMilliseconds = inactiveMilliseconds
    }
}

/// The reply of `XINFO STREAM` (summary form).
public struct StreamInfo: Sendable, Hashable {
    /// The number of entries.
    public var length: Int
    /// The number of radix tree keys.
    public var radixTreeKeys: Int
    /// The number of radix tree nodes.
    public var radixTreeNodes: Int
    /// The ID of the last entry added.
    public var lastGeneratedID: String
    /// The highest ID ever deleted (Redis 7 and later).
    public var maxDeletedEntryID: String?
    /// The number of entries ever added (Redis 7 and later).
    public var entriesAdded: Int?
    /// The first ID recorded (Redis 7 and later).
    public var recordedFirstEntryID: String?
    /// The number of consumer groups.
    public var groups: Int
    /// The first entry, or `nil` if the stream is empty.
    public var firstEntry: StreamEntry?
    /// The last entry, or `nil` if the stream is empty.
    public var lastEntry: StreamEntry?

    /// Creates stream information.
    /// - Parameters:
    ///   - length: The number of entries.
    ///   - radixTreeKeys: The number of radix tree keys.
    ///   - radixTreeNodes: The number of radix tree nodes.
    ///   - lastGeneratedID: The last generated ID.
    ///   - maxDeletedEntryID: The highest deleted ID, if known.
    ///   - entriesAdded: The number of entries ever added, if known.
    ///   - recordedFirstEntryID: The first recorded ID, if known.
    ///   - groups: The number of consumer groups.
    ///   - firstEntry: The first entry.
    ///   - lastEntry: The last entry.
    public init(
        length: Int,
        radixTreeKeys: Int,
        radixTreeNodes: Int,
        lastGeneratedID: String,
        maxDeletedEntryID: String?,
        entriesAdded: Int?,
        recordedFirstEntryID: String?,
        groups: Int,
        firstEntry: StreamEntry?,
        lastEntry: StreamEntry?
    ) {
        self.length = length
        self.radixTreeKeys = radixTreeKeys
        self.radixTreeNodes = radixTreeNodes
        self.lastGeneratedID = lastGeneratedID
        self.maxDeletedEntryID = maxDeletedEntryID
        self.entriesAdded = entriesAdded
        self.recordedFirstEntryID = recordedFirstEntryID
        self.groups = groups
        self.firstEntry = firstEntry
        self.lastEntry = lastEntry
    }
}
