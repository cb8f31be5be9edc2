/// A file attached to an email request (`data.attachments[i]`).
///
/// A client sends `{filename, contentType, content}` with `content` in base64; at accept (`API.admit`) the bytes
/// go to the `AttachmentStore` under their SHA-256 and the stored request keeps `{filename, contentType, size,
/// sha256}` only, so the bytes are never copied into stream entries, logs, events or the search index.
public struct EmailAttachment: Sendable, Hashable {
    /// The name the recipient sees: 1 to 255 characters (code points), no path separator (`/`, `\`) or control character.
    public var filename: String
    /// The media type, `type/subtype` (RFC 2045 tokens, no parameters), e.g. `application/pdf`.
    public var contentType: String
    /// The number of bytes (decoded).
    public var size: Int
    /// The lowercase hex SHA-256 of the bytes: the `AttachmentStore` key. Nil on a client's request until admitted.
    public var sha256: String?
    /// The bytes, decoded from the client's base64: present between validation and admission only.
    public var content: [UInt8]?

    public init(filename: String, contentType: String, size: Int, sha256: String? = nil, content: [UInt8]? = nil) {
        self.filename = filename
        self.contentType = contentType
        self.size = size
        self.sha256 = sha256
        self.content = content
    }

    /// The stored form, `data.attachments[i]` once admitted: `{filename, contentType, size, sha256}`.
    public var storedJSON: JSONValue {
        var o: [String: JSONValue] = ["filename": .string(filename), "contentType": .string(contentType), "size": .number(Double(size))]
        if let sha256 { o["sha256"] = .string(sha256) }
        return .object(o)
    }
}

/// The limits of the email fields beyond `from`, `to`, `msg`, `subject` and `html`.
public enum EmailLimits {
    /// At most this many addresses in `data.cc`, and as many in `data.bcc`.
    public static let maxCopies = 50
    /// At most this many items in `data.attachments`.
    public static let maxAttachments = 20
    /// The attachments' decoded bytes, all together: 10 MiB.
    public static let maxAttachmentBytes = 10 << 20
    /// A filename's length, in Unicode code points (as JSON Schema's `maxLength` counts).
    public static let maxFilenameLength = 255
    /// A content type's length.
    public static let maxContentTypeLength = 127
}

/// Strict base64 (RFC 4648 §4, the standard alphabet) with padding; line breaks and spaces between groups are
/// skipped, as `base64` without `-w 0` wraps its output.
public enum Base64Decoding {
    static let table: [UInt8] = {
        var t = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8.enumerated() { t[Int(c)] = UInt8(i) }
        return t
    }()

    /// The bytes `text` encodes, or nil when it is not base64 (a character outside the alphabet, a length that
    /// is not a multiple of 4, padding anywhere but at the end).
    public static func decode(_ text: String) -> [UInt8]? {
        var text = text
        return text.withUTF8 { decode(bytes: $0) }
    }

    static func decode(bytes input: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(input.count / 4 * 3)
        var quad: (UInt32, Int) = (0, 0)  // the bits so far, how many characters
        var padding = 0
        for c in input {
            if c == 0x20 || c == 0x09 || c == 0x0D || c == 0x0A { continue }
            if c == UInt8(ascii: "=") {
                padding += 1
                guard padding <= 2, quad.1 >= 2 else { return nil }
                quad.0 <<= 6
                quad.1 += 1
            } else {
                let v = table[Int(c)]
                guard v != 0xFF, padding == 0 else { return nil }
                quad.0 = quad.0 << 6 | UInt32(v)
                quad.1 += 1
            }
            if quad.1 == 4 {
                let n = quad.0
                out.append(UInt8(truncatingIfNeeded: n >> 16))
                if padding < 2 { out.append(UInt8(truncatingIfNeeded: n >> 8)) }
                if padding < 1 { out.append(UInt8(truncatingIfNeeded: n)) }
                quad = (0, 0)
                if padding > 0 { padding = 3 }  // nothing may follow a padded group
            }
        }
        guard quad.1 == 0 else { return nil }
        return out
    }
}

/// The validated email fields beyond the seed's: copies, reply-to and attachments.
struct EmailExtras {
    var cc: [String] = []
    var bcc: [String] = []
    var replyTo: String?
    var attachments: [EmailAttachment] = []
}

extension RequestValidator {
    /// The keys an email request takes beyond `from`, `to`, `msg`, `callbackUrl`.
    static let emailKeys: Set<String> = ["subject", "html", "cc", "bcc", "replyTo", "attachments"]

