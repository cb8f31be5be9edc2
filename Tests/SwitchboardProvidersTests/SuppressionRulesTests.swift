import Foundation
import Testing
import SwitchboardCore
import SwitchboardSMTP
@testable import SwitchboardProviders

/// Which provider answers suppress a recipient (`SuppressionRules`), from the errors the providers really build, and
/// that `data.metadata` never reaches a provider's request.
@Suite("Suppression rules and metadata at the providers")
struct SuppressionRulesTests {
    func reason(_ provider: String, _ channel: MessageChannel, _ r: DeliveryResult) -> String? {
        guard case .permanent(let e) = r else { return nil }
        return SuppressionRules.reason(provider: provider, channel: channel, error: e)
    }

    @Test("Twilio 21610 suppresses on SMS; other Twilio errors (21211 invalid number, 20003 auth) do not")
    func twilio() {
        func answer(_ code: Int) -> DeliveryResult {
            TwilioProvider.result(HTTPAnswer(status: 400, body: Array(#"{"code": \#(code), "message": "m", "status": 400}"#.utf8)))
        }
        #expect(reason("twilio", .sms, answer(21610))?.contains("21610") == true)
        #expect(reason("twilio", .sms, answer(21211)) == nil)
        #expect(reason("twilio", .sms, answer(20003)) == nil)
    }

    @Test("Meta 131050 suppresses on WhatsApp; 131026 (undeliverable, often passing) and 131047 do not")
    func meta() {
        func answer(_ code: Int) -> DeliveryResult {
            WhatsAppProvider.result(HTTPAnswer(status: 400, body: Array(#"{"error":{"message":"m","type":"OAuthException","code":\#(code),"fbtrace_id":"x"}}"#.utf8)))
        }
        #expect(reason("meta", .whatsapp, answer(131050)) != nil)
        #expect(reason("meta", .whatsapp, answer(131026)) == nil)
        #expect(reason("meta", .whatsapp, answer(131047)) == nil)
    }

    @Test("SMTP 5.1.1 and 5.1.10 suppress, and a bare 550 saying the user is unknown; 5.2.2, 5.1.2, 5.7.1 and 4xx do not")
    func smtp() {
        func failure(_ code: Int, _ enhanced: String?, _ text: String) -> SMTPError {
            let f = SMTPFailure(step: .rcptTo, reply: SMTPReply(code: code, lines: [(enhanced.map { "\($0) " } ?? "") + text]), recipient: "a@example.org")
            return code >= 500 ? .permanent(f) : .transient(f)
        }
        #expect(reason("smtp", .email, SMTPProvider.result(for: failure(550, "5.1.1", "no such mailbox"))) != nil)
        #expect(reason("smtp", .email, SMTPProvider.result(for: failure(556, "5.1.10", "null MX"))) != nil)
        #expect(reason("smtp", .email, SMTPProvider.result(for: failure(550, nil, "User unknown in virtual mailbox table"))) != nil)
        #expect(reason("smtp", .email, SMTPProvider.result(for: failure(550, nil, "rejected by policy"))) == nil)
        #expect(reason("smtp", .email, SMTPProvider.result(for: failure(552, "5.2.2", "mailbox full"))) == nil)
        #expect(reason("smtp", .email, SMTPProvider.result(for: failure(550, "5.1.2", "bad destination system"))) == nil)
        #expect(reason("smtp", .email, SMTPProvider.result(for: failure(550, "5.7.1", "user unknown? relay denied"))) == nil)
        #expect(reason("smtp", .email, SMTPProvider.result(for: failure(450, "4.1.1", "try later"))) == nil)
        // The channel matters: an SMS error code never suppresses an email address, and back.
        #expect(SuppressionRules.reason(provider: "x", channel: .email, error: ProviderError(code: "21610", message: "m")) == nil)
        #expect(SuppressionRules.reason(provider: "x", channel: .sms, error: ProviderError(code: "550 5.1.1", message: "m")) == nil)
    }

    @Test("data.metadata is never in Twilio's form nor Meta's JSON body")
    func metadataNotSent() throws {
        let data: JSONValue = .object(["from": .string("+14155550100"), "to": .string("+14155550123"), "msg": .string("hi"), "metadata": .object(["secretOrder": .string("ORD-42")])])
        for type in ["sms", "whatsapp"] {
            guard case .success(let request) = RequestValidator.validate(.object(["type": .string(type), "data": data])) else { Issue.record("not valid"); return }
            #expect(request.metadata == ["secretOrder": "ORD-42"])
            let message = OutboundMessage(id: "c1", request: request, attempt: 1)
            let twilio = TwilioProvider(configuration: TwilioConfiguration(accountSID: "AC0123456789abcdef0123456789abcdef", authToken: "t", baseURL: "http://127.0.0.1:1"))
            #expect(!twilio.formFields(message).contains { $0.0.contains("secretOrder") || $0.1.contains("ORD-42") })
            let meta = WhatsAppProvider(configuration: WhatsAppConfiguration(accessToken: "t", phoneNumberID: "1", baseURL: "http://127.0.0.1:1"))
            #expect(!meta.body(message).canonicalText.contains("ORD-42"))
        }
    }
}
