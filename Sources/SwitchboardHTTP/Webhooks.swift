import HTTPTypes
import Hummingbird
import NIOCore
import SwitchboardApp
import SwitchboardCore
import SwitchboardProviders

/// The providers' status webhooks the API serves. A webhook that is not configured answers 404
/// `webhook_not_configured`.
public struct Webhooks: Sendable {
    /// Twilio's status callback (`POST /webhooks/twilio/status`), when Twilio is configured.
    public var twilio: TwilioStatusWebhook?
    /// Meta's WhatsApp webhook (`GET` and `POST /webhooks/whatsapp`), when WhatsApp is configured.
    public var whatsApp: WhatsAppWebhook?
    /// The public base URL the providers call (`SWITCHBOARD_PUBLIC_URL`, e.g. `https://sb.example.com`).
    /// Twilio signs the full URL it requested, so behind a proxy this must be set; without it the URL is
    /// rebuilt from the `Host` and `X-Forwarded-Proto` headers.
    public var publicURL: String?

    /// Webhooks to serve; nil ones answer 404.
    public init(twilio: TwilioStatusWebhook? = nil, whatsApp: WhatsAppWebhook? = nil, publicURL: String? = nil) {
        self.twilio = twilio
        self.whatsApp = whatsApp
        self.publicURL = publicURL
    }
}

extension API {
    static let twilioSignature = HTTPField.Name("X-Twilio-Signature")!
    static let hubSignature = HTTPField.Name("X-Hub-Signature-256")!
    static let forwardedProto = HTTPField.Name("X-Forwarded-Proto")!

    /// The provider webhooks' endpoints (part of ``routes()``).
    func webhookRoutes() -> [Route] {
        [
            Route(.post, "/webhooks/twilio/status") { request, _ in try await self.twilioStatus(request) },
            Route(.get, "/webhooks/whatsapp") { request, _ in try self.whatsAppVerify(request) },
            Route(.post, "/webhooks/whatsapp") { request, _ in try await self.whatsAppNotification(request) },
        ]
    }

    /// The URL a provider requested, as it saw it.
    func externalURL(_ request: Request) -> String {
        let target = request.uri.description
        if var base = webhooks.publicURL {
            while base.hasSuffix("/") { base.removeLast() }
            return base + target
        }
        let scheme = request.headers[Self.forwardedProto]?.split(separator: ",").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? "http"
        let host = request.head.authority ?? "localhost"
        return "\(scheme)://\(host)\(target)"
    }

    func rawBody(_ request: Request) async throws -> [UInt8] {
        do {
            return Array(try await request.body.collect(upTo: Self.maxBodySize).readableBytesView)
        } catch is NIOTooManyBytesError {
            throw APIError(.contentTooLarge, code: "body_too_large", message: "The body is larger than \(Self.maxBodySize) bytes (1 MiB).")
        }
    }

    static func rejection(_ r: WebhookRejection) -> APIError {
        APIError(HTTPResponse.Status(code: r.status), code: r.code, message: r.message)
    }

    static func notConfigured(_ name: String) -> APIError {
        APIError(.notFound, code: "webhook_not_configured", message: "The \(name) webhook is not configured on this server.")
    }

    func ingest(_ reports: [ProviderStatusReport], service: String) async throws -> Response {
        let outcomes = try await StatusReportIngest(adapters: adapters, logger: logger).ingest(reports, service: service)
        let applied = outcomes.filter { if case .applied = $0 { true } else { false } }.count
        return .json(.object(["received": .number(Double(reports.count)), "applied": .number(Double(applied))]))
    }

    // MARK: POST /webhooks/twilio/status

    func twilioStatus(_ request: Request) async throws -> Response {
        guard let twilio = webhooks.twilio else { throw Self.notConfigured("Twilio") }
        let body = try await rawBody(request)
        switch twilio.report(url: externalURL(request), signature: request.headers[Self.twilioSignature], body: body) {
        case .failure(let r):
            refusals.log("twilio_webhook_refused", level: .warning, "Twilio webhook refused", metadata: ["reason": "\(r.code)"])
            throw Self.rejection(r)
        case .success(let report):
            return try await ingest([report], service: "twilio-webhook")
        }
    }

    // MARK: GET/POST /webhooks/whatsapp

    func whatsAppVerify(_ request: Request) throws -> Response {
        guard let whatsApp = webhooks.whatsApp else { throw Self.notConfigured("WhatsApp") }
        let q = request.uri.queryParameters
        switch whatsApp.verify(mode: Query.string(q, "hub.mode"), token: Query.string(q, "hub.verify_token"), challenge: Query.string(q, "hub.challenge")) {
        case .failure(let r): throw Self.rejection(r)
        case .success(let challenge):
            return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: ResponseBody(byteBuffer: ByteBuffer(string: challenge)))
        }
    }

    func whatsAppNotification(_ request: Request) async throws -> Response {
        guard let whatsApp = webhooks.whatsApp else { throw Self.notConfigured("WhatsApp") }
        let body = try await rawBody(request)
        switch whatsApp.reports(signature: request.headers[Self.hubSignature], body: body) {
        case .failure(let r):
            refusals.log("whatsapp_webhook_refused", level: .warning, "WhatsApp webhook refused", metadata: ["reason": "\(r.code)"])
            throw Self.rejection(r)
        case .success(let reports):
            return try await ingest(reports, service: "whatsapp-webhook")
        }
    }
}