    /// Validates `data.cc`, `data.bcc`, `data.replyTo` and `data.attachments` of an email request. `stored`: `data`
    /// as admitted and stored (attachments as `{filename, contentType, size, sha256}`), not a client's (which must
    /// send `content` and may not name a `sha256`).
    static func validateEmailExtras(_ data: [String: JSONValue], stored: Bool) -> Result<EmailExtras, RequestError> {
        var extras = EmailExtras()
        func addresses(_ key: String) -> Result<[String], RequestError> {
            guard let v = data[key], v != .null else { return .success([]) }
            guard case .array(let items) = v else {
                return .failure(RequestError(code: "invalid_field_type", message: "\"data.\(key)\" must be an array of email addresses, not \(v.typeName).", field: "data.\(key)"))
            }
            guard items.count <= EmailLimits.maxCopies else {
                return .failure(RequestError(code: "too_many_recipients", message: "\"data.\(key)\" has \(items.count) addresses; at most \(EmailLimits.maxCopies).", field: "data.\(key)"))
            }
            var out: [String] = []
            for (i, item) in items.enumerated() {
                let field = "data.\(key)[\(i)]"
                guard case .string(let s) = item else {
                    return .failure(RequestError(code: "invalid_field_type", message: "\"\(field)\" must be a string, not \(item.typeName).", field: field))
                }
                if let problem = Address.emailProblem(s) {
                    return .failure(RequestError(code: "invalid_email", message: "\"\(field)\" must be an email address the providers can send to (e.g. ada@example.com): \(problem); got \"\(s.prefix(80))\".", field: field))
                }
                out.append(s)
            }
            return .success(out)
        }
        switch addresses("cc") {
        case .failure(let e): return .failure(e)
        case .success(let a): extras.cc = a
        }
        switch addresses("bcc") {
        case .failure(let e): return .failure(e)
        case .success(let a): extras.bcc = a
        }
        if let v = data["replyTo"], v != .null {
            guard case .string(let s) = v else {
                return .failure(RequestError(code: "invalid_field_type", message: "\"data.replyTo\" must be a string (one email address), not \(v.typeName).", field: "data.replyTo"))
            }
            if let problem = Address.emailProblem(s) {
                return .failure(RequestError(code: "invalid_email", message: "\"data.replyTo\" must be an email address (e.g. ada@example.com): \(problem); got \"\(s.prefix(80))\".", field: "data.replyTo"))
            }
            extras.replyTo = s
        }
        if let v = data["attachments"], v != .null {
            guard case .array(let items) = v else {
                return .failure(RequestError(code: "invalid_field_type", message: "\"data.attachments\" must be an array of {filename, contentType, content}, not \(v.typeName).", field: "data.attachments"))
            }
            guard items.count <= EmailLimits.maxAttachments else {
                return .failure(RequestError(code: "too_many_attachments", message: "\"data.attachments\" has \(items.count) items; at most \(EmailLimits.maxAttachments).", field: "data.attachments"))
            }
            var total = 0
            for (i, item) in items.enumerated() {
                switch attachment(item, index: i, stored: stored) {
                case .failure(let e): return .failure(e)
                case .success(let a):
                    total += a.size
                    if total > EmailLimits.maxAttachmentBytes {
                        return .failure(RequestError(code: "attachments_too_large", message: "The attachments add up to more than \(EmailLimits.maxAttachmentBytes >> 20) MiB (decoded) at \"data.attachments[\(i)]\".", field: "data.attachments[\(i)]"))
                    }
                    extras.attachments.append(a)
                }
            }
        }
        return .success(extras)
    }

