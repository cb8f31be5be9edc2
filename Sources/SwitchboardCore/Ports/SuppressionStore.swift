/// The suppression list: recipients that must not be sent to again on a channel, because a provider said so (an
/// opt-out, an unknown mailbox) or a client added them by hand. A message to a suppressed recipient is refused at
/// accept (422 `recipient_suppressed`). Stored with the communications (SQLite or MongoDB), so every router sees
/// every entry (each keeps a copy of the keys, reloaded every second: `SuppressionCache` in App).
///
/// Recipients are kept normalised (`Suppression.normalize`): one entry per channel and normalised recipient.
public protocol SuppressionStore: Sendable {
    /// Stores `suppression`, replacing any entry for the same channel and recipient (the newest reason wins).
    /// Its `to` must be normalised already (`Suppression.init` does it).
    func add(_ suppression: Suppression) async throws
    /// Removes the entry for `channel` and the normalised recipient `to`; false when there was none.
    func remove(channel: MessageChannel, to: String) async throws -> Bool
    /// The entries among `keys` (normalised recipients), in one round trip: up to a batch's 1,000 recipients.
    func lookup(_ keys: [SuppressionKey]) async throws -> [SuppressionKey: Suppression]
    /// Entries ordered by channel then recipient, filtered by `channel` and the normalised recipient `to` when
    /// given; `cursor` is the `nextCursor` of the previous page (`InvalidCursor` for another).
    func list(channel: MessageChannel?, to: String?, limit: Int, cursor: String?) async throws -> Page<Suppression>
}

/// Who put a recipient on the list.
public enum SuppressionSource: String, Sendable, Hashable, CaseIterable {
    /// A client, with `POST /api/v1/suppressions`.
    case manual
    /// A provider's answer (`SuppressionRules`).
    case provider
}

/// One channel and normalised recipient: the list's key.
public struct SuppressionKey: Sendable, Hashable {
    public var channel: MessageChannel
    public var to: String

    /// `to` is normalised here (`Suppression.normalize`).
    public init(channel: MessageChannel, to: String) {
        self.channel = channel
        self.to = Suppression.normalize(to, channel: channel)
    }

    /// The page cursor after this key: base64url of `<channel>\n<to>`, so that `+` and `@` survive a query string.
    public var cursor: String { Base64URL.encode(Array("\(channel.rawValue)\n\(to)".utf8)) }

    /// The key a cursor stands for; nil for text this API did not issue.
    public init?(cursor: String) {
        guard let bytes = Base64URL.decode(cursor), let text = String(validating: bytes, as: UTF8.self),
            let nl = text.firstIndex(of: "\n"), let channel = MessageChannel(rawValue: String(text[..<nl]))
        else { return nil }
        self.channel = channel
        self.to = String(text[text.index(after: nl)...])
    }
}

/// A recipient that must not be sent to on `channel`.
public struct Suppression: Sendable, Hashable {
    public var channel: MessageChannel
    /// Normalised: see `normalize`.
    public var to: String
    /// Why, in words: the client's reason, or what the provider said (`opted out (Twilio 21610)`).
    public var reason: String
    public var source: SuppressionSource
    /// The provider's error code and provider (`twilio 21610`, `smtp 550 5.1.1`), nil for a manual entry.
    public var detail: String?
    public var createdAt: Timestamp
    /// The API key that added it by hand (nil: the API is open, or a provider's answer).
    public var keyID: String?

    public init(channel: MessageChannel, to: String, reason: String, source: SuppressionSource, detail: String? = nil, createdAt: Timestamp, keyID: String? = nil) {
        self.channel = channel
        self.to = Self.normalize(to, channel: channel)
        self.reason = reason
        self.source = source
        self.detail = detail
        self.createdAt = createdAt
        self.keyID = keyID
    }

    public var key: SuppressionKey { SuppressionKey(channel: channel, to: to) }

    /// The form a recipient is kept and compared in. Email addresses compare case-insensitively: the whole
    /// address is lowercased (RFC 5321 lets a server treat the local part's case as significant, but mail
    /// providers do not, and a list that missed `Ada@Example.com` after `ada@example.com` bounced would send to a
    /// dead or unwilling address again). Phone numbers are E.164 already (validated), kept as they are.
    public static func normalize(_ to: String, channel: MessageChannel) -> String {
        switch channel {
        case .email: to.lowercased()
        case .sms, .whatsapp: to
        }
    }

