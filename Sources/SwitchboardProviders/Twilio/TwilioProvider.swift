import AsyncHTTPClient
import Foundation
import NIOHTTP1
import SwitchboardCore

/// Twilio's Programmable Messaging settings.
public struct TwilioConfiguration: Sendable {
    /// Account SID (`AC…`; the seed's `ACCOUNTSID`).
    public var accountSID: String
    /// Auth token (the seed's `AUTHTOKEN`): Basic-auth password and the webhook signing key. Never logged.
    public var authToken: String
    /// Messaging service SID (`MG…`; the seed's `MSG_ID`). When set, messages are sent with
    /// `MessagingServiceSid` instead of `From`.
    public var messagingServiceSID: String?
    /// API base URL, default `https://api.twilio.com` (`SWITCHBOARD_TWILIO_BASE_URL`).
    public var baseURL: String
    /// Status callback URL sent with each message (`{SWITCHBOARD_PUBLIC_URL}/webhooks/twilio/status`), or nil.
    public var statusCallback: String?
    /// Time allowed for one API call.
    public var timeout: Duration

    /// Settings with Twilio's production API and a 15 s timeout by default.
    public init(accountSID: String, authToken: String, messagingServiceSID: String? = nil, baseURL: String = "https://api.twilio.com", statusCallback: String? = nil, timeout: Duration = .seconds(15)) {
        self.accountSID = accountSID
        self.authToken = authToken
        self.messagingServiceSID = messagingServiceSID
        self.baseURL = baseURL
        self.statusCallback = statusCallback
        self.timeout = timeout
    }
}

/// SMS through Twilio's Messages API: `POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json`,
/// Basic auth (account SID, auth token), form body `To`, `From` or `MessagingServiceSid`, `Body` and
/// `StatusCallback`. The returned `sid` is the provider message id.
///
/// Errors (Twilio's JSON `code`, `message`, `more_info`, `status`): HTTP 429, code 20429, 5xx and
/// transport failures are retryable; every other 4xx (21211 invalid `To`, 21610 opted out, 20003 auth…)
/// is permanent.
public struct TwilioProvider: DeliveryProvider {
    /// Recorded on the message as its provider.
    public let name = "twilio"
    /// The account, credentials and URLs.
    public let configuration: TwilioConfiguration
    let transport: HTTPTransport

    /// - Parameter httpClient: the client to use (default: the process-wide shared one).
    public init(configuration: TwilioConfiguration, httpClient: HTTPClient = .shared) {
        self.configuration = configuration
        self.transport = HTTPTransport(client: httpClient, timeout: configuration.timeout)
    }

    /// The Messages resource URL.
    public var messagesURL: String {
        HTTPTransport.join(configuration.baseURL, "/2010-04-01/Accounts/\(FormEncoding.escape(configuration.accountSID))/Messages.json")
    }

    /// The form fields of one message, in the order sent.
    public func formFields(_ message: OutboundMessage) -> [(String, String)] {
        var fields = [("To", message.request.to)]
        if let service = configuration.messagingServiceSID {
            fields.append(("MessagingServiceSid", service))
        } else {
            fields.append(("From", message.request.from))
        }
        fields.append(("Body", message.request.msg))
        if let callback = configuration.statusCallback { fields.append(("StatusCallback", callback)) }
        return fields
    }

    /// Creates one Message resource; never throws (see the type's error mapping).
    public func deliver(_ message: OutboundMessage) async -> DeliveryResult {
        let credentials = Data("\(configuration.accountSID):\(configuration.authToken)".utf8).base64EncodedString()
        return await transport.post(
            url: messagesURL,
            headers: [
                ("Authorization", "Basic \(credentials)"),
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Accept", "application/json"),
            ],
            body: Array(FormEncoding.encode(formFields(message)).utf8), result: Self.result)
    }

    static func result(_ a: HTTPAnswer) -> DeliveryResult {
        let answer = a.decode(TwilioAnswer.self)
        if (200..<300).contains(a.status) {
            guard let sid = answer?.sid else {
                return .retryable(ProviderError(code: "invalid_response", message: "Twilio answered \(a.status) without a sid: \(a.text)"))
            }
            return .sent(providerMessageID: sid)
        }
        let code = answer?.code?.text
        var message = answer?.message ?? "HTTP \(a.status): \(a.text)"
        if let more = answer?.moreInfo { message += " (\(more))" }
        let error = ProviderError(code: code ?? "http_\(a.status)", message: message)
        if a.status == 429 || code == "20429" || a.status >= 500 { return .retryable(error) }
        return .permanent(error)
    }
}
