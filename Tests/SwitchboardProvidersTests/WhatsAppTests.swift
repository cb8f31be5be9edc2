import Foundation
import Testing
import SwitchboardTestHTTP
import SwitchboardCore
@testable import SwitchboardProviders

func whatsapp(to: String = "+16505551234", msg: String = "Hello", template: WhatsAppTemplate? = nil) -> OutboundMessage {
    OutboundMessage(id: "c1", request: CommunicationRequest(channel: .whatsapp, from: "+16505550000", to: to, msg: msg, template: template), attempt: 1)
}

/// Meta's documented answer to a send.
func metaSent(_ wamid: String = "wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA") -> MockHTTPServer.Reply {
    .init(status: 200, body: #"{"messaging_product":"whatsapp","contacts":[{"input":"+16505551234","wa_id":"16505551234"}],"messages":[{"id":"\#(wamid)"}]}"#)
}

/// Meta's documented Graph API error body.
func metaError(status: Int, code: Int, message: String, details: String? = nil, subcode: Int? = nil) -> MockHTTPServer.Reply {
    let data = details.map { #","error_data":{"messaging_product":"whatsapp","details":"\#($0)"}"# } ?? ""
    let sub = subcode.map { #","error_subcode":\#($0)"# } ?? ""
    return .init(status: status, body: #"{"error":{"message":"\#(message)","type":"OAuthException","code":\#(code)\#(sub)\#(data),"fbtrace_id":"AbCdEfGh123"}}"#)
}

@Suite("WhatsApp Cloud API provider against a local HTTP server")
struct WhatsAppProviderTests {
    func provider(_ server: MockHTTPServer, timeout: Duration = .seconds(60)) -> WhatsAppProvider {
        WhatsAppProvider(configuration: WhatsAppConfiguration(accessToken: "EAAG-test-token", phoneNumberID: "106540352242922", apiVersion: "v21.0", baseURL: server.baseURL, timeout: timeout))
    }

    @Test("a text message: POST /v21.0/{phone-number-id}/messages, bearer token, JSON body; the wamid is kept")
    func text() async throws {
        let server = try await MockHTTPServer.start()
        defer { Task { await server.stop() } }
        server.enqueue(metaSent())
        let result = await provider(server).deliver(whatsapp(msg: "Olá \"mundo\" ✓\nline 2"))
        #expect(result == .sent(providerMessageID: "wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"))
        let r = try #require(server.requests.first)
        #expect(r.method == "POST")
        #expect(r.path == "/v21.0/106540352242922/messages")
        #expect(r.headers["authorization"] == "Bearer EAAG-test-token")
        #expect(r.headers["content-type"] == "application/json")
        let json = try #require(r.json)
        #expect(Set(json.allKeys.compactMap { $0 as? String }) == ["messaging_product", "recipient_type", "to", "type", "text"])
        #expect(json["messaging_product"] as? String == "whatsapp")
        #expect(json["recipient_type"] as? String == "individual")
        #expect(json["to"] as? String == "+16505551234")
        #expect(json["type"] as? String == "text")
        let text = try #require(json["text"] as? NSDictionary)
        #expect(text["body"] as? String == "Olá \"mundo\" ✓\nline 2")
        #expect(text["preview_url"] as? Bool == false)
    }

    @Test("a template message: name, language code, body parameters in order")
    func template() async throws {
        let server = try await MockHTTPServer.start()
        defer { Task { await server.stop() } }
        server.enqueue(metaSent("wamid.T1"))
        let result = await provider(server).deliver(whatsapp(template: WhatsAppTemplate(name: "order_update", language: "en_US", parameters: ["Ada", "#1234"])))
        #expect(result == .sent(providerMessageID: "wamid.T1"))
        let json = try #require(server.requests.first?.json)
        #expect(json["type"] as? String == "template")
        #expect(json["text"] == nil)
        let t = try #require(json["template"] as? NSDictionary)
        #expect(t["name"] as? String == "order_update")
        #expect((t["language"] as? NSDictionary)?["code"] as? String == "en_US")
        let components = try #require(t["components"] as? [NSDictionary])
        #expect(components.count == 1)
        #expect(components[0]["type"] as? String == "body")
        let params = try #require(components[0]["parameters"] as? [NSDictionary])
        #expect(params.map { $0["type"] as? String } == ["text", "text"])
        #expect(params.map { $0["text"] as? String } == ["Ada", "#1234"])

        // No parameters: no components.
        server.enqueue(metaSent("wamid.T2"))
        _ = await provider(server).deliver(whatsapp(template: WhatsAppTemplate(name: "hello_world", language: "en_US", parameters: [])))
        let t2 = try #require(server.requests.last?.json?["template"] as? NSDictionary)
        #expect(t2["components"] == nil)
    }

    @Test("errors: 130429, 131056, 429 and 5xx retryable; 190, 100, 131009 permanent; code, details and trace kept")
    func errors() async throws {
        let server = try await MockHTTPServer.start()
        defer { Task { await server.stop() } }
        let p = provider(server)
        let cases: [(MockHTTPServer.Reply, Bool, String)] = [
            (metaError(status: 400, code: 130429, message: "Rate limit hit", details: "Cloud API message throughput has been reached."), true, "130429"),
            (metaError(status: 400, code: 131056, message: "(Business Account, Consumer Account) pair rate limit hit"), true, "131056"),
            (metaError(status: 429, code: 80007, message: "Rate limit issues"), true, "80007"),
            (metaError(status: 500, code: 131000, message: "Something went wrong"), true, "131000"),
            (.init(status: 503, body: "Service Unavailable", contentType: "text/plain"), true, "http_503"),
            (metaError(status: 401, code: 190, message: "Error validating access token: Session has expired", subcode: 463), false, "190/463"),
            (metaError(status: 400, code: 100, message: "Invalid parameter", details: "Parameter 'to' is invalid"), false, "100"),
            (metaError(status: 400, code: 131009, message: "Parameter value is not valid"), false, "131009"),
            (metaError(status: 400, code: 132001, message: "Template name does not exist in the translation"), false, "132001"),
        ]
        for (reply, retryable, code) in cases {
            server.enqueue(reply)
            let result = await p.deliver(whatsapp())
            switch result {
            case .retryable(let e) where retryable: #expect(e.code == code)
            case .permanent(let e) where !retryable: #expect(e.code == code)
            default: Issue.record("\(code): unexpected \(result)")
            }
        }
        server.enqueue(cases[6].0)
        guard case .permanent(let e) = await p.deliver(whatsapp()) else { Issue.record("100 should be permanent"); return }
        #expect(e.message == "Invalid parameter — Parameter 'to' is invalid (fbtrace_id AbCdEfGh123)")
    }

    @Test("a timeout is retryable")
    func timeout() async throws {
        let server = try await MockHTTPServer.start()
        defer { Task { await server.stop() } }
        server.enqueue(.init(status: 200, body: "{}", delay: .seconds(3)))
        guard case .retryable(let e) = await provider(server, timeout: .seconds(1)).deliver(whatsapp()) else { Issue.record("expected retryable"); return }
        #expect(e.code == "timeout")
    }
}

@Suite("WhatsApp webhook: verification and signed notifications")
struct WhatsAppWebhookTests {
    let hook = WhatsAppWebhook(verifyToken: "verify-me", appSecret: "app-secret")

    @Test("verification echoes hub.challenge only for subscribe with the right token")
    func verification() throws {
        #expect(try hook.verify(mode: "subscribe", token: "verify-me", challenge: "1158201444").get() == "1158201444")
        #expect(throws: WebhookRejection.self) { try hook.verify(mode: "subscribe", token: "wrong", challenge: "1").get() }
        #expect(throws: WebhookRejection.self) { try hook.verify(mode: "unsubscribe", token: "verify-me", challenge: "1").get() }
        #expect(throws: WebhookRejection.self) { try hook.verify(mode: "subscribe", token: nil, challenge: "1").get() }
        #expect(throws: WebhookRejection.self) { try WhatsAppWebhook(verifyToken: nil, appSecret: "s").verify(mode: "subscribe", token: "", challenge: "1").get() }
    }

    @Test("X-Hub-Signature-256 vectors (computed independently with Python's hmac)")
    func signatureVectors() {
        let body = Array(#"{"object":"whatsapp_business_account","entry":[]}"#.utf8)
        #expect(WhatsAppWebhook.signature(body: body, appSecret: "app-secret") == "sha256=d3e4f9da0ce6c71ab3dba55929b8eeeee2455349e534924ead19f98d143e904f")
        #expect(WhatsAppWebhook.signature(body: [], appSecret: "app-secret") == "sha256=f685db4c946698bf105ff5b62e30bc1f78216f3914b12bb750f8992aa6748824")
        #expect(WhatsAppWebhook.isValid(header: "sha256=D3E4F9DA0CE6C71AB3DBA55929B8EEEEE2455349E534924EAD19F98D143E904F", body: body, appSecret: "app-secret"))
        #expect(!WhatsAppWebhook.isValid(header: "sha256=d3e4f9da0ce6c71ab3dba55929b8eeeee2455349e534924ead19f98d143e904f", body: body + [0x20], appSecret: "app-secret"))
        #expect(!WhatsAppWebhook.isValid(header: "d3e4f9da0ce6c71ab3dba55929b8eeeee2455349e534924ead19f98d143e904f", body: body, appSecret: "app-secret"))
        #expect(!WhatsAppWebhook.isValid(header: nil, body: body, appSecret: "app-secret"))
    }

    static func notification(_ statuses: [(String, String)], error: Bool = false) -> [UInt8] {
        let items = statuses.map { id, status in
            let errors = error && status == "failed" ? #","errors":[{"code":131026,"title":"Message undeliverable","message":"Message undeliverable","error_data":{"details":"Receiver is incapable of receiving this message"}}]"# : ""
            return #"{"id":"\#(id)","status":"\#(status)","timestamp":"1700000000","recipient_id":"16505551234"\#(errors)}"#
        }.joined(separator: ",")
        return Array(#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"statuses":[\#(items)]},"field":"messages"}]}]}"#.utf8)
    }

    @Test("statuses sent / delivered / read / failed are read; failed keeps Meta's error")
    func statuses() throws {
        let body = Self.notification([("wamid.A", "sent"), ("wamid.A", "delivered"), ("wamid.B", "read"), ("wamid.C", "failed")], error: true)
        let reports = try hook.reports(signature: WhatsAppWebhook.signature(body: body, appSecret: "app-secret"), body: body).get()
        #expect(reports.map(\.providerMessageID) == ["wamid.A", "wamid.A", "wamid.B", "wamid.C"])
        #expect(reports.map(\.status) == [nil, .delivered, .read, .failed])
        #expect(reports[3].error == ProviderError(code: "131026", message: "Message undeliverable — Receiver is incapable of receiving this message"))
    }

    @Test("a bad or missing signature is refused with 403; bad JSON with 400")
    func refused() {
        let body = Self.notification([("wamid.A", "delivered")])
        if case .failure(let r) = hook.reports(signature: "sha256=00", body: body) { #expect(r.status == 403) } else { Issue.record("accepted") }
        if case .failure(let r) = hook.reports(signature: nil, body: body) { #expect(r.status == 403) } else { Issue.record("accepted") }
        if case .failure(let r) = WhatsAppWebhook(verifyToken: "v", appSecret: nil).reports(signature: "sha256=00", body: body) { #expect(r.status == 403) } else { Issue.record("accepted without a secret") }
        let junk = Array("not json".utf8)
        if case .failure(let r) = hook.reports(signature: WhatsAppWebhook.signature(body: junk, appSecret: "app-secret"), body: junk) { #expect(r.status == 400) } else { Issue.record("accepted junk") }
    }
}
