import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdAuth
import Logging
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

    public init(mode: Mode, keys: KeyCache?, rateLimiter: (any RateLimiter)? = nil, defaultLimit: RateLimit? = nil) {
        self.mode = mode
        self.keys = keys
        self.rateLimiter = rateLimiter
        self.defaultLimit = defaultLimit
    }

    /// The rate limit of `key`: its own rate and burst, else the deployment's default; nil: unlimited.
    public func limit(for key: APIKeyRecord) -> RateLimit? {
        guard let rate = key.rate ?? defaultLimit?.rate else { return nil }
        return RateLimit(rate: rate, burst: key.burst ?? defaultLimit?.burst ?? max(1, Int(rate.rounded(.up))))
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
    static func presentedKey(_ headers: HTTPFields) throws -> String? {
        if let bearer = headers.bearer?.token {
            return bearer.trimmingCharacters(in: .whitespaces)
        }
        if let authorization = headers[.authorization] {
            let parts = authorization.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
            if parts.count == 2, parts[0].lowercased() == "bearer" { return parts[1].trimmingCharacters(in: .whitespaces) }
            if headers[apiKeyHeader] == nil {
                throw unauthorized("Authorization must use the Bearer scheme: Authorization: Bearer <key> (or send X-API-Key: <key>).")
            }
        }
        return headers[apiKeyHeader]?.trimmingCharacters(in: .whitespaces)
    }

    public func authenticate(request: Request, context: Context) async throws -> APIKeyRecord? {
        guard let keys = access.keys else { return nil }
        guard let presented = try Self.presentedKey(request.headers) else { return nil }
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
        do {
            if let key = try await authenticate(request: request, context: context) {
                context.identity = key
                // MARK: the per-key rate limit (issue 16, point 5). One token from the key's bucket; the
                // rate-limiting work adds the RateLimit-* fields to the answer around `next`.
                if let limiter = access.rateLimiter, let limit = access.limit(for: key) {
                    let decision = try await limiter.take("key:\(key.id)", limit: limit)
                    if !decision.allowed {
                        throw APIError(
                            .tooManyRequests, code: "rate_limited", message: "The API key \(key.id) is over its limit of \(limit.rate) requests per second (burst \(limit.burst)).",
                            headers: [.retryAfter: "\(max(1, decision.retryAfterSeconds ?? 1))"])
                    }
                }
            } else if required {
                throw Self.unauthorized("An API key is required: send it as Authorization: Bearer <key> or X-API-Key: <key>.")
            } else {
                context.openAccess = true
            }
        } catch let error as APIError where error.status == .unauthorized && !required {
            // Open API: a key that is not (or no longer) valid is ignored, as no key would be.
            context.openAccess = true
        }
        return try await next(request, context)
    }
}
