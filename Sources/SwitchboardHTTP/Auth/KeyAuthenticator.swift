import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdAuth
import Logging
import SwitchboardApp
import SwitchboardCore

/// How the API admits requests.
public struct AccessControl: Sendable {
    /// `SWITCHBOARD_AUTH`: on (keys are required as soon as one exists) or off (open on purpose).
    public enum Mode: String, Sendable, Hashable {
        case on
        case off
    }

    public var mode: Mode
    /// The deployment's keys; nil: no key store (the API is open, as with `off`).
    public var keys: KeyCache?
    /// The per-key rate limiter, when there is one (see the call site in `KeyAuthenticator.handle`).
    public var rateLimiter: (any RateLimiter)?
    /// The limit of a key that sets none (`SWITCHBOARD_KEY_RATE`, `SWITCHBOARD_KEY_BURST`); nil: unlimited.
    public var defaultLimit: RateLimit?
    /// Failed authentication per client address: over its allowance an address is answered 429 before its key
    /// is looked at.
    public var failures: AuthFailureLimiter?
    /// The audit trail (key created, revoked, first used, admin actions, authentication failures).
    public var audit: AuditLog?

    public init(mode: Mode, keys: KeyCache?, rateLimiter: (any RateLimiter)? = nil, defaultLimit: RateLimit? = nil, failures: AuthFailureLimiter? = nil, audit: AuditLog? = nil) {
        self.mode = mode
        self.keys = keys
        self.rateLimiter = rateLimiter
        self.defaultLimit = defaultLimit
        self.failures = failures
        self.audit = audit
    }

    /// The rate limit of `key`: its own rate and burst, else the deployment's default; nil: unlimited.
    public func limit(for key: APIKeyRecord) -> RateLimit? {
        if let defaultLimit { return key.rateLimit(default: defaultLimit) }
        guard let rate = key.rate else { return nil }
        return RateLimit(rate: rate, burst: key.burst ?? max(1, Int(rate.rounded(.up))))
    }

    /// No key ever required (tests of other parts of the API, embedders).
    public static let open = AccessControl(mode: .off, keys: nil)
}

/// Authenticates every request under `/api/`: the key comes from `Authorization: Bearer <key>` or
/// `X-API-Key: <key>` and is looked up in the `KeyCache` (a hash and a dictionary lookup on the hot path). A
/// missing, unknown or revoked key is a 401 `unauthorized` with `WWW-Authenticate: Bearer` — unless the API is
/// open (no key exists yet on a loopback router, or `SWITCHBOARD_AUTH=off`). Health endpoints and provider
/// webhooks are not under `/api/` and are never asked for a key. Scopes are checked per route (`API.Route.scope`).
public struct KeyAuthenticator: AuthenticatorMiddleware {
    public typealias Context = APIRequestContext
    public typealias Identity = APIKeyRecord

    static let apiKeyHeader = HTTPField.Name("X-API-Key")!
    static let challenge: HTTPFields = [.wwwAuthenticate: "Bearer"]

    let access: AccessControl
    let logger: Logger

    public init(access: AccessControl, logger: Logger) {
        self.access = access
        self.logger = logger
    }

    static func unauthorized(_ message: String) -> APIError {
        APIError(.unauthorized, code: "unauthorized", message: message, headers: challenge)
    }

    /// The key a request gives, if any: `Authorization: Bearer` (any case of the scheme), else `X-API-Key`.
    /// Parsed by hand on the UTF-8 bytes: this runs on every keyed request (Foundation's trimming cost 2 % of
    /// the CPU of a keyed accept).
    static func presentedKey(_ headers: HTTPFields) throws -> String? {
        if let authorization = headers[.authorization] {
            if let token = bearerToken(authorization) { return token }
            if headers[apiKeyHeader] == nil {
                throw unauthorized("Authorization must use the Bearer scheme: Authorization: Bearer <key> (or send X-API-Key: <key>).")
            }
        }
        return headers[apiKeyHeader].map { trimmed(Substring($0)) }
    }

    /// The token of `Bearer <token>` (scheme in any case, blanks around the token ignored); nil for another scheme.
    static func bearerToken(_ value: String) -> String? {
        let scheme = "bearer".utf8
        let bytes = value.utf8
        guard bytes.count > scheme.count else { return nil }
        var i = bytes.startIndex
        for expected in scheme {
            let b = bytes[i]
            guard b | 0x20 == expected else { return nil }
            i = bytes.index(after: i)
        }
        guard bytes[i] == UInt8(ascii: " ") || bytes[i] == UInt8(ascii: "\t") else { return nil }
        return trimmed(Substring(value.utf8[i...]))
    }

