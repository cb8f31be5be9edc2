import Crypto
import SwitchboardApp
import SwitchboardCore

/// Makes API keys: a new secret from the system's cryptographic random source, its id, and the record stored
/// (with the secret's hash only). The CLI (`switchboard keys create`) and `POST /api/v1/keys` both use it.
public struct KeyIssuer: Sendable {
    public let store: any KeyStore
    let clock: @Sendable () -> Timestamp

    public init(store: any KeyStore, clock: @escaping @Sendable () -> Timestamp = SystemTime.now) {
        self.store = store
        self.clock = clock
    }

    /// Lowercase hex SHA-256 of a key: what is stored and looked up.
    public static func hash(_ secret: String) -> String {
        let digest = SHA256.hash(data: Array(secret.utf8))
        var out: [UInt8] = []
        out.reserveCapacity(64)
        let hex = Array("0123456789abcdef".utf8)
        for b in digest {
            out.append(hex[Int(b >> 4)])
            out.append(hex[Int(b & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Creates a key to `spec` (checked first: a `RequestError` names the field at fault). Returns the secret —
    /// shown once, never stored — and the stored record.
    public func create(_ spec: APIKeySpec) async throws -> (secret: String, record: APIKeyRecord) {
        if let problem = spec.validate() { throw problem }
        var random = SystemRandomNumberGenerator()
        // A collision of 64 random bits (id) or 256 (secret) is not expected; one more try covers the first.
        for attempt in 1...2 {
            let secret = APIKeySecret.generate(test: spec.test, using: &random)
            let record = spec.record(id: APIKeySecret.newID(using: &random), secretHash: Self.hash(secret), createdAt: clock())
            do {
                try await store.create(record)
                return (secret, record)
            } catch KeyStoreError.duplicate where attempt == 1 {
                continue
            }
        }
        throw KeyStoreError.duplicate("a new key")
    }
}
