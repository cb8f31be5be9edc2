import Testing
@testable import SwitchboardCore

@Suite("JSON, timestamps, ids and stream entries")
struct EncodingTests {
    @Test("JSON parse and canonical text round-trip")
    func json() throws {
        let text = #"{"b":[1,2.5,-3e2,true,null],"a":"x\"y\\z\n\u00e9\ud83d\ude00","c":{}}"#
        let v = try JSONParser.parse(text)
        #expect(v["a"] == .string("x\"y\\z\né😀"))
        #expect(try JSONParser.parse(v.canonicalText) == v)
        #expect(v.canonicalText.hasPrefix(#"{"a":"#))
        for bad in ["", "{", "{\"a\":}", "[1,]", "01", "\"\\x\"", "{} x", "\"\u{01}\"", "nul", "\"\\ud800\""] {
            #expect(throws: JSONParser.Failure.self, "\(bad)") { try JSONParser.parse(bad) }
        }
    }

    @Test("timestamps format and parse RFC 3339")
    func timestamps() {
        let t = Timestamp(milliseconds: 1_795_238_959_123)
        #expect(t.iso8601 == "2026-11-21T05:29:19.123Z")
        #expect(Timestamp(parsing: t.iso8601) == t)
        #expect(Timestamp(parsing: "2026-11-21T07:29:19.123+02:00") == t)
        #expect(Timestamp(parsing: "2026-11-21")?.iso8601 == "2026-11-21T00:00:00.000Z")
        #expect(Timestamp(parsing: "1795238959123") == t)
        #expect(Timestamp(milliseconds: 0).iso8601 == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp(milliseconds: 951_782_400_000).iso8601 == "2000-02-29T00:00:00.000Z")
        #expect(Timestamp(parsing: "yesterday") == nil)
        #expect(Timestamp(parsing: "2026-13-01") == nil)
        #expect(Timestamp(parsing: "2026-11-21T05:29:19.123456Z") == t)
    }

    @Test("ids are 24 hex digits, unique and time-ordered")
    func ids() {
        var g = SeededGenerator(state: 3)
        let gen = ObjectIDGenerator(random: &g)
        let a = gen.next(now: Timestamp(milliseconds: 1_000_000))
        let b = gen.next(now: Timestamp(milliseconds: 2_000_000))
        #expect(ObjectIDGenerator.isValid(a) && ObjectIDGenerator.isValid(b))
        #expect(a < b)
        #expect(Set((0..<1000).map { _ in gen.next(now: Timestamp(milliseconds: 5)) }).count == 1000)
    }

    @Test("dispatch and log entries round-trip through stream fields")
    func entries() throws {
        let req = CommunicationRequest(channel: .email, from: "a@example.com", to: "b@example.com", msg: "hi", subject: "S", html: "<b>hi</b>")
        let d = DispatchEntry(communicationId: "abc", dispatchSeq: 3, request: req)
        let fields = d.fields
        #expect(fields["_id"] == "abc" && fields["from"] == "a@example.com" && fields["to"] == "b@example.com" && fields["msg"] == "hi" && fields["status"] == "queued")
        #expect(DispatchEntry(fields: fields) == d)
        #expect(DispatchEntry(fields: ["_id": "x"]) == nil)
        let log = LogRecord(communicationId: "abc", service: "email", status: .failed, type: .email, from: "a", to: "b", msg: "m", error: "E: x", attempt: 2, provider: "smtp", timestamp: Timestamp(milliseconds: 1000))
        #expect(LogRecord(fields: log.fields) == log)
    }

    @Test("the direct encoders write exactly the canonical text of the fields")
    func directEncoders() throws {
        let awkward = "tab\there \"quoted\" back\\slash \u{01}\u{1f} é😀 </script>"
        #expect(JSONValue.canonicalText(stringFields: ["b": awkward, "a": "1", "_": ""]) == JSONValue.object(["b": .string(awkward), "a": .string("1"), "_": .string("")]).canonicalText)
        #expect(try JSONParser.parse(JSONValue.string(awkward).canonicalText) == .string(awkward))
        #expect(JSONValue.string("\u{01}\u{1f}").canonicalText == #""\u0001\u001f""#)

        let request = CommunicationRequest(channel: .email, from: "a@example.com", to: "b@example.com", msg: awkward, data: .object(["msg": .string(awkward), "n": .number(3)]))
        let entry = DispatchEntry(communicationId: "0123456789abcdef01234567", dispatchSeq: 2, request: request)
        #expect(entry.fieldsText == JSONValue.canonicalText(stringFields: entry.fields))
        let bare = LogRecord(communicationId: "c", service: "router", status: .queued, type: .sms, from: "+1", to: "+2", msg: awkward, error: nil, attempt: 0, provider: nil, timestamp: Timestamp(milliseconds: 5))
        let full = LogRecord(communicationId: "c", service: "sms-worker", status: .failed, type: .sms, from: "+1", to: "+2", msg: "m", error: "boom \"x\"", attempt: 3, provider: "twilio", timestamp: Timestamp(milliseconds: 1_795_238_959_123))
        // Every optional field, the metadata among them (before `msg`, whose place the status text leaves out).
        let rich = LogRecord(communicationId: "c", service: "router", status: .scheduled, type: .email, from: "a@example.com", to: "b@example.com", msg: awkward, error: "e", attempt: 1, provider: "smtp", timestamp: Timestamp(milliseconds: 7), test: true, traceParent: TraceParent(parsing: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"), keyID: "key_1", metadata: ["orderId": awkward, "a": ""])
        for r in [bare, full, rich] {
            #expect(r.statusFieldsText == JSONValue.canonicalText(stringFields: r.statusFields))
            #expect(r.fieldsText == JSONValue.canonicalText(stringFields: r.fields))
            #expect(JSONParser.parseStringFields(r.fieldsText) == r.fields)
            #expect(r.logAndStatusTexts.log == r.fieldsText)
            #expect(r.logAndStatusTexts.status == JSONValue.canonicalText(stringFields: r.statusFields))
            #expect(r.statusFields["msg"] == nil && r.statusFields.count == r.fields.count - 1)
        }
    }

    @Test("string fields parse without a tree; anything but one object is refused")
    func stringFields() {
        #expect(JSONParser.parseStringFields(#" {"a":"x","n":1,"o":{"k":[1]},"b":"\u00e9"} "#) == ["a": "x", "b": "é"])
        #expect(JSONParser.parseStringFields("{}") == [:])
        for bad in ["", "[]", "\"a\"", "{\"a\":}", "{\"a\":\"x\"", "{\"a\":\"x\"} y", "{a:\"x\"}", "{\"a\":\"\u{01}\"}"] {
            #expect(JSONParser.parseStringFields(bad) == nil, "\(bad)")
        }
    }

    @Test("a list of string fields: one object, or an array of objects; anything else is refused")
    func stringFieldsList() {
        #expect(JSONParser.parseStringFieldsList(#"{"a":"x","n":1}"#) == [["a": "x"]])
        #expect(JSONParser.parseStringFieldsList(#" [ {"a":"x"} , {"b":"y","o":{"k":[1]}}, {} ] "#) == [["a": "x"], ["b": "y"], [:]])
        #expect(JSONParser.parseStringFieldsList("[]") == [])
        for bad in ["", "\"a\"", "[1]", "[{\"a\":\"x\"},]", "[{\"a\":\"x\"}", "[{\"a\":\"x\"}] y", "[{\"a\":\"x\"} {\"b\":\"y\"}]", "[[]]"] {
            #expect(JSONParser.parseStringFieldsList(bad) == nil, "\(bad)")
        }
    }
}
