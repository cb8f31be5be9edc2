import Foundation
import Logging
import Testing
import SwitchboardCore
import SwitchboardSQLite
import SwitchboardTestSupport
@testable import SwitchboardElasticsearch

/// An index on `server`, prepared (dialect, templates), retrying while the emulator finishes starting.
func preparedIndex(_ server: SearchServer, tune: (inout ElasticsearchConfiguration) -> Void = { _ in }) async throws -> ElasticsearchSearchIndex {
    var c = try ElasticsearchConfiguration(node: server.url)
    c.bulk.flushInterval = .milliseconds(50)
    c.bulk.baseBackoff = .milliseconds(20)
    tune(&c)
    let index = ElasticsearchSearchIndex(configuration: c, logger: quiet())
    var lastError: (any Error)?
    for _ in 0..<50 {
        do {
            try await index.prepare()
            return index
        } catch {
            lastError = error
            try await Task.sleep(for: .milliseconds(100))
        }
    }
    await index.shutdown()
    throw TestEnvironmentError(description: "\(server.kind) on \(server.url) never became ready: \(lastError.map { "\($0)" } ?? "?")")
}

@Suite("Search contract", .serialized)
struct SearchContractTests {
    @Test("SQLite FTS5 index (the reference)")
    func sqlite() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-es-contract-\(UUID().uuidString)")
        let database = try SQLiteDatabase(options: SQLiteOptions(path: dir.appendingPathComponent("c.sqlite").path, synchronous: .normal))
        try await SearchContract.run(SQLiteSearchIndex(database: database)) {}
        await database.close()
        try? FileManager.default.removeItem(at: dir)
    }

    @Test("Elasticsearch adapter on an emulator", arguments: SearchServer.Kind.allCases)
    func emulator(kind: SearchServer.Kind) async throws {
        try await withSearchServer(kind) { server in
            let index = try await preparedIndex(server)
            #expect(index.dialect == (kind == .noida ? .elasticsearch : .opensearch))
            let flusher = Task { await index.bulk.run() }
            try await SearchContract.run(index) {
                await index.flush()
                try await index.refresh()
            }
            let s = await index.bulk.statistics
            #expect(s.failed == 0 && s.dropped == 0)
            await index.bulk.stop()
            await flusher.value
            await index.shutdown()
        }
    }

    @Test("templates: installed from IndexMappings, idempotent, strict mappings", arguments: SearchServer.Kind.allCases)
    func templates(kind: SearchServer.Kind) async throws {
        try await withSearchServer(kind) { server in
            let index = try await preparedIndex(server)
            try await index.prepare()  // a second time: harmless
            for name in [IndexMappings.communicationsIndex, IndexMappings.logsIndex] {
                let t = try await index.client.send(.GET, "/_index_template/\(name)").json()
                guard case .array(let list)? = t["index_templates"], case .object(let props)? = list.first?["index_template"]?["template"]?["mappings"]?["properties"] else {
                    Issue.record("no template \(name)"); continue
                }
                #expect(props.mapValues { $0["type"]?.stringValue ?? "" } == Dictionary(uniqueKeysWithValues: IndexMappings.fields(of: name)!.map { ($0.name, $0.type) }))
                let m = try await index.client.send(.GET, "/\(name)/_mapping").json()
                guard case .object(let mprops)? = m[name]?["mappings"]?["properties"] else { Issue.record("no index \(name)"); continue }
                #expect(Set(mprops.keys) == Set(IndexMappings.fields(of: name)!.map(\.name)))
            }
            await index.shutdown()
        }
    }

    @Test("log records: a redelivered record does not duplicate; ids are deterministic", arguments: SearchServer.Kind.allCases)
    func logIdempotence(kind: SearchServer.Kind) async throws {
        try await withSearchServer(kind) { server in
            let index = try await preparedIndex(server)
            let logs = SearchContract.logs()
            try await index.index(logs: logs)
            try await index.index(logs: Array(logs.prefix(10)))  // redelivered
            try await index.refresh()
            #expect(try await index.search(LogQuery(limit: 1000)).items.count == logs.count)
            #expect(Documents.logId(logs[0]) == Documents.logId(logs[0]) && Documents.logId(logs[0]) != Documents.logId(logs[1]))
            await index.shutdown()
        }
    }

    @Test("newest createdAt and confirmed re-indexing (what the catch-up uses)")
    func catchUpPort() async throws {
        try await withSearchServer(.noida) { server in
            let index = try await preparedIndex(server)
            let later = Timestamp(milliseconds: SearchContract.base + 100_000)
            #expect(try await index.newestCreatedAt(before: later) == nil)
            try await index.reindex(communications: SearchContract.documents())
            try await index.refresh()
            #expect(try await index.newestCreatedAt(before: later) == Timestamp(milliseconds: SearchContract.base + 29_000))
            #expect(try await index.newestCreatedAt(before: Timestamp(milliseconds: SearchContract.base + 10_000)) == Timestamp(milliseconds: SearchContract.base + 9_000))
            await index.shutdown()
        }
    }
}
