import Crypto
import Foundation

/// The Standard Webhooks signature scheme (standardwebhooks.com), which status callbacks follow so that clients can
/// verify them with the specification's libraries (`standardwebhooks` for Python, JavaScript, Go, …):
///
/// - a secret is `whsec_` followed by the base64 of 24 to 64 random bytes; the HMAC key is those bytes;
/// - `webhook-signature` is `v1,` + base64(HMAC-SHA256(key, "<webhook-id>.<webhook-timestamp>.<body>")), several
///   separated by spaces (during a secret's rotation);
/// - a receiver refuses a timestamp more than five minutes away from its clock (replays).
public enum StandardWebhooks {
    public static let secretPrefix = "whsec_"
    /// Random bytes in a new secret (the specification allows 24 to 64).
    public static let secretBytes = 32
    /// How far a timestamp may be from the verifier's clock.
    public static let tolerance: Int64 = 300

    /// A new secret: `whsec_` + base64 of 32 random bytes from the system's generator.
    public static func newSecret() -> String {
        var g = SystemRandomNumberGenerator()
        let bytes = (0..<secretBytes).map { _ in UInt8.random(in: 0...255, using: &g) }
        return secretPrefix + Data(bytes).base64EncodedString()
    }

    /// The HMAC key of a secret (`whsec_` optional), or nil when it is not base64.
    public static func key(_ secret: String) -> SymmetricKey? {
        let text = secret.hasPrefix(secretPrefix) ? String(secret.dropFirst(secretPrefix.count)) : secret
        guard let data = Data(base64Encoded: text), !data.isEmpty else { return nil }
        return SymmetricKey(data: data)
    }

    /// `v1,<base64 signature>` of `body` sent as message `id` at `timestamp` (seconds); nil for a malformed secret.
    public static func sign(secret: String, id: String, timestamp: Int64, body: some Sequence<UInt8>) -> String? {
        guard let key = key(secret) else { return nil }
        var signed = Array("\(id).\(timestamp).".utf8)
        signed.append(contentsOf: body)
        let mac = HMAC<SHA256>.authenticationCode(for: signed, using: key)
        return "v1," + Data(mac).base64EncodedString()
    }

    /// The three headers of a callback.
    public static func headers(secret: String, id: String, timestamp: Int64, body: [UInt8]) -> [(String, String)]? {
        guard let signature = sign(secret: secret, id: id, timestamp: timestamp, body: body) else { return nil }
        return [("webhook-id", id), ("webhook-timestamp", String(timestamp)), ("webhook-signature", signature)]
    }

    /// Verifies a callback as a receiver would: one of the space-separated `v1` signatures matches (compared in
    /// constant time) and the timestamp is within `tolerance` of `now` (seconds).
    public static func verify(secret: String, id: String, timestamp: String, signatures: String, body: [UInt8], now: Int64) -> Bool {
        guard let ts = Int64(timestamp), abs(now - ts) <= tolerance, let key = key(secret) else { return false }
        var signed = Array("\(id).\(ts).".utf8)
        signed.append(contentsOf: body)
        for item in signatures.split(separator: " ") {
            let parts = item.split(separator: ",", maxSplits: 1)
            guard parts.count == 2, parts[0] == "v1", let mac = Data(base64Encoded: String(parts[1])) else { continue }
            if HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: signed, using: key) { return true }
        }
        return false
    }
}
