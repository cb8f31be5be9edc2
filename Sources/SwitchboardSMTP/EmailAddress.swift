/// A mailbox: an address with an optional human-readable display name.
///
/// The address is used both in the SMTP envelope (`MAIL FROM` / `RCPT TO`) and in
/// the message headers. A display name may contain any Unicode text; it is
/// quoted or RFC 2047-encoded as needed when the message is rendered.
///
/// ```swift
/// let alice = EmailAddress("alice@example.com", name: "Alice Müller")
/// let bob: EmailAddress = "bob@example.com"
/// ```
public struct EmailAddress: Sendable, Hashable, CustomStringConvertible, ExpressibleByStringLiteral {
    /// The bare address (`local-part@domain`), without angle brackets.
    public var address: String

    /// An optional display name, e.g. `"Alice Müller"`.
    public var name: String?

    /// Creates a mailbox from a bare address and an optional display name.
    ///
    /// - Parameters:
    ///   - address: The address, e.g. `"alice@example.com"` (no angle brackets).
    ///   - name: An optional display name.
    public init(_ address: String, name: String? = nil) {
        self.address = address
        self.name = name
    }

    /// Creates a mailbox with no display name from a string literal holding a bare address.
    public init(stringLiteral value: String) {
        self.init(value)
    }

    /// The mailbox as a human would write it, e.g. `Alice <alice@example.com>`.
    /// This is for logs and diagnostics only; it is not the encoded header form.
    public var description: String {
        if let name, !name.isEmpty {
            return "\(name) <\(address)>"
        }
        return address
    }

    /// `true` when the address itself (not the display name) contains non-ASCII
    /// characters, which requires the server's `SMTPUTF8` extension (RFC 6531).
    public var requiresSMTPUTF8: Bool {
        address.utf8.contains { $0 >= 0x80 }
    }

    /// The domain part of the address (after the last `@`), if any.
    var domain: Substring? {
        guard let at = address.lastIndex(of: "@") else { return nil }
        return address[address.index(after: at)...]
    }

    /// Checks that the address is usable in an SMTP envelope and a header.
    ///
    /// This is deliberately a conservative syntactic check (not a full RFC 5321
    /// parser): exactly one `@`, a non-empty local part and domain, at most 254
    /// octets, and none of the characters that would break the envelope or a
    /// header (whitespace, control characters, `<>()[],;:\"` outside a domain
    /// literal). Quoted local parts are not supported.
    func validate(role: String) throws(SMTPError) {
        let bytes = Array(address.utf8)
        guard !bytes.isEmpty else {
            throw SMTPError.invalidMessage("\(role) address is empty")
        }
        guard bytes.count <= 254 else {
            throw SMTPError.invalidMessage("\(role) address is longer than 254 octets")
        }
        let atCount = bytes.reduce(0) { $0 + ($1 == UInt8(ascii: "@") ? 1 : 0) }
        guard atCount == 1, let atIndex = bytes.firstIndex(of: UInt8(ascii: "@")) else {
            throw SMTPError.invalidMessage("\(role) address \(quoted(address)) must contain exactly one '@'")
        }
        let local = bytes[..<atIndex]
        let domain = bytes[(atIndex + 1)...]
        guard !local.isEmpty, !domain.isEmpty else {
            throw SMTPError.invalidMessage("\(role) address \(quoted(address)) has an empty local part or domain")
        }
        let forbidden: Set<UInt8> = Set("<>(),;:\\\"".utf8).union([UInt8(ascii: " "), 0x7F])
        let isDomainLiteral = domain.first == UInt8(ascii: "[") && domain.last == UInt8(ascii: "]")
        for (index, byte) in bytes.enumerated() {
            if byte < 0x20 || forbidden.contains(byte) {
                // A colon is legal inside an IPv6 domain literal such as [IPv6:2001:db8::1].
                if isDomainLiteral && index > atIndex && byte == UInt8(ascii: ":") { continue }
                throw SMTPError.invalidMessage("\(role) address \(quoted(address)) contains a forbidden character")
            }
            if !isDomainLiteral && (byte == UInt8(ascii: "[") || byte == UInt8(ascii: "]")) {
                throw SMTPError.invalidMessage("\(role) address \(quoted(address)) contains a forbidden character")
            }
        }
        if let name, name.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\0" }) {
            throw SMTPError.invalidMessage("\(role) display name contains a line break or NUL")
        }
    }
}

/// Quotes a value for an error message, escaping nothing: used for diagnostics only.
func quoted(_ value: String) -> String {
    "\"\(value)\""
}
