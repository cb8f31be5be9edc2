import Foundation
import Testing
import SwitchboardCore

/// Behaviour every `TemplateStore` must show. The SQLite store (`SwitchboardSQLiteTests`) and the MongoDB store
/// (`SwitchboardMongoTests`) run every check, each on an empty store.
public enum TemplateStoreContract {
    public static func draft(_ name: String, locale: String = "en", channel: MessageChannel = .email, body: String = "Hello {{name}}", at: Int64 = 1000, key: String? = "key_a") -> TemplateDraft {
        TemplateDraft(
            name: name, channel: channel, locale: locale, subject: channel == .email ? "Hi {{name}}" : nil, body: body, html: channel == .email ? "<p>{{name}}</p>" : nil,
            createdAt: Timestamp(milliseconds: at), keyID: key)
    }

    /// Each save of (name, locale) is its next version, counted per locale; every version reads back whole, ordered
    /// by locale then version; an unknown name has none.
    public static func versionsAndLocales(_ store: any TemplateStore) async throws {
        let v1 = try await store.save(draft("welcome", body: "one", at: 1000))
        let v2 = try await store.save(draft("welcome", body: "two", at: 2000, key: nil))
        let fr1 = try await store.save(draft("welcome", locale: "fr", body: "un", at: 3000))
        #expect(v1 == draft("welcome", body: "one", at: 1000).template(version: 1))
        #expect(v2.version == 2 && v2.keyID == nil && !v2.archived)
        #expect(fr1.version == 1 && fr1.locale == "fr")
        let all = try await store.versions(name: "welcome")
        #expect(all == [v1, v2, fr1].sorted { ($0.locale, $0.version) < ($1.locale, $1.version) })
        #expect(try await store.versions(name: "nope").isEmpty)
        let sms = try await store.save(draft("code", channel: .sms, body: "{{code}}"))
        #expect(sms.subject == nil && sms.html == nil && sms.channel == .sms)
        #expect(try await store.versions(name: "code") == [sms])
    }

    /// Archiving marks every version of the name, which stay readable; archiving again changes nothing; a save
    /// after it is a new version that is not archived.
    public static func archive(_ store: any TemplateStore) async throws {
        _ = try await store.save(draft("promo"))
        _ = try await store.save(draft("promo", locale: "de"))
        _ = try await store.save(draft("other"))
        #expect(try await store.archive(name: "promo") == 2)
        #expect(try await store.archive(name: "promo") == 0)
        #expect(try await store.archive(name: "missing") == 0)
        let archived = try await store.versions(name: "promo")
        #expect(archived.count == 2 && archived.allSatisfy(\.archived))
        #expect(try await store.versions(name: "other").allSatisfy { !$0.archived })
        let again = try await store.save(draft("promo", body: "back"))
        #expect(again.version == 2 && !again.archived)
        #expect(try await store.versions(name: "promo").map { "\($0.locale)\($0.version)\($0.archived)" } == ["de1true", "en1true", "en2false"])
    }

    /// The list holds the newest version of each (name, locale) in name then locale order, the archived ones only
    /// when asked, and pages from a (name, locale) on.
    public static func list(_ store: any TemplateStore) async throws {
        for (name, locale) in [("b", "en"), ("a", "fr"), ("a", "en"), ("c", "en"), ("a", "en"), ("b", "en")] {
            _ = try await store.save(draft(name, locale: locale))
        }
        _ = try await store.archive(name: "c")
        let page = try await store.latest(archived: false, after: nil, limit: 10)
        #expect(page.map { "\($0.name)/\($0.locale)/\($0.version)" } == ["a/en/2", "a/fr/1", "b/en/2"])
        let all = try await store.latest(archived: true, after: nil, limit: 10)
        #expect(all.map { "\($0.name)/\($0.locale)" } == ["a/en", "a/fr", "b/en", "c/en"])
        #expect(all.last?.archived == true)
        let first = try await store.latest(archived: true, after: nil, limit: 2)
        #expect(first.map { "\($0.name)/\($0.locale)" } == ["a/en", "a/fr"])
        let rest = try await store.latest(archived: true, after: TemplateKey(name: "a", locale: "fr"), limit: 2)
        #expect(rest.map { "\($0.name)/\($0.locale)" } == ["b/en", "c/en"])
        #expect(try await store.latest(archived: true, after: TemplateKey(name: "c", locale: "en"), limit: 2).isEmpty)
    }

    /// Saves of one name at once get distinct, consecutive versions.
    public static func concurrentSaves(_ store: any TemplateStore) async throws {
        let versions = try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 0..<12 {
                group.addTask { try await store.save(draft("busy", body: "save \(i)")).version }
            }
            var out: [Int] = []
            for try await v in group { out.append(v) }
            return out
        }
        #expect(versions.sorted() == Array(1...12))
        let stored = try await store.versions(name: "busy")
        #expect(stored.map(\.version) == Array(1...12))
        #expect(Set(stored.map(\.body)).count == 12)
    }
}
