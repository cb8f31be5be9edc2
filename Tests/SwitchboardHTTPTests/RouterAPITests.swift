import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing
import SwitchboardApp
import SwitchboardCore
@testable import SwitchboardHTTP
@testable import SwitchboardSQLite

/// An API over a fresh embedded engine, with no workers running (so messages stay queued).
struct APIFixture {
    let database: SQLiteDatabase
    let adapters: Adapters
    let app: Application<RouterResponder<APIRequestContext>>
    /// The API keys, when the fixture enforces them.
    let keys: KeyCache?
    /// The audit trail, when the fixture keeps one.
    let auditLog: AuditLog?

    /// - Parameters:
    ///   - atomic: with the embedded engine's one-transaction pipeline (as `serve` runs it), else the router's
    ///     step-by-step path of separate engines.
    ///   - auth: with API keys (`SWITCHBOARD_AUTH=on`, the keys in the same file); else open, asking no key.
    ///   - path: the SQLite file (another fixture's, to share it), else a fresh one.
    ///   - adminKey: a bootstrap admin key (`SWITCHBOARD_ADMIN_KEY`).
    ///   - limiter, failures, audit: the access-control parts `SwitchboardSystem` gives the router (none by default).
    ///   - storeRows: the search index reads the store's rows (as `serve` runs the embedded engine), else its own copy.
    init(atomic: Bool = false, auth: Bool = false, path: String? = nil, adminKey: String? = nil, limiter: (any RateLimiter)? = nil, defaultLimit: RateLimit? = nil, failures: AuthFailureLimiter? = nil, audit: ((any SearchIndex) -> AuditLog)? = nil, storeRows: Bool = false) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-http-\(UUID().uuidString)")
        database = try SQLiteDatabase(options: SQLiteOptions(path: path ?? dir.appendingPathComponent("api.sqlite").path, synchronous: .normal))
        let queue = SQLiteQueue(database: database, clock: SystemTime.now)
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let (store, search, mailbox) = (SQLiteStore(database: database), SQLiteSearchIndex(database: database, documents: storeRows ? .storeRows : .ownTable), SQLiteSandboxMailbox(database: database))
        let names = (store: "sqlite", queue: "sqlite", search: "sqlite")
        var adapters = atomic
            ? Adapters(store: store, queue: queue, search: search, mailbox: mailbox, pipeline: SQLitePipeline(queue: queue), logSpool: LogSpool(), names: names)
            : Adapters.portByPort(store: store, queue: queue, search: search, mailbox: mailbox, options: PipelineOptions(), names: names, logger: logger).0
        adapters.attachments = SQLiteAttachmentStore(database: database)
        adapters.suppressions = SQLiteSuppressionStore(database: database)
        self.adapters = adapters
        keys = auth ? KeyCache(store: SQLiteKeyStore(database: database), bootstrap: adminKey.map { KeyCache.bootstrapRecord(secret: $0, at: SystemTime.now()) }) : nil
        let auditLog = audit?(search)
        self.auditLog = auditLog
        let access = keys.map { AccessControl(mode: .on, keys: $0, rateLimiter: limiter, defaultLimit: defaultLimit, failures: failures, audit: auditLog) } ?? .open
        let api = API(adapters: adapters, dispatcher: Dispatcher(adapters: adapters, options: PipelineOptions()), logger: logger, access: access, templates: TemplateLibrary(store: SQLiteTemplateStore(database: database)))
        app = Application(router: api.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)), logger: logger)
    }
}

let jsonHeaders: HTTPFields = [.contentType: "application/json"]

func buffer(_ s: String) -> ByteBuffer { ByteBuffer(string: s) }

func json(_ r: TestResponse) throws -> JSONValue { try JSONParser.parse(Array(r.body.readableBytesView)) }

func errorCode(_ r: TestResponse) throws -> String? { try json(r)["error"]?["code"]?.stringValue }

@Suite("Router API")
struct RouterAPITests {
    @Test("the media type is read from Content-Type without parameters, case or surrounding blanks")
    func mediaType() {
        #expect(API.mediaType("application/json") == "application/json")
        #expect(API.mediaType(" Application/JSON\t; charset=utf-8") == "application/json")
        #expect(API.mediaType("application/problem+json;x=1") == "application/problem+json")
        #expect(API.mediaType("text/plain") == "text/plain")
        #expect(API.mediaType("") == "")
        #expect(API.mediaType("  ; charset=utf-8") == "")
    }

