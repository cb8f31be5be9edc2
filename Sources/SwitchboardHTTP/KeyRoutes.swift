import HTTPTypes
import Hummingbird
import NIOCore
import SwitchboardApp
import SwitchboardCore

/// `POST /api/v1/keys`, `GET /api/v1/keys`, `DELETE /api/v1/keys/{id}` (scope `admin`): the CLI's `switchboard
/// keys` over HTTP. The key itself is in the answer to its creation, once; never again.
extension API {
    /// The key endpoints (part of ``routes()``).
    func keyRoutes() -> [Route] {
        [
            Route(.post, "/api/v1/keys", scope: .admin) { request, context in try await self.createKey(request, by: context.identity?.id ?? "open") },
            Route(.get, "/api/v1/keys", scope: .admin) { request, _ in try await self.listKeys(request) },
            Route(.delete, "/api/v1/keys/:id", scope: .admin) { _, context in try await self.revokeKey(context.parameters.get("id") ?? "", by: context.identity?.id ?? "open") },
        ]
    }

    var keyCache: KeyCache {
        get throws {
            guard let keys = access.keys else {
                throw APIError(.notFound, code: "keys_disabled", message: "This server has no key store: API keys cannot be managed here.")
            }
            return keys
        }
    }

    /// A key as listed: never its secret or hash.
    static func render(_ k: APIKeyRecord) -> JSONValue {
        .object([
            "id": .string(k.id), "name": .string(k.name), "scopes": .array(k.scopes.sorted().map { .string($0.rawValue) }),
            "rate": k.rate.map { .number($0) } ?? .null, "burst": k.burst.map { .number(Double($0)) } ?? .null, "test": .bool(k.test),
            "createdAt": .string(k.createdAt.iso8601), "lastUsedAt": Render.optional(k.lastUsedAt?.iso8601), "revokedAt": Render.optional(k.revokedAt?.iso8601),
        ])
    }

    /// Reads the body of `POST /api/v1/keys`: `{"name", "scopes"?: [...] (default ["send"]), "rate"?, "burst"?, "test"?}`.
    static func keySpec(_ body: JSONValue) throws -> APIKeySpec {
        guard case .object(let o) = body else { throw APIError(.badRequest, code: "invalid_body", message: "The body must be a JSON object.") }
        let known: Set<String> = ["name", "scopes", "rate", "burst", "test"]
        if let unknown = o.keys.sorted().first(where: { !known.contains($0) }) {
            throw APIError(.badRequest, code: "unknown_field", message: "Unknown field \"\(unknown.prefix(64))\"; allowed: burst, name, rate, scopes, test.", field: unknown)
        }
        guard case .string(let name)? = o["name"] else { throw APIError(.badRequest, code: "invalid_field", message: "name is required: a string saying who uses the key.", field: "name") }
        var scopes: Set<APIKeyScope> = [.send]
        switch o["scopes"] {
        case nil, .null?: break
        case .array(let items)?:
            scopes = []
            for item in items {
                guard case .string(let s) = item, let scope = APIKeyScope(rawValue: s) else {
                    throw APIError(.badRequest, code: "invalid_field", message: "scopes must be a list of send, read, admin.", field: "scopes")
                }
                scopes.insert(scope)
            }
        default: throw APIError(.badRequest, code: "invalid_field", message: "scopes must be a list of send, read, admin.", field: "scopes")
        }
        var rate: Double?
        switch o["rate"] {
        case nil, .null?: break
        case .number(let r)?: rate = r
        default: throw APIError(.badRequest, code: "invalid_field", message: "rate must be a number (requests per second).", field: "rate")
        }
        var burst: Int?
        switch o["burst"] {
        case nil, .null?: break
        case .number(let b)? where b.rounded() == b && abs(b) < 1e9: burst = Int(b)
        default: throw APIError(.badRequest, code: "invalid_field", message: "burst must be a whole number.", field: "burst")
        }
        var test = false
        switch o["test"] {
        case nil, .null?: break
        case .bool(let t)?: test = t
        default: throw APIError(.badRequest, code: "invalid_field", message: "test must be true or false.", field: "test")
        }
        let spec = APIKeySpec(name: name, scopes: scopes, rate: rate, burst: burst, test: test)
        if let problem = spec.validate() { throw APIError(problem) }
        return spec
    }

    func createKey(_ request: Request, by principal: String) async throws -> Response {
        let keys = try keyCache
        let body = try await Self.jsonBody(request, limit: 64 * 1024)
        let spec = try Self.keySpec(body)
        let (secret, record) = try await KeyIssuer(store: keys.store).create(spec)
        // This router requires keys from now on; the others within seconds (their caches read the store).
        _ = try? await keys.refresh()
        access.audit?.keyCreated(id: record.id, name: record.name, scopes: record.scopes, rate: record.rate, burst: record.burst, test: record.test, by: principal)
        guard case .object(var o) = Self.render(record) else { throw APIError(.internalServerError, code: "internal_error", message: "rendering failed") }
        o["key"] = .string(secret)
        return .json(.object(o), status: .created, headers: [.cacheControl: "no-store"])
    }

    func listKeys(_ request: Request) async throws -> Response {
        try Query.allow(request.uri.queryParameters, [])
        let keys = try await keyCache.store.keys()
        return .json(.object(["items": .array(keys.map(Self.render)), "count": .number(Double(keys.count))]))
    }

    func revokeKey(_ id: String, by principal: String) async throws -> Response {
        let keys = try keyCache
        if id == keys.bootstrap?.id {
            throw APIError(.conflict, code: "bootstrap_key", message: "\(id) is SWITCHBOARD_ADMIN_KEY: change or unset that variable to retire it.", field: "id")
        }
        guard APIKeySecret.isWellFormedID(id), let record = try await keys.store.revoke(id: id, at: SystemTime.now()) else {
            throw APIError(.notFound, code: "not_found", message: "No API key has id \"\(id.prefix(64))\".", field: "id")
        }
        _ = try? await keys.refresh()
        access.audit?.keyRevoked(id: record.id, by: principal)
        return .json(Self.render(record))
    }
}
