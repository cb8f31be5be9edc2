import Foundation
import Testing
import SwitchboardCore
import SwitchboardTestSupport
@testable import SwitchboardSQLite

/// The shared callback store contract (`CallbackStoreContract`) on the embedded engine.
@Suite("SQLite callback store contract")
struct SQLiteCallbackStoreContractTests {
    func store() throws -> SQLiteCallbackStore { SQLiteCallbackStore(database: try temporaryDatabase("callbacks")) }

    @Test func endpoints() async throws { try await CallbackStoreContract.endpoints(try store()) }
    @Test func cursorAndIdempotence() async throws { try await CallbackStoreContract.cursorAndIdempotence(try store()) }
    @Test func claimAndRecord() async throws { try await CallbackStoreContract.claimAndRecord(try store()) }
    @Test func listAndRetry() async throws { try await CallbackStoreContract.listAndRetry(try store()) }
    @Test func concurrentClaims() async throws { try await CallbackStoreContract.concurrentClaims(try store()) }
    @Test func attemptHistory() async throws { try await CallbackStoreContract.attemptHistory(try store()) }
    @Test func purge() async throws { try await CallbackStoreContract.purge(try store()) }

    @Test("two connections to one file (two routers) share deliveries and cursor")
    func sharedFile() async throws {
        let first = try temporaryDatabase("callbacks-shared")
        let second = try SQLiteDatabase(options: SQLiteOptions(path: first.options.path, synchronous: .normal))
        try await SQLiteCallbackStore(database: first).enqueue([CallbackStoreContract.delivery("whep_a", 1)], cursor: FeedPosition(major: 1, minor: 0))
        try await SQLiteCallbackStore(database: second).enqueue([CallbackStoreContract.delivery("whep_a", 1)], cursor: FeedPosition(major: 1, minor: 0))
        #expect(try await SQLiteCallbackStore(database: second).deliveries(endpointID: "whep_a", limit: 10, cursor: nil).items.count == 1)
        #expect(try await SQLiteCallbackStore(database: second).cursor() == FeedPosition(major: 1, minor: 0))
        await second.close()
        await first.close()
    }
}
