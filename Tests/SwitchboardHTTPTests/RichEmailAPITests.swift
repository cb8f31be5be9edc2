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

@Suite("Richer email through the API: cc, bcc, replyTo, attachments stored once")
struct RichEmailAPITests {
    /// Bytes whose base64 is easy to look for.
    static func file(_ count: Int, seed: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed &+ $0 >> 5) } }

    static func body(attachments: [(String, String, [UInt8])], extra: String = "") -> String {
        let items = attachments.map { name, type, bytes in
            #"{"filename":"\#(name)","contentType":"\#(type)","content":"\#(Data(bytes).base64EncodedString())"}"#
        }.joined(separator: ",")
        return #"{"type":"email","data":{"from":"ada@example.com","to":"bob@example.org","msg":"See attached","subject":"Files","html":"<p>See attached</p>","cc":["carol@example.org"],"bcc":["eve@example.org"],"replyTo":"replies@example.com","attachments":[\#(items)]\#(extra)}}"#
    }

    /// Every byte of the SQLite file and its WAL: communications, streams, logs, status feed, search.
    static func fileBytes(_ db: SQLiteDatabase) throws -> Data {
        var all = try Data(contentsOf: URL(fileURLWithPath: db.options.path))
        if let wal = try? Data(contentsOf: URL(fileURLWithPath: db.options.path + "-wal")) { all.append(wal) }
        return all
    }

    @Test("accepted: data keeps {filename, contentType, size, sha256}; the bytes are in the attachment store once; no base64 in the stored message, its stream entry, the log stream, the search documents or anywhere in the file")
    func storedOnce() async throws {
        let f = try APIFixture()
        let report = Self.file(40_000, seed: 1), notes = Array("plain notes\n".utf8)
        let body = Self.body(attachments: [("Grüße.pdf", "application/pdf", report), ("notes.txt", "text/plain", notes)])
        let needle = String(Data(report).base64EncodedString().dropFirst(3000).prefix(80))
        let sha: String = try await f.app.test(.router) { client in
            var headers = jsonHeaders
            headers[HTTPField.Name("Idempotency-Key")!] = "rich-1"
            let r = try await client.execute(uri: "/api/v1/communication", method: .post, headers: headers, body: buffer(body))
            #expect(r.status == .ok)
            let answer = try json(r)
            let id = try #require(answer["id"]?.stringValue)
            guard case .array(let items)? = answer["data"]?["attachments"], items.count == 2 else {
                Issue.record("no attachments in the answer")
                return ""
            }
            #expect(items.map { $0["filename"] } == [.string("Grüße.pdf"), .string("notes.txt")])
            #expect(items.map { $0["size"] } == [.number(Double(report.count)), .number(Double(notes.count))])
            #expect(items.allSatisfy { $0["content"] == nil && $0["sha256"]?.stringValue?.count == 64 })
            #expect(answer["data"]?["bcc"] == .array([.string("eve@example.org")]))
            let sha = try #require(items[0]["sha256"]?.stringValue)
            #expect(try await SQLiteAttachmentStore(database: f.database).get(sha256: sha) == report)

            // The same request again with the same key: the same message, not a conflict; the files not stored twice.
            let again = try await client.execute(uri: "/api/v1/communication", method: .post, headers: headers, body: buffer(body))
            #expect(again.status == .ok)
            #expect(try json(again)["id"]?.stringValue == id)
            // Another message with the same file: stored once still.
            #expect(try await client.execute(uri: "/api/v1/communication", method: .post, headers: jsonHeaders, body: buffer(body)).status == .ok)
            #expect(try await f.database.read { c in try c.scalar("SELECT COUNT(*) FROM attachments") } == 2)

            // What the worker reads: the stored request, by sha256, with copies and reply-to.
            let stored = try #require(try await f.adapters.store.communication(id: id))
            #expect(stored.request.attachments.map(\.sha256) == items.map { $0["sha256"]?.stringValue })
            #expect(stored.request.attachments.allSatisfy { $0.content == nil })
            #expect(stored.request.cc == ["carol@example.org"] && stored.request.bcc == ["eve@example.org"] && stored.request.replyTo == "replies@example.com")

            // Queued: the stream entry holds the stored form.
            for _ in 0..<100 {
                if try await !f.adapters.queue.entries(stream: "email_stream", limit: 10).isEmpty { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            let entries = try await f.adapters.queue.entries(stream: "email_stream", limit: 10)
            #expect(!entries.isEmpty)
            for e in entries {
                #expect(e.fields["data"]?.contains(sha) == true)
                #expect(!e.fields.values.contains { $0.contains(needle) })
            }
            for e in try await f.adapters.queue.entries(stream: StreamNames.log, limit: 100) {
                #expect(!e.fields.values.contains { $0.contains(needle) })
            }
            for uri in ["/api/v1/communication/\(id)", "/api/v1/communications?type=email", "/api/v1/logs?communicationId=\(id)"] {
                let shown = try await client.execute(uri: uri, method: .get)
                #expect(shown.status == .ok)
                #expect(!String(buffer: shown.body).contains(needle), "\(uri)")
            }
            // The search document is there (and carries no data at all).
            #expect(String(buffer: try await client.execute(uri: "/api/v1/communications?type=email", method: .get).body).contains(id))
            return sha
        }
        // Nowhere in the file: the attachment table holds bytes, not base64.
        let bytes = try Self.fileBytes(f.database)
        #expect(bytes.range(of: Data(needle.utf8)) == nil)
        #expect(bytes.range(of: Data(sha.utf8)) != nil)  // the stored messages are there
    }

    @Test("an email may be up to 15 MiB (10 MiB of files); any other type 1 MiB; files over 10 MiB decoded are a 400")
    func sizes() async throws {
        let f = try APIFixture()
        try await f.app.test(.router) { client in
            let sms = #"{"type":"sms","data":{"from":"+1234567890","to":"+0987654321","msg":"x","pad":""# + String(repeating: "y", count: 1 << 20) + "\"}}"
            let refused = try await client.execute(uri: "/api/v1/communication", method: .post, headers: jsonHeaders, body: buffer(sms))
            #expect(refused.status == .contentTooLarge)
            #expect(try errorCode(refused) == "body_too_large")
            let whatsapp = #"{"type":"whatsapp","data":{"from":"+1234567890","to":"+0987654321","msg":""# + String(repeating: "y", count: (1 << 20) + 10) + "\"}}"
            #expect(try await client.execute(uri: "/api/v1/communication", method: .post, headers: jsonHeaders, body: buffer(whatsapp)).status == .contentTooLarge)

            let nineMiB = Self.body(attachments: [("a.bin", "application/octet-stream", Self.file(5 << 20, seed: 2)), ("b.bin", "application/octet-stream", Self.file(4 << 20, seed: 3))])
            #expect(nineMiB.utf8.count > 12 << 20)
            let accepted = try await client.execute(uri: "/api/v1/communication", method: .post, headers: jsonHeaders, body: buffer(nineMiB))
            #expect(accepted.status == .ok)
            #expect(accepted.body.readableBytes < 4096)

            let elevenMiB = Self.body(attachments: [("a.bin", "application/octet-stream", Self.file(6 << 20, seed: 4)), ("b.bin", "application/octet-stream", Self.file(5 << 20, seed: 5))])
            let over = try await client.execute(uri: "/api/v1/communication", method: .post, headers: jsonHeaders, body: buffer(elevenMiB))
            #expect(over.status == .badRequest)
            #expect(try errorCode(over) == "attachments_too_large")
        }
        #expect(try await f.adapters.store.statusCounts().map(\.count).reduce(0, +) == 1)
    }

    @Test("bad copies and attachment items: 400 naming the item, nothing stored", arguments: [
        (#","cc":["a@example.com","b@example.com","nope"]"#, "invalid_email", "data.cc[2]"),
        (#","bcc":["eve@example.org",""]"#, "invalid_email", "data.bcc[1]"),
        (#","replyTo":"@example.com""#, "invalid_email", "data.replyTo"),
        (#","attachments":[{"filename":"ok.txt","contentType":"text/plain","content":"aGk="},{"filename":"a/b.txt","contentType":"text/plain","content":"aGk="}]"#, "invalid_attachment", "data.attachments[1].filename"),
        (#","attachments":[{"filename":"a.txt","contentType":"text","content":"aGk="}]"#, "invalid_attachment", "data.attachments[0].contentType"),
        (#","attachments":[{"filename":"a.txt","contentType":"text/plain","content":"%%%"}]"#, "invalid_attachment", "data.attachments[0].content"),
    ])
    func refused(extra: String, code: String, field: String) async throws {
        let f = try APIFixture()
        try await f.app.test(.router) { client in
            let body = #"{"type":"email","data":{"from":"ada@example.com","to":"bob@example.org","msg":"hi"\#(extra)}}"#
            let r = try await client.execute(uri: "/api/v1/communication", method: .post, headers: jsonHeaders, body: buffer(body))
            #expect(r.status == .badRequest)
            #expect(try json(r)["error"]?["code"]?.stringValue == code)
            #expect(try json(r)["error"]?["field"]?.stringValue == field)
            let sms = #"{"type":"sms","data":{"from":"+1234567890","to":"+0987654321","msg":"hi","cc":["a@example.com"]}}"#
            let unknown = try await client.execute(uri: "/api/v1/communication", method: .post, headers: jsonHeaders, body: buffer(sms))
            #expect(try json(unknown)["error"]?["field"]?.stringValue == "data.cc")
        }
        #expect(try await f.adapters.store.statusCounts().isEmpty)
        #expect(try await f.database.read { c in try c.scalar("SELECT COUNT(*) FROM attachments") } == 0)
    }

    @Test("a batch item with attachments is admitted like a single request: its files stored, the item stored by sha256; a bad item is rejected naming items[i]")
    func batchItems() async throws {
        let f = try APIFixture()
        let file = Self.file(3000, seed: 9)
        let good = try JSONParser.parse(Self.body(attachments: [("a.bin", "application/octet-stream", file)]))
        let bad = try JSONParser.parse(Self.body(attachments: [("a/b.bin", "application/octet-stream", file)]))
        try await f.app.test(.router) { client in
            let r = try await client.execute(uri: "/api/v1/communications/batch", method: .post, headers: jsonHeaders, body: buffer(JSONValue.object(["items": .array([good, bad])]).canonicalText))
            #expect(r.status == .ok)
            let answer = try json(r)
            guard case .array(let items)? = answer["items"], items.count == 2 else {
                Issue.record("\(answer)")
                return
            }
            #expect(items[1]["error"]?["field"] == .string("items[1].data.attachments[0].filename"))
            let id = try #require(items[0]["id"]?.stringValue)
            let stored = try #require(try await f.adapters.store.communication(id: id))
            let sha = try #require(stored.request.attachments.first?.sha256)
            #expect(try await SQLiteAttachmentStore(database: f.database).get(sha256: sha) == file)
            #expect(!stored.request.data.canonicalText.contains(String(Data(file).base64EncodedString().prefix(100))))
        }
    }
}
