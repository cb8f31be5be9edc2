import CSQLite

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
