import Testing

@testable import SwitchboardCore

@Suite("W3C traceparent")
struct TraceParentTests {
    static let example = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    @Test("parses and formats the specification's example")
    func example() throws {
        let t = try #require(TraceParent(parsing: Self.example))
        #expect(t.traceID == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(t.parentID == "00f067aa0ba902b7")
        #expect(t.flags == 1 && t.sampled)
        #expect(t.text == Self.example)
        #expect(TraceParent(parsing: "  \(Self.example)\t")?.text == Self.example)
        let unsampled = try #require(TraceParent(parsing: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"))
        #expect(!unsampled.sampled && unsampled.text.hasSuffix("-00"))
    }

    @Test("a later version is read by its first four fields")
    func laterVersion() {
        #expect(TraceParent(parsing: "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")?.traceID == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(TraceParent(parsing: "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next")?.text == Self.example)
        #expect(TraceParent(parsing: "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x") == nil)
    }

    @Test("invalid values are refused", arguments: [
        "",
        "00",
        "garbage",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",  // version 00 is exactly 55 characters
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  // trace id too short
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  // upper case
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  // zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  // zero parent id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  // version ff is invalid
        "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0z",
        "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba9 2b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\u{00e9}",
    ])
    func invalid(_ text: String) {
        #expect(TraceParent(parsing: text) == nil)
    }

    @Test("ids are checked when made from parts")
    func parts() {
        #expect(TraceParent(traceID: "4bf92f3577b34da6a3ce929d0e0e4736", parentID: "00f067aa0ba902b7")?.text == Self.example)
        #expect(TraceParent(traceID: "4bf92f3577b34da6a3ce929d0e0e4736", parentID: "00F067AA0BA902B7") == nil)
        #expect(TraceParent(traceID: "00000000000000000000000000000000", parentID: "00f067aa0ba902b7") == nil)
    }

    @Test("random ones are valid, sampled and distinct; withParent keeps the trace")
    func random() throws {
        let all = (0..<200).map { _ in TraceParent.random() }
        for t in all {
            #expect(TraceParent(parsing: t.text) == t)
            #expect(t.sampled)
        }
        #expect(Set(all.map(\.traceID)).count == all.count)
        let t = all[0]
        let child = try #require(t.withParent())
        #expect(child.traceID == t.traceID && child.parentID != t.parentID)
        #expect(t.withParent("00f067aa0ba902b7")?.parentID == "00f067aa0ba902b7")
    }

    @Test("the stream entry carries it in the one field `traceparent`, the seed's fields unchanged")
    func streamEntry() throws {
        let request = try #require({ if case .success(let r) = RequestValidator.validate(.object(["type": .string("sms"), "data": .object(["from": .string("+1234567890"), "to": .string("+0987654321"), "msg": .string("hi")])])) { r } else { nil } }())
        let trace = try #require(TraceParent(parsing: Self.example))
        let entry = DispatchEntry(communicationId: "c1", dispatchSeq: 2, request: request, traceParent: trace)
        let fields = entry.fields
        #expect(fields["traceparent"] == Self.example)
        #expect(Set(fields.keys) == ["_id", "data", "from", "msg", "seq", "status", "to", "type", "traceparent"])
        #expect(JSONValue.canonicalText(stringFields: fields) == entry.fieldsText)
        #expect(DispatchEntry.Reference(fields: fields)?.traceParent == trace)
        #expect(DispatchEntry(fields: fields)?.traceParent == trace)
        // Without one (a record stored before traces): the seed's fields only, and a reference without a trace.
        let plain = DispatchEntry(communicationId: "c1", dispatchSeq: 2, request: request)
        #expect(plain.fields["traceparent"] == nil)
        #expect(JSONValue.canonicalText(stringFields: plain.fields) == plain.fieldsText)
        var broken = fields
        broken["traceparent"] = "nonsense"
        #expect(DispatchEntry.Reference(fields: broken)?.traceParent == nil)
        #expect(DispatchEntry.Reference(fields: broken)?.communicationId == "c1")
        // The outbox's republication replaces the record's context with its own span's.
        let c = Communication(id: "c1", request: request, status: .queued, createdAt: Timestamp(milliseconds: 0), updatedAt: Timestamp(milliseconds: 0), traceParent: trace)
        let republished = try #require(trace.withParent("1111111111111111"))
        #expect(DispatchEntry(c).traceParent == trace)
        #expect(DispatchEntry(c, traceParent: republished).fields["traceparent"] == republished.text)
    }

    @Test("log records carry the record's trace context")
    func logRecord() throws {
        let request = try #require({ if case .success(let r) = RequestValidator.validate(.object(["type": .string("email"), "data": .object(["from": .string("a@example.com"), "to": .string("b@example.com"), "msg": .string("hi"), "subject": .string("s")])])) { r } else { nil } }())
        let trace = try #require(TraceParent(parsing: Self.example))
        let c = Communication(id: "c2", request: request, status: .sent, createdAt: Timestamp(milliseconds: 5), updatedAt: Timestamp(milliseconds: 5), traceParent: trace)
        let record = LogRecord(c, change: StatusChange(status: .sent, at: Timestamp(milliseconds: 5), attempt: 1, service: "email", provider: "smtp"))
        #expect(record.traceParent == trace)
        #expect(record.fields["traceparent"] == Self.example)
        #expect(JSONValue.canonicalText(stringFields: record.fields) == record.fieldsText)
        #expect(LogRecord(fields: record.fields) == record)
    }
}
