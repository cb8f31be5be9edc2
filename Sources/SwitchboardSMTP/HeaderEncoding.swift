// Header rendering: RFC 5322 folding, RFC 2047 encoded-words and mailbox lists. Pure functions.

/// Builds one header field, folding it (CRLF + whitespace) between chunks so that
/// lines stay within `preferredLineLength` whenever the chunks allow.
struct HeaderFolder {
    /// Lines containing encoded-words must not exceed 76 characters (RFC 2047 §2);
    /// RFC 5322 recommends 78. Using 76 everywhere satisfies both.
    static let preferredLineLength = 76

    private var lines: [String] = []
    private var current: String
    private var currentLength: Int
    private var hasContent = false

    init(name: String) {
        current = name + ":"
        currentLength = current.utf8.count
    }

    /// Appends a chunk that starts with whitespace (the whitespace is where a fold
    /// may happen). The chunk itself is never split.
    mutating func append(chunk: String) {
        let length = chunk.utf8.count
        if hasContent && currentLength + length > HeaderFolder.preferredLineLength {
            lines.append(current)
            current = chunk
            currentLength = length
        } else {
            current += chunk
            currentLength += length
        }
        hasContent = true
    }

    /// Appends a token preceded by a single space.
    mutating func append(token: String) {
        append(chunk: " " + token)
    }

    /// The header field with folds as CRLF, without a trailing CRLF.
    var rendered: String {
        (lines + [current]).joined(separator: "\r\n")
    }
}

/// RFC 2047 encoded-words.
enum EncodedWord {
    /// The longest an encoded-word may be (RFC 2047 §2).
    static let maximumLength = 75
    private static let prefixB = "=?UTF-8?B?"
    private static let prefixQ = "=?UTF-8?Q?"
    private static let suffix = "?="
    private static let hexDigits: [Character] = Array("0123456789ABCDEF")

    /// Characters that may appear literally in a "Q" encoded-word in any context,
    /// including a phrase (RFC 2047 §5 (3)): letters, digits and `!*+-/`.
    private static func isQLiteral(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "!"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "/"):
            return true
        default:
            return false
        }
    }

    private static func qLength(_ bytes: some Sequence<UInt8>) -> Int {
        bytes.reduce(0) { $0 + (isQLiteral($1) || $1 == 0x20 ? 1 : 3) }
    }

    private static func qEncode(_ bytes: [UInt8]) -> String {
        var result = ""
        for byte in bytes {
            if isQLiteral(byte) {
                result.append(Character(Unicode.Scalar(byte)))
            } else if byte == 0x20 {
                result.append("_")
            } else {
                result.append("=")
                result.append(hexDigits[Int(byte >> 4)])
                result.append(hexDigits[Int(byte & 0x0F)])
            }
        }
        return result
    }

    /// Encodes `text` as a sequence of encoded-words, each at most 75 characters
    /// and each holding only whole Unicode scalars (a UTF-8 sequence is never split
    /// across words, RFC 2047 §5). Chooses "Q" or "B" — whichever is shorter — for
    /// the whole text. The result is safe in unstructured headers and in phrases
    /// (display names). Adjacent encoded-words separated only by folding
    /// whitespace decode to the concatenation of their text.
    ///
    /// - Parameters:
    ///   - text: The text to encode.
    ///   - firstWordLimit: A smaller maximum length for the first word, so that it
    ///     fits on the line that starts with the field name (at least 16 is used).
    static func encode(_ text: String, firstWordLimit: Int = maximumLength) -> [String] {
        let utf8 = Array(text.utf8)
        let useB = Base64.encodedLength(utf8.count) < qLength(utf8)
        let overhead = prefixQ.count + suffix.count
        var budget = max(min(firstWordLimit, maximumLength), 16) - overhead
        var words: [String] = []
        var pending: [UInt8] = []
        var pendingLength = 0

        func flush() {
            guard !pending.isEmpty else { return }
            if useB {
                words.append(prefixB + Base64.encodeToString(pending) + suffix)
            } else {
                words.append(prefixQ + qEncode(pending) + suffix)
            }
            pending.removeAll(keepingCapacity: true)
            pendingLength = 0
        }

        for scalar in text.unicodeScalars {
            let bytes = Array(String(scalar).utf8)
            let newLength = useB
                ? Base64.encodedLength(pending.count + bytes.count)
                : pendingLength + qLength(bytes)
            if newLength > budget && !pending.isEmpty {
                flush()
                budget = maximumLength - overhead
            }
            pending.append(contentsOf: bytes)
            pendingLength = useB ? Base64.encodedLength(pending.count) : pendingLength + qLength(bytes)
        }
        flush()
        if words.isEmpty {
            words.append(prefixQ + suffix)
        }
        return words
    }
}

/// Renders header fields.
enum HeaderRenderer {
    /// The longest whitespace-delimited chunk that is folded as plain text; a value
    /// with a longer word (or one with non-ASCII text) is RFC 2047-encoded instead,
    /// so that no line can exceed 998 octets.
    private static let maximumPlainChunk = 200

