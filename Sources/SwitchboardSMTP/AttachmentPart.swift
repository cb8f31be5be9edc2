// An attachment as a MIME body part (RFC 2045, 2183, 2231). Pure functions, no I/O.

/// Renders an ``EmailMessage/Attachment``:
///
///     Content-Type: application/pdf;
///      name="report.pdf"
///     Content-Disposition: attachment;
///      filename="report.pdf"
///     Content-Transfer-Encoding: base64
///
///     JVBERi0xLjQK…
///
/// A name that is not plain ASCII (or holds `"`, `\` or is long) is written twice, as readers expect it: the
/// `filename` parameter in RFC 2231 form (`filename*0*=UTF-8''%C3%A9t%C3%A9.pdf`, continued on further lines), which
/// standard readers (Python's `email`, Thunderbird, Apple Mail, Gmail) read, and the `name` parameter of
/// `Content-Type` as RFC 2047 encoded-words (`name="=?UTF-8?B?…?="`), which older Outlook versions read.
enum AttachmentPart {
    /// The longest plain name written as a quoted string; longer ones take the RFC 2231 form.
    static let maximumPlainName = 60
    /// The longest filename, in UTF-8 bytes (the API allows 255 characters).
    static let maximumFilenameBytes = 1020

    static func validate(_ a: EmailMessage.Attachment) throws(SMTPError) {
        let name = a.filename
        guard !name.isEmpty, name.utf8.count <= maximumFilenameBytes else {
            throw SMTPError.invalidMessage("attachment filename must have 1 to \(maximumFilenameBytes) bytes")
        }
        if name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F || $0 == "/" || $0 == "\\" }) {
            throw SMTPError.invalidMessage("attachment filename \(quoted(name)) holds a control character or a path separator")
        }
        guard isMediaType(a.contentType) else {
            throw SMTPError.invalidMessage("attachment content type \(quoted(a.contentType)) is not type/subtype")
        }
    }

    /// RFC 2045 `type "/" subtype`, both tokens.
    static func isMediaType(_ s: String) -> Bool {
        let parts = s.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        return parts.count == 2 && s.utf8.count <= 127 && parts.allSatisfy { !$0.isEmpty && $0.allSatisfy(isToken) }
    }

    /// RFC 2045 token characters: printable ASCII except space and tspecials.
    static func isToken(_ b: UInt8) -> Bool {
        b > 0x20 && b < 0x7F && !"()<>@,;:\\\"/[]?=".utf8.contains(b)
    }

    /// RFC 2231 attribute-char: a token character other than `*`, `'` and `%`.
    static func isAttributeChar(_ b: UInt8) -> Bool {
        isToken(b) && b != UInt8(ascii: "*") && b != UInt8(ascii: "'") && b != UInt8(ascii: "%")
    }

    /// Whether `name` can be written as a plain quoted string.
    static func isPlain(_ name: String) -> Bool {
        name.utf8.count <= maximumPlainName
            && name.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }
    }

    static func append(_ a: EmailMessage.Attachment, to output: inout [UInt8]) {
        var head = "Content-Type: \(a.contentType);\r\n name=\"\(nameValue(a.filename))\"\r\n"
        head += "Content-Disposition: attachment;\r\n" + filenameParameter(a.filename) + "\r\n"
        head += "Content-Transfer-Encoding: base64\r\n\r\n"
        output.append(contentsOf: head.utf8)
        output.append(contentsOf: Base64.encodeBody(a.bytes))
    }

    /// The `name` parameter's value, inside quotes: the name itself, or RFC 2047 "B" encoded-words (never splitting a
    /// character), one a line (folded inside the quotes), so that no line passes 76 characters.
    static func nameValue(_ name: String) -> String {
        if isPlain(name) { return name }
        var words: [String] = []
        var pending: [UInt8] = []
        for scalar in name.unicodeScalars {
            let bytes = Array(String(scalar).utf8)
            if pending.count + bytes.count > 42 {  // 42 bytes: 56 base64 characters, a line of 75 with ` name="=?UTF-8?B?…?=`
                words.append("=?UTF-8?B?" + Base64.encodeToString(pending) + "?=")
                pending.removeAll()
            }
            pending += bytes
        }
        if !pending.isEmpty { words.append("=?UTF-8?B?" + Base64.encodeToString(pending) + "?=") }
        return words.joined(separator: "\r\n ")
    }

    /// The `filename` parameter, on its own folded line(s): ` filename="name"`, or the RFC 2231 form split into
    /// continuations of at most 50 characters (never inside a `%XX`): ` filename*0*=UTF-8''…;` CRLF ` filename*1*=…`.
    static func filenameParameter(_ name: String) -> String {
        if isPlain(name) { return " filename=\"\(name)\"" }
        let hex = Array("0123456789ABCDEF".utf8)
        var pieces: [String] = []
        var current: [UInt8] = []
        for b in name.utf8 {
            let encoded: [UInt8] = isAttributeChar(b) ? [b] : [UInt8(ascii: "%"), hex[Int(b >> 4)], hex[Int(b & 0x0F)]]
            if current.count + encoded.count > 50 {  // a line of at most 71 with ` filename*0*=UTF-8''` and `;`
                pieces.append(String(decoding: current, as: UTF8.self))
                current.removeAll()
            }
            current += encoded
        }
        if !current.isEmpty { pieces.append(String(decoding: current, as: UTF8.self)) }
        return pieces.enumerated().map { i, piece in
            " filename*\(i)*=" + (i == 0 ? "UTF-8''" : "") + piece
        }.joined(separator: ";\r\n")
    }
}
