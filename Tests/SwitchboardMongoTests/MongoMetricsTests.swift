#if MongoDB
import Foundation
import MetricsTestKit
import Testing
import SwitchboardCore
import SwitchboardTelemetry
import SwitchboardTestSupport
@testable import SwitchboardMongo

@Suite("MongoDB store metrics", .timeLimit(.minutes(2)))
struct MongoMetricsTests {
    @Test("each write of the port (create, apply, confirmPublished) is one commit duration; reads are not; a duplicate idempotency key is no engine error")
    func writesTimed() async throws {
        try await withSecantusServer { server in
            let metrics = TestMetrics()
            let store = try MongoStore(
                url: server.url(database: "switchboard-metrics", options: SecantusServer.patientOptions), logger: quietLogger(),
                metrics: StoreEngineMetrics(engine: "mongodb", factory: metrics))
            let timer = { try metrics.expectTimer(MetricName.storeCommitDuration, [("engine", "mongodb")]).values }
            _ = try await store.create([StoreContract.new("m1", key: "k"), StoreContract.new("m2")])
            #expect(try timer().count == 1)
            _ = try await store.communication(id: "m1")
            _ = try await store.statusCounts()
            #expect(try timer().count == 1)
            _ = try await store.apply([StatusTransition(id: "m1", event: .queued(dispatchSeq: 1), at: Timestamp(milliseconds: 2000), service: "s")])
            try await store.confirmPublished([Publication(id: "m2", dispatchSeq: 1)], due: nil)
            _ = try await store.create([StoreContract.new("m3", key: "k")])  // a replay of m1's key
            let durations = try timer()
            #expect(durations.count == 4 && durations.allSatisfy { $0 > 0 }, "\(durations)")
            #expect(metrics.counterTotal(label: MetricName.engineErrors, dimensions: [("engine", "mongodb")]) == 0)
            await store.shutdown()
        }
    }

    @Test("an unreachable server: each failed request is one engine error, and no commit is timed")
    func unreachableCounted() async throws {
        let port = try await freeLoopbackPort()
        let metrics = TestMetrics()
        let store = try MongoStore(
            url: "mongodb://127.0.0.1:\(port)/?serverSelectionTimeoutMS=300&connectTimeoutMS=300", logger: quietLogger(),
            metrics: StoreEngineMetrics(engine: "mongodb", factory: metrics))
        await #expect(throws: MongoError.self) { try await store.ping() }
        await #expect(throws: MongoError.self) { _ = try await store.create([StoreContract.new("x")]) }
        #expect(metrics.counterTotal(label: MetricName.engineErrors, dimensions: [("engine", "mongodb")]) == 2)
        #expect(try metrics.expectTimer(MetricName.storeCommitDuration, [("engine", "mongodb")]).values.isEmpty)
        await store.shutdown()
    }
}
#endif
