import Crypto
import SwitchboardApp
import SwitchboardCore

/// How a parsed request body becomes a request to store: the one path `POST /api/v1/communication` and every
/// item of `POST /api/v1/communications/batch` take, so that a batch item is judged exactly as a single request.
///
/// In order:
/// 0. a template (`data.templateId`) is rendered into `data.msg` (`applyTemplate`, TemplateRoutes.swift);
/// 1. validation (`RequestValidator`): the body's shape, addresses, lengths, and a send time at most a year ahead;
/// 2. the message's own callback URL (`data.callbackUrl`) needs a default webhook endpoint for the key;
/// 3. the recipient must not be on the channel's suppression list (422 `recipient_suppressed`): checked here for a
///    single request, and by the batch for all its items at once (`suppressed(_:)`, one store call).
/// 4. last, once the request is known good: an email's attachments go to the `AttachmentStore` (their bytes under
///    their SHA-256) and `data.attachments` keeps `{filename, contentType, size, sha256}`, so the bytes are never
///    copied into the stored request, its stream entries, logs, events or search documents. They are written before
///    the message is stored, so a stored message never lacks them; an accept that fails afterwards leaves a file no
///    message names, which is harmless (the same bytes sent again find it there).
///
/// A client's problem is a `.failure` with its HTTP status (400, 422); a fault of the server (the store does not
/// answer) is thrown, and fails the whole request.
extension API {
    /// The request to store for `body`, sent with the key `keyID` (nil: the API is open), or the client's problem.
    /// `traced`: the validation is a span of its own (tracing on); a batch makes one span for all its items.
    /// `checkSuppression`: false for a batch's items, which the batch checks together.
    func admit(_ body: JSONValue, keyID: String?, traced: Bool = true, checkSuppression: Bool = true) async throws -> Result<CommunicationRequest, APIError> {
        let rendered: JSONValue
        switch try await applyTemplate(body) {
        case .failure(let e): return .failure(e)
        case .success(let r): rendered = r
        }
        let validation = traced ? dispatcher.tracing.startSpanInCurrentContext("validate") : nil
        var validated: CommunicationRequest
        switch RequestValidator.validate(rendered) {
        case .failure(let e):
            validation?.fail(e.code)
            validation?.end()
            return .failure(APIError(e))
        case .success(let r):
            validation?.end()
            validated = r
        }
        if let sendAt = validated.sendAt, sendAt > SystemTime.now().adding(RequestValidator.maxScheduleAhead) {
            return .failure(APIError(.badRequest, code: "invalid_send_at", message: "\"data.sendAt\" may be at most a year ahead; got \(sendAt.iso8601).", field: "data.sendAt"))
        }
        do {
            try await checkMessageCallback(validated, keyID: keyID)
        } catch let e as APIError {
            return .failure(e)
        }
        if checkSuppression, let hit = try await suppressed([validated]).first ?? nil {
            return .failure(Self.suppressedError(hit))
        }
        if !validated.attachments.isEmpty {
            // Every server composition has one (`Composition`); an API built without is a fault of its builder.
            guard let store = adapters.attachments else { throw NoAttachmentStore() }
            validated = try await Self.storeAttachments(validated, in: store)
        }
        return .success(validated)
    }

    /// Writes the bytes of `request`'s attachments to `store` and returns the request as it is stored: its
    /// attachments by `sha256`, without their content.
    static func storeAttachments(_ request: CommunicationRequest, in store: any AttachmentStore) async throws -> CommunicationRequest {
        var digests: [String] = []
        for a in request.attachments {
            guard let content = a.content else {
                digests.append(a.sha256 ?? "")
                continue
            }
            let sha = SHA256.hash(data: content).map { b in
                let hex = Array("0123456789abcdef")
                return String([hex[Int(b >> 4)], hex[Int(b & 0x0F)]])
            }.joined()
            try await store.put(sha256: sha, bytes: content)
            digests.append(sha)
        }
        return request.withStoredAttachments(digests)
    }

    /// The suppression entry of each request's recipient on its channel (nil: not suppressed), in order, in at most
    /// one store round trip: a batch checks its items with one call. `adapters.suppressions` is the router's
    /// `SuppressionCache`, which reads the store only for recipients on the list.
    func suppressed(_ requests: [CommunicationRequest]) async throws -> [Suppression?] {
        guard let store = adapters.suppressions, !requests.isEmpty else { return requests.map { _ in nil } }
        let keys = requests.map { SuppressionKey(channel: $0.channel, to: $0.to) }
        let found = try await store.lookup(keys)
        return keys.map { found[$0] }
    }

    /// The 422 for a request whose recipient is suppressed: its message names the reason and the date.
    static func suppressedError(_ s: Suppression) -> APIError {
        APIError(.unprocessableContent, code: "recipient_suppressed", message: s.refusal, field: "data.to")
    }
}


/// An email with attachments reached an API built without an `AttachmentStore` (answered 500, not stored).
struct NoAttachmentStore: Error, CustomStringConvertible {
    var description: String { "no attachment store: the API was built without Adapters.attachments" }
}
