import Foundation
import SwitchboardCore

/// Errors of the embedded queue, named like Redis's so both adapters read alike.
public enum QueueError: Error, CustomStringConvertible, Sendable {
    /// The consumer group does not exist (Redis: NOGROUP).
    case noGroup(stream: String, group: String)

    public var description: String {
        switch self {
        case .noGroup(let stream, let group): "NOGROUP no consumer group '\(group)' for stream '\(stream)'"
        }
    }
}

/// The embedded `MessageQueue`: Redis-Streams-like consumer groups on SQLite tables.
///
/// Entries live in `stream_entries`; a group remembers the last entry it handed out; handed-out entries sit
/// in `stream_pending` with a lease and a delivery count until acknowledged. An entry acknowledged by every
/// group of its stream is deleted (dead-letter streams have no group and keep their entries).
///
/// An entry holds one set of fields (a JSON object), or several (a JSON array of objects): `SQLitePipeline`
/// writes the `log_stream` records of one transaction as one entry, so a message's four log records cost
/// about one row among many instead of four rows written and deleted. Readers see each set as a `QueueEntry`
/// of its own with the entry's id; acknowledging that id settles them all.
public struct SQLiteQueue: MessageQueue {
    let db: SQLiteDatabase
    /// How long a read entry stays with its consumer before another may take it.
    public var lease: Duration
    /// How often a blocked reader looks for entries published by other processes.
    public var pollInterval: Duration
    /// The wall clock (injected so tests can move time).
    let clock: @Sendable () -> Timestamp

    public init(database: SQLiteDatabase, lease: Duration = .seconds(30), pollInterval: Duration = .milliseconds(100), clock: @escaping @Sendable () -> Timestamp) {
        db = database
        self.lease = lease
        self.pollInterval = pollInterval
        self.clock = clock
    }

    static func encode(_ fields: [String: String]) -> String {
        JSONValue.canonicalText(stringFields: fields)
    }

    /// Entry ids as a JSON array of numbers, for set-based statements (`… IN (SELECT value FROM json_each(?))`);
    /// ids that are not ours (not numbers) are left out.
    static func idList(_ ids: [String]) -> String {
        "[" + ids.compactMap { Int64($0).map(String.init) }.joined(separator: ",") + "]"
    }

    /// The entries one stored entry stands for: one per set of fields it holds (see the type's comment), all
    /// with its id and delivery count. A text that is not JSON fields gives one entry whose only field,
    /// `rawField`, is that text: the consumers move it to the dead-letter stream as malformed, text and all.
    static func decodeEntries(id: String, stream: String, text: String, deliveries: Int) -> [QueueEntry] {
        let sets: [[String: String]]?
        if text.utf8.first == UInt8(ascii: "[") {
            sets = JSONParser.parseStringFieldsList(text).flatMap { $0.isEmpty ? nil : $0 }
        } else {
            sets = JSONParser.parseStringFields(text).map { [$0] }
        }
        return (sets ?? [[rawField: text]]).map { QueueEntry(id: id, stream: stream, fields: $0, deliveryCount: deliveries) }
    }

    /// The field holding the stored text of an entry that could not be read as fields.
    public static let rawField = "_raw"

    /// The text of one entry holding several sets of fields (each the text of a JSON object); a single set
    /// is stored as it is.
    static func batchText(_ sets: [String]) -> String {
        sets.count == 1 ? sets[0] : "[" + sets.joined(separator: ",") + "]"
    }

    /// SQL counting the sets of fields of a stream's entries (see `decodeEntries`), from the count each entry
    /// was written with (`append`'s `sets`; a malformed text counts as one, as `decodeEntries` hands it out).
    static let countSets = "SELECT coalesce(sum(sets), 0) FROM stream_entries WHERE stream = ?"

    public func createGroup(stream: String, group: String) async throws {
        try await db.write { c in
            try c.run("INSERT OR IGNORE INTO stream_groups (stream, grp, last_id) VALUES (?, ?, 0)", [.text(stream), .text(group)])
        }
    }

