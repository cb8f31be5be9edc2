import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import ServiceLifecycle
import Testing
import SwitchboardApp
import SwitchboardCore
import SwitchboardElasticsearch
import SwitchboardSQLite
import SwitchboardServer
import SwitchboardTestSystem
import SwitchboardTestSupport


/// Settings for a fast run: SQLite store and streams, search on `node`.
func esSettings(node: String) throws -> Settings {
    var s = fastSettings(name: "es-e2e", lease: .seconds(1), maxDeliveries: 3)
    var es = try ElasticsearchConfiguration(node: node)
    es.requestTimeout = .seconds(3)
    es.connectTimeout = .milliseconds(500)
    es.bulk.flushInterval = .milliseconds(100)
    es.bulk.maxAttempts = 3
    es.bulk.baseBackoff = .milliseconds(50)
    es.bulk.maxBackoff = .milliseconds(200)
    es.catchUpInterval = .milliseconds(200)
    s.elasticsearch = es
    return s
}

/// Polls tolerating errors: conditions here query a search cluster that is down for part of a test.
func eventually(timeout: Duration = .seconds(60), _ what: String, _ condition: () async throws -> Bool) async throws {
    try await SwitchboardTestSystem.eventually(timeout: timeout, poll: .milliseconds(100), what, toleratingErrors: true, condition)
}

func json(_ r: TestResponse) throws -> JSONValue { try JSONParser.parse(Array(r.body.readableBytesView)) }

func items(_ v: JSONValue) -> [JSONValue] {
    if case .array(let a)? = v["items"] { return a }
    return []
}

@discardableResult
func post(_ client: some TestClientProtocol, _ type: MessageChannel, to: String, msg: String) async throws -> String {
    let sender = type == .email ? "noreply@example.com" : "+15550000000"
    let body = JSONValue.object(["type": .string(type.rawValue), "data": .object(["from": .string(sender), "to": .string(to), "msg": .string(msg)])]).canonicalText
    let r = try await client.execute(uri: "/api/v1/communication", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: body))
    #expect(r.status == .ok)
    return try #require(try json(r)["id"]?.stringValue)
}

func sentCount(_ system: SwitchboardSystem) async throws -> Int {
    try await system.adapters.store.statusCounts().filter { $0.status == .sent }.reduce(0) { $0 + $1.count }
}

@Suite("End to end: SQLite store + Elasticsearch search (noida-db)", .serialized)
struct ElasticsearchEndToEndTests {
    @Test("messages reach sent and are searchable; Elasticsearch down mid-run: the API answers, and once it is back the catch-up indexes what was sent meanwhile")
    func endToEnd() async throws {
        try await withSearchServer(.noida) { server in
            let system = try SwitchboardSystem(settings: try esSettings(node: server.url), logger: quiet())
            #expect(system.adapters.writePath is PortByPortPipeline)
            #expect(system.adapters.names.search == "elasticsearch")
            let es = try #require(system.elasticsearch)
            let running = Running(system)
            try await system.application().test(.router) { client in
                // Phase 1: Elasticsearch up.
                var before: [String] = []
                for i in 0..<30 {
                    let type = MessageChannel.allCases[i % 3]
                    before.append(try await post(client, type, to: type == .email ? "user\(i)@example.com" : "+1555100\(String(format: "%04d", i))", msg: "before outage number \(i)"))
                }
                try await eventually("30 sent") { try await sentCount(system) == 30 }
                try await eventually("search shows all 30 sent") {
                    let r = try json(try await client.execute(uri: "/api/v1/communications?q=before&status=sent&limit=100", method: .get))
                    return Set(items(r).compactMap { $0["communicationId"]?.stringValue }) == Set(before)
                }
                let one = try json(try await client.execute(uri: "/api/v1/communications?q=outage%20number%2017", method: .get))
                #expect(items(one).count == 1 && items(one).first?["communicationId"]?.stringValue == before[17])
                try await eventually("logs of one message") {
                    let r = try json(try await client.execute(uri: "/api/v1/logs?communicationId=\(before[5])", method: .get))
                    return Set(items(r).compactMap { $0["status"]?.stringValue }).isSuperset(of: ["pending", "processing", "sent"])
                }
                let health = try await client.execute(uri: "/health/ready", method: .get)
                #expect(health.status == .ok)

                // Phase 2: Elasticsearch stopped; the API still accepts and delivers.
                await server.terminate()
                var during: [String] = []
                for i in 0..<20 {
                    let type = MessageChannel.allCases[i % 3]
                    during.append(try await post(client, type, to: type == .email ? "down\(i)@example.com" : "+1555200\(String(format: "%04d", i))", msg: "during outage item \(i)"))
                }
                try await eventually("50 sent while search is down") { try await sentCount(system) == 50 }
                let shown = try await client.execute(uri: "/api/v1/communication/\(during[0])", method: .get)
                #expect(shown.status == .ok)
                let search = try await client.execute(uri: "/api/v1/communications?q=during", method: .get)
                #expect(search.status == .serviceUnavailable)
                #expect(try json(search)["error"]?["code"] == .string("search_unavailable"))
                let degraded = try await client.execute(uri: "/health/ready", method: .get)
                let degradedBody = try json(degraded)
                #expect(degraded.status == .ok && degradedBody["status"] == .string("degraded"))
                #expect(degradedBody["dependencies"]?["search"]?["status"] == .string("down"))
                // The buffered batches give up; from then on they are the catch-up's.
                try await eventually("the indexer gave up on documents") { await es.bulk.statistics.givenUp > 0 }
                try await Task.sleep(for: .seconds(1))

                // Phase 3: back; everything sent meanwhile becomes searchable, with its final status and logs.
                try await server.launch()
                try await eventually(timeout: .seconds(90), "caught up") {
                    try await es.refresh()
                    let r = try json(try await client.execute(uri: "/api/v1/communications?q=during&status=sent&limit=100", method: .get))
                    return Set(items(r).compactMap { $0["communicationId"]?.stringValue }) == Set(during)
                }
                let all = try json(try await client.execute(uri: "/api/v1/communications?limit=100", method: .get))
                #expect(Set(items(all).compactMap { $0["communicationId"]?.stringValue }) == Set(before + during))
                try await eventually("logs of a message sent during the outage") {
                    let r = try json(try await client.execute(uri: "/api/v1/logs?communicationId=\(during[7])", method: .get))
                    return Set(items(r).compactMap { $0["status"]?.stringValue }).isSuperset(of: ["pending", "processing", "sent"])
                }
                // No log entry was dead-lettered because search was down.
                #expect(try await system.adapters.queue.info(stream: StreamNames.log, group: StreamNames.loggerGroup).deadLetters == 0)
            }
            try await running.stop()
            await system.close()
        }
    }
}

