import Foundation
import Logging
import Testing
import SwitchboardCore
import SwitchboardTestSupport
@testable import SwitchboardElasticsearch

func quiet() -> Logger {
    var l = Logger(label: "es-test")
    l.logLevel = .critical
    return l
}

func configuration(_ url: String, auth: ElasticsearchConfiguration.Authentication = .none, _ tune: (inout BulkOptions) -> Void = { _ in }) throws -> ElasticsearchConfiguration {
    var c = try ElasticsearchConfiguration(node: url, authentication: auth)
    c.requestTimeout = .seconds(5)
    c.bulk.baseBackoff = .milliseconds(10)
    c.bulk.maxBackoff = .milliseconds(50)
    tune(&c.bulk)
    return c
}

func actions(_ n: Int, from: Int = 0, padding: Int = 0) -> [BulkAction] {
    (from..<(from + n)).map { i in
        BulkAction(index: "communications", id: "id\(i)", version: Int64(1000 + i), source: "{\"n\":\(i),\"pad\":\"\(String(repeating: "x", count: padding))\"}", createdAt: Timestamp(milliseconds: Int64(i)))
    }
}

/// Runs `body` with a fake cluster, an indexer on it, and the indexer's flusher running.
func withIndexer(auth: ElasticsearchConfiguration.Authentication = .none, tune: (inout BulkOptions) -> Void = { _ in }, flusher: Bool = false, _ responder: @escaping FakeCluster.Responder, _ body: (FakeCluster, BulkIndexer) async throws -> Void) async throws {
    let cluster = try await FakeCluster.start(responder)
    let client = ElasticsearchClient(configuration: try configuration(cluster.url, auth: auth, tune))
    let indexer = BulkIndexer(client: client, options: client.configuration.bulk, logger: quiet())
    let task: Task<Void, Never>? = flusher ? Task { await indexer.run() } : nil
    do {
        try await body(cluster, indexer)
    } catch {
        await indexer.stop()
        await task?.value
        await client.shutdown()
        await cluster.stop()
        throw error
    }
    await indexer.stop()
    await task?.value
    await client.shutdown()
    await cluster.stop()
}