    @discardableResult
    public func publish(stream: String, entries: [[String: String]]) async throws -> [String] {
        guard !entries.isEmpty else { return [] }
        let now = clock()
        let encoded = entries.map(Self.encode)  // off the writer thread
        let ids = try await db.write { c in
            var ids: [String] = []
            ids.reserveCapacity(encoded.count)
            for fields in encoded {
                ids.append(String(try Self.append(c, stream: stream, fields: fields, at: now)))
            }
            return ids
        }
        db.signal.notify(stream)
        return ids
    }

    public func read(stream: String, group: String, consumer: String, count: Int, block: Duration) async throws -> [QueueEntry] {
        try await blocking(stream: stream, block: block, empty: []) {
            let entries = try await claim(stream: stream, group: group, consumer: consumer, count: count)
            return entries.isEmpty ? nil : entries
        }
    }

    /// Calls `attempt` until it finds something (not nil), waking when this process publishes to `stream` and
    /// polling every `pollInterval` for other processes' entries; `empty` once `block` has passed.
    func blocking<T>(stream: String, block: Duration, empty: T, _ attempt: () async throws -> T?) async throws -> T {
        try await db.signal.blocking(stream, block: block, poll: pollInterval, empty: empty, attempt)
    }

    /// What `peek` found for a group, on a reader connection, without claiming anything.
    struct Peek {
        /// The group's position: the entries are the ones after it.
        var after: Int64
        /// The sets of fields of the new entries read (see the type's comment), oldest first.
        var entries: [QueueEntry]
        /// The id of the last entry read; nil when there was none.
        var through: Int64?
        /// True when the group's pending list holds entries whose lease has run out.
        var expired: Bool
    }

    /// Looks at `group` on a reader connection, without claiming anything: its new entries, whole, until
    /// they hold at least `count` sets of fields (decoded here, off the writer thread), and whether some of
    /// its claims expired.
    func peek(stream: String, group: String, count: Int) async throws -> Peek {
        let now = clock()
        return try await db.read { c in
            let after = try Self.position(c, stream: stream, group: group)
            var peek = Peek(after: after, entries: [], through: nil, expired: false)
            var rowsRead = 0
            while peek.entries.count < count {
                // Entries hold one set or a transaction's worth: ask for about as many rows as still fit.
                let perRow = rowsRead == 0 ? 64 : max(1, peek.entries.count / rowsRead)
                let limit = min(256, max(1, (count - peek.entries.count) / perRow))
                var rows = 0
                try Self.entries(c, stream: stream, after: peek.through ?? after, limit: limit) { id, text in
                    rows += 1
                    peek.entries += Self.decodeEntries(id: String(id), stream: stream, text: text, deliveries: 1)
                    peek.through = id
                }
                rowsRead += rows
                if rows < limit { break }
            }
            peek.expired = try c.scalar(
                "SELECT EXISTS (SELECT 1 FROM stream_pending WHERE stream = ? AND grp = ? AND lease_until <= ?)", [.text(stream), .text(group), .int(now.milliseconds)]) == 1
            return peek
        }
    }

    /// The group's position (the last entry it was handed), or NOGROUP.
    static func position(_ c: Connection, stream: String, group: String) throws -> Int64 {
        guard let lastID = try c.scalar("SELECT last_id FROM stream_groups WHERE stream = ? AND grp = ?", [.text(stream), .text(group)]) else {
            throw QueueError.noGroup(stream: stream, group: group)
        }
        return lastID
    }

    /// Calls `row` with the id and encoded fields of up to `limit` entries after `after`, oldest first.
    static func entries(_ c: Connection, stream: String, after: Int64, limit: Int, _ row: (Int64, String) -> Void) throws {
        try c.query("SELECT id, fields FROM stream_entries WHERE stream = ? AND id > ? ORDER BY id LIMIT ?", [.text(stream), .int(after), .int(Int64(limit))]) { s in
            row(s.int(0), s.text(1))
        }
    }

