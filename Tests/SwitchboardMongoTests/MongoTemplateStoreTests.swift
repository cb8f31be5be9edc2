#if MongoDB
import Foundation
import Testing
import SwitchboardCore
import SwitchboardTestSupport
@testable import SwitchboardMongo

/// The shared template store contract (`TemplateStoreContract`) on MongoDB (a SecantusDB peer), on the store's pool.
@Suite("MongoDB template store contract", .timeLimit(.minutes(2)))
struct MongoTemplateStoreContractTests {
    func withTemplates(_ body: (MongoTemplateStore) async throws -> Void) async throws {
        try await withStore { store, _ in try await body(MongoTemplateStore(connection: store.connection)) }
    }

    @Test func versionsAndLocales() async throws { try await withTemplates { try await TemplateStoreContract.versionsAndLocales($0) } }
    @Test func archive() async throws { try await withTemplates { try await TemplateStoreContract.archive($0) } }
    @Test func list() async throws { try await withTemplates { try await TemplateStoreContract.list($0) } }
    @Test func concurrentSaves() async throws { try await withTemplates { try await TemplateStoreContract.concurrentSaves($0) } }
}
#endif
