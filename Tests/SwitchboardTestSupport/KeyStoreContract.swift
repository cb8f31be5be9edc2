import Foundation
import Testing
import SwitchboardCore

/// Behaviour every `KeyStore` must show. The SQLite key store (`SwitchboardSQLiteTests`) and the MongoDB key
/// store (`SwitchboardMongoTests`) run every check, each on an empty store.
public enum KeyStoreContract {
    /// A record with a made-up (but well-formed) hash.
    public static func key(_ id: String, hash: String? = nil, scopes: Set<APIKeyScope> = [.send], rate: Double? = nil, burst: Int? = nil, test: Bool = false, at: Int64 = 1000) -> APIKeyRecord {
        let h = hash ?? String(repeating: "0", count: max(0, 64 - id.utf8.count)) + id
        return APIKeyRecord(id: id, name: "key \(id)", scopes: scopes, rate: rate, burst: burst, test: test, secretHash: h, createdAt: Timestamp(milliseconds: at))
    }

    /// A created key reads back whole (scopes, limits, test flag, hash, times) from the list and by its hash;
    /// the list is in creation order; an unknown hash reads as nil.
    public static func createListFind(_ store: any KeyStore) async throws {
        #expect(try await store.keys().isEmpty)
        let a = key("key_a", hash: String(repeating: "a", count: 64), scopes: [.send, .read], rate: 2.5, burst: 10, at: 2000)
        let b = key("key_b", hash: String(repeating: "b", count: 64), scopes: [.admin], test: true, at: 1000)
        let c = key("key_c", hash: String(repeating: "c", count: 64), scopes: [.read], at: 3000)
        try await store.create(a)
        try await store.create(b)
        try await store.create(c)
        #expect(try await store.keys() == [b, a, c])
        #expect(try await store.key(secretHash: String(repeating: "a", count: 64)) == a)
        #expect(try await store.key(secretHash: String(repeating: "b", count: 64))?.test == true)
        #expect(try await store.key(secretHash: String(repeating: "d", count: 64)) == nil)
        let listed = try #require(try await store.keys().first { $0.id == "key_a" })
        #expect(listed.scopes == [.send, .read] && listed.rate == 2.5 && listed.burst == 10 && listed.lastUsedAt == nil && listed.revokedAt == nil)
    }

    /// A second key with the id or the hash of an existing one is refused, and the first is unchanged.
    public static func duplicates(_ store: any KeyStore) async throws {
        let a = key("key_a", hash: String(repeating: "a", count: 64))
        try await store.create(a)
        await #expect(throws: KeyStoreError.self) { try await store.create(key("key_a", hash: String(repeating: "e", count: 64))) }
        await #expect(throws: KeyStoreError.self) { try await store.create(key("key_other", hash: String(repeating: "a", count: 64))) }
        #expect(try await store.keys() == [a])
    }

    /// Revocation keeps the key (listed, found by hash) with its time; revoking again keeps the first time; an
    /// unknown id is nil.
    public static func revoke(_ store: any KeyStore) async throws {
        try await store.create(key("key_a", hash: String(repeating: "a", count: 64)))
        try await store.create(key("key_b", hash: String(repeating: "b", count: 64)))
        let revoked = try #require(try await store.revoke(id: "key_a", at: Timestamp(milliseconds: 5000)))
        #expect(revoked.id == "key_a" && revoked.revokedAt == Timestamp(milliseconds: 5000))
        #expect(try await store.revoke(id: "key_a", at: Timestamp(milliseconds: 9000))?.revokedAt == Timestamp(milliseconds: 5000))
        #expect(try await store.key(secretHash: String(repeating: "a", count: 64))?.revokedAt == Timestamp(milliseconds: 5000))
        #expect(try await store.keys().map(\.revokedAt) == [Timestamp(milliseconds: 5000), nil])
        #expect(try await store.revoke(id: "key_missing", at: Timestamp(milliseconds: 5000)) == nil)
    }

    /// Last use only moves forward; unknown ids are ignored.
    public static func markUsed(_ store: any KeyStore) async throws {
        try await store.create(key("key_a", hash: String(repeating: "a", count: 64)))
        try await store.create(key("key_b", hash: String(repeating: "b", count: 64)))
        try await store.markUsed(["key_a", "key_missing"], at: Timestamp(milliseconds: 7000))
        try await store.markUsed(["key_a"], at: Timestamp(milliseconds: 6000))
        let keys = try await store.keys()
        #expect(keys.map(\.lastUsedAt) == [Timestamp(milliseconds: 7000), nil])
        try await store.markUsed(["key_a", "key_b"], at: Timestamp(milliseconds: 8000))
        #expect(try await store.keys().map(\.lastUsedAt) == [Timestamp(milliseconds: 8000), Timestamp(milliseconds: 8000)])
    }
}