    /// True when `stream` has at most one consumer group: an entry that group is done with is needed by nobody.
    static func hasSoleGroup(_ c: Connection, stream: String) throws -> Bool {
        try c.scalar("SELECT count(*) FROM stream_groups WHERE stream = ?", [.text(stream)]) ?? 0 <= 1
    }

    /// Consumes entries read with `peek` on the writer thread: moves `group` from `after` to `through` (only if
    /// it is still at `after`, else `StaleLogBatch`) and deletes the entries no group needs any more.
    static func consume(_ c: Connection, stream: String, group: String, after: Int64, through: Int64) throws {
        try c.run("UPDATE stream_groups SET last_id = ? WHERE stream = ? AND grp = ? AND last_id = ?", [.int(through), .text(stream), .text(group), .int(after)])
        guard c.changes == 1 else { throw StaleLogBatch() }
        if try hasSoleGroup(c, stream: stream) {
            try c.run("DELETE FROM stream_entries WHERE stream = ? AND id > ? AND id <= ?", [.text(stream), .int(after), .int(through)])
        } else {
            try c.run(
                """
                DELETE FROM stream_entries WHERE stream = ?1 AND id > ?2 AND id <= ?3
                AND NOT EXISTS (SELECT 1 FROM stream_pending p WHERE p.stream = ?1 AND p.entry_id = stream_entries.id)
                AND NOT EXISTS (SELECT 1 FROM stream_groups g WHERE g.stream = ?1 AND g.last_id < stream_entries.id)
                """, [.text(stream), .int(after), .int(through)])
        }
    }

    /// Claims entries for `consumer`: those of the group whose lease ran out (XAUTOCLAIM), then, with
    /// `includeNew`, new ones (XREADGROUP >).
    func claim(stream: String, group: String, consumer: String, count: Int, includeNew: Bool = true) async throws -> [QueueEntry] {
        let now = clock()
        let leaseUntil = now.adding(lease).milliseconds
        // Fields are decoded after the write, off the writer thread. Not durable: a claim lost in a power cut
        // leaves its entries to be handed out again, as if the claim had not happened.
        return try await db.write(durable: false) { c -> [(String, String, Int)] in
            let lastID = try Self.position(c, stream: stream, group: group)
            var result: [(id: String, fields: String, deliveries: Int)] = []
            // Entries whose lease ran out: take them over (XAUTOCLAIM).
            var expired: [(Int64, Int64)] = []
            try c.query(
                "SELECT entry_id, deliveries FROM stream_pending WHERE stream = ? AND grp = ? AND lease_until <= ? ORDER BY entry_id LIMIT ?",
                [.text(stream), .text(group), .int(now.milliseconds), .int(Int64(count))]
            ) { s in expired.append((s.int(0), s.int(1))) }
            for (id, deliveries) in expired {
                try c.run(
                    "UPDATE stream_pending SET consumer = ?, lease_until = ?, deliveries = ? WHERE stream = ? AND grp = ? AND entry_id = ?",
                    [.text(consumer), .int(leaseUntil), .int(deliveries + 1), .text(stream), .text(group), .int(id)])
                var fields: String?
                try c.query("SELECT fields FROM stream_entries WHERE id = ?", [.int(id)]) { s in fields = s.text(0) }
                if let fields {
                    result.append((String(id), fields, Int(deliveries + 1)))
                } else {
                    // Deleted meanwhile (XDEL): drop the pending record, as Redis's XAUTOCLAIM does.
                    try c.run("DELETE FROM stream_pending WHERE stream = ? AND grp = ? AND entry_id = ?", [.text(stream), .text(group), .int(id)])
                }
            }
            // New entries (XREADGROUP >).
            let room = count - result.count
            if includeNew && room > 0 {
                var newest = lastID
                try Self.entries(c, stream: stream, after: lastID, limit: room) { id, fields in
                    newest = max(newest, id)
                    result.append((String(id), fields, 1))
                }
                if newest > lastID {
                    // One set-based insert for the whole range handed out.
                    try c.run(
                        """
                        INSERT INTO stream_pending (stream, grp, entry_id, consumer, lease_until, deliveries)
                        SELECT ?1, ?2, id, ?3, ?4, 1 FROM stream_entries WHERE stream = ?1 AND id > ?5 AND id <= ?6
                        """,
                        [.text(stream), .text(group), .text(consumer), .int(leaseUntil), .int(lastID), .int(newest)])
                    try c.run("UPDATE stream_groups SET last_id = ? WHERE stream = ? AND grp = ?", [.int(newest), .text(stream), .text(group)])
                }
            }
            return result
        }.flatMap { Self.decodeEntries(id: $0.0, stream: stream, text: $0.1, deliveries: $0.2) }
    }

