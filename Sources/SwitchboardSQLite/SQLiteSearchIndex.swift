import Foundation
import SwitchboardCore

/// The embedded `SearchIndex`: plain tables with FTS5 indexes.
///
/// Log records are kept in `search_logs`. Communications are searched either in a copy of their documents
/// (`search_communications`, so the index works beside any store, MongoDB included) or, when the SQLite store
/// shares the file, in the store's own `communications` rows: nothing is copied per message, and a search
/// always sees the current status.
public struct SQLiteSearchIndex: SearchIndex {
    /// Where the communication documents come from.
    public enum Documents: Sendable {
        /// A copy in `search_communications`, written by `index(communications:)`: beside any store.
        case ownTable
        /// The SQLite store's `communications` rows in the same file; `index(communications:)` does nothing.
        case storeRows

        /// The table searched, its full-text index, and that index's row in `search_fts_state`.
        var table: (rows: String, fts: String, state: String) {
            switch self {
            case .ownTable: ("search_communications", "search_communications_fts", "communications")
            case .storeRows: ("communications", "communications_fts", "store")
            }
        }
    }

    let db: SQLiteDatabase
    public let documents: Documents

    public init(database: SQLiteDatabase, documents: Documents = .ownTable) {
        db = database
        self.documents = documents
    }

    public func index(communications: [CommunicationDocument]) async throws {
        guard !communications.isEmpty, documents == .ownTable else { return }
        try await db.write { c in
            for d in communications { try Self.upsert(c, d) }
        }
    }

    /// Inserts or updates one document on the writer thread. Only status and time change after creation;
    /// msg, from and to (the FTS columns) never do, so an update leaves the FTS index alone.
    static func upsert(_ c: Connection, _ d: CommunicationDocument) throws {
        let metadata: SQLValue = d.metadata.isEmpty ? .null : .text(Metadata.json(d.metadata).canonicalText)
        try c.run(
            """
            INSERT INTO search_communications (id, type, sender, recipient, msg, status, created_at, updated_at, key_id, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at WHERE excluded.updated_at >= updated_at
            """,
            [.text(d.communicationId), .text(d.type.rawValue), .text(d.from), .text(d.to), .text(d.msg), .text(d.status.rawValue), .int(d.createdAt.milliseconds), .int(d.timestamp.milliseconds),
             d.keyID.map(SQLValue.text) ?? .null, metadata])
        // Metadata never changes: the pairs of a document seen before are there already (OR IGNORE).
        for (key, value) in d.metadata {
            try c.run("INSERT OR IGNORE INTO search_metadata (key, value, rid) SELECT ?, ?, rowid FROM search_communications WHERE id = ?", [.text(key), .text(value), .text(d.communicationId)])
        }
    }

    /// The side table of `data.metadata` pairs for `documents` (see `Schema.suppressionsAndMetadata`), and the
    /// expression that reads a row's metadata object.
    static func metadataTable(_ documents: Documents) -> (table: String, rowColumn: String, object: String) {
        switch documents {
        case .ownTable: ("search_metadata", "rid", "s.metadata")
        case .storeRows: ("communication_metadata", "seq", "CASE WHEN instr(s.data, '\"metadata\"') > 0 AND json_valid(s.data) THEN json_extract(s.data, '$.metadata') END")
        }
    }

    public func index(logs: [LogRecord]) async throws {
        guard !logs.isEmpty else { return }
        try await db.write { c in
            for l in logs { try Self.insert(c, l) }
        }
    }

    /// A log record's msg up to this many bytes is stored with it; a longer one (a large email) is stored as ''
    /// and read from its communication's row, so that the four or more records of a message do not each keep
    /// a copy of its body. (A message's msg is never empty: validation requires it.)
    static let inlineMessageLimit = 1024

