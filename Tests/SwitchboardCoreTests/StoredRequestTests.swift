import Testing
@testable import SwitchboardCore

@Suite("stored requests and queued records")
struct StoredRequestTests {
    @Test("a stored request reads back as validation made it, without validating again")
    func storedEqualsValidated() throws {
        let bodies = [
            #"{"type":"email","data":{"from":"a@example.com","to":"b@example.com","msg":"hi","subject":"S","html":"<p>hi</p>"}}"#,
            #"{"type":"sms","data":{"from":"+15550000000","to":"+15551112222","msg":"hi"}}"#,
            #"{"type":"whatsapp","data":{"from":"+15550000000","to":"+15551112222","msg":"hi","template":{"name":"order","parameters":["1","2"]}}}"#,
            #"{"type":"whatsapp","data":{"from":"+15550000000","to":"+15551112222","msg":"hi","template":{"name":"order","language":"de","parameters":[]}}}"#,
            #"{"type":"email","data":{"from":"a@example.com","to":"b@example.com","msg":"hi","subject":null}}"#,
        ]
        for body in bodies {
            guard case .success(let validated) = RequestValidator.validate(try JSONParser.parse(body)) else {
                Issue.record("not valid: \(body)")
                continue
            }
            #expect(CommunicationRequest(stored: validated.channel, data: validated.data) == validated)
        }
    }

    @Test("what a stored request lacks reads as empty or absent; data is kept as stored")
    func storedLeniency() {
        let data: JSONValue = .object(["to": .number(5), "msg": .string("m"), "subject": .string("s")])
        let r = CommunicationRequest(stored: .sms, data: data)
        #expect(r.from == "" && r.to == "" && r.msg == "m")
        #expect(r.subject == nil && r.html == nil && r.template == nil)
        #expect(r.data == data)
        let columns = CommunicationRequest(stored: .sms, data: .object(["from": .string("+15550000000"), "to": .string("+15551112222"), "msg": .string("x")]))
        #expect(columns == CommunicationRequest(channel: .sms, from: "+15550000000", to: "+15551112222", msg: "x"))
    }

    @Test("a new communication queued in one step goes through the status machine")
    func queuedInOneStep() {
        let req = CommunicationRequest(channel: .sms, from: "+15550000000", to: "+15551112222", msg: "x")
        let new = NewCommunication(id: "a", request: req, idempotencyKey: nil, createdAt: Timestamp(milliseconds: 1), dispatchAt: Timestamp(milliseconds: 2), service: "api")
        let c = new.communication.queued(at: Timestamp(milliseconds: 3), service: "pipeline", due: nil)
        #expect(c.status == .queued && c.dispatchSeq == 1 && c.attempts == 0 && c.dispatchAt == nil && c.updatedAt == Timestamp(milliseconds: 3))
        #expect(c.history.map(\.status) == [.pending, .queued])
        #expect(c.history.map(\.service) == ["api", "pipeline"])
        #expect(c.history.last == StatusChange(status: .queued, at: Timestamp(milliseconds: 3), attempt: 0, service: "pipeline"))
    }
}
