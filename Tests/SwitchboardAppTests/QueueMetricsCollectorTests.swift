import Foundation
import Logging
import MetricsTestKit
import Synchronization
import Testing
import SwitchboardCore
import SwitchboardSQLite
import SwitchboardTelemetry
import SwitchboardTestSupport

@testable import SwitchboardApp

/// A queue that forwards to another, whose first `ping` does not answer until the test lets it (and ignores
/// cancellation: an engine that hangs).
final class HangingQueue: MessageQueue {
    let base: any MessageQueue
    let released = Mutex(false)
    let pings = Mutex(0)

    init(base: any MessageQueue) {
        self.base = base
    }

    func ping() async throws {
        let n = pings.withLock { n in
            n += 1
            return n
        }
        if n == 1 {
            while !released.withLock({ $0 }) { try? await Task.sleep(for: .milliseconds(20)) }
        }
        try await base.ping()
    }
    func createGroup(stream: String, group: String) async throws { try await base.createGroup(stream: stream, group: group) }
    func publish(stream: String, entries: [[String: String]]) async throws -> [String] { try await base.publish(stream: stream, entries: entries) }
    func read(stream: String, group: String, consumer: String, count: Int, block: Duration) async throws -> [QueueEntry] {
        try await base.read(stream: stream, group: group, consumer: consumer, count: count, block: block)
    }
    func ack(stream: String, group: String, ids: [String]) async throws { try await base.ack(stream: stream, group: group, ids: ids) }
    var lease: Duration { base.lease }
    func renew(stream: String, group: String, consumer: String, ids: [String]) async throws -> [String] { try await base.renew(stream: stream, group: group, consumer: consumer, ids: ids) }
    func deadLetter(stream: String, group: String, entries: [QueueEntry], reason: String) async throws {
        try await base.deadLetter(stream: stream, group: group, entries: entries, reason: reason)
    }
    func removeDeadLetters(stream: String, through dispatches: [String: Int]) async throws -> Int { try await base.removeDeadLetters(stream: stream, through: dispatches) }
    func entries(stream: String, limit: Int) async throws -> [QueueEntry] { try await base.entries(stream: stream, limit: limit) }
    func info(stream: String, group: String) async throws -> StreamBacklog { try await base.info(stream: stream, group: group) }
}

/// SQLite engines for every port, the queue possibly wrapped.
func sqliteAdapters(queue wrap: (SQLiteQueue) -> any MessageQueue = { $0 }) throws -> (Adapters, SQLiteStore, SQLiteQueue) {
    let db = try temporaryDatabase("c")
    let store = SQLiteStore(database: db)
    let queue = SQLiteQueue(database: db, pollInterval: .milliseconds(20), clock: SystemTime.now)
    var logger = Logger(label: "test")
    logger.logLevel = .critical
    let (adapters, _) = Adapters.portByPort(
        store: store, queue: wrap(queue), search: SQLiteSearchIndex(database: db), mailbox: nil, options: PipelineOptions(),
        names: (store: "sqlite", queue: "sqlite", search: "sqlite"), logger: logger)
    return (adapters, store, queue)
}

@Suite("Metrics sampled at scrape time, and the indexing lag")
struct QueueMetricsCollectorTests {
    func gauge(_ metrics: TestMetrics, _ label: String, _ dimensions: [(String, String)] = []) throws -> Double? {
        try metrics.expectGauge(label, dimensions).lastValue
    }

    @Test("refresh sets each stream's length, pending, oldest pending age and dead letters, the outbox's due count and engine_up")
    func refresh() async throws {
        let (adapters, store, queue) = try sqliteAdapters()
        let metrics = TestMetrics()
        let collector = QueueMetricsCollector(
            adapters: adapters,
            gauges: BacklogGauges(
                streams: StreamNames.all, engines: [("store", "sqlite"), ("queue", "sqlite"), ("search", "sqlite")], factory: metrics),
            timeout: .seconds(30),  // not what this test is about: a loaded machine's SQLite reads can take seconds
            clock: { Timestamp(milliseconds: 20_000) })
        let sms = MessageChannel.sms.stream
        try await queue.createGroup(stream: sms, group: StreamNames.workerGroup)
        try await queue.publish(stream: sms, entries: (0..<3).map { ["n": "\($0)"] })
        let held = try await queue.read(stream: sms, group: StreamNames.workerGroup, consumer: "w", count: 1, block: .zero)
        let dead = try await queue.read(stream: sms, group: StreamNames.workerGroup, consumer: "w", count: 1, block: .zero)
        try await queue.deadLetter(stream: sms, group: StreamNames.workerGroup, entries: dead, reason: "test")
        #expect(held.count == 1)
        try await Task.sleep(for: .milliseconds(300))
        // Due at 10 s, 10 s and 1,010 s; the collector's clock says 20 s.
        _ = try await store.create([StoreContract.new("a", at: 0), StoreContract.new("b", at: 0), StoreContract.new("c", at: 1_000_000)])

        await collector.refresh()
        let s = [("stream", sms)]
        #expect(try gauge(metrics, MetricName.queueLength, s) == 2)
        #expect(try gauge(metrics, MetricName.queuePending, s) == 1)
        #expect(try gauge(metrics, MetricName.queueDeadLetters, s) == 1)
        let age = try #require(try gauge(metrics, MetricName.queueOldestPendingAge, s))
        #expect(age >= 0.29 && age < 60, "\(age)")
        let email = [("stream", MessageChannel.email.stream)]
        #expect(try gauge(metrics, MetricName.queueLength, email) == 0)
        #expect(try gauge(metrics, MetricName.queueOldestPendingAge, email) == 0)
        #expect(try gauge(metrics, MetricName.outboxDue) == 2)
        for role in ["store", "queue", "search"] {
            #expect(try gauge(metrics, MetricName.engineUp, [("engine", "sqlite"), ("role", role)]) == 1, "\(role)")
        }

        // Acknowledged: nothing pending, no age.
        try await queue.ack(stream: sms, group: StreamNames.workerGroup, ids: held.map(\.id))
        await collector.refresh()
        #expect(try gauge(metrics, MetricName.queuePending, s) == 0)
        #expect(try gauge(metrics, MetricName.queueOldestPendingAge, s) == 0)
        #expect(try gauge(metrics, MetricName.queueLength, s) == 1)
    }

