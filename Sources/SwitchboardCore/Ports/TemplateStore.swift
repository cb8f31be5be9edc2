/// Message templates (`MessageTemplate`): every saved version, kept for good (archiving only marks them), so a
/// message that used one can always be traced to its text.
///
/// Versions count per (name, locale) and are given by the store: two saves of one name at once get distinct,
/// consecutive versions.
public protocol TemplateStore: Sendable {
    /// Stores `draft` as the next version of (name, locale) and returns it as stored. A name archived before is
    /// usable again by its new version (the older versions stay archived).
    func save(_ draft: TemplateDraft) async throws -> MessageTemplate
    /// Every version of `name`, in every locale, ordered by locale then version; empty when there is none.
    func versions(name: String) async throws -> [MessageTemplate]
    /// The newest version of each (name, locale), ordered by name then locale, after `after` (a previous page's
    /// last (name, locale)); the archived ones only when `archived`.
    func latest(archived: Bool, after: TemplateKey?, limit: Int) async throws -> [MessageTemplate]
    /// Archives every version of `name`; the number of versions newly archived (0: none, or all were already).
    func archive(name: String) async throws -> Int
}

/// Where a list of templates goes on from.
public struct TemplateKey: Sendable, Hashable {
    public var name: String
    public var locale: String

    public init(name: String, locale: String) {
        self.name = name
        self.locale = locale
    }

    /// As a cursor: `name/locale` (neither holds a `/`).
    public var cursor: String { "\(name)/\(locale)" }

    public init?(cursor: String) {
        let parts = cursor.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, TemplateRules.nameProblem(String(parts[0])) == nil, let locale = TemplateRules.normalizedLocale(String(parts[1])) else { return nil }
        self.init(name: String(parts[0]), locale: locale)
    }
}
