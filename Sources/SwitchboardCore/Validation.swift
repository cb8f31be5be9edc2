/// A client error: what is wrong with a request, which field, and a stable machine-readable code.
///
/// The HTTP layer renders it as `{"error":{"code":…,"message":…,"field":…}}`.
public struct RequestError: Error, Sendable, Hashable {
    /// Stable machine-readable code, e.g. `missing_field`.
    public var code: String
    /// Human-readable explanation.
    public var message: String
    /// The JSON path of the offending field (`data.to`), when one field is at fault.
    public var field: String?

    public init(code: String, message: String, field: String? = nil) {
        self.code = code
        self.message = message
        self.field = field
    }
}

/// A WhatsApp template message requested through `data.template`.
public struct WhatsAppTemplate: Sendable, Hashable, Codable {
    /// Template name as approved in the WhatsApp Business Manager.
    public var name: String
    /// Language code, e.g. `en_US`.
    public var language: String
    /// Body parameters, in order.
    public var parameters: [String]

    public init(name: String, language: String, parameters: [String]) {
        self.name = name
        self.language = language
        self.parameters = parameters
    }
}

/// A validated request to send one communication.
public struct CommunicationRequest: Sendable, Hashable {
    public var channel: MessageChannel
    public var from: String
    public var to: String
    public var msg: String
    /// Email subject (email only).
    public var subject: String?
    /// Email HTML body (email only); `msg` is the text part.
    public var html: String?
    /// WhatsApp template (whatsapp only).
    public var template: WhatsAppTemplate?
    /// Email copies, reply-to and attachments (email only; `EmailExtras.swift`). Bcc addresses are envelope
    /// recipients only, never in the message's headers.
    public var cc: [String] = []
    public var bcc: [String] = []
    public var replyTo: String?
    /// Attachments: with their bytes (`content`) from validation to admission; by `sha256` once admitted.
    public var attachments: [EmailAttachment] = []
    /// When to send it (`data.sendAt`, RFC 3339); nil: at once. A time already past also means at once.
    public var sendAt: Timestamp?
    /// `data` exactly as the client sent it, echoed in the response and kept with the message.
    public var data: JSONValue

    public init(channel: MessageChannel, from: String, to: String, msg: String, subject: String? = nil, html: String? = nil, template: WhatsAppTemplate? = nil, sendAt: Timestamp? = nil, data: JSONValue? = nil) {
        self.sendAt = sendAt
        self.channel = channel
        self.from = from
        self.to = to
        self.msg = msg
        self.subject = subject
        self.html = html
        self.template = template
        var object: [String: JSONValue] = ["from": .string(from), "to": .string(to), "msg": .string(msg)]
        if let subject { object["subject"] = .string(subject) }
        if let html { object["html"] = .string(html) }
        if let sendAt { object["sendAt"] = .string(sendAt.iso8601) }
        if let template {
            object["template"] = .object([
                "name": .string(template.name), "language": .string(template.language),
                "parameters": .array(template.parameters.map { .string($0) }),
            ])
        }
        self.data = data ?? .object(object)
    }
}

extension CommunicationRequest {
    /// `data.callbackUrl`: where this message's status changes are also POSTed (validated: an absolute http(s) URL).
    public var callbackURL: String? {
        guard case .object(let o) = data, case .string(let url)? = o["callbackUrl"] else { return nil }
        return url
    }
}

extension CommunicationRequest {
    /// `data.metadata`: the client's own correlation pairs (validated: `Metadata`); empty when none.
    public var metadata: [String: String] { Metadata.pairs(data) }
}

/// `data.metadata`: an object of string keys and string values a client attaches to a message for its own
/// correlation (an order id, a user id). Stored with the message, returned on reads, in events and callbacks,
/// searchable (`GET /api/v1/communications?metadata.<key>=<value>`), never sent to the recipient.
public enum Metadata {
    /// At most this many keys.
    public static let maxKeys = 50
    /// A key is 1 to this many characters of `[A-Za-z0-9_.-]`.
    public static let maxKeyLength = 40
    /// A value is a string of at most this many characters (Unicode code points; empty allowed).
    public static let maxValueLength = 500

