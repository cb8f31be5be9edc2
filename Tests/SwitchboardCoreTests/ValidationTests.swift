import Testing
@testable import SwitchboardCore

@Suite("Request validation")
struct ValidationTests {
    func body(_ type: JSONValue?, _ data: [String: JSONValue]?) -> JSONValue {
        var o: [String: JSONValue] = [:]
        if let type { o["type"] = type }
        if let data { o["data"] = .object(data) }
        return .object(o)
    }

    func error(_ v: JSONValue) -> RequestError? {
        if case .failure(let e) = RequestValidator.validate(v) { return e }
        return nil
    }

    @Test("the seed's example is valid and echoed as sent")
    func seedExample() throws {
        let data: [String: JSONValue] = ["from": "+1234567890", "to": "+0987654321", "msg": "Hello"]
        let r = try RequestValidator.validate(body("sms", data)).get()
        #expect(r.channel == .sms)
        #expect(r.to == "+0987654321")
        #expect(r.data == .object(data))
    }

    @Test("missing, mistyped and empty fields name the field")
    func fields() {
        #expect(error(body(nil, ["from": "a", "to": "b", "msg": "c"]))?.field == "type")
        #expect(error(body("fax", ["from": "a", "to": "b", "msg": "c"]))?.code == "invalid_type")
        #expect(error(body(.number(3), ["from": "a"]))?.code == "invalid_field_type")
        #expect(error(body("sms", nil))?.field == "data")
        #expect(error(.object(["type": "sms", "data": "x"]))?.code == "invalid_field_type")
        #expect(error(body("sms", ["to": "+1234567890", "msg": "hi"]))?.field == "data.from")
        #expect(error(body("sms", ["from": "+1234567890", "msg": "hi"]))?.field == "data.to")
        #expect(error(body("sms", ["from": "+1234567890", "to": "+1234567890"]))?.field == "data.msg")
        #expect(error(body("sms", ["from": "+1234567890", "to": "+1234567890", "msg": "  "]))?.code == "empty_field")
        #expect(error(body("sms", ["from": "+1234567890", "to": .number(1234567890), "msg": "x"]))?.code == "invalid_field_type")
        #expect(error(.array([]))?.code == "invalid_body")
        #expect(error(.object(["type": "sms", "data": .object(["from": "+1234567890", "to": "+1234567890", "msg": "x"]), "extra": true]))?.code == "unknown_field")
        #expect(error(body("sms", ["from": "+1234567890", "to": "+1234567890", "msg": "x", "subject": "s"]))?.field == "data.subject")
    }

    @Test("E.164 numbers for sms and whatsapp", arguments: [
        ("+12345678", true), ("+123456789012345", true), ("+1234567", false), ("+1234567890123456", false),
        ("12345678901", false), ("+1234 567890", false), ("+12345678a", false), ("", false),
    ])
    func phones(number: String, valid: Bool) {
        #expect(Address.isValidE164(number) == valid)
        let e = error(body("whatsapp", ["from": "+1234567890", "to": .string(number), "msg": "x"]))
        if valid { #expect(e == nil) } else { #expect(e?.field == "data.to") }
    }

    @Test("addr-spec email addresses", arguments: [
        ("ada@example.com", true), ("first.last+tag@sub.example.co.uk", true), ("\"quoted local\"@example.com", false),
        ("\"ada\"@example.com", false), ("user@[192.0.2.1]", false), ("user@[IPv6:2001:db8::1]", false), ("üser@exämple.de", true), ("x@localhost", true),
        ("no-at.example.com", false), ("@example.com", false), ("a@", false), ("a..b@example.com", false),
        (".a@example.com", false), ("a@-example.com", false), ("a@example..com", false), ("a b@example.com", false),
        ("Ada <ada@example.com>", false), (String(repeating: "a", count: 65) + "@example.com", false),
    ])
    func emails(address: String, valid: Bool) {
        #expect(Address.isValidEmail(address) == valid, "\(address)")
    }

    @Test("length limits per channel")
    func lengths() {
        let sms1600 = String(repeating: "é", count: 1600)
        #expect(error(body("sms", ["from": "+1234567890", "to": "+1234567890", "msg": .string(sms1600)])) == nil)
        #expect(error(body("sms", ["from": "+1234567890", "to": "+1234567890", "msg": .string(sms1600 + "x")]))?.code == "message_too_long")
        #expect(error(body("whatsapp", ["from": "+1234567890", "to": "+1234567890", "msg": .string(String(repeating: "x", count: 4097))]))?.code == "message_too_long")
        #expect(error(body("whatsapp", ["from": "+1234567890", "to": "+1234567890", "msg": .string(String(repeating: "x", count: 4096))])) == nil)
        #expect(error(body("email", ["from": "a@example.com", "to": "b@example.com", "msg": .string(String(repeating: "x", count: (1 << 20) + 1))]))?.code == "message_too_long")
    }

    @Test("email subject and html; whatsapp template")
    func optionalFields() throws {
        let r = try RequestValidator.validate(body("email", ["from": "a@example.com", "to": "b@example.com", "msg": "text", "subject": "Hi", "html": "<p>x</p>"])).get()
        #expect(r.subject == "Hi")
        #expect(r.html == "<p>x</p>")
        #expect(error(body("email", ["from": "a@example.com", "to": "b@example.com", "msg": "t", "subject": "a\r\nBcc: x@example.com"]))?.code == "invalid_subject")
        let t = try RequestValidator.validate(body("whatsapp", ["from": "+1234567890", "to": "+1234567890", "msg": "x", "template": .object(["name": "order_update", "parameters": .array(["A1", "today"])])])).get()
        #expect(t.template == WhatsAppTemplate(name: "order_update", language: "en_US", parameters: ["A1", "today"]))
        #expect(error(body("whatsapp", ["from": "+1234567890", "to": "+1234567890", "msg": "x", "template": .object(["parameters": .array([])])]))?.field == "data.template.name")
    }
}

extension JSONValue: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
}
extension JSONValue: ExpressibleByBooleanLiteral {
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}