@Suite("Elasticsearch services", .serialized)
struct ElasticsearchServiceTests {
    @Test("graceful shutdown flushes what is buffered")
    func flushOnShutdown() async throws {
        try await withSearchServer(.noida) { server in
            // The flush's time at shutdown is bounded (a second and a half by default, for a cluster that answers
            // nothing); the emulator, on a loaded machine, may need longer to answer: this test is about the flush.
            let index = try await preparedIndex(server) {
                $0.bulk.flushInterval = .seconds(600)
                $0.bulk.shutdownFlushLimit = .seconds(60)
            }
            let group = ServiceGroup(configuration: .init(services: [.init(service: index)], logger: quiet()))
            let task = Task { try await group.run() }
            try await index.index(communications: Array(SearchContract.documents().prefix(7)))
            try await Task.sleep(for: .milliseconds(200))
            #expect(await index.bulk.bufferedCount == 7)
            await group.triggerGracefulShutdown()
            try await task.value
            let check = try await preparedIndex(server)
            try await check.refresh()
            #expect(try await check.search(CommunicationQuery(limit: 100)).items.count == 7)
            await check.shutdown()
        }
    }

    @Test("catch-up at start: an index without documents from before the start gets everything in the store; then from the newest createdAt minus the margin")
    func catchUpAtStart() async throws {
        try await withSearchServer(.noida) { server in
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-es-catchup-\(UUID().uuidString)")
            let database = try SQLiteDatabase(options: SQLiteOptions(path: dir.appendingPathComponent("c.sqlite").path, synchronous: .normal))
            let store = SQLiteStore(database: database)
            let now = SystemTime.now()
            let news = (0..<25).map { i in
                NewCommunication(id: String(format: "65f0000000000000000000%02d", i), request: CommunicationRequest(channel: .sms, from: "+15550000000", to: "+1555300\(String(format: "%04d", i))", msg: "stored \(i)"),
                                 idempotencyKey: nil, createdAt: Timestamp(milliseconds: now.milliseconds - 3_600_000 + Int64(i) * 1000), dispatchAt: now)
            }
            _ = try await store.create(news)
            let index = try await preparedIndex(server)
            // A document this process indexed after it started must not move the starting point.
            let startedAt = Timestamp(milliseconds: now.milliseconds - 1_800_000)
            try await index.reindex(communications: [CommunicationDocument(communicationId: "fresh", type: .sms, from: "+15550000000", to: "+15550000009", msg: "fresh", status: .queued, createdAt: now, timestamp: now)])
            try await index.refresh()
            let catchUp = SearchCatchUp(store: store, index: index, margin: .seconds(60), interval: .milliseconds(50), pageSize: 7, logger: quiet(), clock: { startedAt })
            let group = ServiceGroup(configuration: .init(services: [.init(service: catchUp)], logger: quiet()))
            let task = Task { try await group.run() }
            try await eventually("the 25 stored and the fresh one indexed") {
                try await index.refresh()
                return try await index.search(CommunicationQuery(limit: 100)).items.count == 26
            }
            let found = try await index.search(CommunicationQuery(text: "stored 24", limit: 5)).items
            #expect(found.map(\.communicationId) == [news[24].id])
            #expect(found.first?.status == .pending)
            await group.triggerGracefulShutdown()
            try await task.value
            // A restart re-indexes only the margin: from the newest minus 10 s, the last 11 documents.
            let restarted = SearchCatchUp(store: store, index: index, margin: .seconds(10), logger: quiet())
            let newest = try #require(try await index.newestCreatedAt(before: startedAt))
            #expect(newest == news[24].createdAt)
            #expect(try await restarted.catchUp(from: Timestamp(milliseconds: newest.milliseconds - 10_000)) == 11)
            await index.shutdown()
            await database.close()
        }
    }
}

