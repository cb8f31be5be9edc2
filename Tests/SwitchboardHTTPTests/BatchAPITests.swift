import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
import SwitchboardApp
import SwitchboardCore
@testable import SwitchboardHTTP
@testable import SwitchboardSQLite

@Suite("Batches: POST /api/v1/communications/batch")
struct BatchAPITests {
    static func sms(_ to: String, _ msg: String, extra: [String: JSONValue] = [:]) -> JSONValue {
        var data: [String: JSONValue] = ["from": .string("+15550000000"), "to": .string(to), "msg": .string(msg)]
        for (k, v) in extra { data[k] = v }
        return .object(["type": .string("sms"), "data": .object(data)])
    }

    static func batch(_ items: [JSONValue]) -> ByteBuffer { ByteBuffer(string: JSONValue.object(["items": .array(items)]).canonicalText) }

    static func total(_ f: APIFixture) async throws -> Int { try await f.adapters.store.statusCounts().reduce(0) { $0 + $1.count } }

    @Test("each item judged on its own, answered in order; the valid ones stored in one transaction; a replay stores nothing more; another batch under the key is a 409", arguments: [true, false])
    func mixed(atomic: Bool) async throws {
        let f = try APIFixture(atomic: atomic)
        let later = Timestamp(milliseconds: SystemTime.now().milliseconds + 3_600_000).iso8601
        let items: [JSONValue] = [
            Self.sms("+15550000001", "one"),
            Self.sms("12345", "bad phone"),
            .object(["type": .string("email"), "data": .object(["from": .string("a@example.com"), "to": .string("b@example.com"), "msg": .string("mail"), "subject": .string("Hi")])]),
            Self.sms("+15550000003", "unknown field", extra: ["colour": .string("red")]),
            Self.sms("+15550000004", "later", extra: ["sendAt": .string(later)]),
            .string("not an object"),
        ]
        try await f.app.test(.router) { client in
            let writesBefore = f.database.writerStatistics.writes
            var headers = jsonHeaders
            headers[HTTPField.Name("Idempotency-Key")!] = "batch-1"
            let r = try await client.execute(uri: "/api/v1/communications/batch", method: .post, headers: headers, body: Self.batch(items))
            #expect(r.status == .ok)
            let answer = try json(r)
            if atomic { #expect(f.database.writerStatistics.writes - writesBefore == 1, "one write for the whole batch") }
            #expect(answer["accepted"] == .number(3) && answer["rejected"] == .number(3), "\(answer)")
            guard case .array(let results)? = answer["items"], results.count == 6 else { Issue.record("\(answer)"); return }
            for (i, item) in results.enumerated() { #expect(item["index"] == .number(Double(i))) }
            #expect(results[0]["status"] == .string("queued") && results[0]["stream"] == .string("sms_stream"))
            #expect(results[2]["status"] == .string("queued") && results[2]["stream"] == .string("email_stream"))
            #expect(results[4]["status"] == .string("scheduled"))
            #expect(results[1]["status"] == .string("rejected") && results[1]["httpStatus"] == .number(400))
            #expect(results[1]["error"]?["code"] == .string("invalid_phone") && results[1]["error"]?["field"] == .string("items[1].data.to"))
            #expect(results[3]["error"]?["code"] == .string("unknown_field") && results[3]["error"]?["field"] == .string("items[3].data.colour"))
            #expect(results[5]["error"]?["code"] == .string("invalid_body") && results[5]["error"]?["field"] == .string("items[5]"))
            let ids = [0, 2, 4].compactMap { results[$0]["id"]?.stringValue }
            #expect(ids.count == 3)
            for (id, msg) in zip(ids, ["one", "mail", "later"]) {
                let shown = try json(try await client.execute(uri: "/api/v1/communication/\(id)", method: .get))
                #expect(shown["msg"] == .string(msg) && shown["idempotencyKey"]?.stringValue?.hasPrefix("batch-1#") == true)
            }
            #expect(try await Self.total(f) == 3)

            // The same batch again: the same answer, replayed, nothing stored.
            let again = try await client.execute(uri: "/api/v1/communications/batch", method: .post, headers: headers, body: Self.batch(items))
            #expect(again.status == .ok && again.headers[HTTPField.Name("Idempotent-Replayed")!] == "true")
            guard case .array(let replayed)? = try json(again)["items"] else { Issue.record("no items"); return }
            #expect([0, 2, 4].compactMap { replayed[$0]["id"]?.stringValue } == ids)
            #expect(replayed[4]["status"] == .string("scheduled"))
            #expect(try await Self.total(f) == 3)

            // Another batch under the same key: 409, and nothing of it stored.
            var changed = items
            changed[0] = Self.sms("+15550000001", "one, changed")
            changed.append(Self.sms("+15550000009", "new"))
            let conflict = try await client.execute(uri: "/api/v1/communications/batch", method: .post, headers: headers, body: Self.batch(changed))
            #expect(conflict.status == .conflict)
            #expect(try errorCode(conflict) == "idempotency_conflict")
            #expect(try await Self.total(f) == 3)
            // A shorter batch whose items are the first ones, unchanged: another batch too.
            let prefix = try await client.execute(uri: "/api/v1/communications/batch", method: .post, headers: headers, body: Self.batch(Array(items.prefix(2))))
            #expect(prefix.status == .conflict)
            #expect(try await Self.total(f) == 3)
        }
    }

    @Test("1,000 items in one request and one transaction; the batch's shape is checked first", arguments: [true, false])
    func limits(atomic: Bool) async throws {
        let f = try APIFixture(atomic: atomic)
        try await f.app.test(.router) { client in
            let full = (0..<1000).map { Self.sms("+1555\(String(format: "%07d", $0))", "n\($0)") }
            let writesBefore = f.database.writerStatistics.writes
            let r = try await client.execute(uri: "/api/v1/communications/batch", method: .post, headers: jsonHeaders, body: Self.batch(full))
            #expect(r.status == .ok)
            #expect(try json(r)["accepted"] == .number(1000))
            if atomic { #expect(f.database.writerStatistics.writes - writesBefore == 1) }
            #expect(try await Self.total(f) == 1000)
            #expect(try await f.adapters.queue.info(stream: "sms_stream", group: StreamNames.workerGroup).length == 1000)

            for (body, code, field) in [
                (Self.batch([]), "invalid_batch_size", "items"),
                (Self.batch(full + [Self.sms("+15550000000", "one too many")]), "invalid_batch_size", "items"),
                (ByteBuffer(string: #"{"items":{}}"#), "invalid_field_type", "items"),
                (ByteBuffer(string: #"{}"#), "missing_field", "items"),
                (ByteBuffer(string: #"{"items":[],"extra":1}"#), "unknown_field", "extra"),
                (ByteBuffer(string: #"[1]"#), "invalid_body", nil),
                (ByteBuffer(string: #"{"items":["#), "malformed_json", nil),
            ] as [(ByteBuffer, String, String?)] {
                let bad = try await client.execute(uri: "/api/v1/communications/batch", method: .post, headers: jsonHeaders, body: body)
                #expect(bad.status == .badRequest)
                let error = try json(bad)["error"]
                #expect(error?["code"] == .string(code) && error?["field"]?.stringValue == field, "\(String(describing: error))")
            }
            let text = try await client.execute(uri: "/api/v1/communications/batch", method: .post, headers: [.contentType: "text/plain"], body: Self.batch([Self.sms("+15550000000", "x")]))
            #expect(text.status == .unsupportedMediaType)
            #expect(try await Self.total(f) == 1000)
        }
    }
}
