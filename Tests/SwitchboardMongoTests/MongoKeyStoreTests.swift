#if MongoDB
import Foundation
import Testing
import SwitchboardCore
import SwitchboardTestSupport
@testable import SwitchboardMongo

/// The shared key store contract (`KeyStoreContract`) on MongoDB (a SecantusDB peer), on the store's pool.
@Suite("MongoDB key store contract", .timeLimit(.minutes(2)))
struct MongoKeyStoreContractTests {
    func withKeys(_ body: (MongoKeyStore, MongoStore) async throws -> Void) async throws {
        try await withStore { store, _ in try await body(MongoKeyStore(connection: store.connection), store) }
    }

    @Test func createListFind() async throws { try await withKeys { k, _ in try await KeyStoreContract.createListFind(k) } }
    @Test func duplicates() async throws { try await withKeys { k, _ in try await KeyStoreContract.duplicates(k) } }
    @Test func revoke() async throws { try await withKeys { k, _ in try await KeyStoreContract.revoke(k) } }
    @Test func markUsed() async throws { try await withKeys { k, _ in try await KeyStoreContract.markUsed(k) } }

    @Test("keys are in the api_keys collection: a unique index on the hash, no secret field")
    func layout() async throws {
        try await withKeys { keys, store in
            try await keys.create(KeyStoreContract.key("key_layout", hash: String(repeating: "f", count: 64), scopes: [.read, .send], rate: 3, burst: 6))
            let docs = try await keys.withCollection { c throws(MongoError) in try c.find([:]) }
            let d = try #require(docs.first)
            #expect(d["_id"] == .string("key_layout") && d["secretHash"] == .string(String(repeating: "f", count: 64)))
            #expect(d["scopes"] == .array([.string("send"), .string("read")]) && d["rate"] == .double(3) && d["burst"]?.intValue == 6)
            #expect(Set(d.keys) == ["_id", "name", "scopes", "rate", "burst", "test", "secretHash", "createdAt", "lastUsedAt", "revokedAt"])
            let db = store.databaseName
            let reply = try await store.connection.withClient { client throws(MongoError) in try client.command(db, ["listIndexes": .string(MongoKeyStore.collectionName)]) }
            guard case .array(let batch)? = reply["cursor"]?.documentValue?["firstBatch"] else { Issue.record("no indexes"); return }
            let unique = batch.compactMap(\.documentValue).first { $0["name"] == .string("secretHash_unique") }
            #expect(unique?["unique"] == .bool(true))
        }
    }
}
#endif