    @Test("an engine that answers in time is never counted down: the answer always wins over the timer it cancels")
    func answersInTimeWin() async throws {
        let (adapters, _, _) = try sqliteAdapters()
        let metrics = TestMetrics()
        let collector = QueueMetricsCollector(
            adapters: adapters,
            gauges: BacklogGauges(streams: StreamNames.all, engines: [("store", "sqlite"), ("queue", "sqlite"), ("search", "sqlite")], factory: metrics),
            timeout: .seconds(30))
        // The timer, once cancelled, used to give "down" too: whichever came first won, and scrapes of a healthy
        // system read 0 now and then.
        for _ in 0..<300 { await collector.refresh() }
        for role in ["store", "queue", "search"] {
            let values = try metrics.expectGauge(MetricName.engineUp, [("engine", "sqlite"), ("role", role)]).values
            #expect(values.count == 300 && values.allSatisfy { $0 == 1 }, "\(role): \(values.filter { $0 != 1 }.count) of \(values.count) down")
        }
    }

    @Test(
        "an engine that does not answer counts as down after the timeout, and is not asked again while its check runs",
        .timeLimit(.minutes(1)))
    func deadEngineDoesNotHang() async throws {
        var hanging: HangingQueue?
        let (adapters, _, _) = try sqliteAdapters { base in
            let q = HangingQueue(base: base)
            hanging = q
            return q
        }
        let queue = try #require(hanging)
        defer { queue.released.withLock { $0 = true } }
        let metrics = TestMetrics()
        let collector = QueueMetricsCollector(
            adapters: adapters,
            gauges: BacklogGauges(streams: StreamNames.all, engines: [("store", "sqlite"), ("queue", "hanging"), ("search", "sqlite")], factory: metrics),
            timeout: .milliseconds(300))
        let queueUp = { try self.gauge(metrics, MetricName.engineUp, [("engine", "hanging"), ("role", "queue")]) }

        // The queue's check hangs until released: the scrape returns all the same (were it waiting for the check,
        // the time limit would end the test), with the queue down.
        await collector.refresh()
        #expect(try queueUp() == 0)
        // The first check still runs: not asked again, still down.
        await collector.refresh()
        #expect(queue.pings.withLock { $0 } == 1)
        #expect(try queueUp() == 0)
        // Once it ended, the engine is asked again and answers (a loaded machine may need more than one scrape).
        queue.released.withLock { $0 = true }
        while !collector.inFlight.withLock({ $0.isEmpty }) { try await Task.sleep(for: .milliseconds(20)) }
        repeat {
            await collector.refresh()
        } while try queueUp() != 1
        #expect(queue.pings.withLock { $0 } >= 2)
    }

    @Test("the logging service sets the indexing lag to the age of the oldest record of each batch it indexed")
    func indexingLag() async throws {
        let (adapters, _, queue) = try sqliteAdapters()
        let metrics = TestMetrics()
        let now = Mutex(Timestamp(milliseconds: 61_000))
        let indexer = LogIndexer(
            adapters: adapters, options: PipelineOptions(), consumer: "logger", logger: Logger(label: "test"),
            lag: IndexingLagMetrics(factory: metrics), clock: { now.withLock { $0 } })
        func record(_ id: String, at ms: Int64) -> [String: String] {
            LogRecord(communicationId: id, service: "router", status: .queued, type: .sms, from: "+15550000000", to: "+15550000001", msg: "m", error: nil, attempt: 0, provider: nil, timestamp: Timestamp(milliseconds: ms)).fields
        }
        try await queue.createGroup(stream: StreamNames.log, group: StreamNames.loggerGroup)
        try await queue.publish(stream: StreamNames.log, entries: [record("a", at: 3_000), record("b", at: 1_000), record("c", at: 2_000)])
        var batch = try await adapters.pipeline.readLogs(group: StreamNames.loggerGroup, consumer: "logger", count: 100, block: .zero)
        #expect(batch.entries.count == 3)
        try await indexer.index(batch)
        #expect(try gauge(metrics, MetricName.searchIndexingLag) == 60)
        try await queue.publish(stream: StreamNames.log, entries: [record("d", at: 70_000)])
        now.withLock { $0 = Timestamp(milliseconds: 70_500) }
        batch = try await adapters.pipeline.readLogs(group: StreamNames.loggerGroup, consumer: "logger", count: 100, block: .zero)
        try await indexer.index(batch)
        #expect(try gauge(metrics, MetricName.searchIndexingLag) == 0.5)
    }
}
