import CSQLite
import SwitchboardCore

/// An error reported by SQLite.
public struct SQLiteError: Error, CustomStringConvertible, Sendable {
    /// SQLite's extended result code.
    public var code: Int32
    public var message: String
    /// The statement, when one was involved.
    public var sql: String?

    public var description: String { "SQLite error \(code): \(message)" + (sql.map { " [\($0.prefix(120))]" } ?? "") }

    /// True for constraint violations (unique keys).
    public var isConstraint: Bool { code & 0xFF == SQLITE_CONSTRAINT }
    /// True when the database was locked by another process for longer than the busy timeout.
    public var isBusy: Bool { code & 0xFF == SQLITE_BUSY || code & 0xFF == SQLITE_LOCKED }
}

extension SQLiteError: TemporaryFailure {
    /// Set for what passes once an operator or another process acts: a full disk, a lock held past the busy
    /// timeout, an I/O error, a file that cannot be opened or written.
    public var temporaryReason: String? {
        switch code & 0xFF {
        case SQLITE_FULL: "the database's disk is full"
        case SQLITE_BUSY, SQLITE_LOCKED: "the database is locked by another process"
        case SQLITE_IOERR: "the database's disk reported an I/O error"
        case SQLITE_CANTOPEN, SQLITE_READONLY: "the database file cannot be written"
        default: nil
        }
    }
}

/// A value bound to or read from a statement.
enum SQLValue: Sendable {
    case null
    case int(Int64)
    case text(String)
}

private let SQLITE_TRANSIENT_DESTRUCTOR = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)

/// One prepared statement. Not thread-safe: used by one connection thread only.
final class Statement {
    let handle: OpaquePointer
    let sql: String

    /// The number of `?` parameters the statement takes.
    let parameters: Int

    init(handle: OpaquePointer, sql: String) {
        self.handle = handle
        self.sql = sql
        parameters = Int(sqlite3_bind_parameter_count(handle))
    }

    deinit { sqlite3_finalize(handle) }

    func bind(_ values: [SQLValue]) throws {
        sqlite3_reset(handle)
        // When every parameter gets a value, the previous values are simply replaced: SQLite then reuses their
        // buffers instead of freeing them here and allocating again below.
        if values.count < parameters { sqlite3_clear_bindings(handle) }
        for (i, v) in values.enumerated() {
            let index = Int32(i + 1)
            let rc: Int32
            switch v {
            case .null: rc = sqlite3_bind_null(handle, index)
            case .int(let n): rc = sqlite3_bind_int64(handle, index, n)
            case .text(var s):
                // The UTF-8 bytes in place with their length (SQLite copies them): no C string is made first.
                rc = s.withUTF8 { bytes in
                    guard let base = bytes.baseAddress, !bytes.isEmpty else { return sqlite3_bind_text(handle, index, "", 0, SQLITE_TRANSIENT_DESTRUCTOR) }
                    return base.withMemoryRebound(to: CChar.self, capacity: bytes.count) { sqlite3_bind_text(handle, index, $0, Int32(bytes.count), SQLITE_TRANSIENT_DESTRUCTOR) }
                }
            }
            guard rc == SQLITE_OK else { throw SQLiteError(code: rc, message: "bind failed", sql: sql) }
        }
    }

    /// Steps once; true when a row is available.
    func step() throws -> Bool {
        let rc = sqlite3_step(handle)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        let db = sqlite3_db_handle(handle)
        let message = db.flatMap { sqlite3_errmsg($0) }.map { String(cString: $0) } ?? "step failed"
        let code = db.map { sqlite3_extended_errcode($0) } ?? rc
        sqlite3_reset(handle)
        throw SQLiteError(code: code, message: message, sql: sql)
    }

    func int(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }

    func optionalInt(_ column: Int32) -> Int64? {
        sqlite3_column_type(handle, column) == SQLITE_NULL ? nil : sqlite3_column_int64(handle, column)
    }

    func text(_ column: Int32) -> String {
        guard let p = sqlite3_column_text(handle, column) else { return "" }
        let n = Int(sqlite3_column_bytes(handle, column))
        return String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
    }

    func optionalText(_ column: Int32) -> String? {
        sqlite3_column_type(handle, column) == SQLITE_NULL ? nil : text(column)
    }
}

