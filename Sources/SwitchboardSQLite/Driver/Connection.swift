import CSQLite

/// A SQLite connection with a statement cache. Not thread-safe: each connection lives on one thread.
final class Connection {
    let handle: OpaquePointer
    private var cache: [String: Statement] = [:]
    /// What the connection's owner attached to its write transactions (`addTransactionHook`).
    private var hooks: [any TransactionHook] = []

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

    /// Attaches `hook` to every write transaction of this connection, for the connection's life.
    func addTransactionHook(_ hook: any TransactionHook) {
        hooks.append(hook)
    }

    /// The attached hook of type `H`, if any.
    func transactionHook<H: TransactionHook>(_ type: H.Type) -> H? {
        for h in hooks { if let h = h as? H { return h } }
        return nil
    }

    /// Runs every hook's `beforeCommit` inside the open transaction (the writer calls it just before COMMIT).
    func runBeforeCommitHooks() throws {
        for h in hooks { try h.beforeCommit(self) }
    }

    /// Tells every hook that the open transaction was rolled back.
    func runRollbackHooks() {
        for h in hooks { h.rolledBack() }
    }

    var changes: Int { Int(sqlite3_changes(handle)) }
    var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }
}
