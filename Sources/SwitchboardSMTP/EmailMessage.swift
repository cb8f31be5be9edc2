import struct Foundation.Date

/// An extra header field to add to a message (e.g. `List-Unsubscribe`, `X-Campaign`).
public struct EmailHeader: Sendable, Hashable {
    /// The field name, e.g. `"X-Campaign"`: 1–76 printable ASCII characters, no colon.
    public var name: String
    /// The field value. Non-ASCII text is RFC 2047-encoded (as unstructured text);
    /// line breaks are rejected to prevent header injection.
    public var value: String

    /// Creates a header field.
    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// An email to send: envelope participants, headers and a text (and optional HTML) body.
///
/// `render()` turns it into an RFC 5322 / MIME message; ``SMTPClient/send(_:)``
/// renders and sends it. Bcc recipients receive the message but are never written
/// into the headers.
public struct EmailMessage: Sendable, Hashable {
    /// The author. When `nil`, ``SMTPConfiguration/defaultFrom`` is used.
    public var from: EmailAddress?
    /// The primary recipients (at least one of `to`, `cc`, `bcc` must be non-empty).
    public var to: [EmailAddress]
    /// Carbon-copy recipients (shown in the `Cc` header).
    public var cc: [EmailAddress]
    /// Blind-carbon-copy recipients (envelope only, never in the headers).
    public var bcc: [EmailAddress]
    /// Addresses for the `Reply-To` header.
    public var replyTo: [EmailAddress]
    /// The subject (any Unicode text; encoded per RFC 2047 when needed).
    public var subject: String
    /// The plain-text body (always sent; line endings are normalised to CRLF).
    public var textBody: String
    /// An optional HTML body; when set the message is `multipart/alternative`
    /// with the text part first and the HTML part second.
    public var htmlBody: String?
    /// Files attached to the message: when any, the message is `multipart/mixed`, the body (text, or the
    /// `multipart/alternative` of text and HTML) first, then each file as a base64 part with `Content-Type`
    /// (`name=`) and `Content-Disposition: attachment` (`filename=`, RFC 2231 for a name that is not plain ASCII).
    public var attachments: [Attachment] = []
    /// Additional header fields. Fields this library generates (`Date`,
    /// `Message-ID`, `MIME-Version`, `From`, `To`, `Cc`, `Bcc`, `Reply-To`,
    /// `Subject`, `Content-Type`, `Content-Transfer-Encoding`) are rejected here.
    public var headers: [EmailHeader]
    /// The envelope sender (`MAIL FROM`, where bounces go). Defaults to the `from` address.
    public var envelopeFrom: String?
    /// The `Date` header value. Defaults to the time of rendering.
    public var date: Date?
    /// A `Message-ID` to use instead of a generated one, e.g. `"<id@example.com>"`
    /// (angle brackets are added if missing). Useful for idempotent retries.
    public var messageID: String?

    /// Creates a message.
    ///
    /// - Parameters:
    ///   - from: The author; `nil` to use the client's default sender.
    ///   - to: Primary recipients.
    ///   - cc: Carbon-copy recipients.
    ///   - bcc: Blind-carbon-copy recipients.
    ///   - replyTo: `Reply-To` addresses.
    ///   - subject: The subject.
    ///   - textBody: The plain-text body.
    ///   - htmlBody: An optional HTML alternative.
    ///   - headers: Extra header fields.
    public init(
        from: EmailAddress? = nil,
        to: [EmailAddress],
        cc: [EmailAddress] = [],
        bcc: [EmailAddress] = [],
        replyTo: [EmailAddress] = [],
        subject: String,
        textBody: String,
        htmlBody: String? = nil,
        headers: [EmailHeader] = []
    ) {
        self.from = from
        self.to = to
        self.cc = cc
        self.bcc = bcc
        self.replyTo = replyTo
        self.subject = subject
        self.textBody = textBody
        self.htmlBody = htmlBody
        self.headers = headers
    }

    /// A file attached to a message.
    public struct Attachment: Sendable, Hashable {
        /// The name the recipient sees (any Unicode text without control characters or path separators).
        public var filename: String
        /// The media type, `type/subtype` (RFC 2045 tokens, no parameters), e.g. `application/pdf`.
        public var contentType: String
        /// The file's bytes.
        public var bytes: [UInt8]

        /// Creates an attachment.
        public init(filename: String, contentType: String, bytes: [UInt8]) {
            self.filename = filename
            self.contentType = contentType
            self.bytes = bytes
        }
    }

    /// All envelope recipients (`to`, `cc` and `bcc`), without duplicates, in order.
    public var allRecipients: [EmailAddress] {
        var seen = Set<String>()
        return (to + cc + bcc).filter { seen.insert($0.address.lowercased()).inserted }
    }

    /// Renders the message to RFC 5322 / MIME bytes. Pure: no I/O.
    ///
    /// - Parameters:
    ///   - defaultFrom: The author to use when ``from`` is `nil`.
    ///   - now: The time for the `Date` header when ``date`` is `nil`.
    /// - Returns: The rendered message, including its `Message-ID`.
    /// - Throws: ``SMTPError/invalidMessage(_:)`` if the message cannot be rendered
    ///   safely (no recipient, no sender, an invalid address, a header value with a
    ///   line break, a reserved extra header name…).
    public func render(defaultFrom: EmailAddress? = nil, now: Date = Date()) throws(SMTPError) -> RenderedEmail {
        try MessageRenderer.render(self, defaultFrom: defaultFrom, now: now)
    }
}

/// A rendered message: what goes after `DATA`, plus the envelope.
public struct RenderedEmail: Sendable, Hashable {
    /// The `Message-ID` header value including angle brackets, e.g.
    /// `"<4f1c…@example.com>"`. Keep it as the provider message id.
    public var messageID: String
    /// The envelope sender for `MAIL FROM`.
    public var envelopeFrom: String
    /// The envelope recipients for `RCPT TO` (to, cc and bcc, deduplicated).
    public var recipients: [String]
    /// The complete message (headers, blank line, body) with CRLF line endings,
    /// not dot-stuffed. Every line is at most 998 octets; the content is 7-bit
    /// except for addresses that need `SMTPUTF8`.
    public var bytes: [UInt8]
    /// `true` if an address requires the server's `SMTPUTF8` extension.
    public var requiresSMTPUTF8: Bool

    /// The message as a string (for debugging and tests).
    public var string: String { String(decoding: bytes, as: UTF8.self) }
}
