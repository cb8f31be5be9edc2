#if MongoDB
import Foundation
import Testing
import SwitchboardCore
import SwitchboardTestSupport
@testable import SwitchboardMongo

/// The shared attachment store contract (`AttachmentStoreContract`) on MongoDB (a SecantusDB peer), on the store's pool.
@Suite("MongoDB attachment store contract", .timeLimit(.minutes(2)))
struct MongoAttachmentStoreContractTests {
    func withAttachments(_ body: (MongoAttachmentStore) async throws -> Void) async throws {
        try await withStore { store, _ in try await body(MongoAttachmentStore(connection: store.connection)) }
    }

    @Test func roundTrip() async throws { try await withAttachments { try await AttachmentStoreContract.roundTrip($0) } }
    @Test func storedOnce() async throws {
        try await withAttachments { s in
            try await AttachmentStoreContract.storedOnce(s)
            let count = try await s.withCollection { c throws(MongoError) in try c.find([:]).count }
            #expect(count == 1)
        }
    }
    @Test func large() async throws { try await withAttachments { try await AttachmentStoreContract.large($0) } }
    @Test func retention() async throws {
        try await withStore { store, _ in try await AttachmentStoreContract.retention(MongoAttachmentStore(connection: store.connection), store: store) }
    }
}
#endif
