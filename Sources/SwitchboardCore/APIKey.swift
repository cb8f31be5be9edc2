/// What an API key may do. `admin` implies `send` and `read`.
public enum APIKeyScope: String, Sendable, Codable, CaseIterable, Hashable, Comparable {
    /// Create messages (`POST /api/v1/communication`).
    case send
    /// Every `GET` of the API.
    case read
    /// Keys and everything else; implies `send` and `read`.
    case admin

    public static func < (a: APIKeyScope, b: APIKeyScope) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// An API key as it is stored: never the secret, only its hash.
public struct APIKeyRecord: Sendable, Hashable {
    /// The public id (shown in lists, recorded on the messages the key created, used to revoke it).
    public var id: String
    public var name: String
    public var scopes: Set<APIKeyScope>
    /// Requests per second this key may make; nil: the deployment's default (`SWITCHBOARD_KEY_RATE`).
    public var rate: Double?
    /// Largest burst; nil: the deployment's default (`SWITCHBOARD_KEY_BURST`).
    public var burst: Int?
    /// A test key (`sb_test_…`): its messages go to the sandbox whatever providers are configured.
    public var test: Bool
    /// Lowercase hex SHA-256 of the whole key.
    public var secretHash: String
    public var createdAt: Timestamp
    public var lastUsedAt: Timestamp?
    public var revokedAt: Timestamp?

    public init(id: String, name: String, scopes: Set<APIKeyScope>, rate: Double? = nil, burst: Int? = nil, test: Bool = false, secretHash: String, createdAt: Timestamp, lastUsedAt: Timestamp? = nil, revokedAt: Timestamp? = nil) {
        self.id = id
        self.name = name
        self.scopes = scopes
        self.rate = rate
        self.burst = burst
        self.test = test
        self.secretHash = secretHash
        self.createdAt = createdAt
        self.lastUsedAt = lastUsedAt
        self.revokedAt = revokedAt
    }

    /// The key's own rate and burst, each else the deployment's `defaultLimit`'s.
    public func rateLimit(default defaultLimit: RateLimit) -> RateLimit {
        RateLimit(rate: rate ?? defaultLimit.rate, burst: burst ?? defaultLimit.burst)
    }

    /// Whether the key grants `scope` (`admin` grants every scope).
    public func grants(_ scope: APIKeyScope) -> Bool { scopes.contains(.admin) || scopes.contains(scope) }
}
