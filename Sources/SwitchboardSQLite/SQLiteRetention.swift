import SwitchboardCore

// Retention (`Purging`) for the embedded engine: each adapter deletes its old rows in writes of at most
// `SQLiteRetention.chunk` rows, so accepts and deliveries interleave with a long purge. The writes are not
// durable on their own: a purge lost in a power cut is done again by the next one.
//
// Rows indexed in a full-text table (external content, `SQLiteSearchIndex.refresh`) are removed from it with
// FTS5's 'delete' command, in the write that deletes the row, while the row's values can still be read.

extension SQLiteStore: Purging {
    /// Deletes the communications past dispatch whose last change is before `cutoff` (their history and
    /// idempotency key go with the row); a message still on its way is kept however old.
    public func purge(before cutoff: Timestamp) async throws -> Int {
        try await SQLiteRetention.purgeCommunications(
            db, table: "communications", key: "seq", fts: .init(name: "communications_fts", columns: ["msg", "sender", "recipient"], state: "store"), counted: true, before: cutoff)
    }
}

extension SQLiteSearchIndex: Purging {
    /// Deletes the log records from before `cutoff` and, when the index keeps copies (`Documents.ownTable`),
    /// the copies of communications past dispatch last changed before it.
    public func purge(before cutoff: Timestamp) async throws -> Int {
        var deleted = 0
        if documents == .ownTable {
            deleted += try await SQLiteRetention.purgeCommunications(
                db, table: "search_communications", key: "rowid", fts: .init(name: "search_communications_fts", columns: ["msg", "sender", "recipient"], state: "communications"), counted: false, before: cutoff)
        }
        // Only records with an error are in the full-text index.
        deleted += try await SQLiteRetention.purgeOldest(db, table: "search_logs", key: "rowid", time: "timestamp", fts: .init(name: "search_logs_fts", columns: ["error"], state: "logs"), before: cutoff)
        return deleted
    }
}

extension SQLiteSandboxMailbox: Purging {
    /// Deletes the messages recorded before `cutoff`.
    public func purge(before cutoff: Timestamp) async throws -> Int {
        try await SQLiteRetention.purgeOldest(db, table: "sandbox_messages", key: "seq", time: "at", fts: nil, before: cutoff)
    }
}

extension SQLiteQueue: Purging {
    /// Deletes the dead-letter entries (`<stream>:dead`) added before `cutoff`. Live streams are left alone:
    /// their entries go when acknowledged.
    public func purge(before cutoff: Timestamp) async throws -> Int {
        var deleted = 0
        for stream in StreamNames.all.map(StreamNames.deadLetter(of:)) {
            while true {
                let n = try await db.write(durable: false) { c -> Int in
                    try c.run(
                        "DELETE FROM stream_entries WHERE id IN (SELECT id FROM stream_entries WHERE stream = ? AND created_at < ? ORDER BY id LIMIT \(SQLiteRetention.chunk))",
                        [.text(stream), .int(cutoff.milliseconds)])
                    return c.changes
                }
                deleted += n
                if n < SQLiteRetention.chunk { break }
            }
        }
        return deleted
    }
}

enum SQLiteRetention {
    /// Rows looked at per write.
    static let chunk = 500

    static let pastDispatch = CommunicationStatus.allCases.filter(\.isPastDispatch).map { SQLValue.text($0.rawValue) }

