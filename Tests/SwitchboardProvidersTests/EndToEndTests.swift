import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
import SwitchboardTestHTTP
import SwitchboardTestSupport
import SwitchboardApp
import SwitchboardCore
@testable import SwitchboardProviders
import SwitchboardServer

@Suite("End to end through the real providers", .serialized)
struct EndToEndProviderTests {
    @Test("email over SMTP (STARTTLS, AUTH, custom CA) from the environment: arrives; 5xx ends failed with the SMTP error; 4xx once ends sent after a retry")
    func email() async throws {
        let smtp = try await SMTPTestServer.start(.init(mode: .starttls, auth: true, user: "switchboard", password: "s3cret!"))
        defer { Task { await smtp.stop() } }
        let settings = try e2eSettings([
            "SWITCHBOARD_SMTP_HOST": "127.0.0.1", "SWITCHBOARD_SMTP_PORT": "\(smtp.port)", "SWITCHBOARD_SMTP_TLS": "starttls",
            "SWITCHBOARD_SMTP_CA_FILE": smtp.caPath, "SWITCHBOARD_SMTP_USER": "switchboard", "SWITCHBOARD_SMTP_PASSWORD": "s3cret!",
            "SWITCHBOARD_SMTP_FROM": "noreply@switchboard.test",
        ])
        #expect(settings.providers.order(for: .email) == [.smtp])
        #expect(!settings.summary.map(\.1).joined().contains("s3cret!"))
        try await withSystem(settings) { system, client in
            let ok = try await send(client, .object([
                "from": .string("ada@example.com"), "to": .string("bob@example.org"), "subject": .string("Grüße — 你好"),
                "msg": .string("Hello Bob\n.starts with a dot"), "html": .string("<p>Hello <b>Bob</b></p>"),
            ]), type: "email")
            let sent = try await waitFor(system, ok, .sent)
            #expect(sent.provider == "smtp")
            let messageID = try #require(sent.providerMessageID)
            #expect(messageID == "<\(ok)@switchboard.test>")
            let saved = try smtp.messages()
            #expect(saved.count == 1)
            #expect(saved[0].envelope.rcpt_tos == ["bob@example.org"])
            #expect(saved[0].envelope.tls == true)
            #expect(saved[0].envelope.authenticated == true)
            let parsed = try await saved[0].parsed()
            let headers = parsed.headers.reduce(into: [String: String]()) { $0[$1[0].lowercased()] = $1.count > 1 ? $1[1] : "" }
            #expect(headers["message-id"] == messageID)
            #expect(headers["subject"] == "Grüße — 你好")
            #expect(headers["from"] == "noreply@switchboard.test")
            #expect(headers["reply-to"] == "ada@example.com")
            #expect(parsed.content_type == "multipart/alternative")
            let parts = parsed.parts
            #expect(parts.map(\.content_type) == ["text/plain", "text/html"])
            #expect(parts.first?.content.replacingOccurrences(of: "\r\n", with: "\n").hasPrefix("Hello Bob\n.starts with a dot") == true)

            let rejected = try await send(client, .object(["from": .string("ada@example.com"), "to": .string("nosuchuser@example.org"), "msg": .string("x")]), type: "email")
            let failed = try await waitFor(system, rejected, .failed)
            #expect(failed.attempts == 1)
            #expect(failed.provider == "smtp")
            #expect(failed.lastError?.code == "550 5.1.1")
            #expect(failed.lastError?.message.contains("rcpt-to <nosuchuser@example.org>") == true)
            let items = try await logItems(client, "/api/v1/logs?communicationId=\(rejected)&status=failed")
            #expect(items.first?["error"]?.stringValue?.contains("550 5.1.1") == true)

            let flaky = try await send(client, .object(["from": .string("ada@example.com"), "to": .string("tempfail-once@example.org"), "msg": .string("x")]), type: "email")
            let retried = try await waitFor(system, flaky, .sent)
            #expect(retried.attempts == 2)
            #expect(retried.providerMessageID == "<\(flaky)@switchboard.test>")
            #expect(retried.history.contains { $0.status == .retrying && $0.detail?.contains("451 4.3.0") == true })
        }
    }

