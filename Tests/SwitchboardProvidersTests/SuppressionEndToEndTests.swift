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

/// A provider's "never again" answer puts the recipient on the suppression list, through the whole system (router,
/// worker, store), and the next message to it is refused at accept.
@Suite("Suppression after a provider's answer, end to end", .serialized)
struct SuppressionEndToEndTests {
    static func post(_ client: any TestClientProtocol, _ type: String, _ data: JSONValue) async throws -> TestResponse {
        let body = JSONValue.object(["type": .string(type), "data": data]).canonicalText
        return try await client.execute(uri: "/api/v1/communication", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: body))
    }

    static func items(_ page: JSONValue) -> [JSONValue] {
        if case .array(let a)? = page["items"] { return a }
        return []
    }

    /// Polls `uri` (a suppressions list) until it has an item.
    static func listed(_ client: any TestClientProtocol, _ uri: String) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if !items(try json(try await client.execute(uri: uri, method: .get))).isEmpty { return }
            try await Task.sleep(for: .milliseconds(25))
        }
        Issue.record("\(uri) stayed empty")
    }

    /// Posts until the answer is a 422 (the suppression is written just after the failure is recorded), and returns it.
    static func refused(_ client: any TestClientProtocol, _ type: String, _ data: JSONValue) async throws -> TestResponse {
        let deadline = ContinuousClock.now + .seconds(10)
        while true {
            let r = try await post(client, type, data)
            if r.status == .unprocessableContent || ContinuousClock.now >= deadline { return r }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    @Test("Twilio 21610 (unsubscribed recipient): failed, suppressed for SMS, the next SMS to it is a 422 and never reaches Twilio")
    func twilioOptOut() async throws {
        let api = try await MockHTTPServer.start()
        defer { Task { await api.stop() } }
        let settings = try e2eSettings([
            "ACCOUNTSID": "AC0123456789abcdef0123456789abcdef", "AUTHTOKEN": "twilio-secret-token", "MSG_ID": "MG0123456789abcdef0123456789abcdef",
            "SWITCHBOARD_TWILIO_BASE_URL": api.baseURL,
        ])
        api.enqueue(twilioError(status: 400, code: 21610, message: "Attempt to send to unsubscribed recipient"))
        try await withSystem(settings) { system, client in
            let data: JSONValue = .object(["from": .string("+14155550100"), "to": .string("+14155550123"), "msg": .string("hi")])
            let id = try await send(client, data, type: "sms")
            let failed = try await waitFor(system, id, .failed)
            #expect(failed.lastError?.code == "21610")
            // The list is written just after the failure is recorded: wait for it, then the next message is refused.
            try await Self.listed(client, "/api/v1/suppressions?channel=sms&to=+14155550123")
            let r = try await Self.post(client, "sms", data)
            #expect(r.status == .unprocessableContent)
            let error = try json(r)["error"]
            #expect(error?["code"] == .string("recipient_suppressed"))
            #expect(error?["field"] == .string("data.to"))
            let message = try #require(error?["message"]?.stringValue)
            #expect(message.contains("21610") && message.contains("opted out") && message.contains(String(Timestamp(milliseconds: Int64(Date().timeIntervalSince1970 * 1000)).iso8601.prefix(10))))
            #expect(api.requests.count == 1, "the refused message reached Twilio")
            // Listed with its source and the provider's code; another channel is not affected.
            let list = try json(try await client.execute(uri: "/api/v1/suppressions?channel=sms&to=+14155550123", method: .get))
            #expect(list["count"] == .number(1))
            let items = Self.items(list)
            #expect(items.first?["source"] == .string("provider"))
            #expect(items.first?["detail"] == .string("twilio 21610"))
            api.enqueue(twilioCreated())
            _ = try await send(client, .object(["from": .string("+14155550100"), "to": .string("+14155550124"), "msg": .string("hi")]), type: "sms")
        }
    }

    @Test("Twilio's signed undelivered callback with 21610 suppresses the recipient; one with 30003 does not")
    func twilioCallbackOptOut() async throws {
        let api = try await MockHTTPServer.start()
        defer { Task { await api.stop() } }
        let token = "twilio-secret-token"
        let settings = try e2eSettings([
            "ACCOUNTSID": "AC0123456789abcdef0123456789abcdef", "AUTHTOKEN": token, "MSG_ID": "MG0123456789abcdef0123456789abcdef",
            "SWITCHBOARD_TWILIO_BASE_URL": api.baseURL, "SWITCHBOARD_PUBLIC_URL": "https://sb.example.com/",
        ])
        api.enqueue(twilioCreated(sid: "SMe2e00000000000000000000000000001"), twilioCreated(sid: "SMe2e00000000000000000000000000002"))
        try await withSystem(settings) { system, client in
            func callback(_ sid: String, _ to: String, _ code: String) async throws -> TestResponse {
                let pairs = [("AccountSid", "AC0123456789abcdef0123456789abcdef"), ("MessageSid", sid), ("MessageStatus", "undelivered"), ("To", to), ("ErrorCode", code)]
                let sig = TwilioSignature.compute(url: "https://sb.example.com/webhooks/twilio/status", parameters: pairs, authToken: token)
                return try await client.execute(uri: "/webhooks/twilio/status", method: .post,
                    headers: [.contentType: "application/x-www-form-urlencoded", HTTPField.Name("X-Twilio-Signature")!: sig],
                    body: ByteBuffer(string: FormEncoding.encode(pairs)))
            }
            let optedOut: JSONValue = .object(["from": .string("+14155550100"), "to": .string("+14155550131"), "msg": .string("x")])
            let other: JSONValue = .object(["from": .string("+14155550100"), "to": .string("+14155550132"), "msg": .string("x")])
            let first = try await send(client, optedOut, type: "sms")
            try await waitFor(system, first, .sent)
            let second = try await send(client, other, type: "sms")
            try await waitFor(system, second, .sent)
            #expect(try await callback("SMe2e00000000000000000000000000001", "+14155550131", "21610").status == .ok)
            #expect(try await callback("SMe2e00000000000000000000000000002", "+14155550132", "30003").status == .ok)
            try await waitFor(system, first, .undelivered)
            try await waitFor(system, second, .undelivered)
            let r = try await Self.post(client, "sms", optedOut)
            #expect(r.status == .unprocessableContent)
            #expect(try json(r)["error"]?["code"] == .string("recipient_suppressed"))
            api.enqueue(twilioCreated(sid: "SMe2e00000000000000000000000000003"))
            #expect(try await Self.post(client, "sms", other).status == .ok)
        }
    }

    @Test("SMTP 550 5.1.1 (unknown mailbox): suppressed for email, compared case-insensitively; a 4xx does not suppress")
    func smtpUnknownMailbox() async throws {
        let smtp = try await SMTPTestServer.start(.init(mode: .plain))
        defer { Task { await smtp.stop() } }
        let settings = try e2eSettings(["SWITCHBOARD_SMTP_HOST": "127.0.0.1", "SWITCHBOARD_SMTP_PORT": "\(smtp.port)", "SWITCHBOARD_SMTP_TLS": "none"])
        try await withSystem(settings) { system, client in
            let id = try await send(client, .object(["from": .string("ada@example.com"), "to": .string("nosuchuser@example.org"), "msg": .string("x")]), type: "email")
            let failed = try await waitFor(system, id, .failed)
            #expect(failed.lastError?.code == "550 5.1.1")
            let r = try await Self.refused(client, "email", .object(["from": .string("ada@example.com"), "to": .string("NoSuchUser@Example.org"), "msg": .string("x")]))
            #expect(r.status == .unprocessableContent)
            #expect(try json(r)["error"]?["code"] == .string("recipient_suppressed"))
            // A deferral (451) is retried and sent: nothing suppressed.
            let flaky = try await send(client, .object(["from": .string("ada@example.com"), "to": .string("tempfail-once@example.org"), "msg": .string("x")]), type: "email")
            try await waitFor(system, flaky, .sent)
            let list = try json(try await client.execute(uri: "/api/v1/suppressions?channel=email", method: .get))
            #expect(Self.items(list).compactMap { $0["to"]?.stringValue } == ["nosuchuser@example.org"])
        }
    }

    @Test("the sandbox's opted-out number (+15005550004): suppressed on SMS after its 21610, WhatsApp unaffected")
    func sandboxOptOut() async throws {
        try await withSystem(try e2eSettings([:])) { system, client in
            let data: JSONValue = .object(["from": .string("+14155550100"), "to": .string(SandboxRecipients.optedOut), "msg": .string("x")])
            let id = try await send(client, data, type: "sms")
            try await waitFor(system, id, .failed)
            #expect(try await Self.refused(client, "sms", data).status == .unprocessableContent)
            #expect(try await Self.post(client, "whatsapp", data).status == .ok)
        }
    }
}

enum SandboxRecipients {
    static let optedOut = "+15005550004"
}
