import SwitchboardCore

/// The embedded `AttachmentStore`: table `attachments` of the SQLite file (`sha256` primary key, the bytes as a
/// BLOB). A file stored again is not written again (`INSERT OR IGNORE`, after a read that spares the writer the
/// copy of bytes it has already).
///
/// Retention does not delete attachments yet: a file outlives the messages that used it (see docs/ARCHITECTURE.md).
public struct SQLiteAttachmentStore: AttachmentStore {
    let db: SQLiteDatabase

    public init(database: SQLiteDatabase) { db = database }

    public func put(sha256: String, bytes: [UInt8]) async throws {
        let present = try await db.read { c in
            var found = false
            try c.query("SELECT 1 FROM attachments WHERE sha256 = ?", [.text(sha256)]) { _ in found = true }
            return found
        }
        if present { return }
        try await db.write { c in
            try c.run(
                "INSERT OR IGNORE INTO attachments (sha256, size, bytes, created_at) VALUES (?, ?, ?, CAST(strftime('%s', 'now') AS INTEGER) * 1000)",
                [.text(sha256), .int(Int64(bytes.count)), .blob(bytes)])
        }
    }

    public func get(sha256: String) async throws -> [UInt8]? {
        try await db.read { c in
            var bytes: [UInt8]?
            try c.query("SELECT bytes FROM attachments WHERE sha256 = ?", [.text(sha256)]) { s in bytes = s.blob(0) }
            return bytes
        }
    }
}
