import Foundation
import Testing
import SwitchboardCore
import SwitchboardTestSupport
@testable import SwitchboardSQLite

/// The shared suppression store contract (`SuppressionStoreContract`) on the embedded engine.
@Suite("SQLite suppression store contract")
struct SQLiteSuppressionStoreContractTests {
    func store() throws -> SQLiteSuppressionStore { SQLiteSuppressionStore(database: try temporaryDatabase("suppressions")) }

    @Test func addLookupRemove() async throws { try await SuppressionStoreContract.addLookupRemove(try store()) }
    @Test func batchLookup() async throws { try await SuppressionStoreContract.batchLookup(try store()) }
    @Test func list() async throws { try await SuppressionStoreContract.list(try store()) }

    @Test("a second connection to the file (another router) sees an entry at once")
    func sharedFile() async throws {
        let first = try temporaryDatabase("suppressions-shared")
        let second = try SQLiteDatabase(options: SQLiteOptions(path: first.options.path, synchronous: .normal))
        try await SQLiteSuppressionStore(database: first).add(Suppression(channel: .sms, to: "+15550000001", reason: "r", source: .manual, createdAt: Timestamp(milliseconds: 1)))
        #expect(try await SQLiteSuppressionStore(database: second).lookup([SuppressionKey(channel: .sms, to: "+15550000001")]).count == 1)
        await second.close()
        await first.close()
    }
}
