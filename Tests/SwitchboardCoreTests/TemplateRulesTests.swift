import Testing
@testable import SwitchboardCore

/// Template names, locales, and how a message picks a version (locale fallback, explicit or newest version,
/// archived versions refused).
@Suite("Template rules")
struct TemplateRulesTests {
    @Test("names: slug-like, 1 to 64 characters")
    func names() {
        for good in ["welcome", "order.shipped", "a", "2fa_code", "x-y", String(repeating: "a", count: 64)] {
            #expect(TemplateRules.nameProblem(good) == nil, "\(good)")
        }
        for bad in ["", "Welcome", "-x", ".x", "a b", "a/b", "é", String(repeating: "a", count: 65)] {
            #expect(TemplateRules.nameProblem(bad) != nil, "\(bad)")
        }
    }

    @Test("locales: BCP 47-like, canonical case, _ read as -")
    func locales() {
        #expect(TemplateRules.normalizedLocale("en") == "en")
        #expect(TemplateRules.normalizedLocale("EN-gb") == "en-GB")
        #expect(TemplateRules.normalizedLocale("pt_br") == "pt-BR")
        #expect(TemplateRules.normalizedLocale("zh-hant-tw") == "zh-Hant-TW")
        #expect(TemplateRules.normalizedLocale("es-419") == "es-419")
        for bad in ["", "e", "engl", "en-", "en--gb", "en-x", "fr CA", "日本", String(repeating: "a", count: 36)] {
            #expect(TemplateRules.normalizedLocale(bad) == nil, "\(bad)")
        }
        #expect(TemplateRules.fallbacks("fr-CA") == ["fr-CA", "fr", "en"])
        #expect(TemplateRules.fallbacks(nil) == ["en"])
        #expect(TemplateRules.fallbacks("en") == ["en"])
    }

    func t(_ locale: String, _ version: Int, archived: Bool = false) -> MessageTemplate {
        MessageTemplate(name: "welcome", channel: .sms, locale: locale, version: version, body: "\(locale)\(version)", archived: archived, createdAt: Timestamp(milliseconds: 0))
    }

    @Test("a version is picked: the locale asked, its language, then en; the newest not archived unless one is named")
    func select() {
        let all = [t("en", 1), t("en", 2), t("fr", 1), t("fr", 2), t("fr", 3, archived: true), t("de-AT", 1)]
        func pick(_ locale: String?, _ version: Int? = nil) -> String {
            switch TemplateRules.select(all, locale: locale, version: version) {
            case .success(let t): t.body
            case .failure(.notFound): "notFound"
            case .failure(.archived): "archived"
            }
        }
        #expect(pick(nil) == "en2")
        #expect(pick("fr") == "fr2")
        #expect(pick("fr-CA") == "fr2")
        #expect(pick("de-AT") == "de-AT1")
        #expect(pick("de") == "en2")
        #expect(pick("ja") == "en2")
        #expect(pick("en", 1) == "en1")
        #expect(pick("fr", 3) == "archived")
        #expect(pick("fr", 9) == "notFound")
        #expect(pick(nil, 3) == "notFound")
        #expect(TemplateRules.select([], locale: nil, version: nil) == .failure(.notFound("No template is named so.")))
        // Only French, nothing in en: a message without a locale finds none.
        if case .failure(.notFound(let why)) = TemplateRules.select([t("fr", 1)], locale: nil, version: nil) {
            #expect(why.contains("it has fr"))
        } else {
            Issue.record("expected notFound")
        }
        // Every version archived: refused as archived.
        #expect(TemplateRules.select([t("en", 1, archived: true), t("en", 2, archived: true)], locale: nil, version: nil) == .failure(.archived("Template welcome is archived; save it again to use it for new messages.")))
    }

    @Test("cursors round-trip and refuse what is not one")
    func cursors() {
        let k = TemplateKey(name: "welcome", locale: "pt-BR")
        #expect(TemplateKey(cursor: k.cursor) == k)
        #expect(TemplateKey(cursor: "welcome") == nil)
        #expect(TemplateKey(cursor: "Welcome/en") == nil)
        #expect(TemplateKey(cursor: "a/en/x") == nil)
    }
}
