import Crypto
import SwitchboardCore

/// Meta's webhook for WhatsApp: the `GET` verification handshake and signed `POST` notifications.
public struct WhatsAppWebhook: Sendable {
    let verifyToken: String?
    let appSecret: String?

    /// - Parameters:
    ///   - verifyToken: the token entered in the app dashboard (`SWITCHBOARD_WHATSAPP_VERIFY_TOKEN`).
    ///   - appSecret: the app secret that signs notifications (`SWITCHBOARD_WHATSAPP_APP_SECRET`).
    public init(verifyToken: String?, appSecret: String?) {
        self.verifyToken = verifyToken
        self.appSecret = appSecret
    }

    /// The verification request: `hub.mode=subscribe` and a matching `hub.verify_token` → the
    /// `hub.challenge` to echo; otherwise a 403 rejection.
    public func verify(mode: String?, token: String?, challenge: String?) -> Result<String, WebhookRejection> {
        guard let verifyToken, mode == "subscribe", let token,
              constantTimeEquals(Array(token.utf8), Array(verifyToken.utf8)), let challenge
        else {
            return .failure(WebhookRejection(status: 403, code: "verification_failed", message: "hub.mode must be subscribe and hub.verify_token must match."))
        }
        return .success(challenge)
    }

    /// `sha256=` + hex HMAC-SHA256 of `body` keyed with `appSecret`.
    public static func signature(body: [UInt8], appSecret: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Array(appSecret.utf8)))
        return "sha256=" + mac.map { byte in
            let hex = Array("0123456789abcdef".utf8)
            return String(decoding: [hex[Int(byte >> 4)], hex[Int(byte & 0xF)]], as: UTF8.self)
        }.joined()
    }

    /// Whether `header` (`X-Hub-Signature-256`) signs `body` (constant-time comparison, hex case-insensitive).
    public static func isValid(header: String?, body: [UInt8], appSecret: String) -> Bool {
        guard let header else { return false }
        let expected = signature(body: body, appSecret: appSecret)
        return constantTimeEquals(Array(expected.utf8), Array(header.lowercased().utf8))
    }

    /// The status reports in a notification, after checking its signature. Messages and other fields of
    /// the notification are ignored.
    public func reports(signature: String?, body: [UInt8]) -> Result<[ProviderStatusReport], WebhookRejection> {
        guard let appSecret, Self.isValid(header: signature, body: body, appSecret: appSecret) else {
            return .failure(WebhookRejection(status: 403, code: "invalid_signature", message: "X-Hub-Signature-256 is missing or does not match."))
        }
        guard let json = try? JSONParser.parse(body), case .object = json else {
            return .failure(WebhookRejection(status: 400, code: "invalid_json", message: "The body is not a JSON object."))
        }
        var reports: [ProviderStatusReport] = []
        for entry in json["entry"]?.arrayValue ?? [] {
            for change in entry["changes"]?.arrayValue ?? [] {
                for s in change["value"]?["statuses"]?.arrayValue ?? [] {
                    guard let id = s["id"]?.stringValue, let raw = s["status"]?.stringValue else { continue }
                    let status: CommunicationStatus? = switch raw {
                    case "delivered": .delivered
                    case "read": .read
                    case "failed": .failed
                    default: nil  // sent (we record sent ourselves), deleted, warning…
                    }
                    var error: ProviderError?
                    if let e = s["errors"]?.arrayValue?.first {
                        var message = e["message"]?.stringValue ?? e["title"]?.stringValue ?? "WhatsApp reported \(raw)"
                        if let details = e["error_data"]?["details"]?.stringValue, !details.isEmpty { message += " — \(details)" }
                        error = ProviderError(code: e["code"]?.codeText, message: message)
                    } else if status == .failed {
                        error = ProviderError(code: nil, message: "WhatsApp reported failed")
                    }
                    reports.append(ProviderStatusReport(providerMessageID: id, status: status, error: error, rawStatus: raw))
                }
            }
        }
        return .success(reports)
    }
}
