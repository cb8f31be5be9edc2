#if MongoDB
import NIOConcurrencyHelpers
import SwitchboardCore

/// The `KeyStore` on MongoDB: the `api_keys` collection beside `communications` (same database, same client
/// pool as the `MongoStore`). One document per key:
///
/// ```
/// { _id: "key_…", name, scopes: ["send", …], rate: double | null, burst: long | null, test: bool,
///   secretHash: "<hex sha-256>", createdAt: Date, lastUsedAt: Date | null, revokedAt: Date | null }
/// ```
///
/// The secret itself is never stored; `secretHash` has a unique index.
public struct MongoKeyStore: KeyStore {
    public static let collectionName = "api_keys"

    public let connection: MongoConnection
    private let indexesReady = NIOLockedValueBox(false)

    /// Uses `connection` (usually the store's, `MongoStore.connection`).
    public init(connection: MongoConnection) {
        self.connection = connection
    }

    static let indexes: [BSON] = [
        .document(["key": .document(["secretHash": .int32(1)]), "name": .string("secretHash_unique"), "unique": .bool(true)]),
    ]

    func withCollection<T: Sendable>(_ body: @escaping @Sendable (MongoConnection.Collection) throws(MongoError) -> T) async throws(MongoError) -> T {
        let db = connection.databaseName
        let ready = indexesReady
        return try await connection.withClient { client throws(MongoError) in
            try client.collection(db, Self.collectionName) { c throws(MongoError) in
                if !ready.withLockedValue({ $0 }) {
                    _ = try c.writeCommand(["createIndexes": .string(Self.collectionName), "indexes": .array(Self.indexes)])
                    ready.withLockedValue { $0 = true }
                }
                return try body(c)
            }
        }
    }

    static func document(_ k: APIKeyRecord) -> BSONDocument {
        [
            "_id": .string(k.id), "name": .string(k.name), "scopes": .array(k.scopes.sorted().map { .string($0.rawValue) }),
            "rate": k.rate.map(BSON.double) ?? .null, "burst": k.burst.map { .int64(Int64($0)) } ?? .null, "test": .bool(k.test),
            "secretHash": .string(k.secretHash), "createdAt": .datetime(k.createdAt.milliseconds),
            "lastUsedAt": k.lastUsedAt.map { .datetime($0.milliseconds) } ?? .null, "revokedAt": k.revokedAt.map { .datetime($0.milliseconds) } ?? .null,
        ]
    }

    static func record(_ d: BSONDocument) throws(MongoError) -> APIKeyRecord {
        guard let id = d["_id"]?.stringValue, let hash = d["secretHash"]?.stringValue, case .datetime(let created)? = d["createdAt"] else {
            throw .malformedDocument("api key \(d["_id"]?.stringValue ?? "?"): _id, secretHash or createdAt missing")
        }
        var scopes: Set<APIKeyScope> = []
        if case .array(let items)? = d["scopes"] {
            for case .string(let s) in items { if let scope = APIKeyScope(rawValue: s) { scopes.insert(scope) } }
        }
        func time(_ key: String) -> Timestamp? {
            if case .datetime(let ms)? = d[key] { Timestamp(milliseconds: ms) } else { nil }
        }
        var rate: Double?
        switch d["rate"] {
        case .double(let r)?: rate = r
        case .int32(let r)?: rate = Double(r)
        case .int64(let r)?: rate = Double(r)
        default: rate = nil
        }
        return APIKeyRecord(
            id: id, name: d["name"]?.stringValue ?? "", scopes: scopes, rate: rate, burst: d["burst"]?.intValue.map { Int($0) }, test: d["test"] == .bool(true),
            secretHash: hash, createdAt: Timestamp(milliseconds: created), lastUsedAt: time("lastUsedAt"), revokedAt: time("revokedAt"))
    }

    public func create(_ key: APIKeyRecord) async throws {
        do throws(MongoError) {
            try await withCollection { c throws(MongoError) in try c.insertOne(Self.document(key)) }
        } catch .duplicateKey {
            throw KeyStoreError.duplicate(key.id)
        }
    }

    public func keys() async throws -> [APIKeyRecord] {
        try await withCollection { c throws(MongoError) in
            try c.find([:], options: ["sort": .document(["createdAt": .int32(1), "_id": .int32(1)])]).map(Self.record)
        }
    }

    public func key(secretHash: String) async throws -> APIKeyRecord? {
        try await withCollection { c throws(MongoError) in
            try c.find(["secretHash": .string(secretHash)], options: ["limit": .int64(1)]).first.map(Self.record)
        }
    }

    public func revoke(id: String, at: Timestamp) async throws -> APIKeyRecord? {
        try await withCollection { c throws(MongoError) in
            _ = try c.updateOne(["_id": .string(id), "revokedAt": .null], ["$set": .document(["revokedAt": .datetime(at.milliseconds)])])
            return try c.find(["_id": .string(id)], options: ["limit": .int64(1)]).first.map(Self.record)
        }
    }

    public func markUsed(_ ids: [String], at: Timestamp) async throws {
        guard !ids.isEmpty else { return }
        try await withCollection { c throws(MongoError) in
            for id in ids {
                _ = try c.updateOne(
                    ["_id": .string(id), "$or": .array([.document(["lastUsedAt": .null]), .document(["lastUsedAt": .document(["$lt": .datetime(at.milliseconds)])])])],
                    ["$set": .document(["lastUsedAt": .datetime(at.milliseconds)])])
            }
        }
    }
}
#endif
