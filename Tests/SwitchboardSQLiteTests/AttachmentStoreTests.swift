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
}
