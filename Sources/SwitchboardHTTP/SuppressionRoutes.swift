import HTTPTypes
import Hummingbird
import SwitchboardApp
import SwitchboardCore

/// The suppression list by hand: `POST /api/v1/suppressions` adds (or replaces) an entry, `GET` lists them (by
/// channel and recipient), `DELETE /api/v1/suppressions?channel=&to=` removes one. The recipient travels in the
/// query string, where `+` and `@` need no escaping (a `+` is kept as it is: `%2B` works too).
///
/// Scopes: adding needs `send` (it only stops messages, as a sender's own unsubscribe page would), listing `read`,
/// removing `admin` (it lifts an opt-out, possibly a provider's).
extension API {
    func suppressionRoutes() -> [Route] {
        [
            Route(.post, "/api/v1/suppressions", scope: .send) { request, context in try await self.createSuppression(request, context) },
            Route(.get, "/api/v1/suppressions", scope: .read) { request, _ in try await self.listSuppressions(request) },
            Route(.delete, "/api/v1/suppressions", scope: .admin) { request, _ in try await self.deleteSuppression(request) },
        ]
    }

    var suppressionStore: any SuppressionStore {
        get throws {
            guard let store = adapters.suppressions else {
                throw APIError(.notFound, code: "suppressions_disabled", message: "This server keeps no suppression list.")
            }
            return store
        }
    }

    static func render(_ s: Suppression) -> JSONValue {
        .object([
            "channel": .string(s.channel.rawValue), "to": .string(s.to), "reason": .string(s.reason), "source": .string(s.source.rawValue),
            "detail": Render.optional(s.detail), "createdAt": .string(s.createdAt.iso8601), "keyId": Render.optional(s.keyID),
        ])
    }

    /// Longest reason a client may give.
    static let maxSuppressionReason = 500

    /// Checks `to` for `channel` as a message's recipient is checked; the 400 names `field`.
    static func suppressionRecipient(_ to: String, channel: MessageChannel, field: String) throws -> String {
        switch channel {
        case .email:
            if let problem = Address.emailProblem(to) {
                throw APIError(.badRequest, code: "invalid_email", message: "\(field) must be an email address: \(problem).", field: field)
            }
        case .sms, .whatsapp:
            guard Address.isValidE164(to) else {
                throw APIError(.badRequest, code: "invalid_phone", message: "\(field) must be an E.164 phone number: \"+\" followed by 8 to 15 digits (in a query string, + may be sent as it is or as %2B).", field: field)
            }
        }
        return Suppression.normalize(to, channel: channel)
    }

    func createSuppression(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let store = try suppressionStore
        let o = try await Self.jsonObject(request)
        for key in o.keys.sorted() where !["channel", "to", "reason"].contains(key) {
            throw APIError(.badRequest, code: "unknown_field", message: "Unknown field \"\(key)\"; allowed: channel, to, reason.", field: key)
        }
        guard case .string(let channelText)? = o["channel"], let channel = MessageChannel(rawValue: channelText) else {
            throw APIError(.badRequest, code: "invalid_field", message: "channel is required: one of email, sms, whatsapp.", field: "channel")
        }
        guard case .string(let toText)? = o["to"] else {
            throw APIError(.badRequest, code: "invalid_field", message: "to is required: the recipient (an email address or an E.164 number).", field: "to")
        }
        let to = try Self.suppressionRecipient(toText, channel: channel, field: "to")
        let reason = try Self.text(o["reason"], field: "reason", max: Self.maxSuppressionReason) ?? "added by hand"
        let entry = Suppression(channel: channel, to: to, reason: reason, source: .manual, createdAt: SystemTime.now(), keyID: context.identity?.id)
        let existed = try await store.lookup([entry.key])[entry.key] != nil
        try await store.add(entry)
        return .json(Self.render(entry), status: existed ? .ok : .created)
    }

    func listSuppressions(_ request: Request) async throws -> Response {
        let store = try suppressionStore
        let q = request.uri.queryParameters
        try Query.allow(q, ["channel", "to", "limit", "cursor"])
        let channel = try Query.enumeration(q, "channel", MessageChannel.self)
        // Without a channel, an address with "@" is compared as an email address (case-insensitively).
        let to = Query.string(q, "to").map { Suppression.normalize($0, channel: channel ?? ($0.contains("@") ? .email : .sms)) }
        let page = try await store.list(channel: channel, to: to, limit: try Query.limit(q), cursor: Query.string(q, "cursor"))
        return .json(Render.page(page, Self.render))
    }

    func deleteSuppression(_ request: Request) async throws -> Response {
        let store = try suppressionStore
        let q = request.uri.queryParameters
        try Query.allow(q, ["channel", "to"])
        guard let channel = try Query.enumeration(q, "channel", MessageChannel.self) else {
            throw APIError(.badRequest, code: "invalid_parameter", message: "channel is required: one of email, sms, whatsapp.", field: "channel")
        }
        guard let toText = Query.string(q, "to") else {
            throw APIError(.badRequest, code: "invalid_parameter", message: "to is required: the suppressed recipient.", field: "to")
        }
        let to = try Self.suppressionRecipient(toText, channel: channel, field: "to")
        guard try await store.remove(channel: channel, to: to) else {
            throw APIError(.notFound, code: "not_found", message: "\(to) is not on the \(channel.rawValue) suppression list.", field: "to")
        }
        return Response(status: .noContent)
    }
}
