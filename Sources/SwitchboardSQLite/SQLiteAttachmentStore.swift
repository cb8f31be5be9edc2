import Foundation
import SwitchboardCore

/// The embedded `AttachmentStore`: table `attachments` of the SQLite file (`sha256` primary key, the bytes as a
/// BLOB). A file stored again is not written again (`INSERT OR IGNORE`, after a read that spares the writer the
/// copy of bytes it has already); its `created_at` is moved to now instead, so that it says when a message last
/// used the file (at most an hour off).
///
/// Retention (`Purging`) deletes the files last used before the cutoff that no message kept by the store's own
/// purge still names: the messages created before the cutoff that have not finished (scheduled far ahead, or
/// still retrying). Every younger message used its files after the cutoff.
public struct SQLiteAttachmentStore: AttachmentStore, Purging {
    let db: SQLiteDatabase
    let clock: @Sendable () -> Timestamp

    public init(database: SQLiteDatabase, clock: @escaping @Sendable () -> Timestamp = { Timestamp(milliseconds: Int64(Date().timeIntervalSince1970 * 1000)) }) {
        db = database
        self.clock = clock
    }

    public func put(sha256: String, bytes: [UInt8]) async throws {
        let now = clock().milliseconds
        let storedAt = try await db.read { c in
            try c.scalar("SELECT created_at FROM attachments WHERE sha256 = ?", [.text(sha256)])
        }
        if let storedAt {
            // Used again: retention counts from now (an hour's precision spares the writer a write per reuse).
            if storedAt < now - Self.touchPrecision {
                try await db.write { c in try c.run("UPDATE attachments SET created_at = ? WHERE sha256 = ?", [.int(now), .text(sha256)]) }
            }
            return
        }
        try await db.write { c in
            try c.run(
                "INSERT OR IGNORE INTO attachments (sha256, size, bytes, created_at) VALUES (?, ?, ?, ?)",
                [.text(sha256), .int(Int64(bytes.count)), .blob(bytes), .int(now)])
        }
    }

    /// How stale `created_at` may be on a reuse before it is moved to now: an hour (retention counts in days).
    static let touchPrecision: Int64 = 3_600_000

    public func purge(before cutoff: Timestamp) async throws -> Int {
        try await db.write { c in
            try c.run(
                """
                DELETE FROM attachments WHERE created_at < ?1 AND sha256 NOT IN (
                    SELECT json_extract(a.value, '$.sha256') FROM communications, json_each(communications.data, '$.attachments') AS a
                    WHERE communications.created_at < ?1 AND instr(communications.data, '"attachments"') > 0)
                """, [.int(cutoff.milliseconds)])
            return c.changes
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