    /// Deletes from `table` (rows keyed by `key`, with `created_at`, `updated_at`, `status`, `msg`, `sender`,
    /// `recipient` and an index on `created_at`) the communications past dispatch last changed before `cutoff`.
    /// Walks the rows created before `cutoff` through that index, a page per write, so that rows it must keep
    /// (still on their way) are passed over once, not read again by every write. `counted`: the table's rows
    /// are counted in `communication_counts` (the store's).
    static func purgeCommunications(_ db: SQLiteDatabase, table: String, key: String, fts: FullTextIndex, counted: Bool, before cutoff: Timestamp) async throws -> Int {
        let statuses = pastDispatch.indices.map { "?\($0 + 4)" }.joined(separator: ", ")
        let select = """
            SELECT \(key), created_at, msg, sender, recipient, status IN (\(statuses)) AND updated_at < ?1, type, status FROM \(table)
            WHERE created_at < ?1 AND (created_at, \(key)) > (?2, ?3) ORDER BY created_at, \(key) LIMIT \(chunk)
            """
        var after: (created: Int64, key: Int64) = (.min, .min)
        var deleted = 0
        while true {
            let (n, last) = try await db.write(durable: false) { [after] c -> (Int, (Int64, Int64)?) in
                var seen = 0
                var last: (Int64, Int64)?
                var doomed: [(key: Int64, indexed: [String]?)] = []
                var uncounted: [(MessageChannel, CommunicationStatus)] = []
                try c.query(select, [.int(cutoff.milliseconds), .int(after.created), .int(after.key)] + pastDispatch) { row in
                    seen += 1
                    last = (row.int(1), row.int(0))
                    guard row.int(5) != 0 else { return }
                    doomed.append((row.int(0), [row.text(2), row.text(3), row.text(4)]))
                    if counted, let channel = MessageChannel(rawValue: row.text(6)), let status = CommunicationStatus(rawValue: row.text(7)) {
                        uncounted.append((channel, status))
                    }
                }
                try delete(c, from: table, key: key, doomed, fts: fts)
                for (channel, status) in uncounted { c.countStatus(channel, status, -1) }
                return (doomed.count, seen == chunk ? last : nil)
            }
            deleted += n
            guard let last else { return deleted }
            after = last
        }
    }

    /// Deletes the oldest rows of `table` (in `key` order, which follows `time` as rows are appended) while
    /// they are from before `cutoff`: a write reads the first `chunk` rows and deletes those older than
    /// `cutoff`; the purge ends at the first write that met a newer row. `fts`: a full-text index over one
    /// column of the table, holding the rows where that column is not null.
    static func purgeOldest(_ db: SQLiteDatabase, table: String, key: String, time: String, fts: FullTextIndex?, before cutoff: Timestamp) async throws -> Int {
        let select = "SELECT \(key), \(time), \(fts?.columns.first ?? "NULL") FROM \(table) ORDER BY \(key) LIMIT \(chunk)"
        var deleted = 0
        while true {
            let (n, done) = try await db.write(durable: false) { c -> (Int, Bool) in
                var seen = 0
                var reachedNewer = false
                var doomed: [(key: Int64, indexed: [String]?)] = []
                try c.query(select) { row in
                    seen += 1
                    if row.int(1) < cutoff.milliseconds { doomed.append((row.int(0), row.optionalText(2).map { [$0] })) } else { reachedNewer = true }
                }
                try delete(c, from: table, key: key, doomed, fts: fts)
                return (doomed.count, reachedNewer || seen < chunk)
            }
            deleted += n
            if done { return deleted }
        }
    }

    /// A full-text index (external content) over `columns` of a table, and its mark in `search_fts_state`.
    struct FullTextIndex {
        var name: String
        var columns: [String]
        var state: String
    }

    /// Deletes `rows` of `table` (by `key`). Those `fts` holds (`indexed`: the values it indexed, nil when the
    /// row is not in it; only rows up to its mark are) are taken out of it first with FTS5's 'delete' command,
    /// which needs those values; then its mark comes down if need be (`lowerMark`).
    static func delete(_ c: Connection, from table: String, key: String, _ rows: [(key: Int64, indexed: [String]?)], fts: FullTextIndex?) throws {
        guard !rows.isEmpty else { return }
        let mark = try fts.map { try SQLiteSearchIndex.mark(c, $0.state) } ?? 0
        let unindex = fts.map { f in
            "INSERT INTO \(f.name)(\(f.name), rowid, \(f.columns.joined(separator: ", "))) VALUES('delete', ?\(String(repeating: ", ?", count: f.columns.count)))"
        }
        for row in rows {
            if let unindex, let values = row.indexed, row.key <= mark {
                try c.run(unindex, [.int(row.key)] + values.map(SQLValue.text))
            }
            try c.run("DELETE FROM \(table) WHERE \(key) = ?", [.int(row.key)])
        }
        if let fts { try lowerMark(c, state: fts.state, table: table) }
    }

    /// A table without AUTOINCREMENT gives a new row the largest rowid left plus one: after deleting its newest
    /// rows, the full-text index's mark must come down with it, or the rows that reuse those rowids would
    /// never be indexed. (The rows under the mark that were deleted left the index with them.)
    static func lowerMark(_ c: Connection, state: String, table: String) throws {
        try c.run("UPDATE search_fts_state SET last_rowid = min(last_rowid, (SELECT ifnull(max(rowid), 0) FROM \(table))) WHERE name = ?", [.text(state)])
    }
}