    /// The message of a 422 `recipient_suppressed`: the reason and the date.
    public var refusal: String {
        "\(to) is on the \(channel.rawValue) suppression list since \(createdAt.iso8601) (\(source.rawValue): \(reason)); remove it with DELETE /api/v1/suppressions?channel=\(channel.rawValue)&to=… to send to it again."
    }
}

/// Which permanent provider failures mean "never send to this recipient again" on a channel. Transient failures
/// never suppress; neither does a permanent failure that says nothing about the recipient (authentication, a bad
/// template, a message too large).
public enum SuppressionRules {
    /// The reason to suppress `message`'s recipient after the provider `provider` failed it for good with
    /// `error`, or nil.
    ///
    /// - Twilio `21610`: the recipient replied STOP ("Attempt to send to unsubscribed recipient",
    ///   https://www.twilio.com/docs/api/errors/21610). The sandbox answers it too, for its opt-out recipient.
    /// - Meta WhatsApp `131050`: "the recipient has chosen to stop receiving marketing messages on WhatsApp from
    ///   your business" (https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes). Not
    ///   `131026` ("message undeliverable"): Meta lists passing causes for it (terms of service not yet accepted,
    ///   an outdated client), so a later message may well arrive.
    /// - SMTP, at RCPT TO or after: the enhanced codes `5.1.1` (bad destination mailbox) and `5.1.10` (the
    ///   recipient's domain has a null MX: RFC 7505), whatever the basic code; and a `550`/`551`/`553` without an
    ///   enhanced code whose text says the user is unknown ("user unknown", "no such user", "unknown user",
    ///   "mailbox unavailable", "does not exist") — older servers. Not `5.1.2` (bad destination system: often a
    ///   DNS failure of the moment) nor `5.2.x` (mailbox full, disabled: the owner may fix it).
    public static func reason(provider: String, channel: MessageChannel, error: ProviderError) -> String? {
        guard let code = error.code else { return nil }
        switch channel {
        case .sms:
            if code == "21610" { return "the recipient opted out (replied STOP): Twilio error 21610" }
        case .whatsapp:
            if code == "131050" || code.hasPrefix("131050/") { return "the recipient stopped marketing messages from this business: Meta error 131050" }
            if code == "21610" { return "the recipient opted out: Twilio error 21610" }
        case .email:
            let parts = code.split(separator: " ")
            guard let basic = parts.first.flatMap({ Int($0) }), (500..<600).contains(basic) else { return nil }
            if parts.count > 1 {
                let enhanced = String(parts[1])
                if enhanced == "5.1.1" || enhanced == "5.1.10" { return "unknown mailbox: SMTP \(code)" }
                return nil
            }
            if [550, 551, 553].contains(basic) {
                let text = error.message.lowercased()
                let unknown = ["user unknown", "unknown user", "no such user", "mailbox unavailable", "does not exist", "no such recipient", "recipient unknown"]
                if unknown.contains(where: text.contains) { return "unknown mailbox: SMTP \(code)" }
            }
        }
        return nil
    }
}

/// Base64url without padding (RFC 4648 §5): cursors that travel in query strings untouched.
public enum Base64URL {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    public static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count * 4 + 2) / 3)
        var i = 0
        while i < bytes.count {
            let b0 = UInt32(bytes[i]), b1 = i + 1 < bytes.count ? UInt32(bytes[i + 1]) : 0, b2 = i + 2 < bytes.count ? UInt32(bytes[i + 2]) : 0
            let n = b0 << 16 | b1 << 8 | b2
            out.append(alphabet[Int(n >> 18 & 63)])
            out.append(alphabet[Int(n >> 12 & 63)])
            if i + 1 < bytes.count { out.append(alphabet[Int(n >> 6 & 63)]) }
            if i + 2 < bytes.count { out.append(alphabet[Int(n & 63)]) }
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func decode(_ text: String) -> [UInt8]? {
        var values: [UInt32] = []
        for c in text.utf8 {
            guard let v = alphabet.firstIndex(of: c) else { return nil }
            values.append(UInt32(v))
        }
        guard values.count % 4 != 1 else { return nil }
        var out: [UInt8] = []
        var i = 0
        while i < values.count {
            let chunk = values[i..<min(i + 4, values.count)]
            var n: UInt32 = 0
            for (j, v) in chunk.enumerated() { n |= v << (18 - 6 * UInt32(j)) }
            out.append(UInt8(n >> 16 & 255))
            if chunk.count > 2 { out.append(UInt8(n >> 8 & 255)) }
            if chunk.count > 3 { out.append(UInt8(n & 255)) }
            i += 4
        }
        return out
    }
}