    let seedBody = #"{"type":"sms","data":{"from":"+1234567890","to":"+0987654321","msg":"Hello"}}"#

    @Test("a full disk is a 503 store_unavailable with Retry-After, stores nothing, and passes when space is back", arguments: [false, true])
    func fullDisk(atomic: Bool) async throws {
        let f = try APIFixture(atomic: atomic)
        try await f.app.test(.router) { client in
            let first = try await client.execute(uri: "/api/v1/communication", method: .post, headers: jsonHeaders, body: buffer(seedBody))
            #expect(first.status == .ok)
            // A real SQLITE_FULL: the writer's connection may not grow the file beyond its current size.
            try await f.database.write { c in
                let pages = try c.scalar("PRAGMA page_count") ?? 0
                try c.execute("PRAGMA max_page_count = \(pages)")
            }
            var accepted = 1
            var refused: TestResponse?
            for i in 0..<2000 {
                let body = #"{"type":"sms","data":{"from":"+1234567890","to":"+0987654321","msg":"filling \#(i) \#(String(repeating: "x", count: 400))"}}"#
                let r = try await client.execute(uri: "/api/v1/communication", method: .post, headers: jsonHeaders, body: buffer(body))
                guard r.status == .ok else { refused = r; break }
                accepted += 1
            }
            let r = try #require(refused, "the file never filled up")
            #expect(r.status == .serviceUnavailable)
            #expect(r.headers[.retryAfter] == "\(API.storeRetryAfterSeconds)")
            #expect(try errorCode(r) == "store_unavailable")
            #expect(try json(r)["error"]?["message"]?.stringValue?.contains("disk is full") == true)
            // What was refused was not stored; what was answered 200 was.
            let stored = try await f.adapters.store.statusCounts().reduce(0) { $0 + $1.count }
            #expect(stored == accepted)
            // Reads still work while the disk is full; readiness says the store refuses writes.
            #expect(try await client.execute(uri: "/api/v1/communication/\(try #require(try json(first)["id"]?.stringValue))", method: .get).status == .ok)
            let degraded = try await client.execute(uri: "/health/ready", method: .get)
            #expect(degraded.status == .ok)
            #expect(try json(degraded)["status"] == .string("degraded"))
            #expect(try json(degraded)["dependencies"]?["store"] == .object(["status": .string("degraded")]))
            // The reason is for authenticated readers: GET /api/v1/health.
            let details = try json(try await client.execute(uri: "/api/v1/health", method: .get))
            #expect(details["dependencies"]?["store"]?["status"] == .string("degraded"))
            #expect(details["dependencies"]?["store"]?["error"]?.stringValue?.contains("disk is full") == true)

            try await f.database.write { c in try c.execute("PRAGMA max_page_count = 4294967294") }
            let after = try await client.execute(uri: "/api/v1/communication", method: .post, headers: jsonHeaders, body: buffer(seedBody))
            #expect(after.status == .ok)
            #expect(try json(try await client.execute(uri: "/health/ready", method: .get))["status"] == .string("ready"))
        }
    }

