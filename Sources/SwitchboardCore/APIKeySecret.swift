/// The secret of an API key: `sb_live_` (or `sb_test_` for a test key) and 43 base64url characters, the 256
/// random bits of the key. Only a hash of it is stored (lowercase hex SHA-256, made by the HTTP layer, which has
/// the hash function); this type makes and recognises secrets and ids, with no I/O.
public enum APIKeySecret {
    public static let livePrefix = "sb_live_"
    public static let testPrefix = "sb_test_"
    /// Random bytes in a secret.
    public static let randomBytes = 32
    /// Characters after the prefix: 32 bytes in base64url without padding.
    public static let encodedLength = 43

    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// A new secret from `random` (use `SystemRandomNumberGenerator`, the system's cryptographic source).
    public static func generate(test: Bool, using random: inout some RandomNumberGenerator) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(randomBytes)
        while bytes.count < randomBytes {
            withUnsafeBytes(of: random.next() as UInt64) { bytes.append(contentsOf: $0) }
        }
        return (test ? testPrefix : livePrefix) + base64url(Array(bytes.prefix(randomBytes)))
    }

    /// A new public key id: `key_` and 16 lowercase hex digits (64 random bits).
    public static func newID(using random: inout some RandomNumberGenerator) -> String {
        let s = String(random.next() as UInt64, radix: 16)
        return "key_" + String(repeating: "0", count: 16 - s.count) + s
    }

    /// Whether `s` has the shape of a secret this type makes (prefix, then exactly 43 base64url characters).
    public static func isWellFormed(_ s: String) -> Bool {
        guard s.hasPrefix(livePrefix) || s.hasPrefix(testPrefix) else { return false }
        let rest = s.utf8.dropFirst(livePrefix.utf8.count)
        return rest.count == encodedLength && rest.allSatisfy { alphabet.contains($0) }
    }

    /// Whether `s` is a test key's secret (`sb_test_…`).
    public static func isTest(_ s: String) -> Bool { s.hasPrefix(testPrefix) }

    /// Whether `s` looks like a key id (`key_` and 1 to 64 characters of `[a-z0-9_-]`): what a path or a query
    /// parameter naming a key may hold.
    public static func isWellFormedID(_ s: String) -> Bool {
        let rest = s.utf8.dropFirst(4)
        return s.hasPrefix("key_") && !rest.isEmpty && rest.count <= 64
            && rest.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F || $0 == 0x2D }
    }

    /// Base64url without padding (RFC 4648 §5).
    public static func base64url(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count * 4 + 2) / 3)
        var i = 0
        while i + 3 <= bytes.count {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            for shift in [18, 12, 6, 0] { out.append(alphabet[Int((n >> UInt32(shift)) & 63)]) }
            i += 3
        }
        let left = bytes.count - i
        if left > 0 {
            let n = UInt32(bytes[i]) << 16 | (left == 2 ? UInt32(bytes[i + 1]) << 8 : 0)
            out.append(alphabet[Int((n >> 18) & 63)])
            out.append(alphabet[Int((n >> 12) & 63)])
            if left == 2 { out.append(alphabet[Int((n >> 6) & 63)]) }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Compares two strings in time that depends only on their lengths, never on where they first differ.
    public static func constantTimeEquals(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var difference: UInt8 = 0
        for i in 0..<x.count { difference |= x[i] ^ y[i] }
        return difference == 0
    }
}

/// What a new API key is to be: checked by `validate()` before a key is made (CLI and `POST /api/v1/keys`).
public struct APIKeySpec: Sendable, Hashable {
    public var name: String
    public var scopes: Set<APIKeyScope>
    public var rate: Double?
    public var burst: Int?
    public var test: Bool

    public init(name: String, scopes: Set<APIKeyScope>, rate: Double? = nil, burst: Int? = nil, test: Bool = false) {
        self.name = name
        self.scopes = scopes
        self.rate = rate
        self.burst = burst
        self.test = test
    }

    /// The first problem of this spec, naming its field, or nil.
    public func validate() -> RequestError? {
        let trimmed = name.trimmingWhitespace
        if trimmed.isEmpty { return RequestError(code: "invalid_field", message: "name is required: a few words that say who uses the key.", field: "name") }
        if name.count > 100 { return RequestError(code: "invalid_field", message: "name is longer than 100 characters.", field: "name") }
        if name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            return RequestError(code: "invalid_field", message: "name must not contain control characters.", field: "name")
        }
        if scopes.isEmpty { return RequestError(code: "invalid_field", message: "scopes must name at least one of send, read, admin.", field: "scopes") }
        if let rate, !(rate > 0 && rate <= 1_000_000) { return RequestError(code: "invalid_field", message: "rate must be a number of requests per second above 0 and at most 1000000.", field: "rate") }
        if let burst, !(1...1_000_000).contains(burst) { return RequestError(code: "invalid_field", message: "burst must be a whole number from 1 to 1000000.", field: "burst") }
        return nil
    }

    /// The record of a key made to this spec, with its id, secret's hash and creation time.
    public func record(id: String, secretHash: String, createdAt: Timestamp) -> APIKeyRecord {
        APIKeyRecord(id: id, name: name.trimmingWhitespace, scopes: scopes, rate: rate, burst: burst, test: test, secretHash: secretHash, createdAt: createdAt)
    }
}

extension String {
    var trimmingWhitespace: String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }), let last = scalars.lastIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        return String(scalars[first...last])
    }
}