    static func attachment(_ item: JSONValue, index i: Int, stored: Bool) -> Result<EmailAttachment, RequestError> {
        let base = "data.attachments[\(i)]"
        func bad(_ key: String?, _ why: String) -> Result<EmailAttachment, RequestError> {
            let field = key.map { "\(base).\($0)" } ?? base
            return .failure(RequestError(code: "invalid_attachment", message: "\"\(field)\" \(why).", field: field))
        }
        guard case .object(let o) = item else {
            return bad(nil, "must be an object with filename, contentType and content (base64), not \(item.typeName)")
        }
        let keys: Set<String> = stored ? ["filename", "contentType", "size", "sha256"] : ["filename", "contentType", "content"]
        for key in o.keys.sorted() where !keys.contains(key) {
            return .failure(RequestError(code: "unknown_field", message: "\"\(base).\(key)\" is not an attachment field; allowed: \(keys.sorted().joined(separator: ", ")).", field: "\(base).\(key)"))
        }
        guard case .string(let filename)? = o["filename"] else { return bad("filename", "is required: the file's name, a string") }
        if let why = filenameProblem(filename) { return bad("filename", why) }
        guard case .string(let contentType)? = o["contentType"] else { return bad("contentType", "is required: a media type such as application/pdf") }
        guard isMediaType(contentType) else {
            return bad("contentType", "must be a media type type/subtype (e.g. application/pdf, image/png), without parameters; got \"\(contentType.prefix(80))\"")
        }
        if stored {
            guard case .number(let n)? = o["size"], n >= 0, n == n.rounded(), n <= Double(EmailLimits.maxAttachmentBytes) else { return bad("size", "must be the number of bytes") }
            guard case .string(let sha)? = o["sha256"], sha.utf8.count == 64, sha.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else {
                return bad("sha256", "must be a lowercase hex SHA-256")
            }
            return .success(EmailAttachment(filename: filename, contentType: contentType, size: Int(n), sha256: sha))
        }
        guard let c = o["content"] else { return bad("content", "is required: the file's bytes in base64") }
        guard case .string(let text) = c, let bytes = Base64Decoding.decode(text) else {
            return bad("content", "must be the file's bytes in base64 (RFC 4648, with padding)")
        }
        return .success(EmailAttachment(filename: filename, contentType: contentType, size: bytes.count, content: bytes))
    }

    /// Why `name` cannot be an attachment's filename, or nil.
    static func filenameProblem(_ name: String) -> String? {
        if name.isEmpty || name.allSatisfy(\.isWhitespace) { return "must not be empty" }
        if name.unicodeScalars.count > EmailLimits.maxFilenameLength { return "may have at most \(EmailLimits.maxFilenameLength) characters" }
        if name.unicodeScalars.contains(where: { $0 == "/" || $0 == "\\" }) { return "must be a file name without a path (no / or \\)" }
        if name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F || (0x80...0x9F).contains($0.value) || $0 == "\u{2028}" || $0 == "\u{2029}" }) {
            return "must not hold a control character (CR, LF, tab, …)"
        }
        if name == "." || name == ".." { return "must be a file name" }
        return nil
    }

    /// RFC 2045 `type "/" subtype`, both tokens (printable ASCII without tspecials or space).
    static func isMediaType(_ s: String) -> Bool {
        let bytes = Array(s.utf8)
        guard bytes.count <= EmailLimits.maxContentTypeLength, let slash = bytes.firstIndex(of: UInt8(ascii: "/")) else { return false }
        let tspecials = Set("()<>@,;:\\\"/[]?=".utf8)
        func token(_ t: ArraySlice<UInt8>) -> Bool { !t.isEmpty && t.allSatisfy { $0 > 0x20 && $0 < 0x7F && !tspecials.contains($0) } }
        return token(bytes[..<slash]) && token(bytes[(slash + 1)...])
    }
}

extension CommunicationRequest {
    /// The email fields read from `data` as stored (no validation: a store read is not a client's input):
    /// `cc`, `bcc`, `replyTo`, and the attachments' stored form (`{filename, contentType, size, sha256}`).
    mutating func readEmailExtras(stored data: JSONValue) {
        func strings(_ key: String) -> [String] {
            guard case .array(let items)? = data[key] else { return [] }
            return items.compactMap { if case .string(let s) = $0 { s } else { nil } }
        }
        cc = strings("cc")
        bcc = strings("bcc")
        if case .string(let r)? = data["replyTo"] { replyTo = r }
        guard case .array(let items)? = data["attachments"] else { return }
        attachments = items.compactMap { item in
            guard case .object(let o) = item, case .string(let name)? = o["filename"] else { return nil }
            let type: String = if case .string(let t)? = o["contentType"] { t } else { "application/octet-stream" }
            let size: Int = if case .number(let n)? = o["size"] { Int(n) } else { 0 }
            let sha: String? = if case .string(let s)? = o["sha256"] { s } else { nil }
            return EmailAttachment(filename: name, contentType: type, size: size, sha256: sha)
        }
    }

    /// The request as stored once its attachments' bytes are in the `AttachmentStore`: `data.attachments` holds
    /// `{filename, contentType, size, sha256}` (the `sha256` of each given in `digests`, in order) and no content.
    public func withStoredAttachments(_ digests: [String]) -> CommunicationRequest {
        precondition(digests.count == attachments.count)
        var copy = self
        copy.attachments = zip(attachments, digests).map { a, sha in
            EmailAttachment(filename: a.filename, contentType: a.contentType, size: a.size, sha256: sha)
        }
        if case .object(var o) = data {
            o["attachments"] = .array(copy.attachments.map(\.storedJSON))
            copy.data = .object(o)
        }
        return copy
    }
}
