import Testing
import SwitchboardCore
@testable import SwitchboardApp

/// Rendering with swift-mustache: values HTML-escaped in the html part only, strict about missing variables,
/// bad Mustache refused with where it is, the library's cache.
@Suite("Template renderer")
struct TemplateRendererTests {
    func template(subject: String? = nil, body: String, html: String? = nil) -> MessageTemplate {
        MessageTemplate(name: "t", channel: .email, version: 1, subject: subject, body: body, html: html, createdAt: Timestamp(milliseconds: 0))
    }

    func render(_ t: MessageTemplate, _ variables: [String: JSONValue]) -> Result<TemplateRenderer.Rendered, TemplateRenderer.Problem> {
        TemplateRenderer.compile(t).flatMap { TemplateRenderer.render($0, variables: variables) }
    }

    @Test("values are escaped in html only; the text parts keep them as sent")
    func escaping() throws {
        let t = template(subject: "Order {{order}} for {{name}}", body: "Hi {{name}}, {{&name}}, {{{name}}}", html: "<p>Hi {{name}}</p>{{{raw}}}")
        let r = try render(t, ["name": .string("<Ada & \"Bob\">"), "order": .number(42), "raw": .string("<b>x</b>")]).get()
        #expect(r.subject == "Order 42 for <Ada & \"Bob\">")
        #expect(r.body == "Hi <Ada & \"Bob\">, <Ada & \"Bob\">, <Ada & \"Bob\">")
        #expect(r.html == "<p>Hi &lt;Ada &amp; &quot;Bob&quot;&gt;</p><b>x</b>")
    }

    @Test("numbers as JSON writes them, sections, lists, nested names, a leading newline kept")
    func values() throws {
        let t = template(body: "\n{{n}} {{f}} {{#vip}}VIP {{/vip}}{{^vip}}regular {{/vip}}{{user.first}}:{{#items}}[{{sku}}x{{qty}}]{{/items}}{{#tags}}<{{.}}>{{/tags}}")
        let r = try render(t, [
            "n": .number(3), "f": .number(2.5), "vip": .bool(false), "user": .object(["first": .string("Ada")]),
            "items": .array([.object(["sku": .string("A"), "qty": .number(1)]), .object(["sku": .string("B"), "qty": .number(2)])]), "tags": .array([.string("x"), .string("y")]),
        ]).get()
        #expect(r.body == "\n3 2.5 regular Ada:[Ax1][Bx2]<x><y>")
    }

    @Test("a name the template uses and the variables lack is named, never rendered blank")
    func missing() throws {
        let cases: [(String, [String: JSONValue], String?)] = [
            ("Hi {{name}}", [:], "name"),
            ("Hi {{name}}", ["name": .null], "name"),
            ("Hi {{ name }}", ["name": .string("x")], nil),
            ("{{user.first}}", ["user": .object([:])], "user.first"),
            ("{{user.first}}", ["user": .string("x")], "user.first"),
            ("{{#vip}}x{{/vip}}", [:], "vip"),
            ("{{#vip}}x{{/vip}}", ["vip": .null], nil),
            ("{{^vip}}x{{/vip}}", [:], "vip"),
            ("{{#user}}{{first}} {{company}}{{/user}}", ["user": .object(["first": .string("a")]), "company": .string("c")], nil),
            ("{{#user}}{{first}} {{last}}{{/user}}", ["user": .object(["first": .string("a")])], "last"),
            ("{{#items}}{{sku}}{{/items}}", ["items": .array([])], nil),
            ("{{#items}}{{sku}}{{/items}}", ["items": .array([.object([:])])], "sku"),
            ("{{#vip}}{{perk}}{{/vip}}", ["vip": .bool(false)], nil),
            ("{{#vip}}{{perk}}{{/vip}}", ["vip": .bool(true)], "perk"),
            ("{{^vip}}{{#a}}{{x}}{{/a}}{{/vip}}{{after}}", ["vip": .bool(true)], "after"),
            ("{{^vip}}{{reason}}{{/vip}}", ["vip": .null], "reason"),
            ("{{#items}}{{sku}}{{/items}}{{sku}}", ["items": .array([.object(["sku": .string("a")])])], "sku"),
            ("{{! a comment }}{{uppercased(name)}}", [:], "name"),
            ("{{uppercased(name)}}", ["name": .string("ada")], nil),
        ]
        for (body, variables, expected) in cases {
            switch render(template(body: body), variables) {
            case .success: #expect(expected == nil, "\(body)")
            case .failure(.missingVariable(let name, let part)):
                #expect(name == expected, "\(body)")
                #expect(part == "body")
            case .failure(let other): Issue.record("\(body): \(other)")
            }
        }
        // The part is named too.
        #expect(render(template(subject: "{{s}}", body: "b", html: "{{h}}"), ["s": .string("x")]) == .failure(.missingVariable("h", part: "html")))
        #expect(render(template(subject: "{{s}}", body: "b"), [:]) == .failure(.missingVariable("s", part: "subject")))
        #expect(try render(template(body: "{{uppercased(name)}}"), ["name": .string("ada")]).get().body == "ADA")
    }