    /// Inserts one log record on the writer thread. An audit record's missing status and channel are stored as ''.
    static func insert(_ c: Connection, _ l: LogRecord) throws {
        try c.run(
            """
            INSERT INTO search_logs (communication_id, service, status, type, sender, recipient, msg, error, attempt, provider, timestamp, test, traceparent)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [.text(l.communicationId), .text(l.service), .text(l.status?.rawValue ?? ""), .text(l.type?.rawValue ?? ""), .text(l.from), .text(l.to), .text(l.msg.utf8.count <= inlineMessageLimit ? l.msg : ""),
             l.error.map(SQLValue.text) ?? .null, .int(Int64(l.attempt)), l.provider.map(SQLValue.text) ?? .null, .int(l.timestamp.milliseconds), .int(l.test ? 1 : 0), l.traceParent.map { .text($0.text) } ?? .null])
    }

    /// Rows added to a full-text index per write: each write then holds the single writer for a few
    /// milliseconds at most, instead of as long as the backlog needs (a second of messages, or a whole table
    /// after an upgrade), so accepted requests are not held up behind it.
    static let refreshChunk: Int64 = 500

    /// Brings the full-text indexes up to date with the rows written since the last refresh, in sets (much
    /// cheaper than a row at a time in every small transaction) of at most `refreshChunk` rows per index and
    /// write. Text queries refresh first, so they always see every committed row; `SwitchboardSystem` also
    /// refreshes in the background.
    public func refresh() async throws {
        // Not durable: the full-text indexes are derived; a refresh lost in a power cut is redone by the next.
        while try await db.write(durable: false, { [documents] c in try Self.refresh(c, documents: documents, chunk: Self.refreshChunk) }) {}
    }

    /// Adds up to `chunk` rows to each full-text index; returns whether rows remain.
    static func refresh(_ c: Connection, documents: Documents, chunk: Int64) throws -> Bool {
        let (rows, fts, state) = documents.table
        let more = try refresh(c, state: state, rows: rows, chunk: chunk) {
            "INSERT INTO \(fts)(rowid, msg, sender, recipient) SELECT rowid, msg, sender, recipient FROM \(rows) WHERE rowid > ?1 AND rowid <= ?2"
        }
        let moreLogs = try refresh(c, state: "logs", rows: "search_logs", chunk: chunk) {
            "INSERT INTO search_logs_fts(rowid, error) SELECT rowid, error FROM search_logs WHERE error IS NOT NULL AND rowid > ?1 AND rowid <= ?2"
        }
        return more || moreLogs
    }

    /// Runs `insert` (rows after ?1 up to ?2) for the next `chunk` rowids of `rows` past the index's mark
    /// in `search_fts_state`, and moves the mark; returns whether rows remain.
    private static func refresh(_ c: Connection, state: String, rows: String, chunk: Int64, insert: () -> String) throws -> Bool {
        let last = try mark(c, state)
        let newest = try c.scalar("SELECT ifnull(max(rowid), 0) FROM \(rows)") ?? 0
        guard newest > last else { return false }
        let upTo = min(newest, last + chunk)
        try c.run(insert(), [.int(last), .int(upTo)])
        try c.run("UPDATE search_fts_state SET last_rowid = ? WHERE name = ?", [.int(upTo), .text(state)])
        return upTo < newest
    }

    /// How far the full-text index whose row in `search_fts_state` is `state` has got: the rowids up to this are in it.
    static func mark(_ c: Connection, _ state: String) throws -> Int64 {
        try c.scalar("SELECT last_rowid FROM search_fts_state WHERE name = ?", [.text(state)]) ?? 0
    }

    /// Turns user text into an FTS5 query: every word quoted (so operators and punctuation are literal), all required.
    /// A NUL separates words too: FTS5's query parser stops at one, so a quoted word holding it would be an
    /// "unterminated string" (a client's input answered as a search outage); the tokenizer never indexes it.
    static func ftsQuery(_ text: String) -> String? {
        let words = text.split(whereSeparator: { $0.isWhitespace || $0 == "\0" }).map { "\"" + $0.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }
        return words.isEmpty ? nil : words.joined(separator: " ")
    }

    static func cursor(_ text: String?) throws -> Int64? {
        guard let text else { return nil }
        guard text.hasPrefix("r"), let n = Int64(text.dropFirst()), n > 0 else { throw InvalidCursor() }
        return n
    }

    public func search(_ q: CommunicationQuery) async throws -> Page<CommunicationDocument> {
        let after = try Self.cursor(q.cursor)
        if q.text != nil { try await refresh() }
        var clauses: [String] = []
        var values: [SQLValue] = []
        let (rows, fts, _) = documents.table
        if let t = q.text.flatMap(Self.ftsQuery) {
            clauses.append("s.rowid IN (SELECT rowid FROM \(fts) WHERE \(fts) MATCH ?)")
            values.append(.text(t))
        }
        if let type = q.type { clauses.append("s.type = ?"); values.append(.text(type.rawValue)) }
        if let status = q.status { clauses.append("s.status = ?"); values.append(.text(status.rawValue)) }
        if let to = q.to { clauses.append("s.recipient = ?"); values.append(.text(to)) }
        if let since = q.since { clauses.append("s.created_at >= ?"); values.append(.int(since.milliseconds)) }
        if let until = q.until { clauses.append("s.created_at < ?"); values.append(.int(until.milliseconds)) }
        if let key = q.key { clauses.append("s.key_id = ?"); values.append(.text(key)) }
        let meta = Self.metadataTable(documents)
        for (key, value) in q.metadata.sorted(by: { $0.key < $1.key }) {
            clauses.append("s.rowid IN (SELECT \(meta.rowColumn) FROM \(meta.table) WHERE key = ? AND value = ?)")
            values += [.text(key), .text(value)]
        }
        if let after { clauses.append("s.rowid < ?"); values.append(.int(after)) }
        let limit = max(1, min(q.limit, 1000))
        values.append(.int(Int64(limit + 1)))
        let sql = """
            SELECT s.rowid, s.id, s.type, s.sender, s.recipient, s.msg, s.status, s.created_at, s.updated_at, s.key_id, \(meta.object) FROM \(rows) s
            \(clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")) ORDER BY s.rowid DESC LIMIT ?
            """
        return try await db.read { [values] c in
            var rows: [(Int64, CommunicationDocument)] = []
            try c.query(sql, values) { s in
                guard let type = MessageChannel(rawValue: s.text(2)), let status = CommunicationStatus(rawValue: s.text(6)) else { return }
                rows.append((s.int(0), CommunicationDocument(communicationId: s.text(1), type: type, from: s.text(3), to: s.text(4), msg: s.text(5), status: status, createdAt: Timestamp(milliseconds: s.int(7)), timestamp: Timestamp(milliseconds: s.int(8)), keyID: s.optionalText(9), metadata: s.optionalText(10).flatMap { try? JSONParser.parse($0) }.map { Metadata.pairs(.object(["metadata": $0])) } ?? [:])))
            }
            let more = rows.count > limit
            let page = Array(rows.prefix(limit))
            return Page(items: page.map(\.1), nextCursor: more ? page.last.map { "r\($0.0)" } : nil)
        }
    }

    public func search(_ q: LogQuery) async throws -> Page<LogRecord> {
        let after = try Self.cursor(q.cursor)
        if q.text != nil { try await refresh() }
        var clauses: [String] = []
        var values: [SQLValue] = []
        if let t = q.text.flatMap(Self.ftsQuery) {
            // Full text over the log's error, and over its communication's msg, from and to.
            let (rows, fts, _) = documents.table
            clauses.append(
                "(l.rowid IN (SELECT rowid FROM search_logs_fts WHERE search_logs_fts MATCH ?) OR l.communication_id IN (SELECT id FROM \(rows) WHERE rowid IN (SELECT rowid FROM \(fts) WHERE \(fts) MATCH ?)))")
            values.append(.text(t))
            values.append(.text(t))
        }
        if let id = q.communicationId { clauses.append("l.communication_id = ?"); values.append(.text(id)) }
        if let service = q.service { clauses.append("l.service = ?"); values.append(.text(service)) }
        if let status = q.status { clauses.append("l.status = ?"); values.append(.text(status.rawValue)) }
        if let after { clauses.append("l.rowid < ?"); values.append(.int(after)) }
        let limit = max(1, min(q.limit, 1000))
        values.append(.int(Int64(limit + 1)))
        let rows = documents.table.rows
        let sql = """
            SELECT l.rowid, l.communication_id, l.service, l.status, l.type, l.sender, l.recipient,
                CASE l.msg WHEN '' THEN ifnull((SELECT msg FROM \(rows) WHERE id = l.communication_id), '') ELSE l.msg END,
                l.error, l.attempt, l.provider, l.timestamp, l.test, l.traceparent FROM search_logs l
            \(clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")) ORDER BY l.rowid DESC LIMIT ?
            """
        return try await db.read { [values] c in
            var rows: [(Int64, LogRecord)] = []
            try c.query(sql, values) { s in
                // '' is an audit record's (no status, no channel); other text that is not ours is skipped.
                let statusText = s.text(3), typeText = s.text(4)
                let status = CommunicationStatus(rawValue: statusText), type = MessageChannel(rawValue: typeText)
                guard status != nil || statusText.isEmpty, type != nil || typeText.isEmpty else { return }
                rows.append((s.int(0), LogRecord(communicationId: s.text(1), service: s.text(2), status: status, type: type, from: s.text(5), to: s.text(6), msg: s.text(7), error: s.optionalText(8), attempt: Int(s.int(9)), provider: s.optionalText(10), timestamp: Timestamp(milliseconds: s.int(11)), test: s.int(12) != 0, traceParent: s.optionalText(13).flatMap { TraceParent(parsing: $0) })))
            }
            let more = rows.count > limit
            let page = Array(rows.prefix(limit))
            return Page(items: page.map(\.1), nextCursor: more ? page.last.map { "r\($0.0)" } : nil)
        }
    }

    public func ping() async throws {
        _ = try await db.read { c in try c.scalar("SELECT 1") }
    }
}
