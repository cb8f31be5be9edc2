import Testing
@testable import SwitchboardCore

@Suite("email cc, bcc, replyTo and attachments: validation and the stored form")
struct EmailExtrasTests {
    static func body(_ extra: String, type: String = "email") -> String {
        let (from, to) = type == "email" ? ("a@example.com", "b@example.com") : ("+15550000000", "+15551112222")
        return #"{"type":"\#(type)","data":{"from":"\#(from)","to":"\#(to)","msg":"hi"\#(extra.isEmpty ? "" : ",")\#(extra)}}"#
    }

    static func error(_ json: String, stored: Bool = false) throws -> RequestError? {
        guard case .failure(let e) = RequestValidator.validate(try JSONParser.parse(json), stored: stored) else { return nil }
        return e
    }

    @Test("a full email validates: copies, reply-to, and attachments decoded from base64")
    func valid() throws {
        let json = Self.body(#""cc":["c1@example.com","c2@example.com"],"bcc":["hidden@example.com"],"replyTo":"r@example.com","attachments":[{"filename":"a.txt","contentType":"text/plain","content":"aGVsbG8="},{"filename":"Grüße résumé.pdf","contentType":"application/pdf","content":"AAEC\n/w=="}]"#)
        guard case .success(let r) = RequestValidator.validate(try JSONParser.parse(json)) else {
            Issue.record("refused")
            return
        }
        #expect(r.cc == ["c1@example.com", "c2@example.com"])
        #expect(r.bcc == ["hidden@example.com"])
        #expect(r.replyTo == "r@example.com")
        #expect(r.attachments.map(\.filename) == ["a.txt", "Grüße résumé.pdf"])
        #expect(r.attachments.map(\.content) == [Array("hello".utf8), [0, 1, 2, 255]])
        #expect(r.attachments.map(\.size) == [5, 4])
        #expect(r.attachments.allSatisfy { $0.sha256 == nil })
    }

    @Test("bad copies, reply-to and attachments are 400s naming the item", arguments: [
        (#""cc":["a@example.com","b@example.com","not an address"]"#, "invalid_email", "data.cc[2]"),
        (#""bcc":"x@example.com""#, "invalid_field_type", "data.bcc"),
        (#""bcc":[7]"#, "invalid_field_type", "data.bcc[0]"),
        (#""replyTo":"nobody""#, "invalid_email", "data.replyTo"),
        (#""replyTo":["r@example.com"]"#, "invalid_field_type", "data.replyTo"),
        (#""attachments":{}"#, "invalid_field_type", "data.attachments"),
        (#""attachments":["x"]"#, "invalid_attachment", "data.attachments[0]"),
        (#""attachments":[{"filename":"ok.txt","contentType":"text/plain","content":""},{"filename":"../etc/passwd","contentType":"text/plain","content":""}]"#, "invalid_attachment", "data.attachments[1].filename"),
        (#""attachments":[{"filename":"a\r\nBcc: x@example.com","contentType":"text/plain","content":""}]"#, "invalid_attachment", "data.attachments[0].filename"),
        (#""attachments":[{"filename":"","contentType":"text/plain","content":""}]"#, "invalid_attachment", "data.attachments[0].filename"),
        (#""attachments":[{"contentType":"text/plain","content":""}]"#, "invalid_attachment", "data.attachments[0].filename"),
        (#""attachments":[{"filename":"a.pdf","contentType":"pdf","content":""}]"#, "invalid_attachment", "data.attachments[0].contentType"),
        (#""attachments":[{"filename":"a.pdf","contentType":"application/pdf; name=x","content":""}]"#, "invalid_attachment", "data.attachments[0].contentType"),
        (#""attachments":[{"filename":"a.pdf","contentType":"application/pdf","content":"not base64!"}]"#, "invalid_attachment", "data.attachments[0].content"),
        (#""attachments":[{"filename":"a.pdf","contentType":"application/pdf","content":"aGVsbG8"}]"#, "invalid_attachment", "data.attachments[0].content"),
        (#""attachments":[{"filename":"a.pdf","contentType":"application/pdf","content":"aG=sbG8="}]"#, "invalid_attachment", "data.attachments[0].content"),
        (#""attachments":[{"filename":"a.pdf","contentType":"application/pdf"}]"#, "invalid_attachment", "data.attachments[0].content"),
        (#""attachments":[{"filename":"a.pdf","contentType":"application/pdf","size":3,"sha256":"\#(String(repeating: "a", count: 64))"}]"#, "unknown_field", "data.attachments[0].sha256"),
    ])
    func refused(extra: String, code: String, field: String) throws {
        let e = try #require(try Self.error(Self.body(extra)))
        #expect(e.code == code)
        #expect(e.field == field)
        #expect(!e.message.isEmpty)
    }

    @Test("at most 50 cc and 50 bcc, 20 attachments, 10 MiB of attachments decoded")
    func bounds() throws {
        let fifty = (0..<50).map { #""c\#($0)@example.com""# }.joined(separator: ",")
        #expect(try Self.error(Self.body(#""cc":[\#(fifty)],"bcc":[\#(fifty)]"#)) == nil)
        #expect(try Self.error(Self.body(#""cc":[\#(fifty),"x@example.com"]"#))?.code == "too_many_recipients")
        let item = #"{"filename":"a","contentType":"text/plain","content":""}"#
        #expect(try Self.error(Self.body(#""attachments":[\#(Array(repeating: item, count: 20).joined(separator: ","))]"#)) == nil)
        #expect(try Self.error(Self.body(#""attachments":[\#(Array(repeating: item, count: 21).joined(separator: ","))]"#))?.code == "too_many_attachments")
        // 6 MiB twice: the second passes the 10 MiB.
        let six = String(repeating: "AAAA", count: (6 << 20) / 3)
        let big = #"{"filename":"a","contentType":"application/octet-stream","content":"\#(six)"}"#
        #expect(try Self.error(Self.body(#""attachments":[\#(big)]"#)) == nil)
        let e = try #require(try Self.error(Self.body(#""attachments":[\#(big),\#(big)]"#)))
        #expect(e.code == "attachments_too_large")
        #expect(e.field == "data.attachments[1]")
    }

    @Test("other channels answer unknown_field for the email fields", arguments: ["cc", "bcc", "replyTo", "attachments"])
    func emailOnly(key: String) throws {
        for type in ["sms", "whatsapp"] {
            let e = try #require(try Self.error(Self.body(#""\#(key)":[]"#, type: type)))
            #expect(e.code == "unknown_field")
            #expect(e.field == "data.\(key)")
        }
    }

    @Test("the stored form (by sha256, no content) reads back from the store and from a stream entry; a client may not send it")
    func storedForm() throws {
        let json = Self.body(#""cc":["c@example.com"],"bcc":["h@example.com"],"replyTo":"r@example.com","attachments":[{"filename":"é.bin","contentType":"application/octet-stream","content":"AAEC"}]"#)
        guard case .success(let client) = RequestValidator.validate(try JSONParser.parse(json)) else {
            Issue.record("refused")
            return
        }
        let sha = String(repeating: "0f", count: 32)
        let admitted = client.withStoredAttachments([sha])
        #expect(admitted.attachments == [EmailAttachment(filename: "é.bin", contentType: "application/octet-stream", size: 3, sha256: sha)])
        #expect(!admitted.data.canonicalText.contains("AAEC"))
        guard case .array(let items)? = admitted.data["attachments"] else {
            Issue.record("no attachments in data")
            return
        }
        #expect(items == [.object(["filename": .string("é.bin"), "contentType": .string("application/octet-stream"), "size": .number(3), "sha256": .string(sha)])])
        // Read back from the store.
        let stored = CommunicationRequest(stored: .email, data: admitted.data)
        #expect(stored == admitted)
        // Read back from a stream entry (validated again, as stored).
        let entry = DispatchEntry(communicationId: "691ff0a2c1d7e64b0a000001", dispatchSeq: 1, request: admitted)
        #expect(!entry.fieldsText.contains("AAEC"))
        let read = try #require(DispatchEntry(fields: entry.fields))
        #expect(read.request == admitted)
        // The stored form is not a client's request.
        #expect(try Self.error(#"{"type":"email","data":\#(admitted.data.canonicalText)}"#)?.field == "data.attachments[0].sha256")
        // Nor the client's form a stored one.
        #expect(try Self.error(json, stored: true)?.field == "data.attachments[0].content")
    }

    @Test("base64: the standard alphabet with padding, line breaks skipped; anything else refused")
    func base64() {
        #expect(Base64Decoding.decode("") == [])
        #expect(Base64Decoding.decode("aGVsbG8=") == Array("hello".utf8))
        #expect(Base64Decoding.decode("aGVs\r\nbG8h") == Array("hell".utf8) + Array("o!".utf8))
        #expect(Base64Decoding.decode("YQ==") == [0x61])
        for bad in ["YQ", "YQ=", "Y===", "YQ==YQ==", "aGVsbG8-", "aGVsbG8_", "a=Vs", "é"] {
            #expect(Base64Decoding.decode(bad) == nil, "\(bad)")
        }
        var bytes: [UInt8] = []
        for i in 0..<1000 { bytes.append(UInt8(truncatingIfNeeded: i &* 7919)) }
        let table = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
        var text = ""
        var i = 0
        while i < bytes.count {
            let chunk = Array(bytes[i..<min(i + 3, bytes.count)])
            let n = (UInt32(chunk[0]) << 16) | (UInt32(chunk.count > 1 ? chunk[1] : 0) << 8) | UInt32(chunk.count > 2 ? chunk[2] : 0)
            text.append(table[Int(n >> 18 & 63)])
            text.append(table[Int(n >> 12 & 63)])
            text.append(chunk.count > 1 ? table[Int(n >> 6 & 63)] : "=")
            text.append(chunk.count > 2 ? table[Int(n & 63)] : "=")
            i += 3
        }
        #expect(Base64Decoding.decode(text) == bytes)
    }
}
