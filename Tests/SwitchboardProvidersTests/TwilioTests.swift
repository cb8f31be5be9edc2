import Foundation
import Testing
import SwitchboardTestHTTP
import SwitchboardCore
@testable import SwitchboardProviders

func sms(to: String = "+14155550101", from: String = "+14155550100", msg: String = "Hello") -> OutboundMessage {
    OutboundMessage(id: "c1", request: CommunicationRequest(channel: .sms, from: from, to: to, msg: msg), attempt: 1)
}

/// Twilio's documented Message resource answer to a create (201).
func twilioCreated(sid: String = "SM1f0e8ae6ade43cb3c0ce4525424e404f") -> MockHTTPServer.Reply {
    .init(status: 201, body: """
    {"account_sid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", "api_version": "2010-04-01", "body": "Hello", "date_created": "Thu, 24 Aug 2023 05:01:45 +0000",
     "date_sent": null, "date_updated": "Thu, 24 Aug 2023 05:01:45 +0000", "direction": "outbound-api", "error_code": null, "error_message": null,
     "from": "+14155550100", "num_media": "0", "num_segments": "1", "price": null, "price_unit": "USD", "messaging_service_sid": null,
     "sid": "\(sid)", "status": "queued", "subresource_uris": {"media": "/2010-04-01/Accounts/ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX/Messages/\(sid)/Media.json"},
     "to": "+14155550101", "uri": "/2010-04-01/Accounts/ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX/Messages/\(sid).json"}
    """)
}

