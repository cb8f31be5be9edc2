import HTTPTypes
import Hummingbird
import NIOCore
import SwitchboardApp
import SwitchboardCore
import SwitchboardProviders

/// Status callbacks to the client (Standard Webhooks): `/api/v1/webhooks` registers, lists, changes and deletes
/// endpoints; `/api/v1/webhooks/{id}/deliveries` lists what was sent and retries a failed delivery by hand. (Not
/// the providers' status webhooks of `Webhooks.swift`, which come *in*.) The secret is in the answer to an
/// endpoint's creation, once; it is kept only to sign and is never shown or logged again.
extension API {
    /// The callback endpoints (part of ``routes()``).
    func callbackRoutes() -> [Route] {
        [
            Route(.post, "/api/v1/webhooks", scope: .admin) { request, _ in try await self.createCallbackEndpoint(request) },
            Route(.get, "/api/v1/webhooks", scope: .read) { request, _ in try await self.listCallbackEndpoints(request) },
            Route(.get, "/api/v1/webhooks/:id", scope: .read) { _, context in try await self.showCallbackEndpoint(context.parameters.get("id") ?? "") },
            Route(.patch, "/api/v1/webhooks/:id", scope: .admin) { request, context in try await self.updateCallbackEndpoint(request, context.parameters.get("id") ?? "") },
            Route(.delete, "/api/v1/webhooks/:id", scope: .admin) { _, context in try await self.deleteCallbackEndpoint(context.parameters.get("id") ?? "") },
            Route(.get, "/api/v1/webhooks/:id/deliveries", scope: .read) { request, context in try await self.listCallbackDeliveries(request, context.parameters.get("id") ?? "") },
            Route(.post, "/api/v1/webhooks/:id/deliveries/:deliveryId/retry", scope: .admin) { _, context in
                try await self.retryCallbackDelivery(context.parameters.get("id") ?? "", context.parameters.get("deliveryId") ?? "")
            },
        ]
    }

    var callbackDirectory: CallbackDirectory {
        get throws {
            guard let callbacks else {
                throw APIError(.notFound, code: "callbacks_disabled", message: "This server does not send status callbacks.")
            }
            return callbacks
        }
    }

    /// Endpoint ids: `whep_` and 24 lowercase hex digits.
    static func newCallbackEndpointID() -> String {
        var g = SystemRandomNumberGenerator()
        let hex = Array("0123456789abcdef")
        return "whep_" + String((0..<24).map { _ in hex[Int.random(in: 0..<16, using: &g)] })
    }

    static func isCallbackEndpointID(_ s: String) -> Bool {
        s.hasPrefix("whep_") && s.utf8.count == 29 && s.utf8.dropFirst(5).allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }

    /// An endpoint as listed: never its secret.
    static func render(_ e: CallbackEndpoint) -> JSONValue {
        .object([
            "id": .string(e.id), "url": .string(e.url), "events": .array(e.events.map(\.rawValue).sorted().map(JSONValue.string)),
            "types": .array(e.types.map(\.rawValue).sorted().map(JSONValue.string)), "keyId": Render.optional(e.keyID), "default": .bool(e.isDefault),
            "description": Render.optional(e.description), "enabled": .bool(e.enabled), "createdAt": .string(e.createdAt.iso8601), "updatedAt": .string(e.updatedAt.iso8601),
            "failingSince": Render.optional(e.failingSince?.iso8601), "disabledReason": Render.optional(e.disabledReason),
        ])
    }

    static func render(_ d: CallbackDelivery) -> JSONValue {
        .object([
            "id": .string(d.id), "endpointId": .string(d.endpointID), "communicationId": .string(d.communicationID), "eventType": .string(d.eventType),
            "url": .string(d.url), "status": .string(d.state.rawValue), "attempts": .number(Double(d.attempts)),
            "lastStatusCode": d.lastStatusCode.map { .number(Double($0)) } ?? .null, "lastDurationMs": d.lastDurationMs.map { .number(Double($0)) } ?? .null,
            "lastError": Render.optional(d.lastError), "nextAttemptAt": d.state == .pending ? .string(d.nextAttemptAt.iso8601) : .null,
            "createdAt": .string(d.createdAt.iso8601), "updatedAt": .string(d.updatedAt.iso8601), "history": .array(d.history.map(\.json)),
        ])
    }

    /// A JSON object body of at most 64 KiB, sent as application/json.
    static func jsonObject(_ request: Request) async throws -> [String: JSONValue] {
        let body = try await jsonBody(request, limit: 64 * 1024)
        guard case .object(let o) = body else { throw APIError(.badRequest, code: "invalid_body", message: "The body must be a JSON object.") }
        return o
    }

