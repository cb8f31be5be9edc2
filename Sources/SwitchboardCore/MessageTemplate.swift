/// A message template (`/api/v1/templates`): Mustache text a message names with `data.templateId`, rendered at
/// accept (by `SwitchboardApp.TemplateRenderer`), so the stored message holds what the recipient gets.
///
/// One row per saved version: each save of a name in a locale makes the next version (1, 2, …) of that
/// (name, locale); versions are never changed, only archived (with every other version of the name).
/// Not Meta's WhatsApp templates (`data.template`), which Meta renders.
public struct MessageTemplate: Sendable, Hashable {
    /// Slug-like (``TemplateRules/nameProblem(_:)``); what `data.templateId` names.
    public var name: String
    public var channel: MessageChannel
    /// BCP 47-like, normalised (``TemplateRules/normalizedLocale(_:)``); `en` unless given.
    public var locale: String
    /// 1 for the first save of (name, locale), then 2, 3, …
    public var version: Int
    /// Email only: the subject (one line, Mustache).
    public var subject: String?
    /// The text body (`data.msg`), Mustache.
    public var body: String
    /// Email only, optional: the HTML part (Mustache; values HTML-escaped).
    public var html: String?
    /// Archived by `DELETE /api/v1/templates/{name}`: still readable, no longer usable by new messages.
    public var archived: Bool
    public var createdAt: Timestamp
    /// The API key that saved this version (nil: the API is open).
    public var keyID: String?

    public init(name: String, channel: MessageChannel, locale: String = TemplateRules.defaultLocale, version: Int, subject: String? = nil, body: String, html: String? = nil, archived: Bool = false, createdAt: Timestamp, keyID: String? = nil) {
        self.name = name
        self.channel = channel
        self.locale = locale
        self.version = version
        self.subject = subject
        self.body = body
        self.html = html
        self.archived = archived
        self.createdAt = createdAt
        self.keyID = keyID
    }
}

/// What a save carries; the store gives it its version.
public struct TemplateDraft: Sendable, Hashable {
    public var name: String
    public var channel: MessageChannel
    public var locale: String
    public var subject: String?
    public var body: String
    public var html: String?
    public var createdAt: Timestamp
    public var keyID: String?

    public init(name: String, channel: MessageChannel, locale: String = TemplateRules.defaultLocale, subject: String? = nil, body: String, html: String? = nil, createdAt: Timestamp, keyID: String? = nil) {
        self.name = name
        self.channel = channel
        self.locale = locale
        self.subject = subject
        self.body = body
        self.html = html
        self.createdAt = createdAt
        self.keyID = keyID
    }

    /// The stored template of version `version`.
    public func template(version: Int) -> MessageTemplate {
        MessageTemplate(name: name, channel: channel, locale: locale, version: version, subject: subject, body: body, html: html, createdAt: createdAt, keyID: keyID)
    }
}

/// The rules a template's name and locale follow, and how a message's request picks a version.
public enum TemplateRules {
    public static let defaultLocale = "en"
    public static let maxNameLength = 64
    /// Largest body, subject and html, each (UTF-8 bytes).
    public static let maxPartBytes = 256 * 1024

    /// Why `name` is not a template name, or nil: 1 to 64 of `a-z 0-9 . _ -`, starting with a letter or digit.
    public static func nameProblem(_ name: String) -> String? {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= maxNameLength else { return "it must have 1 to \(maxNameLength) characters" }
        func alnum(_ b: UInt8) -> Bool { (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) }
        guard alnum(bytes[0]) else { return "it must start with a lowercase letter or a digit" }
        guard bytes.allSatisfy({ alnum($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }) else {
            return "it may hold only lowercase letters, digits, '.', '_' and '-'"
        }
        return nil
    }

    /// `locale` in its canonical case (`en`, `en-GB`, `zh-Hant-TW`, `pt-BR`), or nil when it is not a BCP 47-like
    /// tag: a language of 2 or 3 letters, then subtags of 2 to 8 letters or digits separated by `-` (`_` is read
    /// as `-`), 35 characters at most. Languages are lowercased, 4-letter scripts title-cased, 2-letter regions
    /// uppercased.
    public static func normalizedLocale(_ locale: String) -> String? {
        guard !locale.isEmpty, locale.utf8.count <= 35, locale.unicodeScalars.allSatisfy({ $0.isASCII }) else { return nil }
        let parts = locale.replacingUnderscores().split(separator: "-", omittingEmptySubsequences: false)
        guard let language = parts.first, (2...3).contains(language.count), language.allSatisfy({ $0.isLetter }) else { return nil }
        var out = [language.lowercased()]
        for part in parts.dropFirst() {
            guard (2...8).contains(part.count), part.allSatisfy({ $0.isLetter || $0.isNumber }) else { return nil }
            if part.count == 2, part.allSatisfy(\.isLetter) { out.append(part.uppercased()) }
            else if part.count == 4, part.allSatisfy(\.isLetter) { out.append(part.prefix(1).uppercased() + part.dropFirst().lowercased()) }
            else { out.append(part.lowercased()) }
        }
        return out.joined(separator: "-")
    }

    /// The locales tried for a message asking `requested` (nil: none asked): that locale, then its language
    /// alone (`fr-CA` → `fr`), then the default locale `en`.
    public static func fallbacks(_ requested: String?) -> [String] {
        var out: [String] = []
        if let requested {
            out.append(requested)
            if let language = requested.split(separator: "-").first.map(String.init), language != requested { out.append(language) }
        }
        if !out.contains(defaultLocale) { out.append(defaultLocale) }
        return out
    }

    /// Why a message cannot use a template: the API's 422s.
    public enum SelectionProblem: Error, Sendable, Hashable {
        /// No version of the name at all, or none in any locale tried, or not the version asked.
        case notFound(String)
        /// The name (or the version asked) is archived.
        case archived(String)
    }

    /// The version a message uses, among every version of one name (`versions`, any order): the first locale of
    /// ``fallbacks(_:)`` that has a version, then `version` (nil: the newest that is not archived).
    public static func select(_ versions: [MessageTemplate], locale: String?, version: Int?) -> Result<MessageTemplate, SelectionProblem> {
        guard let name = versions.first?.name else { return .failure(.notFound("No template is named so.")) }
        let tried = fallbacks(locale)
        guard let chosen = tried.first(where: { l in versions.contains { $0.locale == l } }) else {
            let have = Set(versions.map(\.locale)).sorted().joined(separator: ", ")
            return .failure(.notFound("Template \(name) has no version in \(tried.joined(separator: ", ")) (it has \(have))."))
        }
        let inLocale = versions.filter { $0.locale == chosen }
        if let version {
            guard let t = inLocale.first(where: { $0.version == version }) else {
                return .failure(.notFound("Template \(name) (\(chosen)) has no version \(version); its newest is \(inLocale.map(\.version).max() ?? 0)."))
            }
            return t.archived ? .failure(.archived("Template \(name) is archived; version \(version) can no longer be used for new messages.")) : .success(t)
        }
        guard let t = inLocale.filter({ !$0.archived }).max(by: { $0.version < $1.version }) else {
            return .failure(.archived("Template \(name) is archived; save it again to use it for new messages."))
        }
        return .success(t)
    }
}

extension String {
    fileprivate func replacingUnderscores() -> String { String(map { $0 == "_" ? "-" : $0 }) }
}
