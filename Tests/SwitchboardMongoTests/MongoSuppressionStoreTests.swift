#if MongoDB
import Foundation
import Testing
import SwitchboardCore
import SwitchboardTestSupport
@testable import SwitchboardMongo

/// The shared suppression store contract (`SuppressionStoreContract`) on MongoDB (a SecantusDB peer), on the store's pool.
@Suite("MongoDB suppression store contract", .timeLimit(.minutes(2)))
struct MongoSuppressionStoreContractTests {
    func withSuppressions(_ body: (MongoSuppressionStore) async throws -> Void) async throws {
        try await withStore { store, _ in try await body(MongoSuppressionStore(connection: store.connection)) }
    }

    @Test func addLookupRemove() async throws { try await withSuppressions { try await SuppressionStoreContract.addLookupRemove($0) } }
    @Test func batchLookup() async throws { try await withSuppressions { try await SuppressionStoreContract.batchLookup($0) } }
    @Test func list() async throws { try await withSuppressions { try await SuppressionStoreContract.list($0) } }
}
#endif