/// A SQLite connection with a statement cache. Not thread-safe: each connection lives on one thread.
final class Connection {
    let handle: OpaquePointer
    private var cache: [String: Statement] = [:]
    /// Changes to `communication_counts` made by the open transaction's writes, not yet written (see
    /// `countStatus`).
    private var statusCountChanges: [StatusKey: Int64] = [:]

    struct StatusKey: Hashable {
        var channel: Channel
        var status: CommunicationStatus
    }

    /// Process-wide settings applied once, before the first connection opens.
    private static let configured: Void = {
        _ = switchboard_sqlite3_disable_memstatus()
    }()

    init(path: String, readOnly: Bool) throws {
        _ = Self.configured
        var db: OpaquePointer?
        let flags = (readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)) | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            if let db { sqlite3_close_v2(db) }
            throw SQLiteError(code: rc, message: "\(message) (\(path))")
        }
        handle = db
        sqlite3_extended_result_codes(db, 1)
        sqlite3_busy_timeout(db, 10_000)
    }

    deinit {
        cache.removeAll()
        sqlite3_close_v2(handle)
    }

    func execute(_ sql: String) throws {
        var error: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &error)
        if rc != SQLITE_OK {
            let message = error.map { String(cString: $0) } ?? "exec failed"
            sqlite3_free(error)
            throw SQLiteError(code: sqlite3_extended_errcode(handle), message: message, sql: sql)
        }
    }

    func statement(_ sql: String) throws -> Statement {
        if let s = cache[sql] { return s }
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil)
        guard rc == SQLITE_OK, let stmt else {
            throw SQLiteError(code: sqlite3_extended_errcode(handle), message: String(cString: sqlite3_errmsg(handle)), sql: sql)
        }
        let s = Statement(handle: stmt, sql: sql)
        cache[sql] = s
        return s
    }

    /// Runs a statement that returns no rows.
    func run(_ sql: String, _ values: [SQLValue] = []) throws {
        let s = try statement(sql)
        try s.bind(values)
        while try s.step() {}
        sqlite3_reset(s.handle)
    }

    /// Runs a query, calling `row` for each result row.
    func query(_ sql: String, _ values: [SQLValue] = [], row: (Statement) throws -> Void) throws {
        let s = try statement(sql)
        try s.bind(values)
        defer { sqlite3_reset(s.handle) }
        while try s.step() { try row(s) }
    }

    /// The first column of the first row as an integer, or nil.
    func scalar(_ sql: String, _ values: [SQLValue] = []) throws -> Int64? {
        var result: Int64?
        try query(sql, values) { s in if result == nil { result = s.optionalInt(0) } }
        return result
    }

    /// Pages this connection has written since the last call (SQLITE_DBSTATUS_CACHE_WRITE, reset on read).
    func takePagesWritten() -> Int {
        var current: Int32 = 0
        var highwater: Int32 = 0
        sqlite3_db_status(handle, SQLITE_DBSTATUS_CACHE_WRITE, &current, &highwater, 1)
        return Int(current)
    }

    /// Notes that the open transaction added `delta` communications of `channel` in `status` (negative:
    /// removed them). The changes are written once per key and transaction, just before it commits
    /// (`writeStatusCounts`), rather than once per row: the writer commits dozens of writes at a time.
    func countStatus(_ channel: Channel, _ status: CommunicationStatus, _ delta: Int64) {
        statusCountChanges[StatusKey(channel: channel, status: status), default: 0] += delta
    }

    /// Writes the noted count changes into the open transaction (before COMMIT).
    func writeStatusCounts() throws {
        defer { statusCountChanges = [:] }
        for (key, delta) in statusCountChanges where delta != 0 {
            try run(
                "INSERT INTO communication_counts (type, status, n) VALUES (?, ?, ?) ON CONFLICT (type, status) DO UPDATE SET n = n + excluded.n",
                [.text(key.channel.rawValue), .text(key.status.rawValue), .int(delta)])
        }
    }

    /// Forgets the noted count changes (the transaction was rolled back).
    func discardStatusCounts() {
        statusCountChanges = [:]
    }

    var changes: Int { Int(sqlite3_changes(handle)) }
    var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }
}