    @Test("SMS through Twilio; the signed status callback moves it to delivered, monotonically; a bad signature is 403")
    func twilio() async throws {
        let api = try await MockHTTPServer.start()
        defer { Task { await api.stop() } }
        let token = "twilio-secret-token"
        let settings = try e2eSettings([
            "ACCOUNTSID": "AC0123456789abcdef0123456789abcdef", "AUTHTOKEN": token, "MSG_ID": "MG0123456789abcdef0123456789abcdef",
            "SWITCHBOARD_TWILIO_BASE_URL": api.baseURL, "SWITCHBOARD_PUBLIC_URL": "https://sb.example.com/",
        ])
        #expect(!settings.summary.map(\.1).joined().contains(token))
        api.enqueue(twilioCreated(sid: "SMe2e00000000000000000000000000001"))
        try await withSystem(settings) { system, client in
            let id = try await send(client, .object(["from": .string("+14155550100"), "to": .string("+14155550101"), "msg": .string("Your parcel is here")]), type: "sms")
            let sent = try await waitFor(system, id, .sent)
            #expect(sent.provider == "twilio")
            #expect(sent.providerMessageID == "SMe2e00000000000000000000000000001")
            let form = try #require(api.requests.first).form
            #expect(form.first { $0.0 == "MessagingServiceSid" }?.1 == "MG0123456789abcdef0123456789abcdef")
            #expect(form.first { $0.0 == "StatusCallback" }?.1 == "https://sb.example.com/webhooks/twilio/status")

            func callback(_ status: String, signedWith key: String? = nil, extra: [(String, String)] = []) async throws -> TestResponse {
                let pairs = [("AccountSid", "AC0123456789abcdef0123456789abcdef"), ("MessageSid", "SMe2e00000000000000000000000000001"), ("MessageStatus", status), ("To", "+14155550101")] + extra
                let sig = TwilioSignature.compute(url: "https://sb.example.com/webhooks/twilio/status", parameters: pairs, authToken: key ?? token)
                return try await client.execute(uri: "/webhooks/twilio/status", method: .post,
                    headers: [.contentType: "application/x-www-form-urlencoded", HTTPField.Name("X-Twilio-Signature")!: sig],
                    body: ByteBuffer(string: FormEncoding.encode(pairs)))
            }
            let forged = try await callback("delivered", signedWith: "wrong")
            #expect(forged.status == .forbidden)
            #expect(try json(forged)["error"]?["code"]?.stringValue == "invalid_signature")
            #expect(try await system.adapters.store.communication(id: id)?.status == .sent)

            #expect(try await callback("sent").status == .ok)
            #expect(try await callback("delivered").status == .ok)
            #expect(try await system.adapters.store.communication(id: id)?.status == .delivered)
            // A late failure report does not move a delivered message.
            #expect(try await callback("undelivered", extra: [("ErrorCode", "30003")]).status == .ok)
            let after = try #require(try await system.adapters.store.communication(id: id))
            #expect(after.status == .delivered)
            #expect(after.history.filter { $0.status == .delivered }.count == 1)
        }
    }

    @Test("a Twilio 21211 ends failed with Twilio's code and message, without failing over")
    func twilioPermanent() async throws {
        let api = try await MockHTTPServer.start()
        defer { Task { await api.stop() } }
        api.enqueue(twilioError(status: 400, code: 21211, message: "The 'To' number +15005550009 is not a valid phone number."))
        let settings = try e2eSettings(["ACCOUNTSID": "AC1", "AUTHTOKEN": "t", "SWITCHBOARD_TWILIO_BASE_URL": api.baseURL, "SWITCHBOARD_SMS_PROVIDERS": "twilio,sandbox"])
        try await withSystem(settings) { system, client in
            let id = try await send(client, .object(["from": .string("+14155550100"), "to": .string("+15005550009"), "msg": .string("x")]), type: "sms")
            let c = try await waitFor(system, id, .failed)
            #expect(c.provider == "twilio")
            #expect(c.lastError?.code == "21211")
            #expect(c.lastError?.message.hasPrefix("The 'To' number +15005550009 is not a valid phone number.") == true)
            let items = try await logItems(client, "/api/v1/logs?communicationId=\(id)&status=failed")
            #expect(items.first?["error"]?.stringValue?.contains("21211") == true)
        }
    }

    @Test("failover: Twilio down → the sandbox delivers; after N failures the circuit opens and Twilio is not called")
    func failover() async throws {
        let api = try await MockHTTPServer.start(fallback: twilioError(status: 503, code: 20503, message: "Service Unavailable"))
        defer { Task { await api.stop() } }
        let settings = try e2eSettings([
            "ACCOUNTSID": "AC1", "AUTHTOKEN": "t", "SWITCHBOARD_TWILIO_BASE_URL": api.baseURL,
            "SWITCHBOARD_SMS_PROVIDERS": "twilio,sandbox", "SWITCHBOARD_BREAKER_THRESHOLD": "2", "SWITCHBOARD_BREAKER_COOLDOWN_MS": "60000",
        ])
        try await withSystem(settings) { system, client in
            for i in 0..<4 {
                let id = try await send(client, .object(["from": .string("+14155550100"), "to": .string("+1415555020\(i)"), "msg": .string("m\(i)")]), type: "sms")
                let c = try await waitFor(system, id, .sent)
                #expect(c.provider == "sandbox")
                #expect(c.attempts == 1)
            }
            #expect(api.requests.count == 2)
        }
    }