    @Test("bad Mustache and what we do not render are refused, naming the part and the place")
    func invalid() {
        func problem(_ t: MessageTemplate) -> TemplateRenderer.Problem? {
            if case .failure(let p) = TemplateRenderer.compile(t) { return p }
            return nil
        }
        guard case .invalidTemplate(let why, let part)? = problem(template(body: "Hi\n{{#a}}x")) else { Issue.record("not refused"); return }
        #expect(part == "body")
        #expect(why.contains("never closed"), "\(why)")
        guard case .invalidTemplate(let why2, "html")? = problem(template(body: "ok", html: "{{#a}}x{{/b}}")) else { Issue.record("not refused"); return }
        #expect(why2.contains("does not match") && why2.contains("line 1"), "\(why2)")
        #expect(problem(template(subject: "{{name", body: "ok")).map { if case .invalidTemplate(_, "subject") = $0 { true } else { false } } == true)
        for body in ["{{>footer}}", "{{=<% %>=}}<%name%>", "{{<parent}}{{/parent}}"] {
            guard case .invalidTemplate(let why, "body")? = problem(template(body: body)) else { Issue.record("\(body) not refused"); continue }
            #expect(why.contains("not supported"), "\(why)")
        }
        #expect(problem(template(body: "plain text, {braces} and } alone")) == nil)
    }

    /// A store that counts its reads.
    final class CountingStore: TemplateStore, @unchecked Sendable {
        var reads = 0
        var stored: [MessageTemplate] = []
        func save(_ draft: TemplateDraft) async throws -> MessageTemplate {
            let t = draft.template(version: stored.filter { $0.name == draft.name && $0.locale == draft.locale }.count + 1)
            stored.append(t)
            return t
        }
        func versions(name: String) async throws -> [MessageTemplate] {
            reads += 1
            return stored.filter { $0.name == name }
        }
        func latest(archived: Bool, after: TemplateKey?, limit: Int) async throws -> [MessageTemplate] { [] }
        func archive(name: String) async throws -> Int { 0 }
    }

    @Test("the library reads a name once per ttl, and at once after a save through it")
    func cache() async throws {
        let store = CountingStore()
        let now = ManualInstant()
        let library = TemplateLibrary(store: store, ttl: .seconds(5), clock: { now.value })
        #expect(try await library.versions(name: "a").isEmpty)
        #expect(try await library.versions(name: "a").isEmpty)
        #expect(store.reads == 1)
        _ = try await library.save(TemplateDraft(name: "a", channel: .sms, body: "x", createdAt: Timestamp(milliseconds: 0)))
        #expect(try await library.versions(name: "a").count == 1)
        #expect(store.reads == 2)
        // Saved by another router: seen once the ttl has passed.
        store.stored.append(MessageTemplate(name: "a", channel: .sms, version: 2, body: "y", createdAt: Timestamp(milliseconds: 0)))
        #expect(try await library.versions(name: "a").count == 1)
        now.advance(.seconds(5))
        #expect(try await library.versions(name: "a").count == 2)
        #expect(store.reads == 3)
    }
}

final class ManualInstant: @unchecked Sendable {
    var value = ContinuousClock.now
    func advance(_ d: Duration) { value = value.advanced(by: d) }
}
