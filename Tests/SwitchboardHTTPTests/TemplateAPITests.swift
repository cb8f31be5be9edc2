import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
import SwitchboardApp
import SwitchboardCore
@testable import SwitchboardHTTP

/// `/api/v1/templates` through the API's router, and messages sent through a template (`data.templateId`): the
/// stored message holds the rendered text and the template's name, version, locale and variables.
@Suite("Template API: save, versions, list, archive, preview, messages through a template")
struct TemplateAPITests {
    let templates = "/api/v1/templates"
    let send = "/api/v1/communication"

    func post(_ client: some TestClientProtocol, _ uri: String, _ body: String, key: String? = nil) async throws -> TestResponse {
        try await client.execute(uri: uri, method: .post, headers: key.map { bearer($0, json: true) } ?? jsonHeaders, body: buffer(body))
    }

    let welcome = #"{"name":"welcome","channel":"email","subject":"Welcome, {{name}}","body":"Hi {{name}}, your code is {{code}}.","html":"<p>Hi {{name}}</p>"}"#

    @Test("saving a name again makes a new version; GET lists the newest of each, GET {name} every version and locale")
    func versions() async throws {
        let f = try APIFixture()
        try await f.app.test(.router) { client in
            let first = try await post(client, templates, welcome)
            #expect(first.status == .created, "\(String(buffer: first.body))")
            let v1 = try json(first)
            #expect(v1["version"] == .number(1) && v1["locale"] == .string("en") && v1["channel"] == .string("email") && v1["archived"] == .bool(false))
            #expect(v1["subject"] == .string("Welcome, {{name}}") && v1["keyId"] == .null && v1["createdAt"]?.stringValue != nil)
            let second = try await post(client, templates, #"{"name":"welcome","channel":"email","body":"Hello {{name}}"}"#)
            #expect(try json(second)["version"] == .number(2))
            #expect(try json(second)["subject"] == .null)
            let french = try await post(client, templates, #"{"name":"welcome","channel":"email","locale":"FR_ca","body":"Bonjour {{name}}"}"#)
            #expect(try json(french)["locale"] == .string("fr-CA") && json(french)["version"] == .number(1))
            _ = try await post(client, templates, #"{"name":"otp","channel":"sms","body":"Code {{code}}"}"#)

            let list = try json(try await client.execute(uri: templates, method: .get))
            #expect(list["items"]?.arrayValue?.map { "\($0["name"]?.stringValue ?? "")/\($0["locale"]?.stringValue ?? "")/\($0["version"] ?? .null)" } == ["otp/en/number(1.0)", "welcome/en/number(2.0)", "welcome/fr-CA/number(1.0)"])
            let page = try json(try await client.execute(uri: "\(templates)?limit=2", method: .get))
            #expect(page["count"] == .number(2))
            let cursor = try #require(page["nextCursor"]?.stringValue)
            let rest = try json(try await client.execute(uri: "\(templates)?limit=2&cursor=\(cursor)", method: .get))
            #expect(rest["items"]?.arrayValue?.map { $0["locale"]?.stringValue } == ["fr-CA"])
            #expect(rest["nextCursor"] == .null)

            let one = try json(try await client.execute(uri: "\(templates)/welcome", method: .get))
            #expect(one["channel"] == .string("email") && one["archived"] == .bool(false))
            #expect(one["locales"] == .array([.string("en"), .string("fr-CA")]))
            #expect(one["versions"]?.arrayValue?.map { "\($0["locale"]?.stringValue ?? "")\($0["version"] ?? .null)" } == ["ennumber(1.0)", "ennumber(2.0)", "fr-CAnumber(1.0)"])
            let missing = try await client.execute(uri: "\(templates)/nope", method: .get)
            #expect(missing.status == .notFound)
            #expect(try errorCode(missing) == "not_found")
            // A name keeps its channel.
            let other = try await post(client, templates, #"{"name":"otp","channel":"whatsapp","body":"x"}"#)
            #expect(other.status == .conflict)
            #expect(try errorCode(other) == "template_channel_conflict")
        }
    }

    @Test("bad template requests: 400 naming the field, bad Mustache invalid_template naming the part and place")
    func badSaves() async throws {
        let f = try APIFixture()
        try await f.app.test(.router) { client in
            let cases: [(String, String, String?)] = [
                ("[]", "invalid_body", nil),
                (#"{"channel":"sms","body":"x"}"#, "invalid_field", "name"),
                (#"{"name":"Bad Name","channel":"sms","body":"x"}"#, "invalid_field", "name"),
                (#"{"name":"a","channel":"fax","body":"x"}"#, "invalid_field", "channel"),
                (#"{"name":"a","channel":"sms"}"#, "invalid_field", "body"),
                (#"{"name":"a","channel":"sms","body":"  "}"#, "invalid_field", "body"),
                (#"{"name":"a","channel":"sms","body":5}"#, "invalid_field", "body"),
                (#"{"name":"a","channel":"sms","body":"x","subject":"s"}"#, "invalid_field", "subject"),
                (#"{"name":"a","channel":"whatsapp","body":"x","html":"<p>"}"#, "invalid_field", "html"),
                (#"{"name":"a","channel":"email","body":"x","subject":"two\nlines"}"#, "invalid_field", "subject"),
                (#"{"name":"a","channel":"sms","body":"x","locale":"english"}"#, "invalid_field", "locale"),
                (#"{"name":"a","channel":"sms","body":"x","extra":1}"#, "unknown_field", "extra"),
                (#"{"name":"a","channel":"sms","body":"Hi {{#name}} there"}"#, "invalid_template", "body"),
                (#"{"name":"a","channel":"email","body":"ok","html":"{{#a}}{{/b}}"}"#, "invalid_template", "html"),
                (#"{"name":"a","channel":"email","body":"ok","subject":"{{name"}"#, "invalid_template", "subject"),
                (#"{"name":"a","channel":"sms","body":"{{>footer}}"}"#, "invalid_template", "body"),
            ]
            for (body, code, field) in cases {
                let r = try await post(client, templates, body)
                #expect(r.status == .badRequest, "\(body)")
                #expect(try errorCode(r) == code, "\(body): \(String(buffer: r.body))")
                #expect(try json(r)["error"]?["field"]?.stringValue == field, "\(body): \(String(buffer: r.body))")
            }
            let r = try await post(client, templates, #"{"name":"a","channel":"sms","body":"Hi {{#name}} there"}"#)
            #expect(try json(r)["error"]?["message"]?.stringValue?.contains("never closed") == true, "\(String(buffer: r.body))")
            for q in ["archived=maybe", "limit=0", "cursor=nope", "other=1"] {
                let l = try await client.execute(uri: "\(templates)?\(q)", method: .get)
                #expect(l.status == .badRequest, "\(q)")
            }
        }
    }

    @Test("a message through a template stores the rendered text (html escaped, text not) and the template's name, version, locale, variables")
    func templatedMessage() async throws {
        let f = try APIFixture()
        try await f.app.test(.router) { client in
            #expect(try await post(client, templates, welcome).status == .created)
            let body = #"{"type":"email","data":{"from":"noreply@example.com","to":"ada@example.com","templateId":"welcome","variables":{"name":"Ada <&>","code":1234}}}"#
            let r = try await post(client, send, body)
            #expect(r.status == .ok, "\(String(buffer: r.body))")
            let answer = try json(r)
            #expect(answer["data"]?["msg"] == .string("Hi Ada <&>, your code is 1234."))
            let id = try #require(answer["id"]?.stringValue)
            let stored = try json(try await client.execute(uri: "\(send)/\(id)", method: .get))
            #expect(stored["msg"] == .string("Hi Ada <&>, your code is 1234."))
            #expect(stored["subject"] == .string("Welcome, Ada <&>"))
            let data = try #require(stored["data"])
            #expect(data["msg"] == .string("Hi Ada <&>, your code is 1234."))
            #expect(data["subject"] == .string("Welcome, Ada <&>"))
            #expect(data["html"] == .string("<p>Hi Ada &lt;&amp;&gt;</p>"))
            #expect(data["templateId"] == .string("welcome"))
            #expect(data["templateVersion"] == .number(1))
            #expect(data["locale"] == .string("en"))
            #expect(data["variables"] == .object(["name": .string("Ada <&>"), "code": .number(1234)]))
            // The search index holds the rendered text too.
            let found = try json(try await client.execute(uri: "/api/v1/communications?q=1234", method: .get))
            #expect(found["items"]?.arrayValue?.map { $0["id"]?.stringValue } == [id], "\(found)")

            // A new version is used at once on this router; an older one can be named.
            _ = try await post(client, templates, #"{"name":"welcome","channel":"email","subject":"v2 {{name}}","body":"Version two for {{name}}"}"#)
            let v2 = try json(try await post(client, send, #"{"type":"email","data":{"from":"noreply@example.com","to":"ada@example.com","templateId":"welcome","variables":{"name":"Ada"}}}"#))
            #expect(v2["data"]?["msg"] == .string("Version two for Ada") && v2["data"]?["templateVersion"] == .number(2))
            let v1 = try json(try await post(client, send, #"{"type":"email","data":{"from":"noreply@example.com","to":"ada@example.com","templateId":"welcome","templateVersion":1,"variables":{"name":"Ada","code":"x"}}}"#))
            #expect(v1["data"]?["msg"] == .string("Hi Ada, your code is x.") && v1["data"]?["templateVersion"] == .number(1))
            // The locale asked, else its language, else en.
            _ = try await post(client, templates, #"{"name":"welcome","channel":"email","locale":"fr","subject":"Bienvenue","body":"Bonjour {{name}}"}"#)
            for (locale, expected, resolved) in [("fr-CA", "Bonjour Ada", "fr"), ("fr", "Bonjour Ada", "fr"), ("de", "Version two for Ada", "en")] {
                let m = try json(try await post(client, send, #"{"type":"email","data":{"from":"noreply@example.com","to":"ada@example.com","templateId":"welcome","locale":"\#(locale)","variables":{"name":"Ada"}}}"#))
                #expect(m["data"]?["msg"] == .string(expected), "\(locale): \(m)")
                #expect(m["data"]?["locale"] == .string(resolved), "\(locale)")
            }
            // An SMS template: no subject or html added.
            _ = try await post(client, templates, #"{"name":"otp","channel":"sms","body":"Your code: {{code}}"}"#)
            let sms = try json(try await post(client, send, #"{"type":"sms","data":{"from":"+1234567890","to":"+15550001111","templateId":"otp","variables":{"code":"<42>"}}}"#))
            #expect(sms["data"]?["msg"] == .string("Your code: <42>") && sms["data"]?["subject"] == nil && sms["data"]?["html"] == nil)
        }
    }

    @Test("messages that cannot use a template: missing_variable, msg beside templateId, unknown, wrong channel, bad fields")
    func refusedMessages() async throws {
        let f = try APIFixture()
        try await f.app.test(.router) { client in
            _ = try await post(client, templates, welcome)
            _ = try await post(client, templates, #"{"name":"otp","channel":"sms","body":"Your code: {{code}}"}"#)
            let email = #""from":"noreply@example.com","to":"ada@example.com""#
            let cases: [(String, HTTPResponse.Status, String, String?)] = [
                (#"{"type":"email","data":{\#(email),"templateId":"welcome","variables":{"name":"Ada"}}}"#, .badRequest, "missing_variable", "data.variables.code"),
                (#"{"type":"email","data":{\#(email),"templateId":"welcome"}}"#, .badRequest, "missing_variable", "data.variables.name"),
                (#"{"type":"email","data":{\#(email),"templateId":"welcome","msg":"x","variables":{"name":"a","code":1}}}"#, .badRequest, "invalid_field", "data.msg"),
                (#"{"type":"email","data":{\#(email),"templateId":"welcome","subject":"x","variables":{"name":"a","code":1}}}"#, .badRequest, "invalid_field", "data.subject"),
                (#"{"type":"email","data":{\#(email),"templateId":"nope"}}"#, .unprocessableContent, "template_not_found", "data.templateId"),
                (#"{"type":"email","data":{\#(email),"templateId":"welcome","templateVersion":7,"variables":{"name":"a","code":1}}}"#, .unprocessableContent, "template_not_found", "data.templateId"),
                (#"{"type":"email","data":{\#(email),"templateId":"otp","variables":{"code":1}}}"#, .unprocessableContent, "template_channel_mismatch", "type"),
                (#"{"type":"email","data":{\#(email),"templateId":5}}"#, .badRequest, "invalid_field", "data.templateId"),
                (#"{"type":"email","data":{\#(email),"templateId":"Welcome!"}}"#, .badRequest, "invalid_field", "data.templateId"),
                (#"{"type":"email","data":{\#(email),"templateId":"welcome","variables":[1]}}"#, .badRequest, "invalid_field", "data.variables"),
                (#"{"type":"email","data":{\#(email),"templateId":"welcome","locale":"xx-!"}}"#, .badRequest, "invalid_field", "data.locale"),
                (#"{"type":"email","data":{\#(email),"templateId":"welcome","templateVersion":1.5}}"#, .badRequest, "invalid_field", "data.templateVersion"),
                (#"{"type":"email","data":{\#(email),"msg":"x","variables":{"a":1}}}"#, .badRequest, "invalid_field", "data.variables"),
                (#"{"type":"email","data":{\#(email),"msg":"x","templateVersion":1}}"#, .badRequest, "invalid_field", "data.templateVersion"),
            ]
            for (body, status, code, field) in cases {
                let r = try await post(client, send, body)
                #expect(r.status == status, "\(body): \(String(buffer: r.body))")
                #expect(try errorCode(r) == code, "\(body): \(String(buffer: r.body))")
                #expect(try json(r)["error"]?["field"]?.stringValue == field, "\(body): \(String(buffer: r.body))")
            }
            let r = try await post(client, send, #"{"type":"email","data":{\#(email),"templateId":"welcome","variables":{"name":"Ada"}}}"#)
            #expect(try json(r)["error"]?["message"]?.stringValue?.contains("{{code}}") == true, "\(String(buffer: r.body))")
            // Meta's WhatsApp templates (data.template) are untouched by ours.
            let meta = try await post(client, send, #"{"type":"whatsapp","data":{"from":"+1234567890","to":"+15550001111","msg":"fallback","template":{"name":"welcome","language":"en_US","parameters":["Ada"]}}}"#)
            #expect(meta.status == .ok, "\(String(buffer: meta.body))")
            #expect(try json(meta)["data"]?["template"]?["name"] == .string("welcome") && json(meta)["data"]?["msg"] == .string("fallback"))
        }
    }

    @Test("archived: listed only when asked, still readable, refused for new messages (template_archived) until saved again")
    func archived() async throws {
        let f = try APIFixture()
        try await f.app.test(.router) { client in
            _ = try await post(client, templates, #"{"name":"otp","channel":"sms","body":"Your code: {{code}}"}"#)
            let message = #"{"type":"sms","data":{"from":"+1234567890","to":"+15550001111","templateId":"otp","variables":{"code":"1"}}}"#
            let before = try json(try await post(client, send, message))
            let id = try #require(before["id"]?.stringValue)
            let deleted = try await client.execute(uri: "\(templates)/otp", method: .delete)
            #expect(deleted.status == .noContent)
            #expect(try await client.execute(uri: "\(templates)/nope", method: .delete).status == .notFound)
            let refused = try await post(client, send, message)
            #expect(refused.status == .unprocessableContent)
            #expect(try errorCode(refused) == "template_archived")
            // Still readable, and so is the message that used it.
            let shown = try json(try await client.execute(uri: "\(templates)/otp", method: .get))
            #expect(shown["archived"] == .bool(true) && shown["versions"]?.arrayValue?.first?["body"] == .string("Your code: {{code}}"))
            #expect(try json(try await client.execute(uri: "\(send)/\(id)", method: .get))["msg"] == .string("Your code: 1"))
            #expect(try json(try await client.execute(uri: templates, method: .get))["count"] == .number(0))
            #expect(try json(try await client.execute(uri: "\(templates)?archived=true", method: .get))["count"] == .number(1))
            // Saved again: usable again, as version 2.
            _ = try await post(client, templates, #"{"name":"otp","channel":"sms","body":"New code: {{code}}"}"#)
            let after = try json(try await post(client, send, message))
            #expect(after["data"]?["msg"] == .string("New code: 1") && after["data"]?["templateVersion"] == .number(2))
            let old = try await post(client, send, #"{"type":"sms","data":{"from":"+1234567890","to":"+15550001111","templateId":"otp","templateVersion":1,"variables":{"code":"1"}}}"#)
            #expect(try errorCode(old) == "template_archived")
        }
    }

    @Test("Idempotency-Key: a retry replays while the text is the same; after a new version it is a conflict, unless the version is named")
    func idempotency() async throws {
        let f = try APIFixture()
        try await f.app.test(.router) { client in
            _ = try await post(client, templates, #"{"name":"otp","channel":"sms","body":"Code {{code}}"}"#)
            func sendKeyed(_ key: String, _ body: String) async throws -> TestResponse {
                try await client.execute(uri: send, method: .post, headers: [.contentType: "application/json", HTTPField.Name("Idempotency-Key")!: key], body: buffer(body))
            }
            let latest = #"{"type":"sms","data":{"from":"+1234567890","to":"+15550001111","templateId":"otp","variables":{"code":"1"}}}"#
            let pinned = #"{"type":"sms","data":{"from":"+1234567890","to":"+15550001111","templateId":"otp","templateVersion":1,"variables":{"code":"1"}}}"#
            let first = try await sendKeyed("k1", latest)
            let again = try await sendKeyed("k1", latest)
            #expect(again.headers[HTTPField.Name("Idempotent-Replayed")!] == "true")
            #expect(try json(again)["id"] == json(first)["id"])
            _ = try await sendKeyed("k2", pinned)
            _ = try await post(client, templates, #"{"name":"otp","channel":"sms","body":"Your code {{code}}"}"#)
            #expect(try errorCode(try await sendKeyed("k1", latest)) == "idempotency_conflict")
            #expect(try await sendKeyed("k2", pinned).headers[HTTPField.Name("Idempotent-Replayed")!] == "true")
        }
    }

    @Test("preview renders without sending; its errors are the message's")
    func preview() async throws {
        let f = try APIFixture()
        try await f.app.test(.router) { client in
            _ = try await post(client, templates, welcome)
            let r = try await post(client, "\(templates)/welcome/preview", #"{"variables":{"name":"<Ada>","code":7}}"#)
            #expect(r.status == .ok, "\(String(buffer: r.body))")
            let p = try json(r)
            #expect(p["subject"] == .string("Welcome, <Ada>") && p["body"] == .string("Hi <Ada>, your code is 7.") && p["html"] == .string("<p>Hi &lt;Ada&gt;</p>"))
            #expect(p["version"] == .number(1) && p["locale"] == .string("en") && p["channel"] == .string("email"))
            let missing = try await post(client, "\(templates)/welcome/preview", #"{"variables":{"name":"Ada"}}"#)
            #expect(missing.status == .badRequest)
            #expect(try json(missing)["error"]?["field"] == .string("variables.code"))
            #expect(try await post(client, "\(templates)/nope/preview", "{}").status == .notFound)
            #expect(try errorCode(try await post(client, "\(templates)/welcome/preview", #"{"version":3}"#)) == "template_not_found")
            #expect(try errorCode(try await post(client, "\(templates)/welcome/preview", #"{"vars":{}}"#)) == "unknown_field")
            // Nothing was sent.
            #expect(try await f.adapters.store.statusCounts().reduce(0) { $0 + $1.count } == 0)
        }
    }

    @Test("scopes: saving and archiving need admin; reading and previewing read")
    func scopes() async throws {
        let f = try APIFixture(auth: true)
        try await f.app.test(.router) { client in
            let (_, admin) = try await createKey(client, #"{"name":"admin","scopes":["admin"]}"#)
            let (_, reader) = try await createKey(client, admin: admin, #"{"name":"reader","scopes":["read"]}"#)
            let (_, sender) = try await createKey(client, admin: admin, #"{"name":"sender","scopes":["send"]}"#)
            try expectUnauthorized(try await post(client, templates, welcome))
            for key in [reader, sender] {
                let r = try await post(client, templates, welcome, key: key)
                #expect(r.status == .forbidden)
                #expect(String(buffer: r.body).contains("admin scope"))
                #expect(try await client.execute(uri: "\(templates)/welcome", method: .delete, headers: bearer(key)).status == .forbidden)
            }
            let saved = try await post(client, templates, welcome, key: admin)
            #expect(saved.status == .created)
            #expect(try json(saved)["keyId"]?.stringValue?.hasPrefix("key_") == true)
            #expect(try await client.execute(uri: templates, method: .get, headers: bearer(reader)).status == .ok)
            #expect(try await client.execute(uri: "\(templates)/welcome", method: .get, headers: bearer(reader)).status == .ok)
            #expect(try await post(client, "\(templates)/welcome/preview", #"{"variables":{"name":"a","code":1}}"#, key: reader).status == .ok)
            #expect(try await post(client, "\(templates)/welcome/preview", #"{"variables":{"name":"a","code":1}}"#, key: sender).status == .forbidden)
            // A sender sends through a template.
            let m = try await post(client, send, #"{"type":"email","data":{"from":"noreply@example.com","to":"ada@example.com","templateId":"welcome","variables":{"name":"a","code":1}}}"#, key: sender)
            #expect(m.status == .ok, "\(String(buffer: m.body))")
            #expect(try await client.execute(uri: "\(templates)/welcome", method: .delete, headers: bearer(admin)).status == .noContent)
        }
    }
}

extension JSONValue {
    var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }
}
