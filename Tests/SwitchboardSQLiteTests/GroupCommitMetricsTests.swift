import Foundation
import MetricsTestKit
import Testing
import SwitchboardCore
import SwitchboardTelemetry
@testable import SwitchboardSQLite

@Suite("SQLite group commit metrics")
struct GroupCommitMetricsTests {
    func database(_ metrics: TestMetrics, synchronous: SQLiteSynchronous) throws -> SQLiteDatabase {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-tests-\(UUID().uuidString)")
        let options = SQLiteOptions(path: dir.appendingPathComponent("m.sqlite").path, synchronous: synchronous)
        return try SQLiteDatabase(options: options, metrics: StoreEngineMetrics(engine: "sqlite", factory: metrics))
    }

    @Test(
        "every committed write is in exactly one group commit's size, and each group commit has one duration (synced or not)",
        arguments: [SQLiteSynchronous.normal, .full])
    func everyWriteCountedOnce(synchronous: SQLiteSynchronous) async throws {
        let metrics = TestMetrics()
        let db = try database(metrics, synchronous: synchronous)
        let groupsAtOpen = db.writerStatistics.groups
        try await db.write { c in try c.execute("CREATE TABLE t (x INTEGER)") }
        // 200 concurrent writes (every fifth not durable: resumed at COMMIT, not after the sync), and one that
        // throws: rolled back alone, in no group.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<200 {
                group.addTask { try await db.write(durable: i % 5 != 0) { c in try c.run("INSERT INTO t (x) VALUES (?)", [.int(Int64(i))]) } }
            }
            group.addTask {
                await #expect(throws: (any Error).self) { try await db.write { c in try c.execute("INSERT INTO missing_table VALUES (1)") } }
            }
            try await group.waitForAll()
        }
        let groups = db.writerStatistics.groups - groupsAtOpen
        await db.close()
        let sizes = try metrics.expectRecorder(MetricName.storeCommitBatchSize, [("engine", "sqlite")]).values
        let durations = try metrics.expectTimer(MetricName.storeCommitDuration, [("engine", "sqlite")]).values
        #expect(sizes.reduce(0, +) == 201, "\(sizes)")
        #expect(sizes.count == groups && durations.count == groups, "\(sizes.count) sizes, \(durations.count) durations, \(groups) groups")
        #expect(durations.allSatisfy { $0 > 0 })
        #expect(metrics.counterTotal(label: MetricName.engineErrors, dimensions: [("engine", "sqlite")]) == 0)
    }
}
