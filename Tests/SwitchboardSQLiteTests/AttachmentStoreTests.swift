import Foundation
import Testing
import SwitchboardCore
import SwitchboardTestSupport
@testable import SwitchboardSQLite

/// The shared attachment store contract (`AttachmentStoreContract`) on the embedded engine.
@Suite("SQLite attachment store contract")
struct SQLiteAttachmentStoreContractTests {
    func store() throws -> SQLiteAttachmentStore { SQLiteAttachmentStore(database: try temporaryDatabase("attachments")) }

    @Test func roundTrip() async throws { try await AttachmentStoreContract.roundTrip(try store()) }
    @Test func storedOnce() async throws {
        let s = try store()
        try await AttachmentStoreContract.storedOnce(s)
        #expect(try await s.db.read { c in try c.scalar("SELECT COUNT(*) FROM attachments") } == 1)
    }
    @Test func large() async throws { try await AttachmentStoreContract.large(try store()) }
    @Test func retention() async throws {
        let db = try temporaryDatabase("attachments")
        try await AttachmentStoreContract.retention(SQLiteAttachmentStore(database: db), store: SQLiteStore(database: db))
    }
    @Test("a file used again has its time moved to now, at most once an hour")
    func reuseMovesItsTime() async throws {
        let db = try temporaryDatabase("attachments")
        let clock = Clock(1_000_000_000)
        let s = SQLiteAttachmentStore(database: db, clock: { clock.now })
        let f = AttachmentStoreContract.binary(10)
        let key = AttachmentStoreContract.sha256(f)
        func stored() async throws -> Int64? { try await db.read { c in try c.scalar("SELECT created_at FROM attachments WHERE sha256 = ?", [.text(key)]) } }
        try await s.put(sha256: key, bytes: f)
        clock.advance(1_800_000)
        try await s.put(sha256: key, bytes: f)
        #expect(try await stored() == 1_000_000_000, "moved within the hour")
        clock.advance(1_800_001)
        try await s.put(sha256: key, bytes: f)
        #expect(try await stored() == 1_003_600_001)
    }

    final class Clock: @unchecked Sendable {
        private var ms: Int64
        init(_ ms: Int64) { self.ms = ms }
        var now: Timestamp { Timestamp(milliseconds: ms) }
        func advance(_ by: Int64) { ms += by }
    }
}