    /// `true` if the text is printable ASCII (plus space and tab) only.
    static func isPlainASCII(_ text: String) -> Bool {
        text.utf8.allSatisfy { ($0 >= 0x20 && $0 < 0x7F) || $0 == 0x09 }
    }

    /// Validates a header field value: no CR, LF or NUL (which would allow header injection).
    static func validateValue(_ value: String, field: String) throws(SMTPError) {
        if value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0x00 }) {
            throw SMTPError.invalidMessage("header \(field) contains a line break or NUL")
        }
    }

    /// Validates a header field name: 1–76 printable ASCII characters except `:` (RFC 5322 §2.2).
    static func validateName(_ name: String) throws(SMTPError) {
        guard !name.isEmpty, name.utf8.count <= 76,
              name.utf8.allSatisfy({ $0 >= 33 && $0 <= 126 && $0 != UInt8(ascii: ":") })
        else {
            throw SMTPError.invalidMessage("invalid header field name \(quoted(name))")
        }
    }

    /// Renders an unstructured header (e.g. `Subject`): folded plain text when it is
    /// ASCII with reasonably short words, RFC 2047 encoded-words otherwise.
    static func unstructured(name: String, value: String) -> String {
        var folder = HeaderFolder(name: name)
        if let chunks = plainChunks(value) {
            for chunk in chunks { folder.append(chunk: chunk) }
        } else {
            let words = EncodedWord.encode(value, firstWordLimit: firstLineRoom(name: name))
            for word in words { folder.append(token: word) }
        }
        return folder.rendered
    }

    /// The room left on the first line of a field after `Name: `.
    private static func firstLineRoom(name: String) -> Int {
        HeaderFolder.preferredLineLength - name.utf8.count - 2
    }

    /// Splits a plain ASCII value into chunks that each begin with the whitespace
    /// preceding a word (the first chunk gets one added space), or returns `nil`
    /// when the value must be encoded instead.
    private static func plainChunks(_ value: String) -> [String]? {
        guard isPlainASCII(value), !value.contains("=?") else { return nil }
        var chunks: [String] = []
        var current = " "
        var inWord = false
        for character in value {
            let isSpace = character == " " || character == "\t"
            if isSpace && inWord {
                chunks.append(current)
                current = ""
                inWord = false
            }
            if !isSpace { inWord = true }
            current.append(character)
        }
        if !current.isEmpty {
            if inWord || chunks.isEmpty {
                chunks.append(current)
            } else {
                // Trailing whitespace stays attached to the last word: a folded line
                // must never consist of whitespace only.
                chunks[chunks.count - 1] += current
            }
        }
        if chunks.contains(where: { $0.utf8.count > maximumPlainChunk }) { return nil }
        return chunks
    }

    /// Renders an address header (`From`, `To`, `Cc`, `Reply-To`) as a folded mailbox list.
    static func addressList(name: String, addresses: [EmailAddress]) -> String {
        var folder = HeaderFolder(name: name)
        for (index, address) in addresses.enumerated() {
            var tokens = mailboxTokens(
                address,
                firstWordLimit: index == 0 ? firstLineRoom(name: name) : EncodedWord.maximumLength
            )
            if index < addresses.count - 1 {
                tokens[tokens.count - 1] += ","
            }
            for token in tokens { folder.append(token: token) }
        }
        return folder.rendered
    }

    /// The tokens of one mailbox: display-name words (atoms, one quoted-string, or
    /// encoded-words) followed by `<address>`; or the bare address.
    static func mailboxTokens(_ mailbox: EmailAddress, firstWordLimit: Int = EncodedWord.maximumLength) -> [String] {
        guard let name = mailbox.name?.trimmingWhitespace(), !name.isEmpty else {
            return [mailbox.address]
        }
        return displayNameTokens(name, firstWordLimit: firstWordLimit) + ["<\(mailbox.address)>"]
    }

    private static func displayNameTokens(_ name: String, firstWordLimit: Int) -> [String] {
        if isPlainASCII(name) && !name.contains("=?") {
            let atoms = name.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if atoms.allSatisfy({ $0.utf8.count <= 70 && $0.utf8.allSatisfy(isAtext) }) {
                return atoms.map(String.init)
            }
            if name.utf8.count <= 70 {
                var quotedName = "\""
                for character in name {
                    if character == "\"" || character == "\\" { quotedName.append("\\") }
                    quotedName.append(character)
                }
                quotedName.append("\"")
                return [quotedName]
            }
        }
        return EncodedWord.encode(name, firstWordLimit: firstWordLimit)
    }

    /// `atext` from RFC 5322 §3.2.3.
    private static func isAtext(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-/=?^_`{|}~".utf8.contains(byte)
        }
    }
}

extension String {
    /// The string without leading and trailing spaces and tabs.
    func trimmingWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else {
            return ""
        }
        return String(self[first...last])
    }
}
