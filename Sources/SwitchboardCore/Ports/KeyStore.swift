/// Where API keys are kept (`SQLiteKeyStore` in the embedded file, `MongoKeyStore` with `MONGODB_URL`: always
/// beside the communications). Holds records only: a key's secret is never stored, only its hash.
///
/// Every router reads the whole list every couple of seconds (`KeyCache` in the HTTP layer), so a key created
/// or revoked by any process — the CLI, another router — is seen everywhere within seconds; the list is short
/// (keys are made by hand), so reading it whole is cheap.
public protocol KeyStore: Sendable {
    /// Stores a new key. Throws `KeyStoreError.duplicate` when its id or hash is taken.
    func create(_ key: APIKeyRecord) async throws
    /// Every key, revoked ones included, oldest first.
    func keys() async throws -> [APIKeyRecord]
    /// The key whose secret hashes to `secretHash` (lowercase hex SHA-256), revoked or not, or nil.
    func key(secretHash: String) async throws -> APIKeyRecord?
    /// Revokes the key `id` at `at` (a key already revoked keeps its first time). Returns the key as it now
    /// is, or nil when no key has that id.
    func revoke(id: String, at: Timestamp) async throws -> APIKeyRecord?
    /// Records that these keys were used at `at` (a later time than the one recorded; never an earlier one).
    func markUsed(_ ids: [String], at: Timestamp) async throws
}

/// A key store's refusal.
public enum KeyStoreError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A key with this id or secret hash exists already.
    case duplicate(String)

    public var description: String {
        switch self {
        case .duplicate(let id): "a key with the id or secret of \(id) exists already"
        }
    }
}