@Suite("Bulk indexer against a local HTTP server")
struct BulkIndexerTests {
    @Test("429 on the whole request, then 200: retried with backoff, confirmed once")
    func tooManyRequestsThenOK() async throws {
        try await withIndexer({ r, n in n == 0 ? (429, #"{"error":{"type":"es_rejected_execution_exception","reason":"queue full"},"status":429}"#) : (200, FakeCluster.bulkOK(r)) }) { cluster, indexer in
            try await indexer.submit(actions(5))
            #expect(cluster.bulkRequests.count == 2)
            #expect(cluster.bulkRequests[1].bulkIDs == (0..<5).map { "id\($0)" })
            let s = await indexer.statistics
            #expect(s.indexed == 5 && s.retries == 1 && s.failed == 0)
        }
    }

    @Test("503 is retried up to maxAttempts, then the typed error is thrown")
    func unavailableGivesUp() async throws {
        try await withIndexer(tune: { $0.maxAttempts = 4 }, { _, _ in (503, #"{"error":{"type":"cluster_block_exception","reason":"blocked"},"status":503}"#) }) { cluster, indexer in
            await #expect(throws: ElasticsearchError.http(status: 503, type: "cluster_block_exception", reason: "blocked")) { try await indexer.submit(actions(2)) }
            #expect(cluster.bulkRequests.count == 4)
        }
    }

    @Test("a 503 then 200 is confirmed")
    func unavailableThenOK() async throws {
        try await withIndexer({ r, n in n < 2 ? (503, "{}") : (200, FakeCluster.bulkOK(r)) }) { cluster, indexer in
            try await indexer.submit(actions(3))
            #expect(cluster.bulkRequests.count == 3)
        }
    }

    @Test("per-item errors: 429 items retried alone, 409 version conflicts ignored, others reported and counted")
    func itemErrors() async throws {
        let first = #"""
            {"errors":true,"items":[
             {"index":{"_id":"id0","status":201}},
             {"index":{"_id":"id1","status":429,"error":{"type":"es_rejected_execution_exception","reason":"busy"}}},
             {"index":{"_id":"id2","status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse field [createdAt]"}}},
             {"index":{"_id":"id3","status":409,"error":{"type":"version_conflict_engine_exception","reason":"newer"}}},
             {"index":{"_id":"id4","status":503,"error":{"type":"unavailable_shards_exception","reason":"primary"}}}]}
            """#
        try await withIndexer({ r, n in n == 0 ? (200, first) : (200, FakeCluster.bulkOK(r)) }) { cluster, indexer in
            try await indexer.submit(actions(5))
            #expect(cluster.bulkRequests.map(\.bulkIDs) == [["id0", "id1", "id2", "id3", "id4"], ["id1", "id4"]])
            let s = await indexer.statistics
            #expect(s.indexed == 3)
            #expect(s.failed == 1)
            #expect(s.superseded == 1)
            #expect(s.retries == 1)
        }
    }

    @Test("external versioning: each action carries its version with version_type external_gte")
    func versions() async throws {
        try await withIndexer({ r, _ in (200, FakeCluster.bulkOK(r)) }) { cluster, indexer in
            try await indexer.submit(actions(1))
            let line = cluster.bulkRequests[0].text.split(separator: "\n")[0]
            #expect(line == #"{"index":{"_id":"id0","_index":"communications","version":1000,"version_type":"external_gte"}}"#)
            #expect(cluster.bulkRequests[0].header("Content-Type") == "application/x-ndjson")
        }
    }

    @Test("batches by count: full batches go at once, the rest after the interval")
    func byCount() async throws {
        // Generous bounds: in a full parallel run on two loaded cores the second batch once took over 5 s.
        try await withIndexer(tune: { $0.maxActions = 10; $0.flushInterval = .seconds(120) }, flusher: true, { r, _ in (200, FakeCluster.bulkOK(r)) }) { cluster, indexer in
            await indexer.enqueue(actions(25))
            let deadline = ContinuousClock.now + .seconds(30)
            while cluster.bulkRequests.count < 2, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
            #expect(cluster.bulkRequests.map { $0.bulkIDs.count } == [10, 10])
            #expect(await indexer.bufferedCount == 5)
            await indexer.flush()
            #expect(cluster.bulkRequests.map { $0.bulkIDs.count } == [10, 10, 5])
            #expect(cluster.bulkRequests.flatMap(\.bulkIDs) == (0..<25).map { "id\($0)" })
        }
    }

    @Test("batches by bytes: no request over maxBytes")
    func byBytes() async throws {
        try await withIndexer(tune: { $0.maxBytes = 2000; $0.flushInterval = .seconds(30) }, { r, _ in (200, FakeCluster.bulkOK(r)) }) { cluster, indexer in
            try await indexer.submit(actions(12, padding: 400))
            #expect(cluster.bulkRequests.count >= 3)
            #expect(cluster.bulkRequests.allSatisfy { $0.body.count <= 2000 })
            #expect(cluster.bulkRequests.flatMap(\.bulkIDs) == (0..<12).map { "id\($0)" })
            await indexer.enqueue(actions(12, from: 100, padding: 400))
            await indexer.flush()
            #expect(cluster.bulkRequests.allSatisfy { $0.body.count <= 2000 })
            #expect(cluster.bulkRequests.flatMap(\.bulkIDs).count == 24)
        }
    }

    @Test("batches by time: a lone document goes after flushInterval")
    func byTime() async throws {
        try await withIndexer(tune: { $0.flushInterval = .seconds(1) }, flusher: true, { r, _ in (200, FakeCluster.bulkOK(r)) }) { cluster, indexer in
            let start = ContinuousClock.now
            await indexer.enqueue(actions(3))
            try await Task.sleep(for: .milliseconds(100))
            // Nothing goes before flushInterval. (Read the requests first: on a loaded machine the short sleep
            // may itself outlast the interval, and then there is nothing to check here.)
            let early = cluster.bulkRequests
            if ContinuousClock.now - start < .milliseconds(900) { #expect(early.isEmpty) }
            while cluster.bulkRequests.isEmpty, ContinuousClock.now - start < .seconds(15) { try await Task.sleep(for: .milliseconds(10)) }
            #expect(cluster.bulkRequests.map(\.bulkIDs) == [["id0", "id1", "id2"]])
            #expect(ContinuousClock.now - start >= .milliseconds(950))
        }
    }

    @Test("a buffered update replaces the buffered older version of the same document")
    func merge() async throws {
        try await withIndexer(tune: { $0.flushInterval = .seconds(30) }, { r, _ in (200, FakeCluster.bulkOK(r)) }) { cluster, indexer in
            let newer = BulkAction(index: "communications", id: "a", version: 20, source: #"{"v":"new"}"#)
            let older = BulkAction(index: "communications", id: "a", version: 10, source: #"{"v":"old"}"#)
            await indexer.enqueue([newer])
            await indexer.enqueue([older])
            await indexer.flush()
            #expect(cluster.bulkRequests.count == 1)
            #expect(cluster.bulkRequests[0].text.contains(#"{"v":"new"}"#))
            #expect(!cluster.bulkRequests[0].text.contains("old"))
        }
    }

    @Test("bounded memory: past maxBuffered documents are dropped and the earliest createdAt is kept for the catch-up")
    func overflow() async throws {
        try await withIndexer(tune: { $0.maxBuffered = 5; $0.flushInterval = .seconds(30) }, { r, _ in (200, FakeCluster.bulkOK(r)) }) { _, indexer in
            await indexer.enqueue(actions(3, from: 10))
            await indexer.enqueue(actions(6, from: 3))
            #expect(await indexer.bufferedCount == 5)
            #expect(await indexer.statistics.dropped == 4)
            #expect(await indexer.takeDirtySince() == Timestamp(milliseconds: 5))
            #expect(await indexer.takeDirtySince() == nil)
        }
    }

    @Test("a buffered batch that finally fails is remembered for the catch-up")
    func failedBatchIsDirty() async throws {
        try await withIndexer(tune: { $0.maxAttempts = 2 }, { _, _ in (503, "{}") }) { cluster, indexer in
            await indexer.enqueue(actions(4, from: 7))
            await indexer.flush()
            #expect(cluster.bulkRequests.count == 2)
            #expect(await indexer.statistics.givenUp == 4)
            #expect(await indexer.takeDirtySince() == Timestamp(milliseconds: 7))
        }
    }

    @Test("connection refused is retried, then thrown as unreachable")
    func unreachable() async throws {
        let port = try await freeLoopbackPort()
        let client = ElasticsearchClient(configuration: try configuration("http://127.0.0.1:\(port)") { $0.maxAttempts = 3 })
        let indexer = BulkIndexer(client: client, options: client.configuration.bulk, logger: quiet())
        do {
            try await indexer.submit(actions(1))
            Issue.record("submit succeeded without a server")
        } catch let e as ElasticsearchError {
            #expect(e.isUnreachable)
        }
        #expect(await indexer.statistics.retries == 2)
        await client.shutdown()
    }

    @Test("auth headers: basic and ApiKey; never an Expect header; secrets not in errors", arguments: [
        ElasticsearchConfiguration.Authentication.basic(user: "elastic", password: "s3cret-pw"), .apiKey("a2V5aWQ6c2VjcmV0a2V5"), ElasticsearchConfiguration.Authentication.none,
    ])
    func authentication(auth: ElasticsearchConfiguration.Authentication) async throws {
        try await withIndexer(auth: auth, { r, n in n == 0 ? (200, FakeCluster.bulkOK(r)) : (401, #"{"error":{"type":"security_exception","reason":"unable to authenticate"},"status":401}"#) }) { cluster, indexer in
            try await indexer.submit(actions(50, padding: 2000))  // a large body: no Expect: 100-continue
            var failure = ""
            do { try await indexer.submit(actions(1)) } catch { failure = "\(error)" }
            #expect(failure.contains("401") && failure.contains("security_exception"))
            let sent = cluster.requests.withLockedValue { $0 }
            #expect(sent.count == 2)
            for r in sent {
                #expect(r.header("Expect") == nil)
                switch auth {
                case .basic: #expect(r.header("Authorization") == "Basic " + Data("elastic:s3cret-pw".utf8).base64EncodedString())
                case .apiKey(let key): #expect(r.header("Authorization") == "ApiKey \(key)")
                case .none: #expect(r.header("Authorization") == nil)
                }
            }
            #expect(!failure.contains("s3cret") && !failure.contains("a2V5aWQ6"))
            let c = try configuration(cluster.url, auth: auth)
            #expect(!c.description.contains("s3cret") && !c.description.contains("a2V5aWQ6"))
        }
    }
}
