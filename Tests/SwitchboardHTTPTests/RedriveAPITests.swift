import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
import SwitchboardApp
import SwitchboardCore
@testable import SwitchboardHTTP

/// `POST /api/v1/dead-letters/redrive` through the API's router: its 400s, its scope, and one redrive of a message
/// failed by hand (no workers run here; `RedriveTests` in the end-to-end suite delivers it).
@Suite("Redrive API: bad input, scope, one dead letter redriven")
struct RedriveAPITests {
    let path = "/api/v1/dead-letters/redrive"

    @Test("bad input answers 400 with the code and field at fault; a body that is not JSON 400, another media type 415")
    func badInput() async throws {
        let f = try APIFixture()
        try await f.app.test(.router) { client in
            let many = "[" + (0...1000).map { "\"id\($0)\"" }.joined(separator: ",") + "]"
            let cases: [(String, String, String?)] = [
                ("[]", "invalid_body", nil),
                ("{}", "invalid_body", nil),
                (#"{"ids":["a"],"filter":{"stream":"sms_stream"}}"#, "invalid_body", "filter"),
                (#"{"idz":["a"]}"#, "unknown_field", "idz"),
                (#"{"ids":[]}"#, "invalid_field", "ids"),
                (#"{"ids":"a"}"#, "invalid_field", "ids"),
                (#"{"ids":[1]}"#, "invalid_field", "ids"),
                (#"{"ids":[""]}"#, "invalid_field", "ids"),
                (#"{"ids":["a\u0001"]}"#, "invalid_field", "ids"),
                (#"{"ids":\#(many)}"#, "invalid_field", "ids"),
                (#"{"ids":["a"],"limit":5}"#, "invalid_field", "limit"),
                (#"{"filter":"sms_stream"}"#, "invalid_field", "filter"),
                (#"{"filter":{}}"#, "invalid_field", "filter.stream"),
                (#"{"filter":{"stream":"log_stream"}}"#, "invalid_field", "filter.stream"),
                (#"{"filter":{"stream":"sms_stream","to":"+1"}}"#, "unknown_field", "filter.to"),
                (#"{"filter":{"stream":"sms_stream","since":"yesterday"}}"#, "invalid_field", "filter.since"),
                (#"{"filter":{"stream":"sms_stream","until":1700000000000}}"#, "invalid_field", "filter.until"),
                (#"{"filter":{"stream":"sms_stream","since":"2026-12-02T00:00:00Z","until":"2026-12-01T00:00:00Z"}}"#, "invalid_field", "filter.until"),
                (#"{"filter":{"stream":"sms_stream","error":""}}"#, "invalid_field", "filter.error"),
                (#"{"filter":{"stream":"sms_stream","error":5}}"#, "invalid_field", "filter.error"),
                (#"{"filter":{"stream":"sms_stream"},"limit":0}"#, "invalid_field", "limit"),
                (#"{"filter":{"stream":"sms_stream"},"limit":1001}"#, "invalid_field", "limit"),
                (#"{"filter":{"stream":"sms_stream"},"limit":2.5}"#, "invalid_field", "limit"),
                (#"{"ids":["a"]"#, "malformed_json", nil),
            ]
            for (body, code, field) in cases {
                let r = try await client.execute(uri: path, method: .post, headers: jsonHeaders, body: buffer(body))
                #expect(r.status == .badRequest, "\(body.prefix(80))")
                let error = try json(r)["error"]
                #expect(error?["code"]?.stringValue == code, "\(body.prefix(80)): \(String(buffer: r.body))")
                #expect(error?["field"]?.stringValue == field, "\(body.prefix(80)): \(String(buffer: r.body))")
            }
            let text = try await client.execute(uri: path, method: .post, headers: [.contentType: "text/plain"], body: buffer(#"{"ids":["a"]}"#))
            #expect(text.status == .unsupportedMediaType)
            #expect(try errorCode(text) == "unsupported_media_type")
            // A valid body of unknown ids is no error: each is reported.
            let unknown = try await client.execute(uri: path, method: .post, headers: jsonHeaders, body: buffer(#"{"ids":["nope","nope","other"]}"#))
            #expect(unknown.status == .ok)
            let report = try json(unknown)
            #expect(report["items"] == .array([.object(["id": .string("nope"), "outcome": .string("not_found")]), .object(["id": .string("other"), "outcome": .string("not_found")])]))
            #expect(report["counts"]?["not_found"] == .number(2) && report["counts"]?["redriven"] == .number(0) && report["count"] == .number(2))
        }
    }

    @Test("scope send: no key 401, a read key 403 naming the scope, a send key and an admin key may")
    func scope() async throws {
        let f = try APIFixture(auth: true)
        try await f.app.test(.router) { client in
            let (_, admin) = try await createKey(client, #"{"name":"admin","scopes":["admin"]}"#)
            let (_, reader) = try await createKey(client, admin: admin, #"{"name":"reader","scopes":["read"]}"#)
            let (_, sender) = try await createKey(client, admin: admin, #"{"name":"sender","scopes":["send"]}"#)
            let body = buffer(#"{"filter":{"stream":"sms_stream"}}"#)
            try expectUnauthorized(try await client.execute(uri: path, method: .post, headers: jsonHeaders, body: body))
            let refused = try await client.execute(uri: path, method: .post, headers: bearer(reader, json: true), body: body)
            #expect(refused.status == .forbidden)
            #expect(try errorCode(refused) == "forbidden")
            #expect(String(buffer: refused.body).contains("send scope"), "\(String(buffer: refused.body))")
            for key in [sender, admin] {
                let r = try await client.execute(uri: path, method: .post, headers: bearer(key, json: true), body: body)
                #expect(r.status == .ok, "\(String(buffer: r.body))")
                #expect(try json(r)["count"] == .number(0))
            }
        }
    }

    @Test("a dead letter redriven: back to pending due now, history with the key, its dead-letter entry gone; again: not_failed", arguments: [true, false])
    func redriveOne(atomic: Bool) async throws {
        let f = try APIFixture(atomic: atomic, auth: true)
        try await f.app.test(.router) { client in
            try await f.adapters.queue.createGroup(stream: "sms_stream", group: "workers")
            let (_, admin) = try await createKey(client, #"{"name":"admin","scopes":["admin"]}"#)
            let (senderID, sender) = try await createKey(client, admin: admin, #"{"name":"sender","scopes":["send","read"]}"#)
            var ids: [String] = []
            for i in 0..<2 {
                let r = try await client.execute(uri: "/api/v1/communication", method: .post, headers: bearer(sender, json: true), body: buffer(#"{"type":"sms","data":{"from":"+1234567890","to":"+1555000000\#(i)","msg":"m\#(i)"}}"#))
                ids.append(try #require(try json(r)["id"]?.stringValue))
            }
            // A worker's part, by hand: both taken, the first fails for good (its entry dead-lettered), the second is sent.
            let entries = try await f.adapters.queue.read(stream: "sms_stream", group: "workers", consumer: "w", count: 10, block: .zero)
            #expect(entries.count == 2)
            let now = SystemTime.now()
            func t(_ id: String, _ e: StatusEvent) -> StatusTransition { StatusTransition(id: id, event: e, at: now, service: "sms") }
            let byID = Dictionary(uniqueKeysWithValues: entries.map { ($0.fields["_id"] ?? "", $0) })
            try await f.adapters.pipeline.record(
                [t(ids[0], .processing(dispatchSeq: 1, redelivery: false)), t(ids[1], .processing(dispatchSeq: 1, redelivery: false))], settle: [], group: "workers")
            try await f.adapters.pipeline.record(
                [t(ids[0], .failed(error: ProviderError(code: "21211", message: "invalid number"), provider: "twilio", dispatchSeq: 1)), t(ids[1], .sent(provider: "sandbox", providerMessageID: nil))],
                settle: [byID[ids[0]], byID[ids[1]]], group: "workers")
            func deadCount() async throws -> Int {
                let r = try await client.execute(uri: "/api/v1/dead-letters?stream=sms_stream", method: .get, headers: bearer(sender))
                guard case .number(let n)? = try json(r)["count"] else { return -1 }
                return Int(n)
            }
            #expect(try await deadCount() == 1)

            // A filter on another error code finds nothing; on 21211 it finds the failed one only.
            let other = try await client.execute(uri: path, method: .post, headers: bearer(sender, json: true), body: buffer(#"{"filter":{"stream":"sms_stream","error":"30003"}}"#))
            #expect(try json(other)["count"] == .number(0))
            // Nor does a time range that ends before it failed.
            let before = try await client.execute(uri: path, method: .post, headers: bearer(sender, json: true), body: buffer(#"{"filter":{"stream":"sms_stream","until":"2020-01-01T00:00:00Z"}}"#))
            #expect(try json(before)["count"] == .number(0))
            let r = try await client.execute(uri: path, method: .post, headers: bearer(sender, json: true), body: buffer(#"{"filter":{"stream":"sms_stream","error":"21211","since":"2020-01-01T00:00:00Z","until":"4102444800000"},"limit":10}"#))
            #expect(r.status == .ok, "\(String(buffer: r.body))")
            let report = try json(r)
            #expect(report["items"] == .array([.object(["id": .string(ids[0]), "outcome": .string("redriven"), "status": .string("pending")])]), "\(report)")
            #expect(report["deadLettersRemoved"] == .number(1))
            #expect(try await deadCount() == 0)
            let c = try #require(try await f.adapters.store.communication(id: ids[0]))
            #expect(c.status == .pending && c.dispatchSeq == 2 && c.attempts == 0 && c.dispatchAt != nil && c.dispatchAt! <= SystemTime.now())
            #expect(c.history.last?.detail == "redriven by \(senderID)" && c.history.last?.service == "router")

            // Again, by id, with the sent one and an unknown one: nothing moves.
            let again = try await client.execute(uri: path, method: .post, headers: bearer(sender, json: true), body: buffer(#"{"ids":["\#(ids[0])","\#(ids[1])","000000000000000000000000"]}"#))
            let second = try json(again)
            #expect(second["items"] == .array([
                .object(["id": .string(ids[0]), "outcome": .string("not_failed"), "status": .string("pending")]),
                .object(["id": .string(ids[1]), "outcome": .string("not_failed"), "status": .string("sent")]),
                .object(["id": .string("000000000000000000000000"), "outcome": .string("not_found")]),
            ]), "\(second)")
            #expect(second["counts"] == .object(["redriven": .number(0), "not_failed": .number(2), "not_found": .number(1)]))
            #expect(try await f.adapters.store.communication(id: ids[0])?.history.count == c.history.count)
        }
    }
}
