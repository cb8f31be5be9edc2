/// One complete (possibly multi-line) reply from an SMTP server (RFC 5321 §4.2).
///
/// A multi-line reply such as
/// ```
/// 250-mail.example.com greets you
/// 250-SIZE 35882577
/// 250 STARTTLS
/// ```
/// is folded into a single value with `code == 250` and three `lines`.
public struct SMTPReply: Sendable, Hashable, CustomStringConvertible {
    /// The three-digit reply code, e.g. `250`, `451`, `550`.
    public var code: Int

    /// The text of every line, without the code and the separator (`-` or space).
    public var lines: [String]

    /// The RFC 3463 enhanced status code found at the start of the first line's text,
    /// if the server sent one (e.g. `5.1.1` in `550 5.1.1 no such user`).
    public var enhancedStatusCode: SMTPEnhancedStatusCode?

    /// Creates a reply. The enhanced status code is parsed from the first line
    /// when its class matches the first digit of `code`.
    ///
    /// - Parameters:
    ///   - code: The three-digit reply code.
    ///   - lines: The text of each line (without code and separator).
    public init(code: Int, lines: [String]) {
        self.code = code
        self.lines = lines
        self.enhancedStatusCode = lines.first.flatMap { SMTPEnhancedStatusCode(prefixOf: $0, replyCode: code) }
    }

    /// The server's human-readable text: all lines joined with newlines, with the
    /// enhanced status code removed from the first line when there was one.
    public var text: String {
        guard var first = lines.first else { return "" }
        if enhancedStatusCode != nil {
            first = String(first.drop { $0 != " " && $0 != "\t" }.drop { $0 == " " || $0 == "\t" })
        }
        return ([first] + lines.dropFirst()).joined(separator: "\n")
    }

    /// `true` for 2xx replies (positive completion).
    public var isPositiveCompletion: Bool { (200..<300).contains(code) }

    /// `true` for 3xx replies (positive intermediate, e.g. `354` or `334`).
    public var isPositiveIntermediate: Bool { (300..<400).contains(code) }

    /// `true` for 4xx replies (transient negative completion).
    public var isTransientFailure: Bool { (400..<500).contains(code) }

    /// `true` for 5xx replies (permanent negative completion).
    public var isPermanentFailure: Bool { (500..<600).contains(code) }

    /// The reply as the server sent it, with lines separated by newlines,
    /// e.g. `"250 2.0.0 Ok: queued as 12345"`.
    public var description: String {
        if lines.isEmpty { return "\(code)" }
        return lines.map { "\(code) \($0)" }.joined(separator: "\n")
    }
}

/// An RFC 3463 enhanced mail system status code such as `5.1.1`.
public struct SMTPEnhancedStatusCode: Sendable, Hashable, CustomStringConvertible {
    /// The class: 2 (success), 4 (persistent transient failure) or 5 (permanent failure).
    public var statusClass: Int
    /// The subject, e.g. `1` for addressing status.
    public var subject: Int
    /// The detail, e.g. `1` in `5.1.1` (bad destination mailbox address).
    public var detail: Int

    /// Creates an enhanced status code from its three components.
    public init(statusClass: Int, subject: Int, detail: Int) {
        self.statusClass = statusClass
        self.subject = subject
        self.detail = detail
    }

    /// Parses a string of the form `class.subject.detail`, e.g. `"4.3.0"`.
    /// Returns `nil` if the string is not exactly such a code.
    public init?(_ string: String) {
        let parts = string.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3,
              parts[0].count == 1, let statusClass = Int(parts[0]), [2, 4, 5].contains(statusClass),
              (1...3).contains(parts[1].count), parts[1].allSatisfy(\.isASCIIDigit), let subject = Int(parts[1]),
              (1...3).contains(parts[2].count), parts[2].allSatisfy(\.isASCIIDigit), let detail = Int(parts[2])
        else { return nil }
        self.init(statusClass: statusClass, subject: subject, detail: detail)
    }

    /// Parses the enhanced status code at the start of a reply line's text, if any,
    /// accepting it only when its class agrees with the reply code's first digit.
    init?(prefixOf text: String, replyCode: Int) {
        let token = text.prefix { $0 != " " && $0 != "\t" }
        guard let parsed = SMTPEnhancedStatusCode(String(token)), parsed.statusClass == replyCode / 100 else {
            return nil
        }
        self = parsed
    }

    /// The code in dotted form, e.g. `"5.1.1"`.
    public var description: String { "\(statusClass).\(subject).\(detail)" }
}

extension Character {
    /// `true` for the ASCII digits 0-9 only (unlike `isNumber`, which accepts other scripts).
    var isASCIIDigit: Bool {
        guard let ascii = asciiValue else { return false }
        return ascii >= UInt8(ascii: "0") && ascii <= UInt8(ascii: "9")
    }
}