/// Twilio's documented error body.
func twilioError(status: Int, code: Int, message: String) -> MockHTTPServer.Reply {
    .init(status: status, body: #"{"code": \#(code), "message": "\#(message)", "more_info": "https://www.twilio.com/docs/errors/\#(code)", "status": \#(status)}"#)
}

@Suite("Twilio provider against a local HTTP server")
struct TwilioProviderTests {
    let sid = "AC0123456789abcdef0123456789abcdef"
    let token = "test-auth-token-0123456789"

    func provider(_ server: MockHTTPServer, service: String? = nil, callback: String? = nil, timeout: Duration = .seconds(60)) -> TwilioProvider {
        TwilioProvider(configuration: TwilioConfiguration(accountSID: sid, authToken: token, messagingServiceSID: service, baseURL: server.baseURL, statusCallback: callback, timeout: timeout))
    }

    @Test("sends the documented request (POST, path, Basic auth, form fields) and keeps the sid")
    func wireFormat() async throws {
        let server = try await MockHTTPServer.start()
        defer { Task { await server.stop() } }
        server.enqueue(twilioCreated())
        let text = "Grüße & 100% = ok+1 ✓\nline 2"
        let result = await provider(server, callback: "https://sb.example.com/webhooks/twilio/status").deliver(sms(msg: text))
        #expect(result == .sent(providerMessageID: "SM1f0e8ae6ade43cb3c0ce4525424e404f"))
        let r = try #require(server.requests.first)
        #expect(server.requests.count == 1)
        #expect(r.method == "POST")
        #expect(r.path == "/2010-04-01/Accounts/\(sid)/Messages.json")
        #expect(r.query == "")
        #expect(r.headers["authorization"] == "Basic " + Data("\(sid):\(token)".utf8).base64EncodedString())
        #expect(r.headers["content-type"] == "application/x-www-form-urlencoded")
        #expect(r.headers["accept"] == "application/json")
        let form = r.form
        #expect(form.map(\.0) == ["To", "From", "Body", "StatusCallback"])
        #expect(form.first { $0.0 == "To" }?.1 == "+14155550101")
        #expect(form.first { $0.0 == "From" }?.1 == "+14155550100")
        #expect(form.first { $0.0 == "Body" }?.1 == text)
        #expect(form.first { $0.0 == "StatusCallback" }?.1 == "https://sb.example.com/webhooks/twilio/status")
        // The body is strictly percent-encoded: '+' in the text never appears raw.
        #expect(r.text.contains("%2B14155550101"))
    }

    @Test("a messaging service (MSG_ID) replaces From; no StatusCallback without a public URL")
    func messagingService() async throws {
        let server = try await MockHTTPServer.start()
        defer { Task { await server.stop() } }
        server.enqueue(twilioCreated(sid: "SMaaaa"))
        let result = await provider(server, service: "MG0123456789abcdef0123456789abcdef").deliver(sms())
        #expect(result == .sent(providerMessageID: "SMaaaa"))
        let form = try #require(server.requests.first).form
        #expect(form.map(\.0) == ["To", "MessagingServiceSid", "Body"])
        #expect(form[1].1 == "MG0123456789abcdef0123456789abcdef")
    }

    @Test("errors: 21211 and 21610 and other 4xx permanent; 20429 / 429, 5xx retryable; code and message kept")
    func errors() async throws {
        let server = try await MockHTTPServer.start()
        defer { Task { await server.stop() } }
        let p = provider(server)
        let cases: [(MockHTTPServer.Reply, Bool, String)] = [
            (twilioError(status: 400, code: 21211, message: "The 'To' number +1555 is not a valid phone number."), false, "21211"),
            (twilioError(status: 400, code: 21610, message: "Attempt to send to unsubscribed recipient"), false, "21610"),
            (twilioError(status: 401, code: 20003, message: "Authenticate"), false, "20003"),
            (twilioError(status: 404, code: 20404, message: "The requested resource was not found"), false, "20404"),
            (twilioError(status: 429, code: 20429, message: "Too Many Requests"), true, "20429"),
            (twilioError(status: 400, code: 20429, message: "Too Many Requests"), true, "20429"),
            (twilioError(status: 503, code: 20503, message: "Service Unavailable"), true, "20503"),
            (.init(status: 502, body: "<html>Bad Gateway</html>", contentType: "text/html"), true, "http_502"),
        ]
        for (reply, retryable, code) in cases {
            server.enqueue(reply)
            let result = await p.deliver(sms())
            switch result {
            case .retryable(let e) where retryable:
                #expect(e.code == code)
            case .permanent(let e) where !retryable:
                #expect(e.code == code)
                #expect(e.message.contains("https://www.twilio.com/docs/errors/\(code)"))
            default:
                Issue.record("\(code): unexpected \(result)")
            }
        }
        server.enqueue(cases[0].0)
        let again = await p.deliver(sms())
        if case .permanent(let e) = again {
            #expect(e.message.hasPrefix("The 'To' number +1555 is not a valid phone number."))
        } else {
            Issue.record("21211 should be permanent")
        }
    }

    @Test("a timeout and a refused connection are retryable")
    func transport() async throws {
        let server = try await MockHTTPServer.start()
        server.enqueue(.init(status: 201, body: "{}", delay: .seconds(3)))
        let slow = await provider(server, timeout: .seconds(1)).deliver(sms())
        guard case .retryable(let e) = slow else { Issue.record("expected retryable, got \(slow)"); return }
        #expect(e.code == "timeout")
        await server.stop()
        // The client retries a refused connection until its deadline, then reports it: a short one keeps the test short.
        let refused = await provider(server, timeout: .seconds(5)).deliver(sms())
        guard case .retryable(let e2) = refused else { Issue.record("expected retryable, got \(refused)"); return }
        #expect(e2.code == "connection_failed")
        #expect(!e2.message.contains(sid))
    }
}

@Suite("Twilio request signature and status callback")
struct TwilioWebhookTests {
    @Test("Twilio's published example")
    func publishedExample() {
        let params = [("CallSid", "CA1234567890ABCDE"), ("Caller", "+12349013030"), ("Digits", "1234"), ("From", "+12349013030"), ("To", "+18005551212")]
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2"
        #expect(TwilioSignature.compute(url: url, parameters: params, authToken: "12345") == "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
        // Order of the parameters as received does not matter; they are sorted by name.
        #expect(TwilioSignature.isValid(signature: "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", url: url, parameters: params.reversed(), authToken: "12345"))
        #expect(!TwilioSignature.isValid(signature: "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", url: url + "&x=1", parameters: params, authToken: "12345"))
        #expect(!TwilioSignature.isValid(signature: "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", url: url, parameters: params, authToken: "12346"))
        #expect(!TwilioSignature.isValid(signature: nil, url: url, parameters: params, authToken: "12345"))
    }

    @Test("own vectors (computed independently with Python's hmac): status callback, non-ASCII, empty values")
    func ownVectors() {
        // python3: base64(hmac.new(b'tok', (url + ''.join(k+v for k,v in sorted(p))).encode(), sha1).digest())
        let url = "https://sb.example.com/webhooks/twilio/status"
        let params = [("MessageStatus", "delivered"), ("MessageSid", "SM1f0e8ae6ade43cb3c0ce4525424e404f"), ("AccountSid", "AC0123"), ("ErrorCode", ""), ("Body", "Grüße ✓")]
        #expect(TwilioSignature.compute(url: url, parameters: params, authToken: "tok") == "E8MPMUhNYGu6ihwcX0y/D87/TIU=")
        #expect(TwilioSignature.compute(url: url, parameters: [], authToken: "tok") == "BfWFX0P+vKxl2LnNaE5Pypr1m8E=")
    }

    func signedBody(_ pairs: [(String, String)], url: String, token: String) -> ([UInt8], String) {
        (Array(FormEncoding.encode(pairs).utf8), TwilioSignature.compute(url: url, parameters: pairs, authToken: token))
    }

    @Test("a signed callback is read; MessageStatus maps onto our statuses; ErrorCode is kept")
    func callback() throws {
        let hook = TwilioStatusWebhook(authToken: "tok")
        let url = "https://sb.example.com/webhooks/twilio/status"
        for (raw, status) in [("delivered", CommunicationStatus.delivered), ("undelivered", .undelivered), ("failed", .failed), ("read", .read), ("sent", nil), ("queued", nil)] {
            var pairs = [("MessageSid", "SM1"), ("MessageStatus", raw), ("AccountSid", "AC1"), ("To", "+14155550101")]
            if raw == "undelivered" { pairs.append(("ErrorCode", "30003")) }
            let (body, sig) = signedBody(pairs, url: url, token: "tok")
            let report = try hook.report(url: url, signature: sig, body: body).get()
            #expect(report.providerMessageID == "SM1")
            #expect(report.status == status)
            #expect(report.rawStatus == raw)
            if raw == "undelivered" { #expect(report.error?.code == "30003") }
        }
    }

    @Test("a wrong or missing signature, or a changed parameter, is refused with 403")
    func refused() {
        let hook = TwilioStatusWebhook(authToken: "tok")
        let url = "https://sb.example.com/webhooks/twilio/status"
        let (body, sig) = signedBody([("MessageSid", "SM1"), ("MessageStatus", "delivered")], url: url, token: "tok")
        #expect(throws: WebhookRejection.self) { try hook.report(url: url, signature: nil, body: body).get() }
        #expect(throws: WebhookRejection.self) { try hook.report(url: url, signature: "AAAA" + sig.dropFirst(4), body: body).get() }
        #expect(throws: WebhookRejection.self) { try hook.report(url: "http://sb.example.com/webhooks/twilio/status", signature: sig, body: body).get() }
        let tampered = Array(FormEncoding.encode([("MessageSid", "SM1"), ("MessageStatus", "read")]).utf8)
        if case .failure(let r) = hook.report(url: url, signature: sig, body: tampered) { #expect(r.status == 403) } else { Issue.record("tampered body accepted") }
    }

    @Test("form encoding round-trips through our decoder and Foundation's")
    func formRoundTrip() {
        let pairs = [("Body", "a+b c&d=e%f ✓ \n"), ("To", "+1 555"), ("Empty", "")]
        let encoded = FormEncoding.encode(pairs)
        #expect(!encoded.contains(" "))
        let decoded = FormEncoding.decode(Array(encoded.utf8))
        #expect(decoded.map(\.0) == pairs.map(\.0))
        #expect(decoded.map(\.1) == pairs.map(\.1))
        #expect(FormEncoding.decode(Array("a=%zz&b=%4&c".utf8)).map(\.1) == ["%zz", "%4", ""])
    }
}