    public static func isValidKey(_ k: String) -> Bool {
        let u = k.utf8
        guard (1...maxKeyLength).contains(u.count) else { return false }
        return u.allSatisfy { Address.isAlnum($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
    }

    /// What is wrong with `value` as `data.metadata`, or nil.
    public static func problem(_ value: JSONValue) -> RequestError? {
        guard case .object(let o) = value else {
            return RequestError(code: "invalid_metadata", message: "\"data.metadata\" must be an object of string keys and string values, not \(value.typeName).", field: "data.metadata")
        }
        if o.count > maxKeys {
            return RequestError(code: "invalid_metadata", message: "\"data.metadata\" has \(o.count) keys; at most \(maxKeys) are allowed.", field: "data.metadata")
        }
        for key in o.keys.sorted() {
            guard isValidKey(key) else {
                return RequestError(code: "invalid_metadata", message: "The metadata key \"\(key.prefix(64))\" must be 1 to \(maxKeyLength) characters of letters, digits, \"_\", \".\" and \"-\".", field: "data.metadata.\(key.prefix(64))")
            }
            guard case .string(let v)? = o[key] else {
                return RequestError(code: "invalid_metadata", message: "\"data.metadata.\(key)\" must be a string, not \(o[key]?.typeName ?? "null").", field: "data.metadata.\(key)")
            }
            // Counted as JSON Schema's maxLength counts: Unicode code points.
            if v.unicodeScalars.count > maxValueLength {
                return RequestError(code: "invalid_metadata", message: "\"data.metadata.\(key)\" has \(v.unicodeScalars.count) characters; at most \(maxValueLength) are allowed.", field: "data.metadata.\(key)")
            }
            if v.unicodeScalars.contains(where: { $0.value == 0 }) {
                return RequestError(code: "invalid_metadata", message: "\"data.metadata.\(key)\" must not hold U+0000.", field: "data.metadata.\(key)")
            }
        }
        return nil
    }

    /// The string pairs of `data.metadata` (a `data` object as stored); empty when there are none.
    public static func pairs(_ data: JSONValue) -> [String: String] {
        guard case .object(let d) = data, case .object(let m)? = d["metadata"] else { return [:] }
        var out: [String: String] = [:]
        for (k, v) in m { if case .string(let s) = v { out[k] = s } }
        return out
    }

    /// `pairs` as a JSON object.
    public static func json(_ pairs: [String: String]) -> JSONValue { .object(pairs.mapValues(JSONValue.string)) }
}

/// Validates the body of `POST /api/v1/communication` (the seed's contract plus our optional fields).
public enum RequestValidator {
    static let topLevelKeys: Set<String> = ["type", "data"]
    static let commonKeys: Set<String> = Set(["from", "to", "msg", "callbackUrl", "sendAt", "metadata"]).union(templateKeys)
    /// A message through a template (`/api/v1/templates`): kept in the data once the API has rendered it into
    /// `msg` (not Meta's WhatsApp `template`).
    static let templateKeys: Set<String> = ["templateId", "variables", "locale", "templateVersion"]

    /// Validates a parsed JSON body, returning the request or the first problem found. `stored`: the body of a
    /// request as admitted and stored (its attachments by `sha256`, without `content`), read back from a stream.
    public static func validate(_ body: JSONValue, stored: Bool = false) -> Result<CommunicationRequest, RequestError> {
        guard case .object(let top) = body else {
            return .failure(RequestError(code: "invalid_body", message: "The request body must be a JSON object with \"type\" and \"data\"."))
        }
        for key in top.keys.sorted() where !topLevelKeys.contains(key) {
            return .failure(RequestError(code: "unknown_field", message: "Unknown field \"\(key)\"; the body takes \"type\" and \"data\".", field: key))
        }
        guard let typeValue = top["type"] else {
            return .failure(RequestError(code: "missing_field", message: "\"type\" is required: one of email, sms, whatsapp.", field: "type"))
        }
        guard case .string(let typeText) = typeValue else {
            return .failure(RequestError(code: "invalid_field_type", message: "\"type\" must be a string, not \(typeValue.typeName).", field: "type"))
        }
        guard let channel = MessageChannel(rawValue: typeText) else {
            return .failure(RequestError(code: "invalid_type", message: "\"type\" must be one of email, sms, whatsapp; got \"\(typeText.prefix(64))\".", field: "type"))
        }
        guard let dataValue = top["data"] else {
            return .failure(RequestError(code: "missing_field", message: "\"data\" is required: an object with from, to and msg.", field: "data"))
        }
        guard case .object(let data) = dataValue else {
            return .failure(RequestError(code: "invalid_field_type", message: "\"data\" must be an object, not \(dataValue.typeName).", field: "data"))
        }
        var allowed = commonKeys
        switch channel {
        case .email: allowed.formUnion(emailKeys)
        case .whatsapp: allowed.insert("template")
        case .sms: break
        }
        for key in data.keys.sorted() where !allowed.contains(key) {
            return .failure(RequestError(code: "unknown_field", message: "\"data.\(key)\" is not a field of a \(channel.rawValue) request; allowed: \(allowed.sorted().joined(separator: ", ")).", field: "data.\(key)"))
        }
        func requiredString(_ key: String) -> Result<String, RequestError> {
            guard let v = data[key] else {
                return .failure(RequestError(code: "missing_field", message: "\"data.\(key)\" is required.", field: "data.\(key)"))
            }
            guard case .string(let s) = v else {
                return .failure(RequestError(code: "invalid_field_type", message: "\"data.\(key)\" must be a string, not \(v.typeName).", field: "data.\(key)"))
            }
            guard !s.allSatisfy(\.isWhitespace) else {
                return .failure(RequestError(code: "empty_field", message: "\"data.\(key)\" must not be empty.", field: "data.\(key)"))
            }
            return .success(s)
        }
        func optionalString(_ key: String) -> Result<String?, RequestError> {
            guard let v = data[key], v != .null else { return .success(nil) }
            guard case .string(let s) = v else {
                return .failure(RequestError(code: "invalid_field_type", message: "\"data.\(key)\" must be a string, not \(v.typeName).", field: "data.\(key)"))
            }
            return .success(s)
        }
        let from: String, to: String, msg: String
        switch (requiredString("from"), requiredString("to"), requiredString("msg")) {
        case (.failure(let e), _, _), (_, .failure(let e), _), (_, _, .failure(let e)): return .failure(e)
        case (.success(let f), .success(let t), .success(let m)): (from, to, msg) = (f, t, m)
        }
        switch channel {
        case .email:
            for (key, value) in [("from", from), ("to", to)] {
                if let problem = Address.emailProblem(value) {
                    return .failure(RequestError(code: "invalid_email", message: "\"data.\(key)\" must be an email address the providers can send to (e.g. ada@example.com): \(problem); got \"\(value.prefix(80))\".", field: "data.\(key)"))
                }
            }
            if msg.utf8.count > channel.maxMessageLength {
                return .failure(RequestError(code: "message_too_long", message: "\"data.msg\" is \(msg.utf8.count) bytes; an email body may have at most \(channel.maxMessageLength) bytes.", field: "data.msg"))
            }
        case .sms, .whatsapp:
            for (key, value) in [("from", from), ("to", to)] where !Address.isValidE164(value) {
                return .failure(RequestError(code: "invalid_phone", message: "\"data.\(key)\" must be an E.164 phone number: \"+\" followed by 8 to 15 digits; got \"\(value.prefix(40))\".", field: "data.\(key)"))
            }
            let length = msg.count
            if length > channel.maxMessageLength {
                return .failure(RequestError(code: "message_too_long", message: "\"data.msg\" has \(length) characters; \(channel == .sms ? "an SMS" : "a WhatsApp message") may have at most \(channel.maxMessageLength).", field: "data.msg"))
            }
        }
        var subject: String?, html: String?, template: WhatsAppTemplate?
        var extras = EmailExtras()
        if channel == .email {
            switch validateEmailExtras(data, stored: stored) {
            case .failure(let e): return .failure(e)
            case .success(let x): extras = x
            }
            switch optionalString("subject") {
            case .failure(let e): return .failure(e)
            case .success(let s): subject = s
            }
            if let s = subject {
                if s.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\r\n" }) {
                    return .failure(RequestError(code: "invalid_subject", message: "\"data.subject\" must be one line (no CR or LF).", field: "data.subject"))
                }
                if s.count > 998 {
                    return .failure(RequestError(code: "subject_too_long", message: "\"data.subject\" may have at most 998 characters.", field: "data.subject"))
                }
            }
            switch optionalString("html") {
            case .failure(let e): return .failure(e)
            case .success(let h): html = h
            }
            if let h = html, h.utf8.count + msg.utf8.count > channel.maxMessageLength {
                return .failure(RequestError(code: "message_too_long", message: "\"data.msg\" and \"data.html\" together may have at most \(channel.maxMessageLength) bytes.", field: "data.html"))
            }
        }
        // The message's own status callback URL: its changes are POSTed there too, signed with the secret of the
        // sending key's default webhook endpoint (checked by the API, which knows the key).
        if let u = data["callbackUrl"], u != .null {
            guard case .string(let url) = u else {
                return .failure(RequestError(code: "invalid_field_type", message: "\"data.callbackUrl\" must be a string, not \(u.typeName).", field: "data.callbackUrl"))
            }
            if case .failure(let e) = CallbackRules.target(url, field: "data.callbackUrl") { return .failure(e) }
        }
        if let m = data["metadata"], m != .null, let e = Metadata.problem(m) { return .failure(e) }
        var sendAt: Timestamp?
        if let v = data["sendAt"], v != .null {
            switch parseSendAt(v) {
            case .failure(let e): return .failure(e)
            case .success(let t): sendAt = t
            }
        }
        if channel == .whatsapp, let t = data["template"], t != .null {
            switch validateTemplate(t) {
            case .failure(let e): return .failure(e)
            case .success(let v): template = v
            }
        }
        var request = CommunicationRequest(channel: channel, from: from, to: to, msg: msg, subject: subject, html: html, template: template, sendAt: sendAt, data: dataValue)
        (request.cc, request.bcc, request.replyTo, request.attachments) = (extras.cc, extras.bcc, extras.replyTo, extras.attachments)
        return .success(request)
    }

    /// `data.sendAt`: an RFC 3339 date-time with its offset (`2026-12-24T09:00:00Z`, `…+01:00`). How far ahead it
    /// may be is the router's rule (`maxScheduleAhead`), which knows the time.
    static func parseSendAt(_ value: JSONValue) -> Result<Timestamp, RequestError> {
        guard case .string(let text) = value else {
            return .failure(RequestError(code: "invalid_field_type", message: "\"data.sendAt\" must be a string, an RFC 3339 time such as 2026-12-24T09:00:00Z, not \(value.typeName).", field: "data.sendAt"))
        }
        // `Timestamp(parsing:)` also reads epoch milliseconds (for query parameters); a send time is a date.
        let u = Array(text.utf8)
        let hasOffset = u.last == UInt8(ascii: "Z") || u.last == UInt8(ascii: "z") || (u.count > 6 && (u[u.count - 6] == UInt8(ascii: "+") || u[u.count - 6] == UInt8(ascii: "-")))
        guard u.count > 10, u[10] == UInt8(ascii: "T") || u[10] == UInt8(ascii: "t"), hasOffset, let t = Timestamp(parsing: text) else {
            return .failure(RequestError(code: "invalid_send_at", message: "\"data.sendAt\" must be an RFC 3339 time with its offset, such as 2026-12-24T09:00:00Z; got \"\(text.prefix(64))\".", field: "data.sendAt"))
        }
        return .success(t)
    }

    /// How far ahead `data.sendAt` may be.
    public static let maxScheduleAhead: Duration = .seconds(366 * 24 * 3600)

    static func validateTemplate(_ value: JSONValue) -> Result<WhatsAppTemplate, RequestError> {
        guard case .object(let t) = value else {
            return .failure(RequestError(code: "invalid_field_type", message: "\"data.template\" must be an object with name, language and parameters.", field: "data.template"))
        }
        for key in t.keys.sorted() where !["name", "language", "parameters"].contains(key) {
            return .failure(RequestError(code: "unknown_field", message: "\"data.template.\(key)\" is not a template field; allowed: language, name, parameters.", field: "data.template.\(key)"))
        }
        guard case .string(let name)? = t["name"], !name.isEmpty, name.count <= 512 else {
            return .failure(RequestError(code: "invalid_template", message: "\"data.template.name\" is required: the approved template's name.", field: "data.template.name"))
        }
        var language = "en_US"
        if let l = t["language"] {
            guard case .string(let s) = l, !s.isEmpty, s.count <= 16 else {
                return .failure(RequestError(code: "invalid_template", message: "\"data.template.language\" must be a language code such as en_US.", field: "data.template.language"))
            }
            language = s
        }
        var parameters: [String] = []
        if let p = t["parameters"] {
            guard case .array(let items) = p else {
                return .failure(RequestError(code: "invalid_template", message: "\"data.template.parameters\" must be an array of strings.", field: "data.template.parameters"))
            }
            for (i, item) in items.enumerated() {
                guard case .string(let s) = item else {
                    return .failure(RequestError(code: "invalid_template", message: "\"data.template.parameters[\(i)]\" must be a string.", field: "data.template.parameters[\(i)]"))
                }
                parameters.append(s)
            }
        }
        return .success(WhatsAppTemplate(name: name, language: language, parameters: parameters))
    }
}

/// Address syntax checks.
public enum Address {
    static let atextSymbols: Set<UInt8> = Set("!#$%&'*+-/=?^_`{|}~".utf8)

