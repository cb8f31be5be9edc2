import SwitchboardCore

/// The embedded `KeyStore`: the `api_keys` table of the SQLite file (one row per key; the secret's hash, never
/// the secret). Every process on the file sees a key as soon as it is committed.
public struct SQLiteKeyStore: KeyStore {
    let db: SQLiteDatabase

    public init(database: SQLiteDatabase) { db = database }

    static let columns = "id, name, scopes, rate, burst, test, secret_hash, created_at, last_used_at, revoked_at"

    static func record(_ s: Statement) -> APIKeyRecord {
        let scopes = Set(s.text(2).split(separator: ",").compactMap { APIKeyScope(rawValue: String($0)) })
        let rate: Double? = s.optionalText(3).flatMap { Double($0) }
        return APIKeyRecord(
            id: s.text(0), name: s.text(1), scopes: scopes, rate: rate, burst: s.optionalInt(4).map { Int($0) }, test: s.int(5) != 0,
            secretHash: s.text(6), createdAt: Timestamp(milliseconds: s.int(7)), lastUsedAt: s.optionalInt(8).map(Timestamp.init(milliseconds:)),
            revokedAt: s.optionalInt(9).map(Timestamp.init(milliseconds:)))
    }

    public func create(_ key: APIKeyRecord) async throws {
        let scopes = key.scopes.sorted().map(\.rawValue).joined(separator: ",")
        do {
            try await db.write { c in
                try c.run(
                    "INSERT INTO api_keys (\(Self.columns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [.text(key.id), .text(key.name), .text(scopes), key.rate.map { .text(String($0)) } ?? .null, key.burst.map { .int(Int64($0)) } ?? .null,
                     .int(key.test ? 1 : 0), .text(key.secretHash), .int(key.createdAt.milliseconds), key.lastUsedAt.map { .int($0.milliseconds) } ?? .null,
                     key.revokedAt.map { .int($0.milliseconds) } ?? .null])
            }
        } catch let error as SQLiteError where error.isConstraint {
            throw KeyStoreError.duplicate(key.id)
        }
    }

    public func keys() async throws -> [APIKeyRecord] {
        try await db.read { c in
            var keys: [APIKeyRecord] = []
            try c.query("SELECT \(Self.columns) FROM api_keys ORDER BY created_at, id") { s in keys.append(Self.record(s)) }
            return keys
        }
    }

    public func key(secretHash: String) async throws -> APIKeyRecord? {
        try await db.read { c in
            var found: APIKeyRecord?
            try c.query("SELECT \(Self.columns) FROM api_keys WHERE secret_hash = ?", [.text(secretHash)]) { s in found = Self.record(s) }
            return found
        }
    }

    public func revoke(id: String, at: Timestamp) async throws -> APIKeyRecord? {
        try await db.write { c in
            try c.run("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", [.int(at.milliseconds), .text(id)])
            var found: APIKeyRecord?
            try c.query("SELECT \(Self.columns) FROM api_keys WHERE id = ?", [.text(id)]) { s in found = Self.record(s) }
            return found
        }
    }

    /// Not durable: a last use lost in a power cut is only a slightly older "last used".
    public func markUsed(_ ids: [String], at: Timestamp) async throws {
        guard !ids.isEmpty else { return }
        try await db.write(durable: false) { c in
            for id in ids {
                try c.run("UPDATE api_keys SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)", [.int(at.milliseconds), .text(id), .int(at.milliseconds)])
            }
        }
    }
}