    /// Appends one entry (encoded fields) on the writer thread; returns its id. `sets`: how many sets of fields
    /// `fields` holds (an array's length; 1 for an object).
    @discardableResult
    static func append(_ c: Connection, stream: String, fields: String, sets: Int = 1, at: Timestamp) throws -> Int64 {
        try c.run("INSERT INTO stream_entries (stream, fields, created_at, sets) VALUES (?, ?, ?, ?)", [.text(stream), .text(fields), .int(at.milliseconds), .int(Int64(max(1, sets)))])
        return c.lastInsertRowID
    }

    /// The fields of a dead-letter entry.
    static func deadFields(_ e: QueueEntry, reason: String) -> String {
        var fields = e.fields
        fields["dead_reason"] = reason
        fields["dead_entry_id"] = e.id
        fields["dead_deliveries"] = String(e.deliveryCount)
        return encode(fields)
    }

    public func renew(stream: String, group: String, consumer: String, ids: [String]) async throws -> [String] {
        guard !ids.isEmpty else { return [] }
        let list = Self.idList(ids)
        let leaseUntil = clock().adding(lease).milliseconds
        // Not durable: a renewal lost in a power cut only lets the entries be taken over, as without it.
        return try await db.write(durable: false) { c in
            var renewed: [String] = []
            try c.query(
                "UPDATE stream_pending SET lease_until = ? WHERE stream = ? AND grp = ? AND consumer = ? AND entry_id IN (SELECT value FROM json_each(?)) RETURNING entry_id",
                [.int(leaseUntil), .text(stream), .text(group), .text(consumer), .text(list)]
            ) { s in renewed.append(String(s.int(0))) }
            return renewed
        }
    }

    public func ack(stream: String, group: String, ids: [String]) async throws {
        guard !ids.isEmpty else { return }
        try await db.write { c in try Self.ack(c, stream: stream, group: group, ids: ids) }
    }

    static func ack(_ c: Connection, stream: String, group: String, ids: [String]) throws {
        // With one group on the stream (ours always have one), an acknowledged entry is needed by nobody.
        if try hasSoleGroup(c, stream: stream) {
            // Set-based: two statements for the whole batch.
            let list = idList(ids)
            try c.run("DELETE FROM stream_pending WHERE stream = ? AND grp = ? AND entry_id IN (SELECT value FROM json_each(?))", [.text(stream), .text(group), .text(list)])
            try c.run("DELETE FROM stream_entries WHERE id IN (SELECT value FROM json_each(?)) AND stream = ?", [.text(list), .text(stream)])
            return
        }
        for id in ids {
            guard let n = Int64(id) else { continue }
            try c.run("DELETE FROM stream_pending WHERE stream = ? AND grp = ? AND entry_id = ?", [.text(stream), .text(group), .int(n)])
            // Delete the entry once no group still needs it.
            try c.run(
                """
                DELETE FROM stream_entries WHERE id = ?1
                AND NOT EXISTS (SELECT 1 FROM stream_pending WHERE stream = ?2 AND entry_id = ?1)
                AND NOT EXISTS (SELECT 1 FROM stream_groups WHERE stream = ?2 AND last_id < ?1)
                """, [.int(n), .text(stream)])
        }
    }