    @Test("WhatsApp through Meta: wamid kept; verification handshake; signed read report (without delivered) → read; later delivered ignored; bad signature 403")
    func whatsApp() async throws {
        let api = try await MockHTTPServer.start()
        defer { Task { await api.stop() } }
        api.enqueue(metaSent("wamid.E2E"))
        let settings = try e2eSettings([
            "SWITCHBOARD_WHATSAPP_TOKEN": "EAAG-secret", "SWITCHBOARD_WHATSAPP_PHONE_NUMBER_ID": "106540352242922",
            "SWITCHBOARD_WHATSAPP_BASE_URL": api.baseURL, "SWITCHBOARD_WHATSAPP_API_VERSION": "v21.0",
            "SWITCHBOARD_WHATSAPP_VERIFY_TOKEN": "verify-me", "SWITCHBOARD_WHATSAPP_APP_SECRET": "app-secret",
        ])
        #expect(settings.providers.rates[.meta] == 80)
        #expect(!settings.summary.map(\.1).joined().contains("EAAG-secret"))
        #expect(!settings.summary.map(\.1).joined().contains("app-secret"))
        try await withSystem(settings) { system, client in
            let id = try await send(client, .object([
                "from": .string("+16505550000"), "to": .string("+16505551234"), "msg": .string("Your order shipped"),
                "template": .object(["name": .string("order_update"), "language": .string("en_US"), "parameters": .array([.string("Ada")])]),
            ]), type: "whatsapp")
            let sent = try await waitFor(system, id, .sent)
            #expect(sent.provider == "meta")
            #expect(sent.providerMessageID == "wamid.E2E")
            #expect(api.requests.first?.path == "/v21.0/106540352242922/messages")
            #expect((api.requests.first?.json?["template"] as? NSDictionary)?["name"] as? String == "order_update")

            let verified = try await client.execute(uri: "/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444", method: .get)
            #expect(verified.status == .ok)
            #expect(String(buffer: verified.body) == "1158201444")
            let refused = try await client.execute(uri: "/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1", method: .get)
            #expect(refused.status == .forbidden)

            func notify(_ status: String, secret: String = "app-secret") async throws -> TestResponse {
                let body = WhatsAppWebhookTests.notification([("wamid.E2E", status)])
                return try await client.execute(uri: "/webhooks/whatsapp", method: .post,
                    headers: [.contentType: "application/json", HTTPField.Name("X-Hub-Signature-256")!: WhatsAppWebhook.signature(body: body, appSecret: secret)],
                    body: ByteBuffer(bytes: body))
            }
            #expect(try await notify("read", secret: "wrong").status == .forbidden)
            #expect(try await system.adapters.store.communication(id: id)?.status == .sent)
            #expect(try await notify("read").status == .ok)
            #expect(try await system.adapters.store.communication(id: id)?.status == .read)
            #expect(try await notify("delivered").status == .ok)
            #expect(try await system.adapters.store.communication(id: id)?.status == .read)
        }
    }

    @Test("webhooks of unconfigured providers answer 404 JSON; known webhook paths with another method 405")
    func unconfigured() async throws {
        try await withSystem(try e2eSettings([:])) { system, client in
            let r = try await client.execute(uri: "/webhooks/twilio/status", method: .post, body: ByteBuffer(string: "a=b"))
            #expect(r.status == .notFound)
            #expect(try json(r)["error"]?["code"]?.stringValue == "webhook_not_configured")
            let m = try await client.execute(uri: "/webhooks/twilio/status", method: .get)
            #expect(m.status == .methodNotAllowed)
            #expect(system.providers(for: .sms).map(\.name) == ["sandbox"])
        }
    }
}

@Suite("Provider settings")
struct ProviderSettingsTests {
    @Test("no credentials: every channel on the sandbox; the seed's Twilio variables are accepted")
    func defaults() throws {
        let none = try Settings.fromEnvironment([:])
        for c in MessageChannel.allCases { #expect(none.providers.order(for: c) == [.sandbox]) }
        let twilio = try Settings.fromEnvironment(["ACCOUNTSID": "AC1", "AUTHTOKEN": "tok", "MSG_ID": "MG1"])
        #expect(twilio.providers.order(for: .sms) == [.twilio])
        #expect(twilio.providers.twilio?.messagingServiceSID == "MG1")
        #expect(twilio.providers.twilio?.statusCallback == nil)
    }

    @Test("clear errors for half-configured providers and impossible failover lists")
    func errors() {
        let bad: [[String: String]] = [
            ["ACCOUNTSID": "AC1"],
            ["MSG_ID": "MG1"],
            ["SWITCHBOARD_WHATSAPP_TOKEN": "t"],
            ["SWITCHBOARD_SMTP_HOST": "h", "SWITCHBOARD_SMTP_TLS": "ssl3"],
            ["SWITCHBOARD_SMTP_HOST": "h", "SWITCHBOARD_SMTP_USER": "u"],
            ["SWITCHBOARD_SMS_PROVIDERS": "twilio,sandbox"],
            ["SWITCHBOARD_SMS_PROVIDERS": "smtp"],
            ["SWITCHBOARD_EMAIL_PROVIDERS": "sandbox,carrier-pigeon"],
            ["SWITCHBOARD_WHATSAPP_RATE": "fast"],
            ["SWITCHBOARD_PUBLIC_URL": "sb.example.com"],
        ]
        for env in bad {
            #expect(throws: SettingsError.self, "\(env)") { try Settings.fromEnvironment(env) }
        }
    }
}
