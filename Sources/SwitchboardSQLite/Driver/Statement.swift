import CSQLite

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
            case .blob(let b):
                rc = b.withUnsafeBytes { bytes in
                    // A zero-length blob, not NULL, for no bytes.
                    guard let base = bytes.baseAddress, !bytes.isEmpty else { return sqlite3_bind_zeroblob(handle, index, 0) }
                    return sqlite3_bind_blob64(handle, index, base, sqlite3_uint64(bytes.count), SQLITE_TRANSIENT_DESTRUCTOR)
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

    func blob(_ column: Int32) -> [UInt8] {
        guard let p = sqlite3_column_blob(handle, column) else { return [] }
        let n = Int(sqlite3_column_bytes(handle, column))
        return Array(UnsafeRawBufferPointer(start: p, count: n))
    }

    func optionalText(_ column: Int32) -> String? {
        sqlite3_column_type(handle, column) == SQLITE_NULL ? nil : text(column)
    }
}