    public func deadLetter(stream: String, group: String, entries: [QueueEntry], reason: String) async throws {
        guard !entries.isEmpty else { return }
        let now = clock()
        let dead = StreamNames.deadLetter(of: stream)
        let encoded = entries.map { Self.deadFields($0, reason: reason) }
        try await db.write { c in
            for fields in encoded {
                try Self.append(c, stream: dead, fields: fields, at: now)
            }
            try Self.ack(c, stream: stream, group: group, ids: entries.map(\.id))
        }
    }

    /// One statement over the dead-letter stream's entries (`stream_entries_stream`), matched against the
    /// dispatches as a JSON object (`json_each`: key = `_id`, value = last `seq`). Dead-letter entries are one set of
    /// fields each (`deadFields`); `CASE` keeps `json_extract` off a text that is not JSON.
    @discardableResult
    public func removeDeadLetters(stream: String, through dispatches: [String: Int]) async throws -> Int {
        guard !dispatches.isEmpty else { return 0 }
        let wanted = JSONValue.object(dispatches.mapValues { .number(Double($0)) }).canonicalText
        return try await db.write { c in
            var removed = 0
            try c.query(
                """
                DELETE FROM stream_entries WHERE stream = ?1 AND id IN (
                    SELECT e.id FROM (
                        SELECT id, CASE WHEN json_valid(fields) THEN json_extract(fields, '$._id') END AS communication,
                        CASE WHEN json_valid(fields) THEN json_extract(fields, '$.seq') END AS seq
                        FROM stream_entries WHERE stream = ?1
                    ) e JOIN json_each(?2) d ON d.key = e.communication
                    WHERE e.seq GLOB '[1-9]*' AND CAST(e.seq AS INTEGER) <= d.value
                ) RETURNING id
                """, [.text(StreamNames.deadLetter(of: stream)), .text(wanted)]
            ) { _ in removed += 1 }
            return removed
        }
    }

    public func entries(stream: String, limit: Int) async throws -> [QueueEntry] {
        try await db.read { c in
            var result: [QueueEntry] = []
            try c.query("SELECT id, fields FROM stream_entries WHERE stream = ? ORDER BY id LIMIT ?", [.text(stream), .int(Int64(limit))]) { s in
                result += Self.decodeEntries(id: String(s.int(0)), stream: stream, text: s.text(1), deliveries: 0)
            }
            return result
        }
    }

    public func info(stream: String, group: String) async throws -> StreamBacklog {
        let now = clock()
        return try await db.read { c in
            // Sets of fields, not rows: what a consumer will be handed (see the type's comment).
            let length = try c.scalar(Self.countSets, [.text(stream)]) ?? 0
            let pending = try c.scalar("SELECT count(*) FROM stream_pending WHERE stream = ? AND grp = ?", [.text(stream), .text(group)]) ?? 0
            let dead = try c.scalar("SELECT count(*) FROM stream_entries WHERE stream = ?", [.text(StreamNames.deadLetter(of: stream))]) ?? 0
            // The oldest pending entry is the one with the smallest id (as in Redis): the first row of the pending
            // list's primary key, then its entry by id. A pending record whose entry is gone is skipped.
            var oldest: Int64?
            if pending > 0 {
                oldest = try c.scalar(
                    """
                    SELECT e.created_at FROM stream_pending p JOIN stream_entries e ON e.id = p.entry_id
                    WHERE p.stream = ? AND p.grp = ? ORDER BY p.entry_id LIMIT 1
                    """, [.text(stream), .text(group)])
            }
            return StreamBacklog(
                stream: stream, length: Int(length), pending: Int(pending), deadLetters: Int(dead),
                oldestPendingAge: oldest.map { StreamBacklog.age(publishedAt: $0, now: now.milliseconds) })
        }
    }

    public func ping() async throws {
        _ = try await db.read { c in try c.scalar("SELECT 1") }
    }
}
