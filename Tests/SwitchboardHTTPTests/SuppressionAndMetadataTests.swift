import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
import SwitchboardCore
@testable import SwitchboardApp
@testable import SwitchboardHTTP
@testable import SwitchboardSQLite
import SwitchboardSandbox

/// The suppression list's endpoints, the 422 at accept, and `data.metadata` (validation, reads, search).
@Suite("Suppression list and metadata over HTTP")
struct SuppressionAndMetadataTests {
    static func message(_ type: String, to: String, from: String? = nil, extra: [String: JSONValue] = [:]) -> String {
        var data: [String: JSONValue] = ["from": .string(from ?? (type == "email" ? "ada@example.com" : "+14155550100")), "to": .string(to), "msg": .string("hi")]
        data.merge(extra) { $1 }
        return JSONValue.object(["type": .string(type), "data": .object(data)]).canonicalText
    }

    static func post(_ client: some TestClientProtocol, _ uri: String, _ body: String, headers: HTTPFields = [:]) async throws -> TestResponse {
        var h = jsonHeaders
        h.append(contentsOf: headers)
        return try await client.execute(uri: uri, method: .post, headers: h, body: buffer(body))
    }

    static func items(_ r: TestResponse) throws -> [JSONValue] {
        if case .array(let a)? = try json(r)["items"] { return a }
        return []
    }

