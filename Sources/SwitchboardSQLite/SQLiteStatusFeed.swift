import SwitchboardCore

/// The embedded status feed: table `status_events`, one row per transaction holding its status-change records
/// (a JSON array, or one object), written by `SQLitePipeline` in the transaction that records the changes, so an
/// event exists exactly when its change is committed. A record's position is (row id, index in the row).
///
/// Readers in this process wake when a transaction adds a row (`StreamSignal`); readers in other processes on the
/// same file (a router beside separate workers) poll every `pollInterval`.
public struct SQLiteStatusFeed: StatusFeed {
    let db: SQLiteDatabase
    /// How often a blocked reader looks for rows written by other processes.
    public var pollInterval: Duration
    let clock: @Sendable () -> Timestamp

    public init(database: SQLiteDatabase, pollInterval: Duration = .milliseconds(20), clock: @escaping @Sendable () -> Timestamp) {
        db = database
        self.pollInterval = pollInterval
        self.clock = clock
    }

    /// Inserts one row holding `records` (texts of JSON objects) on the writer connection, in the caller's
    /// transaction; the caller notifies `StreamNames.status` after the commit.
    static func append(_ c: Connection, records: [String], at: Timestamp) throws {
        try append(c, text: SQLiteQueue.batchText(records), sets: records.count, at: at)
    }

    /// One row of `sets` records already joined (`SQLiteQueue.batchText`); nothing when there are none.
    static func append(_ c: Connection, text: String, sets: Int, at: Timestamp) throws {
        guard sets > 0 else { return }
        try c.run("INSERT INTO status_events (at, sets, records) VALUES (?, ?, ?)", [.int(at.milliseconds), .int(Int64(sets)), .text(text)])
    }

    public func append(_ records: [LogRecord]) async throws {
        // Without the body, as the pipeline writes them (`LogRecord.logAndStatusTexts`).
        let texts = records.filter { $0.status != nil }.map(\.statusFieldsText)
        guard !texts.isEmpty else { return }
        let now = clock()
        try await db.write { c in try Self.append(c, records: texts, at: now) }
        db.signal.notify(StreamNames.status)
    }

    public func read(after position: FeedPosition?, count: Int, block: Duration) async throws -> [FeedRecord] {
        let after = position ?? .start
        return try await db.signal.blocking(StreamNames.status, block: block, poll: pollInterval, empty: []) {
            let found = try await db.read { c in try Self.records(c, after: after, count: count) }
            return found.isEmpty ? nil : found
        }
    }

    /// Whole rows from `after`'s row on, until they hold at least `count` records after `after`.
    static func records(_ c: Connection, after: FeedPosition, count: Int) throws -> [FeedRecord] {
        var found: [FeedRecord] = []
        var from = Int64(clamping: after.major)
        var first = true
        while found.count < count {
            let limit = 64
            var rows = 0
            try c.query("SELECT id, records FROM status_events WHERE id >= ? ORDER BY id LIMIT ?", [.int(from), .int(Int64(limit))]) { s in
                rows += 1
                let id = s.int(0)
                from = id + 1
                for (i, entry) in SQLiteQueue.decodeEntries(id: "", stream: StreamNames.status, text: s.text(1), deliveries: 0).enumerated() {
                    let position = FeedPosition(major: UInt64(id), minor: UInt64(i))
                    guard position > after, let record = LogRecord(fields: entry.fields) else { continue }
                    found.append(FeedRecord(position: position, record: record))
                }
            }
            if first, rows == 0 { break }
            first = false
            if rows < limit { break }
        }
        return found
    }

    public func end() async throws -> FeedPosition {
        try await db.read { c in
            var end = FeedPosition.start
            try c.query("SELECT id, sets FROM status_events ORDER BY id DESC LIMIT 1") { s in
                end = FeedPosition(major: UInt64(s.int(0)), minor: UInt64(max(0, s.int(1) - 1)))
            }
            return end
        }
    }

    public func trim(before: Timestamp) async throws {
        // Rows are in time order (one writer, one clock): the first row young enough bounds the delete, found by
        // reading only the rows that go. Deleted a thousand rows per transaction, so a large trim never holds the
        // writer (and the accepts behind it) for long.
        let bounds = try await db.read { c -> (first: Int64, keep: Int64)? in
            guard let first = try c.scalar("SELECT min(id) FROM status_events") else { return nil }
            let keep = try c.scalar("SELECT id FROM status_events WHERE at >= ? ORDER BY id LIMIT 1", [.int(before.milliseconds)])
            let end = try keep ?? ((c.scalar("SELECT max(id) FROM status_events") ?? first) + 1)
            return (first, end)
        }
        guard let bounds else { return }
        var from = bounds.first
        while from < bounds.keep {
            let (lower, to) = (from, min(from + Self.trimChunk, bounds.keep))
            try await db.write(durable: false) { c in try c.run("DELETE FROM status_events WHERE id >= ? AND id < ?", [.int(lower), .int(to)]) }
            from = to
        }
    }

    /// Rows deleted per transaction by `trim`.
    static let trimChunk: Int64 = 1000
}
