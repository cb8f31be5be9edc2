#if MongoDB
import Foundation
import Testing
import SwitchboardCore
import SwitchboardTestSupport
@testable import SwitchboardMongo

/// The shared callback store contract (`CallbackStoreContract`) on MongoDB (a SecantusDB peer), on the store's pool.
@Suite("MongoDB callback store contract", .timeLimit(.minutes(2)))
struct MongoCallbackStoreContractTests {
    func withCallbacks(_ body: (MongoCallbackStore) async throws -> Void) async throws {
        try await withStore { store, _ in try await body(MongoCallbackStore(connection: store.connection)) }
    }

    @Test func endpoints() async throws { try await withCallbacks { try await CallbackStoreContract.endpoints($0) } }
    @Test func cursorAndIdempotence() async throws { try await withCallbacks { try await CallbackStoreContract.cursorAndIdempotence($0) } }
    @Test func claimAndRecord() async throws { try await withCallbacks { try await CallbackStoreContract.claimAndRecord($0) } }
    @Test func listAndRetry() async throws { try await withCallbacks { try await CallbackStoreContract.listAndRetry($0) } }
    @Test func concurrentClaims() async throws { try await withCallbacks { try await CallbackStoreContract.concurrentClaims($0) } }
    @Test func attemptHistory() async throws { try await withCallbacks { try await CallbackStoreContract.attemptHistory($0) } }
    @Test func purge() async throws { try await withCallbacks { try await CallbackStoreContract.purge($0) } }
}
#endif
