import AsyncHTTPClient
import NIOHTTP1
import SwitchboardCore

/// Meta WhatsApp Cloud API settings.
public struct WhatsAppConfiguration: Sendable {
    /// System-user or app access token (Bearer). Never logged.
    public var accessToken: String
    /// The business phone number id messages are sent from.
    public var phoneNumberID: String
    /// Graph API version, e.g. `v21.0`.
    public var apiVersion: String
    /// Graph API base URL, default `https://graph.facebook.com`.
    public var baseURL: String
    /// Time allowed for one API call.
    public var timeout: Duration

    /// Settings with Meta's production Graph API and a 15 s timeout by default.
    public init(accessToken: String, phoneNumberID: String, apiVersion: String = "v21.0", baseURL: String = "https://graph.facebook.com", timeout: Duration = .seconds(15)) {
        self.accessToken = accessToken
        self.phoneNumberID = phoneNumberID
        self.apiVersion = apiVersion
        self.baseURL = baseURL
        self.timeout = timeout
    }
}

/// WhatsApp through Meta's Cloud API: `POST {base}/{version}/{phone-number-id}/messages` with a bearer
/// token and a JSON body — a text message, or a template message when the request carries
/// `data.template` (name, language code, body parameters). The returned `messages[0].id` (wamid) is the
/// provider message id.
///
/// Errors (`{"error":{"message","type","code","error_subcode","error_data":{"details"},"fbtrace_id"}}`):
/// throughput and rate limits (130429, 131056, 4, 80007), temporary errors (1, 2, 131000, 131016),
/// HTTP 429, 5xx and transport failures are retryable; everything else — authentication (190),
/// invalid parameters (100, 131009, 131026, 132xxx template errors…) — is permanent.
public struct WhatsAppProvider: DeliveryProvider {
    /// Recorded on the message as its provider.
    public let name = "meta"
    /// The token, phone number id and URLs.
    public let configuration: WhatsAppConfiguration
    let transport: HTTPTransport

    /// Meta error codes worth retrying.
    public static let retryableCodes: Set<Int> = [1, 2, 4, 80007, 130429, 131000, 131016, 131056, 133004]

    /// - Parameter httpClient: the client to use (default: the process-wide shared one).
    public init(configuration: WhatsAppConfiguration, httpClient: HTTPClient = .shared) {
        self.configuration = configuration
        self.transport = HTTPTransport(client: httpClient, timeout: configuration.timeout)
    }

    /// The messages endpoint.
    public var messagesURL: String {
        HTTPTransport.join(configuration.baseURL, "/\(configuration.apiVersion)/\(configuration.phoneNumberID)/messages")
    }

    /// The JSON body of one message.
    public func body(_ message: OutboundMessage) -> JSONValue {
        let r = message.request
        var o: [String: JSONValue] = [
            "messaging_product": .string("whatsapp"),
            "recipient_type": .string("individual"),
            "to": .string(r.to),
        ]
        if let t = r.template {
            var template: [String: JSONValue] = ["name": .string(t.name), "language": .object(["code": .string(t.language)])]
            if !t.parameters.isEmpty {
                template["components"] = .array([.object([
                    "type": .string("body"),
                    "parameters": .array(t.parameters.map { .object(["type": .string("text"), "text": .string($0)]) }),
                ])])
            }
            o["type"] = .string("template")
            o["template"] = .object(template)
        } else {
            o["type"] = .string("text")
            o["text"] = .object(["preview_url": .bool(false), "body": .string(r.msg)])
        }
        return .object(o)
    }

    /// Sends one message; never throws (see the type's error mapping).
    public func deliver(_ message: OutboundMessage) async -> DeliveryResult {
        await transport.post(
            url: messagesURL,
            headers: [
                ("Authorization", "Bearer \(configuration.accessToken)"),
                ("Content-Type", "application/json"),
                ("Accept", "application/json"),
            ],
            body: Array(body(message).canonicalText.utf8), result: Self.result)
    }

    static func result(_ a: HTTPAnswer) -> DeliveryResult {
        let answer = a.decode(MetaAnswer.self)
        if (200..<300).contains(a.status) {
            guard let id = answer?.messages?.first?.id else {
                return .retryable(ProviderError(code: "invalid_response", message: "Meta answered \(a.status) without messages[0].id: \(a.text)"))
            }
            return .sent(providerMessageID: id)
        }
        let e = answer?.error
        let code = e?.code?.integer
        var message = e?.message ?? "HTTP \(a.status): \(a.text)"
        if let details = e?.details, !details.isEmpty { message += " — \(details)" }
        var codeText = code.map(String.init) ?? "http_\(a.status)"
        if let sub = e?.subcode?.integer { codeText += "/\(sub)" }
        if let trace = e?.traceID { message += " (fbtrace_id \(trace))" }
        let error = ProviderError(code: codeText, message: message)
        if a.status == 429 || a.status >= 500 || code.map(retryableCodes.contains) == true { return .retryable(error) }
        return .permanent(error)
    }
}