@Suite("Elasticsearch settings")
struct ElasticsearchSettingsTests {
    @Test("ELASTICSEARCH_NODE selects Elasticsearch; api key wins; summary masks secrets")
    func settings() throws {
        let s = try Settings.fromEnvironment(["ELASTICSEARCH_NODE": "https://es.internal:9200/", "ELASTICSEARCH_API_KEY": "c2VjcmV0a2V5", "ELASTICSEARCH_USER": "u", "ELASTICSEARCH_PASSWORD": "pw-secret", "SWITCHBOARD_ELASTICSEARCH_BULK_ACTIONS": "250", "SWITCHBOARD_ELASTICSEARCH_FLUSH_MS": "200"])
        let es = try #require(s.elasticsearch)
        #expect(es.node == "https://es.internal:9200")
        #expect(es.authentication == .apiKey("c2VjcmV0a2V5"))
        #expect(es.bulk.maxActions == 250 && es.bulk.flushInterval == .milliseconds(200))
        let summary = s.summary.map { "\($0.0)=\($0.1)" }.joined(separator: "\n")
        #expect(summary.contains("search=elasticsearch/opensearch https://es.internal:9200"))
        #expect(!summary.contains("c2VjcmV0a2V5") && !summary.contains("pw-secret"))

        let basic = try #require(try Settings.fromEnvironment(["ELASTICSEARCH_NODE": "http://elastic:pw%40x@127.0.0.1:9200"]).elasticsearch)
        #expect(basic.authentication == .basic(user: "elastic", password: "pw@x"))
        #expect(basic.node == "http://127.0.0.1:9200")
        #expect(!basic.description.contains("pw@x"))

        #expect(throws: SettingsError.self) { try Settings.fromEnvironment(["ELASTICSEARCH_NODE": "ftp://x"]) }
        #expect(try Settings.fromEnvironment([:]).elasticsearch == nil)
        #expect(Settings.variables.contains { $0.name == "ELASTICSEARCH_NODE" })
    }
}

@Suite("Audit records on Elasticsearch (noida-db)", .serialized)
struct ElasticsearchAuditTests {
    @Test("the system's audit log reaches communication-logs: GET /api/v1/logs?service=auth lists key events and the failures of a minute")
    func auditRecords() async throws {
        try await withSearchServer(.noida) { server in
            let system = try SwitchboardSystem(settings: try esSettings(node: server.url), logger: quiet())
            let running = Running(system, role: .router)
            system.auditLog.keyCreated(id: "key_es", name: "ops", scopes: [.read], by: "cli")
            system.auditLog.keyRevoked(id: "key_es", by: "key_admin")
            for _ in 0..<4 { system.auditLog.authFailure(address: "192.0.2.7", reason: "missing key") }
            await system.auditLog.flush(all: true)  // what graceful shutdown does with the minute in progress
            try await system.application().test(.router) { client in
                try await eventually("the three audit records are searchable") {
                    let r = try json(try await client.execute(uri: "/api/v1/logs?service=auth", method: .get))
                    return Set(items(r).compactMap { $0["msg"]?.stringValue }) == ["key_created", "key_revoked", "auth_failures"]
                }
                let r = try json(try await client.execute(uri: "/api/v1/logs?service=auth&communicationId=192.0.2.7", method: .get))
                let failures = try #require(items(r).first)
                #expect(failures["attempt"] == .number(4))
                #expect(failures["status"] == .null && failures["type"] == .null && failures["service"] == .string("auth"))
                #expect(failures["error"]?.stringValue?.contains("missing key ×4") == true)
                #expect(system.auditLog.pendingCount == 0)
            }
            try await running.stop()
            await system.close()
        }
    }
}
