import Crypto
import Foundation
import SwitchboardCore

/// Twilio's request signature (`X-Twilio-Signature`): Base64 of HMAC-SHA1, keyed with the auth token, over
/// the full URL Twilio requested followed by every POST parameter sorted by name, each as name + value.
public enum TwilioSignature {
    /// The signature Twilio would send for `url` and `parameters`.
    public static func compute(url: String, parameters: [(String, String)], authToken: String) -> String {
        let sorted = parameters.sorted { a, b in
            a.0 == b.0 ? a.1.utf8.lexicographicallyPrecedes(b.1.utf8) : a.0.utf8.lexicographicallyPrecedes(b.0.utf8)
        }
        var data = Array(url.utf8)
        for (name, value) in sorted {
            data += Array(name.utf8)
            data += Array(value.utf8)
        }
        let mac = HMAC<Insecure.SHA1>.authenticationCode(for: data, using: SymmetricKey(data: Array(authToken.utf8)))
        return Data(mac).base64EncodedString()
    }

    /// Whether `signature` is the right one (constant-time comparison).
    public static func isValid(signature: String?, url: String, parameters: [(String, String)], authToken: String) -> Bool {
        guard let signature, !signature.isEmpty else { return false }
        let expected = compute(url: url, parameters: parameters, authToken: authToken)
        return constantTimeEquals(Array(expected.utf8), Array(signature.utf8))
    }
}

/// Why a webhook request was refused.
public struct WebhookRejection: Error, Sendable, Hashable {
    /// The HTTP status to answer (400 or 403).
    public var status: Int
    /// A machine-readable code (`invalid_signature`, `missing_field`, …).
    public var code: String
    /// A sentence for the JSON error.
    public var message: String

    /// Creates a rejection.
    public init(status: Int, code: String, message: String) {
        self.status = status
        self.code = code
        self.message = message
    }
}

/// Twilio's message status callback (`POST /webhooks/twilio/status`): verifies the signature and reads
/// `MessageSid`, `MessageStatus` and `ErrorCode`.
public struct TwilioStatusWebhook: Sendable {
    let authToken: String

    /// - Parameter authToken: the account's auth token, the signing key.
    public init(authToken: String) {
        self.authToken = authToken
    }

    /// The report in a callback whose full URL (as Twilio requested it) is `url`.
    public func report(url: String, signature: String?, body: [UInt8]) -> Result<ProviderStatusReport, WebhookRejection> {
        let parameters = FormEncoding.decode(body)
        guard TwilioSignature.isValid(signature: signature, url: url, parameters: parameters, authToken: authToken) else {
            return .failure(WebhookRejection(status: 403, code: "invalid_signature", message: "X-Twilio-Signature is missing or does not match."))
        }
        let fields = Dictionary(parameters, uniquingKeysWith: { first, _ in first })
        guard let sid = fields["MessageSid"] ?? fields["SmsSid"], !sid.isEmpty else {
            return .failure(WebhookRejection(status: 400, code: "missing_field", message: "MessageSid is missing."))
        }
        guard let raw = fields["MessageStatus"] ?? fields["SmsStatus"], !raw.isEmpty else {
            return .failure(WebhookRejection(status: 400, code: "missing_field", message: "MessageStatus is missing."))
        }
        let status: CommunicationStatus? = switch raw.lowercased() {
        case "delivered": .delivered
        case "undelivered": .undelivered
        case "failed": .failed
        case "read": .read
        default: nil  // queued, sending, sent, accepted, scheduled, canceled, receiving, received
        }
        var error: ProviderError?
        if let code = fields["ErrorCode"], !code.isEmpty, code != "0" {
            error = ProviderError(code: code, message: fields["ErrorMessage"].flatMap { $0.isEmpty ? nil : $0 } ?? "Twilio reported \(raw) with error \(code) (https://www.twilio.com/docs/api/errors/\(code))")
        } else if status == .failed || status == .undelivered {
            error = ProviderError(code: nil, message: "Twilio reported \(raw)")
        }
        return .success(ProviderStatusReport(providerMessageID: sid, status: status, error: error, rawStatus: raw))
    }
}
