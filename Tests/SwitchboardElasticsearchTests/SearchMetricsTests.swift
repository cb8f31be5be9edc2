import Foundation
import MetricsTestKit
import Testing
import SwitchboardCore
import SwitchboardTelemetry
import SwitchboardTestSupport
@testable import SwitchboardElasticsearch

/// Runs `body` with a fake cluster and an indexer whose client records into `metrics`.
func withMeteredIndexer(_ metrics: TestMetrics, tune: (inout BulkOptions) -> Void = { _ in }, _ responder: @escaping FakeCluster.Responder, _ body: (FakeCluster, BulkIndexer, ElasticsearchClient) async throws -> Void) async throws {
    let cluster = try await FakeCluster.start(responder)
    let client = ElasticsearchClient(configuration: try configuration(cluster.url, tune), metrics: SearchEngineMetrics(engine: "elasticsearch", factory: metrics))
    let indexer = BulkIndexer(client: client, options: client.configuration.bulk, logger: quiet())
    do {
        try await body(cluster, indexer, client)
    } catch {
        await client.shutdown()
        await cluster.stop()
        throw error
    }
    await client.shutdown()
    await cluster.stop()
}

@Suite("Elasticsearch metrics against a local HTTP server")
struct SearchMetricsTests {
    func bulkFailures(_ metrics: TestMetrics) -> Int64 { metrics.counterTotal(label: MetricName.searchBulkFailures) }
    func errors(_ metrics: TestMetrics) -> Int64 { metrics.counterTotal(label: MetricName.engineErrors, dimensions: [("engine", "elasticsearch")]) }

    @Test("documents refused for good are bulk failures; items retried (429, 5xx) and version conflicts are not")
    func itemFailures() async throws {
        let first = #"""
            {"errors":true,"items":[
             {"index":{"_id":"id0","status":201}},
             {"index":{"_id":"id1","status":429,"error":{"type":"es_rejected_execution_exception","reason":"busy"}}},
             {"index":{"_id":"id2","status":400,"error":{"type":"mapper_parsing_exception","reason":"bad"}}},
             {"index":{"_id":"id3","status":409,"error":{"type":"version_conflict_engine_exception","reason":"newer"}}},
             {"index":{"_id":"id4","status":400,"error":{"type":"mapper_parsing_exception","reason":"bad"}}}]}
            """#
        let metrics = TestMetrics()
        try await withMeteredIndexer(metrics, { r, n in n == 0 ? (200, first) : (200, FakeCluster.bulkOK(r)) }) { cluster, indexer, client in
            try await indexer.submit(actions(5))
            #expect(cluster.bulkRequests.count == 2)
            #expect(bulkFailures(metrics) == 2)
            #expect(errors(metrics) == 0)
        }
    }

    @Test("each request answered 503 is one engine error; a 404 the caller did not accept is not")
    func requestErrors() async throws {
        let metrics = TestMetrics()
        try await withMeteredIndexer(metrics, tune: { $0.maxAttempts = 3 }, { r, _ in
            r.uri.hasPrefix("/_bulk") ? (503, #"{"error":{"type":"cluster_block_exception","reason":"blocked"},"status":503}"#) : (404, "{}")
        }) { cluster, indexer, client in
            await #expect(throws: ElasticsearchError.self) { try await indexer.submit(actions(2)) }
            #expect(cluster.bulkRequests.count == 3)
            #expect(errors(metrics) == 3)
            // Documents the logging service will submit again are not failures of the index (yet).
            #expect(bulkFailures(metrics) == 0)
            await #expect(throws: ElasticsearchError.self) { _ = try await client.send(.GET, "/missing") }
            #expect(errors(metrics) == 3)
        }
    }

    @Test("an unreachable cluster: each request is one engine error")
    func unreachable() async throws {
        let metrics = TestMetrics()
        let client = ElasticsearchClient(configuration: try configuration("http://127.0.0.1:\(try await freeLoopbackPort())"), metrics: SearchEngineMetrics(engine: "elasticsearch", factory: metrics))
        await #expect(throws: ElasticsearchError.self) { _ = try await client.info() }
        await #expect(throws: ElasticsearchError.self) { _ = try await client.info() }
        #expect(errors(metrics) == 2)
        await client.shutdown()
    }
}