    /// True when `s` is an address the email providers can send to: see ``emailProblem(_:)``.
    public static func isValidEmail(_ s: String) -> Bool { emailProblem(s) == nil }

    /// Why `s` is not an address the email providers can send to, or nil when it is: an RFC 5321/5322 addr-spec
    /// with a dot-atom local part (at most 64 bytes), `@`, and a domain name of letter-digit-hyphen labels, 254
    /// bytes in all; UTF-8 (RFC 6531) is allowed. The quoted local parts (`"a b"@example.com`) and address
    /// literals (`ada@[192.0.2.1]`) the RFCs also allow are refused: the SMTP client cannot put them in an
    /// envelope, so a message accepted with one would fail for ever.
    public static func emailProblem(_ s: String) -> String? {
        let bytes = Array(s.utf8)
        guard let at = bytes.lastIndex(of: UInt8(ascii: "@")), at > 0, at < bytes.count - 1 else {
            return "it needs a local part, \"@\" and a domain"
        }
        guard bytes.count <= 254 else { return "it is longer than 254 bytes" }
        let local = bytes[..<at], domain = bytes[(at + 1)...]
        if local.first == UInt8(ascii: "\"") {
            return "quoted local parts (\"…\"@) are not supported"
        }
        guard local.count <= 64 else { return "the local part is longer than 64 bytes" }
        guard isDotAtom(local) else {
            return "the local part may hold letters, digits and !#$%&'*+-/=?^_`{|}~, with single dots between them"
        }
        if domain.first == UInt8(ascii: "[") {
            return "address literals ([…]) are not supported: use a domain name"
        }
        let labels = domain.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard domain.count <= 253, !labels.isEmpty else { return "the domain is longer than 253 bytes" }
        for label in labels {
            guard !label.isEmpty, label.count <= 63, label.first != UInt8(ascii: "-"), label.last != UInt8(ascii: "-"),
                label.allSatisfy({ isAlnum($0) || $0 == UInt8(ascii: "-") || $0 >= 128 })
            else { return "the domain is not a domain name (labels of letters, digits and inner hyphens, separated by single dots)" }
        }
        return nil
    }

    static func isAlnum(_ b: UInt8) -> Bool {
        (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122)
    }

    static func isDotAtom(_ bytes: ArraySlice<UInt8>) -> Bool {
        guard !bytes.isEmpty, bytes.first != UInt8(ascii: "."), bytes.last != UInt8(ascii: ".") else { return false }
        var previousDot = false
        for b in bytes {
            if b == UInt8(ascii: ".") {
                if previousDot { return false }
                previousDot = true
                continue
            }
            previousDot = false
            guard isAlnum(b) || atextSymbols.contains(b) || b >= 128 else { return false }
        }
        return true
    }

    /// True when `s` is `+` followed by 8 to 15 ASCII digits.
    public static func isValidE164(_ s: String) -> Bool {
        let u = s.utf8
        guard u.first == UInt8(ascii: "+"), (9...16).contains(u.count) else { return false }
        return u.dropFirst().allSatisfy { $0 >= 48 && $0 <= 57 }
    }
}
