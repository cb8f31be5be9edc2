import Foundation
import MetricsTestKit
import Testing
import SwitchboardTelemetry
import SwitchboardTestSupport
@testable import SwitchboardRedis

@Suite("Redis pool metrics")
struct PoolMetricsTests {
    func meter(_ metrics: TestMetrics, _ label: String) throws -> Double {
        try metrics.expectMeter(label, [("pool", "commands")]).lastValue ?? 0
    }

    @Test("connections open and lent out follow leases and returns; a borrower that waits is counted; shutdown closes them")
    func poolGauges() async throws {
        try await withRedisServer { server in
            let metrics = TestMetrics()
            let pool = try RedisConnectionPool(
                configuration: try RedisConfiguration(url: server.url),
                options: .init(maximumConnections: 2, leaseTimeout: .seconds(30)),
                metrics: RedisPoolMetrics(pool: "commands", factory: metrics))
            let open = { try self.meter(metrics, MetricName.redisPoolConnections) }
            let inUse = { try self.meter(metrics, MetricName.redisPoolConnectionsInUse) }
            let waits = { metrics.counterTotal(label: MetricName.redisPoolWaits, dimensions: [("pool", "commands")]) }

            #expect(try await pool.ping() == "PONG")
            #expect(try open() == 1 && inUse() == 0 && waits() == 0)
            let a = try await pool.lease()
            let b = try await pool.lease()
            #expect(try open() == 2 && inUse() == 2 && waits() == 0)
            // Both lent out: the next borrower waits, and is counted once.
            async let waiter = pool.lease()
            let deadline = ContinuousClock.now + .seconds(10)
            while waits() == 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
            #expect(waits() == 1 && pool.statistics.waiting == 1)
            pool.release(a)
            let c = try await waiter
            #expect(c === a)
            #expect(try open() == 2 && inUse() == 2)
            // A broken connection returned is closed: one fewer open.
            await b.close()
            pool.release(b)
            #expect(try open() == 1 && inUse() == 1)
            pool.release(c)
            #expect(try open() == 1 && inUse() == 0)
            // Many commands at once through two connections: back to nothing lent out afterwards.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<100 { group.addTask { _ = try await pool.send(command: ["ECHO", "\(i)"]) } }
                try await group.waitForAll()
            }
            #expect(try open() == 2 && inUse() == 0)
            #expect(waits() >= 1)
            await pool.shutdown()
            #expect(try open() == 0 && inUse() == 0)
            #expect(metrics.counterTotal(label: MetricName.engineErrors, dimensions: [("engine", "redis")]) == 0)
        }
    }

    @Test("a connection that cannot be opened counts as a Redis error, and nothing is open")
    func connectionFailures() async throws {
        let port = try await freeLoopbackPort()
        let metrics = TestMetrics()
        var reconnect = RedisReconnectPolicy()
        reconnect.maximumWait = .zero
        let pool = try RedisConnectionPool(
            configuration: RedisConfiguration(host: "127.0.0.1", port: port), options: .init(reconnect: reconnect),
            metrics: RedisPoolMetrics(pool: "commands", factory: metrics))
        await #expect(throws: RedisError.self) { try await pool.ping() }
        #expect(metrics.counterTotal(label: MetricName.engineErrors, dimensions: [("engine", "redis")]) == 1)
        #expect(try metrics.expectMeter(MetricName.redisPoolConnections, [("pool", "commands")]).lastValue ?? 0 == 0)
        #expect(try metrics.expectMeter(MetricName.redisPoolConnectionsInUse, [("pool", "commands")]).lastValue ?? 0 == 0)
        await pool.shutdown()
    }
}