    /// Checks a callback URL: absolute http(s), at most 2048 characters, and (unless private addresses are allowed)
    /// not a loopback, private, link-local or metadata address, literally or by its DNS answer now. `resolve`: false
    /// on the message path, where only the literal is checked (the sender checks the DNS answer at each attempt).
    func checkCallbackURL(_ url: String, field: String, resolve: Bool) async throws {
        let target: CallbackRules.Target
        switch CallbackRules.target(url, field: field) {
        case .failure(let e): throw APIError(e)
        case .success(let t): target = t
        }
        guard !(callbacks?.settings.allowPrivate ?? false) else { return }
        let refusal = resolve ? await HTTPCallbackTransport.refusal(host: target.host) : CallbackRules.refusal(host: target.host)
        if let refusal {
            throw APIError(.badRequest, code: "url_not_allowed", message: "\(field) may not point to a loopback, private, link-local or metadata address: \(refusal).", field: field)
        }
    }

    static func statuses(_ v: JSONValue?, field: String) throws -> Set<CommunicationStatus>? {
        try list(v, field: field, CommunicationStatus.self)
    }

    static func list<T: RawRepresentable & CaseIterable & Hashable>(_ v: JSONValue?, field: String, _: T.Type) throws -> Set<T>? where T.RawValue == String {
        let message = "\(field) must be a list of \(T.allCases.map(\.rawValue).joined(separator: ", ")) (empty: all)."
        switch v {
        case nil, .null?: return nil
        case .array(let items)?:
            var out: Set<T> = []
            for item in items {
                guard case .string(let s) = item, let t = T(rawValue: s) else { throw APIError(.badRequest, code: "invalid_field", message: message, field: field) }
                out.insert(t)
            }
            return out
        default: throw APIError(.badRequest, code: "invalid_field", message: message, field: field)
        }
    }

    static func text(_ v: JSONValue?, field: String, max: Int) throws -> String? {
        switch v {
        case nil, .null?: return nil
        case .string(let s)? where s.count <= max: return s
        default: throw APIError(.badRequest, code: "invalid_field", message: "\(field) must be a string of at most \(max) characters.", field: field)
        }
    }

    static func flag(_ v: JSONValue?, field: String) throws -> Bool? {
        switch v {
        case nil, .null?: return nil
        case .bool(let b)?: return b
        default: throw APIError(.badRequest, code: "invalid_field", message: "\(field) must be true or false.", field: field)
        }
    }

    static func allowFields(_ o: [String: JSONValue], _ known: Set<String>) throws {
        if let unknown = o.keys.sorted().first(where: { !known.contains($0) }) {
            throw APIError(.badRequest, code: "unknown_field", message: "Unknown field \"\(unknown.prefix(64))\"; allowed: \(known.sorted().joined(separator: ", ")).", field: unknown)
        }
    }

    func createCallbackEndpoint(_ request: Request) async throws -> Response {
        let directory = try callbackDirectory
        let o = try await Self.jsonObject(request)
        try Self.allowFields(o, ["url", "events", "types", "keyId", "default", "description"])
        guard case .string(let url)? = o["url"] else {
            throw APIError(.badRequest, code: "invalid_field", message: "url is required: the absolute http(s) URL callbacks are POSTed to.", field: "url")
        }
        try await checkCallbackURL(url, field: "url", resolve: true)
        let keyID = try Self.text(o["keyId"], field: "keyId", max: 68)
        if let keyID, !APIKeySecret.isWellFormedID(keyID) {
            throw APIError(.badRequest, code: "invalid_field", message: "keyId must be an API key id (key_ followed by letters and digits), as `GET /api/v1/keys` lists them.", field: "keyId")
        }
        let isDefault = try Self.flag(o["default"], field: "default") ?? false
        if isDefault {
            guard let keyID else {
                throw APIError(.badRequest, code: "invalid_field", message: "default: true needs keyId: an endpoint is the default of one API key (its secret signs that key's per-message callbackUrl).", field: "default")
            }
            if let existing = try await directory.defaultEndpoint(forKey: keyID) {
                throw APIError(.conflict, code: "default_exists", message: "\(keyID) has a default endpoint already (\(existing.id)); delete or disable it first.", field: "default")
            }
        }
        let now = SystemTime.now()
        let endpoint = CallbackEndpoint(
            id: Self.newCallbackEndpointID(), url: url, events: try Self.statuses(o["events"], field: "events") ?? [],
            types: try Self.list(o["types"], field: "types", MessageChannel.self) ?? [], keyID: keyID, isDefault: isDefault,
            description: try Self.text(o["description"], field: "description", max: 500), secret: StandardWebhooks.newSecret(), createdAt: now)
        try await directory.store.createEndpoint(endpoint)
        // This router uses it at once; the others within their refresh interval.
        _ = try? await directory.refresh()
        guard case .object(var body) = Self.render(endpoint) else { throw APIError(.internalServerError, code: "internal_error", message: "rendering failed") }
        body["secret"] = .string(endpoint.secret)
        return .json(.object(body), status: .created, headers: [.cacheControl: "no-store"])
    }

    func listCallbackEndpoints(_ request: Request) async throws -> Response {
        try Query.allow(request.uri.queryParameters, [])
        let all = try await callbackDirectory.store.endpoints()
        return .json(.object(["items": .array(all.map(Self.render)), "count": .number(Double(all.count))]))
    }