    /// `s` without the spaces and tabs around it.
    static func trimmed(_ s: Substring) -> String {
        let isBlank: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 }
        let u = s.utf8
        guard let first = u.firstIndex(where: { !isBlank($0) }), let last = u.lastIndex(where: { !isBlank($0) }) else { return "" }
        return String(Substring(u[first...last]))
    }

    public func authenticate(request: Request, context: Context) async throws -> APIKeyRecord? {
        guard access.keys != nil else { return nil }
        guard let presented = try Self.presentedKey(request.headers) else { return nil }
        return try await key(presented)
    }

    /// The valid key `presented` is (header or, for a WebSocket, its first message); a 401 for a malformed,
    /// unknown or revoked one, a 503 when the keys cannot be read.
    func key(_ presented: String) async throws -> APIKeyRecord? {
        guard let keys = access.keys else { return nil }
        guard APIKeySecret.isWellFormed(presented) else {
            throw Self.unauthorized("The API key is not one Switchboard issued (keys begin with sb_live_ or sb_test_ followed by 43 characters).")
        }
        switch try await unavailableIfFailing({ try await keys.lookup(hash: KeyIssuer.hash(presented)) }) {
        case .valid(let key): return key
        case .revoked(let key): throw Self.unauthorized("The API key \(key.id) was revoked.")
        case .unknown: throw Self.unauthorized("The API key is not known.")
        }
    }

    /// A key store that cannot be read leaves no way to tell a revoked key from a valid one: such requests are
    /// answered 503 (not let through, not a 500).
    func unavailableIfFailing<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as APIError {
            throw error
        } catch {
            logger.warning("the API keys could not be read", metadata: ["error": "\(error)"])
            throw APIError(
                .serviceUnavailable, code: "auth_unavailable", message: "The API keys cannot be read now; try again shortly.",
                headers: [.retryAfter: "\(API.storeRetryAfterSeconds)"])
        }
    }

    /// Whether requests must give a key now.
    func keysRequired() async throws -> Bool {
        guard access.mode == .on, let keys = access.keys else { return false }
        return try await unavailableIfFailing { try await keys.keysRequired() }
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // By segments, as the router matches them (`//api/v1/…` is under /api too).
        guard request.uri.path.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: true).first == "api" else {
            return try await next(request, context)
        }
        var context = context
        let required = try await keysRequired()
        // The client's address as text, only where it is used (failed authentication, audit): not on every request.
        let remote = context.remoteAddress
        func address() -> String { remote?.ipAddress ?? "unknown" }
        // An address over its allowance of failed authentications is refused before its key is looked at.
        if required, let failures = access.failures {
            let gate = failures.allowFailure(address())
            if !gate.allowed { throw RateLimitHeaders.tooManyFailuresError(gate) }
        }
        let key: APIKeyRecord?
        do {
            key = try await authenticate(request: request, context: context)
            if key == nil && required {
                throw Self.unauthorized("An API key is required: send it as Authorization: Bearer <key> or X-API-Key: <key>.")
            }
        } catch let error as APIError where error.status == .unauthorized {
            guard required else {
                // Open API: a key that is not (or no longer) valid is ignored, as no key would be.
                context.openAccess = true
                return try await next(request, context)
            }
            access.failures?.recordFailure(address())
            access.audit?.authFailure(address: address(), reason: error.message)
            throw error
        }
        guard let key else {
            context.openAccess = true
            return try await next(request, context)
        }
        context.identity = key
        if key.lastUsedAt == nil { access.audit?.keyFirstUsed(id: key.id, address: address()) }
        let response: Response
        // The per-key rate limit (issue 16, point 5): one token from the key's bucket; every answer to a keyed
        // request carries the RateLimit-* fields, a refusal is 429 `rate_limited` with Retry-After.
        if let limiter = access.rateLimiter, let limit = access.limit(for: key) {
            let decision = try await limiter.take("key:\(key.id)", limit: limit)
            guard decision.allowed else { throw RateLimitHeaders.rateLimitedError(decision) }
            response = try await RateLimitHeaders.answering(decision) { try await next(request, context) }
        } else {
            response = try await next(request, context)
        }
        if Self.isAdminAction(request) {
            access.audit?.adminAction(key: key.id, method: request.method.rawValue, path: request.uri.path, status: Int(response.status.code))
        }
        return response
    }

    /// Every request that changes something other than creating a message (keys today; whatever needs `admin`).
    static func isAdminAction(_ request: Request) -> Bool {
        switch request.method {
        case .get, .head, .options: return false
        case .post where request.uri.path.hasSuffix("/api/v1/communication"): return false
        default: return true
        }
    }
}