    @Test("the seed's request gets the seed's response, plus an id, and is stored pending or queued")
    func seedContract() async throws {
        let f = try APIFixture()
        try await f.app.test(.router) { client in
            let r = try await client.execute(uri: "/api/v1/communication", method: .post, headers: jsonHeaders, body: buffer(seedBody))
            #expect(r.status == .ok)
            let body = try json(r)
            #expect(body["status"] == .string("queued"))
            #expect(body["stream"] == .string("sms_stream"))
            #expect(body["data"] == .object(["from": .string("+1234567890"), "to": .string("+0987654321"), "msg": .string("Hello")]))
            let id = try #require(body["id"]?.stringValue)
            #expect(ObjectIDGenerator.isValid(id))
            // `queued` is recorded just after the answer (the entry is already on the stream).
            var c: JSONValue = .null
            for _ in 0..<100 {
                let shown = try await client.execute(uri: "/api/v1/communication/\(id)", method: .get)
                #expect(shown.status == .ok)
                c = try json(shown)
                if c["status"] == .string("queued") { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(c["status"] == .string("queued"))
            #expect(c["type"] == .string("sms") && c["to"] == .string("+0987654321") && c["attempts"] == .number(0))
            #expect(c["history"] == nil ? false : true)
            if case .array(let h)? = c["history"] { #expect(h.compactMap { $0["status"]?.stringValue } == ["pending", "queued"]) }
            let info = try await f.adapters.queue.info(stream: "sms_stream", group: "workers")
            #expect(info.length == 1)
        }
    }

    @Test("bad requests: 400 with a JSON error naming the field, and nothing written", arguments: [
        (#"{"type":"fax","data":{"from":"a","to":"b","msg":"c"}}"#, "invalid_type", "type"),
        (#"{"data":{"from":"a","to":"b","msg":"c"}}"#, "missing_field", "type"),
        (#"{"type":"sms"}"#, "missing_field", "data"),
        (#"{"type":"sms","data":{"from":"+1234567890","msg":"c"}}"#, "missing_field", "data.to"),
        (#"{"type":"sms","data":{"from":"+1234567890","to":"12","msg":"c"}}"#, "invalid_phone", "data.to"),
        (#"{"type":"email","data":{"from":"me","to":"you@example.com","msg":"c"}}"#, "invalid_email", "data.from"),
        (#"{"type":"sms","data":{"from":"+1234567890","to":"+1234567890","msg":""}}"#, "empty_field", "data.msg"),
        (#"{"type":"sms","data":{"from":"+1234567890","to":"+1234567890","msg":7}}"#, "invalid_field_type", "data.msg"),
    ])
    func badRequests(body: String, code: String, field: String) async throws {
        let f = try APIFixture()
        try await f.app.test(.router) { client in
            let r = try await client.execute(uri: "/api/v1/communication", method: .post, headers: jsonHeaders, body: buffer(body))
            #expect(r.status == .badRequest)
            let e = try json(r)["error"]
            #expect(e?["code"]?.stringValue == code)
            #expect(e?["field"]?.stringValue == field)
            #expect(e?["message"]?.stringValue?.isEmpty == false)
        }
        #expect(try await f.adapters.store.statusCounts().isEmpty)
        #expect(try await f.adapters.queue.info(stream: "sms_stream", group: "workers").length == 0)
    }

    @Test("malformed JSON 400, wrong content type 415, body over 1 MiB 413 (an email's over 15 MiB)")
    func transportErrors() async throws {
        let f = try APIFixture()
        try await f.app.test(.router) { client in
            let malformed = try await client.execute(uri: "/api/v1/communication", method: .post, headers: jsonHeaders, body: buffer(#"{"type":"sms","#))
            #expect(malformed.status == .badRequest)
            #expect(try errorCode(malformed) == "malformed_json")
            let text = try await client.execute(uri: "/api/v1/communication", method: .post, headers: [.contentType: "text/plain"], body: buffer(seedBody))
            #expect(text.status == .unsupportedMediaType)
            #expect(try errorCode(text) == "unsupported_media_type")
            let none = try await client.execute(uri: "/api/v1/communication", method: .post, body: buffer(seedBody))
            #expect(none.status == .unsupportedMediaType)
            let charset = try await client.execute(uri: "/api/v1/communication", method: .post, headers: [.contentType: "application/json; charset=utf-8"], body: buffer(seedBody))
            #expect(charset.status == .ok)
            let big = #"{"type":"sms","data":{"from":"+1234567890","to":"+0987654321","msg":""# + String(repeating: "x", count: 1 << 20) + "\"}}"
            let tooLarge = try await client.execute(uri: "/api/v1/communication", method: .post, headers: jsonHeaders, body: buffer(big))
            #expect(tooLarge.status == .contentTooLarge)
            #expect(try errorCode(tooLarge) == "body_too_large")
            let hugeEmail = #"{"type":"email","data":{"from":"a@example.com","to":"b@example.com","msg":""# + String(repeating: "x", count: 15 << 20) + "\"}}"
            let emailTooLarge = try await client.execute(uri: "/api/v1/communication", method: .post, headers: jsonHeaders, body: buffer(hugeEmail))
            #expect(emailTooLarge.status == .contentTooLarge)
            #expect(try errorCode(emailTooLarge) == "body_too_large")
        }
        #expect(try await f.adapters.store.statusCounts().map(\.count) == [1])
    }

    @Test("unknown route 404, wrong method 405 with Allow, unknown id 404 — all JSON")
    func routing() async throws {
        let f = try APIFixture()
        try await f.app.test(.router) { client in
            let missing = try await client.execute(uri: "/api/v2/nothing", method: .get)
            #expect(missing.status == .notFound)
            #expect(try errorCode(missing) == "not_found")
            let wrong = try await client.execute(uri: "/api/v1/communication", method: .get)
            #expect(wrong.status == .methodNotAllowed)
            #expect(wrong.headers[.allow] == "POST")
            #expect(try errorCode(wrong) == "method_not_allowed")
            let delete = try await client.execute(uri: "/api/v1/communication/abc", method: .delete)
            #expect(delete.status == .methodNotAllowed)
            let unknown = try await client.execute(uri: "/api/v1/communication/0123456789abcdef01234567", method: .get)
            #expect(unknown.status == .notFound)
            #expect(try errorCode(unknown) == "not_found")
        }
    }

    @Test("Idempotency-Key: same body replays, different body 409, one message stored")
    func idempotency() async throws {
        let f = try APIFixture()
        try await f.app.test(.router) { client in
            let headers: HTTPFields = [.contentType: "application/json", HTTPField.Name("Idempotency-Key")!: "order-42"]
            let first = try await client.execute(uri: "/api/v1/communication", method: .post, headers: headers, body: buffer(seedBody))
            let second = try await client.execute(uri: "/api/v1/communication", method: .post, headers: headers, body: buffer(#"{ "data": {"msg":"Hello","to":"+0987654321","from":"+1234567890"}, "type":"sms" }"#))
            #expect(first.status == .ok && second.status == .ok)
            #expect(try json(first) == json(second))
            #expect(second.headers[HTTPField.Name("Idempotent-Replayed")!] == "true")
            let conflict = try await client.execute(uri: "/api/v1/communication", method: .post, headers: headers, body: buffer(seedBody.replacingOccurrences(of: "Hello", with: "Bye")))
            #expect(conflict.status == .conflict)
            #expect(try errorCode(conflict) == "idempotency_conflict")
            let bad = try await client.execute(uri: "/api/v1/communication", method: .post, headers: [.contentType: "application/json", HTTPField.Name("Idempotency-Key")!: String(repeating: "k", count: 300)], body: buffer(seedBody))
            #expect(bad.status == .badRequest)
        }
        #expect(try await f.adapters.store.statusCounts().map(\.count) == [1])
        #expect(try await f.adapters.queue.info(stream: "sms_stream", group: "workers").length == 1)
    }

    @Test("list and search communications with filters and cursor")
    func list() async throws {
        let f = try APIFixture()
        try await f.app.test(.router) { client in
            for i in 0..<7 {
                let type = i % 2 == 0 ? "sms" : "whatsapp"
                let msg = i == 3 ? "Your parcel has shipped" : "code \(i)"
                let r = try await client.execute(uri: "/api/v1/communication", method: .post, headers: jsonHeaders, body: buffer(#"{"type":"\#(type)","data":{"from":"+15550000000","to":"+1555000000\#(i % 2)","msg":"\#(msg)"}}"#))
                #expect(r.status == .ok)
            }
            let page = try json(try await client.execute(uri: "/api/v1/communications?limit=4", method: .get))
            guard case .array(let items)? = page["items"], let cursor = page["nextCursor"]?.stringValue else { Issue.record("no page"); return }
            #expect(items.count == 4)
            #expect(items.first?["msg"] == .string("code 6"))
            let next = try json(try await client.execute(uri: "/api/v1/communications?limit=4&cursor=\(cursor)", method: .get))
            #expect(next["count"] == .number(3) && next["nextCursor"] == .null)
            let text = try json(try await client.execute(uri: "/api/v1/communications?q=parcel", method: .get))
            #expect(text["count"] == .number(1))
            var filtered: JSONValue = .null
            for _ in 0..<100 {
                filtered = try json(try await client.execute(uri: "/api/v1/communications?type=whatsapp&status=queued&to=%2B15550000001", method: .get))
                if filtered["count"] == .number(3) { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(filtered["count"] == .number(3))
            let since = try json(try await client.execute(uri: "/api/v1/communications?since=2000-01-01T00:00:00Z&until=2999-01-01T00:00:00Z", method: .get))
            #expect(since["count"] == .number(7))
            for (query, field) in [("type=fax", "type"), ("status=lost", "status"), ("limit=0", "limit"), ("since=yesterday", "since"), ("cursor=zz", "cursor"), ("color=red", "color")] {
                let r = try await client.execute(uri: "/api/v1/communications?\(query)", method: .get)
                #expect(r.status == .badRequest, "\(query)")
                #expect(try json(r)["error"]?["field"]?.stringValue == field)
            }
        }
    }

    @Test("logs endpoint reads communication-logs")
    func logs() async throws {
        let f = try APIFixture()
        try await f.adapters.search.index(logs: [LogRecord(communicationId: "x1", service: "sms", status: .failed, type: .sms, from: "+1", to: "+2", msg: "m", error: "21211: invalid To", attempt: 1, provider: "twilio", timestamp: Timestamp(milliseconds: 1))])
        try await f.app.test(.router) { client in
            let r = try json(try await client.execute(uri: "/api/v1/logs?communicationId=x1&service=sms&status=failed&q=invalid", method: .get))
            guard case .array(let items)? = r["items"], let first = items.first else { Issue.record("no logs"); return }
            for key in ["service", "status", "from", "to", "msg", "error", "timestamp", "communicationId"] { #expect(first[key] != nil, "\(key)") }
            #expect(first["error"] == .string("21211: invalid To"))
            #expect(try await client.execute(uri: "/api/v1/logs?status=nope", method: .get).status == .badRequest)
        }
    }

    @Test("health: /health and /health/live answer ok; ready shows each dependency up or down and nothing more; /api/v1/health the details")
    func health() async throws {
        let f = try APIFixture()
        try await f.app.test(.router) { client in
            for path in ["/health", "/health/live"] {
                let live = try await client.execute(uri: path, method: .get)
                #expect(live.status == .ok)
                #expect(try json(live) == .object(["status": .string("ok")]))
            }
            let ready = try await client.execute(uri: "/health/ready", method: .get)
            #expect(ready.status == .ok)
            let body = try json(ready)
            #expect(body == .object(["status": .string("ready"), "dependencies": .object([
                "store": .object(["status": .string("up")]), "queue": .object(["status": .string("up")]), "search": .object(["status": .string("up")]),
            ])]))
            let details = try json(try await client.execute(uri: "/api/v1/health", method: .get))
            #expect(details["dependencies"]?["store"] == .object(["engine": .string("sqlite"), "status": .string("up"), "error": .null]))
            await f.database.close()
            let down = try await client.execute(uri: "/health/ready", method: .get)
            #expect(down.status == .serviceUnavailable)
            #expect(try json(down)["status"] == .string("unavailable"))
            // Down, without the error's text (it can name files, hosts, users).
            #expect(try json(down)["dependencies"]?["store"] == .object(["status": .string("down")]))
            let downDetails = try await client.execute(uri: "/api/v1/health", method: .get)
            #expect(downDetails.status == .serviceUnavailable)
            #expect(try json(downDetails)["dependencies"]?["store"]?["status"] == .string("down"))
            #expect(try json(downDetails)["dependencies"]?["store"]?["error"]?.stringValue?.isEmpty == false)
        }
    }

    @Test("stats and dead letters")
    func stats() async throws {
        let f = try APIFixture()
        try await f.app.test(.router) { client in
            _ = try await client.execute(uri: "/api/v1/communication", method: .post, headers: jsonHeaders, body: buffer(seedBody))
            let s = try json(try await client.execute(uri: "/api/v1/stats", method: .get))
            #expect(s["communications"]?["total"] == .number(1))
            #expect(try await client.execute(uri: "/api/v1/dead-letters?stream=sms_stream", method: .get).status == .ok)
            #expect(try await client.execute(uri: "/api/v1/dead-letters?stream=other", method: .get).status == .badRequest)
        }
    }
}