    @Test("POST adds (201, then 200 when replaced), a message to the recipient is a 422 naming reason and date, on that channel only; GET filters; DELETE lifts it", arguments: [false, true])
    func manualList(atomic: Bool) async throws {
        let f = try APIFixture(atomic: atomic)
        try await f.app.test(.router) { client in
            let created = try await Self.post(client, "/api/v1/suppressions", #"{"channel":"sms","to":"+14155550123","reason":"asked us by phone"}"#)
            #expect(created.status == .created)
            let entry = try json(created)
            #expect(entry["channel"] == .string("sms") && entry["to"] == .string("+14155550123") && entry["source"] == .string("manual"))
            #expect(entry["reason"] == .string("asked us by phone") && entry["detail"] == .null && entry["keyId"] == .null)
            let refused = try await Self.post(client, "/api/v1/communication", Self.message("sms", to: "+14155550123"))
            #expect(refused.status == .unprocessableContent)
            #expect(try errorCode(refused) == "recipient_suppressed")
            let message = try #require(try json(refused)["error"]?["message"]?.stringValue)
            #expect(message.contains("asked us by phone"))
            #expect(message.contains(try #require(entry["createdAt"]?.stringValue)))
            #expect(try json(refused)["error"]?["field"] == .string("data.to"))
            // Nothing stored for the refused message.
            #expect(try await f.adapters.store.statusCounts().isEmpty)
            // Another channel, another number: accepted.
            #expect(try await Self.post(client, "/api/v1/communication", Self.message("whatsapp", to: "+14155550123")).status == .ok)
            #expect(try await Self.post(client, "/api/v1/communication", Self.message("sms", to: "+14155550124")).status == .ok)
            // Added again: replaced, 200.
            let again = try await Self.post(client, "/api/v1/suppressions", #"{"channel":"sms","to":"+14155550123"}"#)
            #expect(again.status == .ok)
            #expect(try json(again)["reason"] == .string("added by hand"))

            // Email: case-insensitive.
            #expect(try await Self.post(client, "/api/v1/suppressions", #"{"channel":"email","to":"Bob@Example.ORG"}"#).status == .created)
            let email = try await Self.post(client, "/api/v1/communication", Self.message("email", to: "bob@example.org"))
            #expect(email.status == .unprocessableContent)

            // GET: all, by channel, by recipient (a literal + and %2B alike; email in any case).
            #expect(try Self.items(try await client.execute(uri: "/api/v1/suppressions", method: .get)).count == 2)
            #expect(try Self.items(try await client.execute(uri: "/api/v1/suppressions?channel=email", method: .get)).map { $0["to"] } == [.string("bob@example.org")])
            #expect(try Self.items(try await client.execute(uri: "/api/v1/suppressions?to=+14155550123", method: .get)).count == 1)
            #expect(try Self.items(try await client.execute(uri: "/api/v1/suppressions?channel=sms&to=%2B14155550123", method: .get)).count == 1)
            #expect(try Self.items(try await client.execute(uri: "/api/v1/suppressions?to=BOB@example.org", method: .get)).count == 1)
            #expect(try Self.items(try await client.execute(uri: "/api/v1/suppressions?channel=whatsapp", method: .get)).isEmpty)
            let paged = try await client.execute(uri: "/api/v1/suppressions?limit=1", method: .get)
            let next = try #require(try json(paged)["nextCursor"]?.stringValue)
            #expect(try Self.items(try await client.execute(uri: "/api/v1/suppressions?limit=1&cursor=\(next)", method: .get)).map { $0["channel"] } == [.string("sms")])
            #expect(try errorCode(try await client.execute(uri: "/api/v1/suppressions?cursor=zz!", method: .get)) == "invalid_cursor")
            #expect(try errorCode(try await client.execute(uri: "/api/v1/suppressions?channel=fax", method: .get)) == "invalid_parameter")
            #expect(try errorCode(try await client.execute(uri: "/api/v1/suppressions?who=me", method: .get)) == "unknown_parameter")

            // DELETE: by channel and recipient in the query; then the message goes through; a second DELETE is a 404.
            #expect(try await client.execute(uri: "/api/v1/suppressions?channel=sms&to=+14155550123", method: .delete).status == .noContent)
            #expect(try await client.execute(uri: "/api/v1/suppressions?channel=sms&to=%2B14155550123", method: .delete).status == .notFound)
            #expect(try await Self.post(client, "/api/v1/communication", Self.message("sms", to: "+14155550123")).status == .ok)
            #expect(try await client.execute(uri: "/api/v1/suppressions?channel=email&to=BOB@example.org", method: .delete).status == .noContent)
            #expect(try errorCode(try await client.execute(uri: "/api/v1/suppressions?channel=sms", method: .delete)) == "invalid_parameter")
            #expect(try errorCode(try await client.execute(uri: "/api/v1/suppressions?to=+14155550123", method: .delete)) == "invalid_parameter")
        }
    }

    @Test("a bad suppression body is a 400 naming the field")
    func badBodies() async throws {
        let f = try APIFixture()
        try await f.app.test(.router) { client in
            let cases: [(String, String, String)] = [
                (#"{"channel":"fax","to":"+14155550123"}"#, "invalid_field", "channel"),
                (#"{"to":"+14155550123"}"#, "invalid_field", "channel"),
                (#"{"channel":"sms"}"#, "invalid_field", "to"),
                (#"{"channel":"sms","to":"14155550123"}"#, "invalid_phone", "to"),
                (#"{"channel":"email","to":"not-an-address"}"#, "invalid_email", "to"),
                (#"{"channel":"sms","to":"+14155550123","reason":7}"#, "invalid_field", "reason"),
                (#"{"channel":"sms","to":"+14155550123","reason":"\#(String(repeating: "r", count: 501))"}"#, "invalid_field", "reason"),
                (#"{"channel":"sms","to":"+14155550123","source":"provider"}"#, "unknown_field", "source"),
                (#"["sms"]"#, "invalid_body", ""),
            ]
            for (body, code, field) in cases {
                let r = try await Self.post(client, "/api/v1/suppressions", body)
                #expect(r.status == .badRequest, "\(body)")
                #expect(try errorCode(r) == code, "\(body)")
                if !field.isEmpty { #expect(try json(r)["error"]?["field"] == .string(field), "\(body)") }
            }
            #expect(try Self.items(try await client.execute(uri: "/api/v1/suppressions", method: .get)).isEmpty)
        }
    }

    @Test("scopes: send adds (recording the key), read lists, only admin removes")
    func scopes() async throws {
        let f = try APIFixture(auth: true)
        try await f.app.test(.router) { client in
            let (_, admin) = try await createKey(client, #"{"name":"admin","scopes":["admin"]}"#)
            let (senderID, sender) = try await createKey(client, admin: admin, #"{"name":"sender","scopes":["send"]}"#)
            let (_, reader) = try await createKey(client, admin: admin, #"{"name":"reader","scopes":["read"]}"#)
            let added = try await Self.post(client, "/api/v1/suppressions", #"{"channel":"sms","to":"+14155550123"}"#, headers: bearer(sender))
            #expect(added.status == .created)
            #expect(try json(added)["keyId"] == .string(senderID))
            #expect(try await Self.post(client, "/api/v1/suppressions", #"{"channel":"sms","to":"+14155550124"}"#, headers: bearer(reader)).status == .forbidden)
            #expect(try await client.execute(uri: "/api/v1/suppressions", method: .get, headers: bearer(reader)).status == .ok)
            #expect(try await client.execute(uri: "/api/v1/suppressions?channel=sms&to=+14155550123", method: .delete, headers: bearer(sender)).status == .forbidden)
            #expect(try await client.execute(uri: "/api/v1/suppressions?channel=sms&to=+14155550123", method: .delete, headers: bearer(admin)).status == .noContent)
        }
    }

    @Test("a batch refuses the items to suppressed recipients with a per-item 422 and stores the others; its replay, and a single POST's, answer as the first time even after a suppression", arguments: [true, false])
    func batchAndReplays(atomic: Bool) async throws {
        let f = try APIFixture(atomic: atomic)
        let store = try #require(f.adapters.suppressions)
        try await store.add(Suppression(channel: .sms, to: "+14155550002", reason: "replied STOP", source: .provider, detail: "twilio 21610", createdAt: Timestamp(milliseconds: 1_700_000_000_000)))
        func item(_ to: String) -> JSONValue { .object(["type": .string("sms"), "data": .object(["from": .string("+14155550100"), "to": .string(to), "msg": .string("m")])]) }
        let body = JSONValue.object(["items": .array([item("+14155550001"), item("+14155550002"), item("+14155550003")])]).canonicalText
        var headers = jsonHeaders
        headers[HTTPField.Name("Idempotency-Key")!] = "batch-s"
        let keyed = headers
        try await f.app.test(.router) { client in
            let r = try await client.execute(uri: "/api/v1/communications/batch", method: .post, headers: keyed, body: buffer(body))
            #expect(r.status == .ok)
            let answer = try json(r)
            #expect(answer["accepted"] == .number(2) && answer["rejected"] == .number(1))
            guard case .array(let items)? = answer["items"], items.count == 3 else { Issue.record("\(answer)"); return }
            #expect(items[1]["httpStatus"] == .number(422))
            #expect(items[1]["error"]?["code"] == .string("recipient_suppressed") && items[1]["error"]?["field"] == .string("items[1].data.to"))
            #expect(items[1]["error"]?["message"]?.stringValue?.contains("replied STOP") == true)
            #expect(try await f.adapters.store.statusCounts().reduce(0) { $0 + $1.count } == 2)

            // Then the third recipient is suppressed too: the batch's replay still answers as the first time.
            try await store.add(Suppression(channel: .sms, to: "+14155550003", reason: "bounced", source: .provider, createdAt: Timestamp(milliseconds: 1_700_000_000_001)))
            let replay = try await client.execute(uri: "/api/v1/communications/batch", method: .post, headers: keyed, body: buffer(body))
            #expect(replay.status == .ok)
            #expect(replay.headers[HTTPField.Name("Idempotent-Replayed")!] == "true")
            let again = try json(replay)
            #expect(again["accepted"] == .number(2))
            guard case .array(let replayed)? = again["items"] else { Issue.record("\(again)"); return }
            #expect(replayed.map { $0["id"] } == items.map { $0["id"] })
            #expect(try await f.adapters.store.statusCounts().reduce(0) { $0 + $1.count } == 2)

            // A single POST with a key: stored, then its recipient suppressed: the retry is the replay, a new key a 422.
            var single = jsonHeaders
            single[HTTPField.Name("Idempotency-Key")!] = "one-s"
            let first = try await client.execute(uri: "/api/v1/communication", method: .post, headers: single, body: buffer(Self.message("sms", to: "+14155550004")))
            #expect(first.status == .ok)
            try await store.add(Suppression(channel: .sms, to: "+14155550004", reason: "bounced", source: .provider, createdAt: Timestamp(milliseconds: 1_700_000_000_002)))
            let retried = try await client.execute(uri: "/api/v1/communication", method: .post, headers: single, body: buffer(Self.message("sms", to: "+14155550004")))
            #expect(retried.status == .ok)
            #expect(try json(retried)["id"] == json(first)["id"])
            single[HTTPField.Name("Idempotency-Key")!] = "two-s"
            let other = try await client.execute(uri: "/api/v1/communication", method: .post, headers: single, body: buffer(Self.message("sms", to: "+14155550004")))
            #expect(other.status == .unprocessableContent)
            #expect(try errorCode(other) == "recipient_suppressed")
        }
    }

    @Test("API.suppressed answers many requests with one lookup, in order")
    func batchLookup() async throws {
        let f = try APIFixture()
        let store = try #require(f.adapters.suppressions)
        try await store.add(Suppression(channel: .email, to: "x@example.com", reason: "bounced", source: .provider, createdAt: Timestamp(milliseconds: 1)))
        try await store.add(Suppression(channel: .sms, to: "+14155550001", reason: "stop", source: .provider, createdAt: Timestamp(milliseconds: 2)))
        let api = API(adapters: f.adapters, dispatcher: Dispatcher(adapters: f.adapters, options: PipelineOptions()), logger: .init(label: "t"))
        let requests = (0..<1000).map { i in CommunicationRequest(channel: .sms, from: "+14155550100", to: String(format: "+1415555%04d", i), msg: "m") }
            + [CommunicationRequest(channel: .email, from: "a@example.com", to: "X@Example.com", msg: "m"), CommunicationRequest(channel: .whatsapp, from: "+14155550100", to: "+14155550001", msg: "m")]
        let found = try await api.suppressed(requests)
        #expect(found.count == requests.count)
        #expect(found.enumerated().filter { $0.element != nil }.map(\.offset) == [1, 1000])
        #expect(found[1]?.reason == "stop")
        #expect(try await api.suppressed([]).isEmpty)
    }

    @Test("a worker's permanent failure with an opt-out code suppresses the recipient; the next POST is a 422; other failures do not")
    func workerSuppresses() async throws {
        let f = try APIFixture(atomic: true)
        let mailbox = SQLiteSandboxMailbox(database: f.database)
        try await f.app.test(.router) { client in
            let optedOut = try await Self.post(client, "/api/v1/communication", Self.message("sms", to: SandboxProvider.MagicRecipient.optedOutPhone))
            #expect(optedOut.status == .ok)
            let rejected = try await Self.post(client, "/api/v1/communication", Self.message("sms", to: SandboxProvider.MagicRecipient.permanentPhone))
            #expect(rejected.status == .ok)
            let worker = ChannelWorker(channel: .sms, adapters: f.adapters, providers: [SandboxProvider(mailbox: mailbox, clock: SystemTime.now)], options: PipelineOptions(), consumer: "t", logger: .init(label: "t"))
            try await f.adapters.queue.createGroup(stream: "sms_stream", group: StreamNames.workerGroup)
            let entries = try await f.adapters.queue.read(stream: "sms_stream", group: StreamNames.workerGroup, consumer: "t", count: 10, block: .zero)
            #expect(entries.count == 2)
            try await worker.process(entries, concurrency: 2)
            let failed = try await f.adapters.store.communication(id: try #require(try json(optedOut)["id"]?.stringValue))
            #expect(failed?.status == .failed && failed?.lastError?.code == "21610")
            let again = try await Self.post(client, "/api/v1/communication", Self.message("sms", to: SandboxProvider.MagicRecipient.optedOutPhone))
            #expect(again.status == .unprocessableContent)
            #expect(try errorCode(again) == "recipient_suppressed")
            // SANDBOX_REJECTED says nothing about the recipient: not suppressed.
            #expect(try await Self.post(client, "/api/v1/communication", Self.message("sms", to: SandboxProvider.MagicRecipient.permanentPhone)).status == .ok)
            let listed = try Self.items(try await client.execute(uri: "/api/v1/suppressions", method: .get))
            #expect(listed.count == 1)
            #expect(listed.first?["source"] == .string("provider") && listed.first?["detail"] == .string("sandbox 21610"))
        }
    }

    // MARK: metadata

    @Test("data.metadata is accepted on every channel, returned on reads (data and top level), searchable by exact key and value", arguments: [false, true])
    func metadata(storeRows: Bool) async throws {
        let f = try APIFixture(atomic: storeRows, storeRows: storeRows)
        try await f.app.test(.router) { client in
            var ids: [String: String] = [:]
            for (type, to, order) in [("sms", "+14155550123", "123"), ("email", "bob@example.org", "123"), ("whatsapp", "+14155550123", "456"), ("sms", "+14155550124", "")] {
                let meta: JSONValue = order.isEmpty ? .object([:]) : .object(["orderId": .string(order), "user.id": .string("u-\(type)")])
                let r = try await Self.post(client, "/api/v1/communication", Self.message(type, to: to, extra: ["metadata": meta]))
                #expect(r.status == .ok, "\(String(buffer: r.body))")
                #expect(try json(r)["data"]?["metadata"] == meta)
                ids["\(type)\(order)"] = try #require(try json(r)["id"]?.stringValue)
            }
            let shown = try json(try await client.execute(uri: "/api/v1/communication/\(ids["sms123"]!)", method: .get))
            #expect(shown["metadata"] == .object(["orderId": .string("123"), "user.id": .string("u-sms")]))
            #expect(shown["data"]?["metadata"]?["orderId"] == .string("123"))
            let plain = try json(try await client.execute(uri: "/api/v1/communication/\(ids["sms"]!)", method: .get))
            #expect(plain["metadata"] == .object([:]))

            func found(_ query: String) async throws -> Set<String> {
                let r = try await client.execute(uri: "/api/v1/communications?\(query)", method: .get)
                #expect(r.status == .ok, "\(query): \(String(buffer: r.body))")
                return Set(try Self.items(r).compactMap { $0["id"]?.stringValue })
            }
            #expect(try await found("metadata.orderId=123") == [ids["sms123"]!, ids["email123"]!])
            #expect(try await found("metadata.orderId=123&type=email") == [ids["email123"]!])
            #expect(try await found("metadata.orderId=123&metadata.user.id=u-sms") == [ids["sms123"]!])
            #expect(try await found("metadata.orderId=456&metadata.user.id=u-sms").isEmpty)
            #expect(try await found("metadata.orderId=12").isEmpty)
            #expect(try await found("metadata.nothing=123").isEmpty)
            let listed = try Self.items(try await client.execute(uri: "/api/v1/communications?metadata.orderId=456", method: .get))
            #expect(listed.first?["metadata"] == .object(["orderId": .string("456"), "user.id": .string("u-whatsapp")]))

            let badKey = try await client.execute(uri: "/api/v1/communications?metadata.bad%20key=1", method: .get)
            #expect(badKey.status == .badRequest)
            #expect(try errorCode(badKey) == "invalid_parameter")
            #expect(try errorCode(try await client.execute(uri: "/api/v1/communications?metadata.=1", method: .get)) == "invalid_parameter")
            #expect(try errorCode(try await client.execute(uri: "/api/v1/communications?metadataX=1", method: .get)) == "unknown_parameter")
        }
    }

    @Test("bad metadata is a 400 invalid_metadata naming data.metadata.<key>")
    func badMetadata() async throws {
        let f = try APIFixture()
        try await f.app.test(.router) { client in
            let tooMany = JSONValue.object(Dictionary(uniqueKeysWithValues: (0...50).map { ("k\($0)", JSONValue.string("v")) }))
            let cases: [(JSONValue, String)] = [
                (.string("order 1"), "data.metadata"),
                (.array([.string("a")]), "data.metadata"),
                (tooMany, "data.metadata"),
                (.object(["orderId": .number(123)]), "data.metadata.orderId"),
                (.object(["orderId": .null]), "data.metadata.orderId"),
                (.object(["nested": .object(["a": .string("b")])]), "data.metadata.nested"),
                (.object(["bad key": .string("v")]), "data.metadata.bad key"),
                (.object(["": .string("v")]), "data.metadata."),
                (.object([String(repeating: "k", count: 41): .string("v")]), "data.metadata.\(String(repeating: "k", count: 41))"),
                (.object(["long": .string(String(repeating: "é", count: 501))]), "data.metadata.long"),
            ]
            for (value, field) in cases {
                let r = try await Self.post(client, "/api/v1/communication", Self.message("sms", to: "+14155550123", extra: ["metadata": value]))
                #expect(r.status == .badRequest, "\(value.canonicalText.prefix(80))")
                #expect(try errorCode(r) == "invalid_metadata", "\(value.canonicalText.prefix(80))")
                #expect(try json(r)["error"]?["field"] == .string(field))
            }
            // The bounds themselves are accepted.
            let most = JSONValue.object(Dictionary(uniqueKeysWithValues: (0..<50).map { ("k.\($0)-_" + String(repeating: "x", count: 34 - String($0).count), JSONValue.string(String(repeating: "é", count: 500))) }))
            #expect(try await Self.post(client, "/api/v1/communication", Self.message("email", to: "a@example.org", extra: ["metadata": most])).status == .ok)
            #expect(try await Self.post(client, "/api/v1/communication", Self.message("sms", to: "+14155550123", extra: ["metadata": .null])).status == .ok)
        }
    }
}