    func callbackEndpoint(_ id: String) async throws -> CallbackEndpoint {
        let directory = try callbackDirectory
        guard Self.isCallbackEndpointID(id), let e = try await directory.store.endpoint(id: id) else {
            throw APIError(.notFound, code: "not_found", message: "No webhook endpoint has id \"\(id.prefix(64))\".", field: "id")
        }
        return e
    }

    func showCallbackEndpoint(_ id: String) async throws -> Response {
        .json(Self.render(try await callbackEndpoint(id)))
    }

    func updateCallbackEndpoint(_ request: Request, _ id: String) async throws -> Response {
        let directory = try callbackDirectory
        var e = try await callbackEndpoint(id)
        let o = try await Self.jsonObject(request)
        try Self.allowFields(o, ["url", "events", "types", "enabled", "description"])
        if let v = o["url"] {
            guard case .string(let url) = v else { throw APIError(.badRequest, code: "invalid_field", message: "url must be a string.", field: "url") }
            try await checkCallbackURL(url, field: "url", resolve: true)
            e.url = url
        }
        if let events = try Self.statuses(o["events"], field: "events") { e.events = events }
        if let types = try Self.list(o["types"], field: "types", MessageChannel.self) { e.types = types }
        if o["description"] != nil { e.description = try Self.text(o["description"], field: "description", max: 500) }
        if let enabled = try Self.flag(o["enabled"], field: "enabled") {
            if enabled, !e.enabled, e.isDefault, let key = e.keyID, let other = try await directory.defaultEndpoint(forKey: key), other.id != e.id {
                throw APIError(.conflict, code: "default_exists", message: "\(key) has another enabled default endpoint (\(other.id)).", field: "enabled")
            }
            if enabled && !e.enabled {
                // A fresh start: the failures that disabled it are forgotten.
                e.failingSince = nil
                e.disabledReason = nil
            }
            e.enabled = enabled
        }
        e.updatedAt = SystemTime.now()
        guard try await directory.store.updateEndpoint(e) else {
            throw APIError(.notFound, code: "not_found", message: "No webhook endpoint has id \"\(id.prefix(64))\".", field: "id")
        }
        _ = try? await directory.refresh()
        return .json(Self.render(e))
    }

    func deleteCallbackEndpoint(_ id: String) async throws -> Response {
        let directory = try callbackDirectory
        guard Self.isCallbackEndpointID(id), try await directory.store.deleteEndpoint(id: id) else {
            throw APIError(.notFound, code: "not_found", message: "No webhook endpoint has id \"\(id.prefix(64))\".", field: "id")
        }
        _ = try? await directory.refresh()
        return Response(status: .noContent)
    }

    func listCallbackDeliveries(_ request: Request, _ id: String) async throws -> Response {
        let q = request.uri.queryParameters
        try Query.allow(q, ["limit", "cursor"])
        let e = try await callbackEndpoint(id)
        let page = try await callbackDirectory.store.deliveries(endpointID: e.id, limit: try Query.limit(q), cursor: Query.string(q, "cursor"))
        return .json(Render.page(page, Self.render))
    }

    func retryCallbackDelivery(_ id: String, _ deliveryID: String) async throws -> Response {
        let e = try await callbackEndpoint(id)
        let store = try callbackDirectory.store
        guard let d = try await store.delivery(endpointID: e.id, id: deliveryID) else {
            throw APIError(.notFound, code: "not_found", message: "Webhook endpoint \(e.id) has no delivery \"\(deliveryID.prefix(80))\".", field: "deliveryId")
        }
        guard d.state == .failed else {
            throw APIError(.conflict, code: "not_failed", message: "Delivery \(d.id) is \(d.state.rawValue); only a failed delivery can be retried.", field: "deliveryId")
        }
        guard let retried = try await store.retry(endpointID: e.id, id: d.id, now: SystemTime.now()) else {
            throw APIError(.notFound, code: "not_found", message: "Webhook endpoint \(e.id) has no delivery \"\(deliveryID.prefix(80))\".", field: "deliveryId")
        }
        return .json(Self.render(retried), status: .accepted)
    }

    /// On `POST /api/v1/communication`: a message with `data.callbackUrl` needs its key's default endpoint (whose
    /// secret signs it), and a URL that is not literally a forbidden address: 422 `no_default_webhook` / 400
    /// `url_not_allowed` before anything is stored.
    func checkMessageCallback(_ request: CommunicationRequest, keyID: String?) async throws {
        guard let url = request.callbackURL else { return }
        try await checkCallbackURL(url, field: "data.callbackUrl", resolve: false)
        let how = "register one with POST /api/v1/webhooks {\"url\": …, \"keyId\": \"<this key's id>\", \"default\": true}: its secret signs the message's callbacks."
        guard let keyID else {
            throw APIError(.unprocessableContent, code: "no_default_webhook", message: "data.callbackUrl needs an API key with a default webhook endpoint, and this request has no key; \(how)", field: "data.callbackUrl")
        }
        guard let callbacks, try await callbacks.defaultEndpoint(forKey: keyID) != nil else {
            throw APIError(.unprocessableContent, code: "no_default_webhook", message: "data.callbackUrl needs a default webhook endpoint for the key \(keyID), and it has none; \(how)", field: "data.callbackUrl")
        }
    }
}
