import Foundation
import Testing
import SwitchboardCore
@testable import SwitchboardSQLite

/// The logging service's path through the atomic pipeline: `log_stream` entries are read without being
/// claimed and consumed by the transaction that indexes them.
@Suite("SQLite pipeline: log consumption")
struct LogConsumptionTests {
    struct Fixture {
        let db: SQLiteDatabase
        let queue: SQLiteQueue
        let pipeline: SQLitePipeline
        let search: SQLiteSearchIndex

        init(lease: Duration = .seconds(30)) throws {
            db = try temporaryDatabase()
            queue = SQLiteQueue(database: db, lease: lease, pollInterval: .milliseconds(20), clock: wallClock)
            pipeline = SQLitePipeline(queue: queue)
            search = SQLiteSearchIndex(database: db)
        }

        /// Accepts `n` messages: two log entries each (`pending`, `queued`).
        func accept(_ n: Int, from first: Int = 1) async throws {
            let now = wallClock()
            let items = (0..<n).map { i in
                NewCommunication(id: String(format: "%024x", first + i), request: sms(msg: "message \(i)"), idempotencyKey: nil, createdAt: now, dispatchAt: now.adding(.seconds(30)))
            }
            _ = try await pipeline.accept(items, queuedAt: now, service: "router")
        }

        func logCount() async throws -> Int {
            try await search.search(LogQuery(limit: 1000)).items.count
        }

        func records(_ batch: LogBatch) -> [LogRecord] { batch.entries.compactMap { LogRecord(fields: $0.fields) } }

        /// The logging service's read, as `consumer`, without blocking.
        func read(_ consumer: String = "logger-1") async throws -> LogBatch {
            try await pipeline.readLogs(group: StreamNames.loggerGroup, consumer: consumer, count: 100, block: .zero)
        }

        /// Indexes the batch's well-formed records and consumes it.
        func index(_ batch: LogBatch, deadLetters: [QueueEntry] = [], reason: String = "bad") async throws {
            try await pipeline.indexLogs(records(batch), consuming: batch, deadLetters: deadLetters, reason: reason, group: StreamNames.loggerGroup)
        }
    }

    @Test("reading claims nothing; indexing consumes the entries in its own transaction")
    func readThenConsume() async throws {
        let f = try Fixture()
        try await f.queue.createGroup(stream: StreamNames.log, group: StreamNames.loggerGroup)
        try await f.accept(5)
        let batch = try await f.read("logger-1")
        #expect(batch.entries.count == 10)
        guard case .read(let after, let through) = batch.origin else { Issue.record("expected a read batch, got \(batch.origin)"); return }
        #expect(after == "0")
        #expect(through == batch.entries.last?.id)
        var info = try await f.queue.info(stream: StreamNames.log, group: StreamNames.loggerGroup)
        #expect(info.pending == 0)
        #expect(info.length == 10)

        try await f.index(batch)
        info = try await f.queue.info(stream: StreamNames.log, group: StreamNames.loggerGroup)
        #expect(info.length == 0)
        #expect(info.pending == 0)
        #expect(try await f.logCount() == 10)
        // Nothing left to read.
        #expect(try await f.read("logger-1").entries.isEmpty)
    }

    @Test("a batch consumed by another logging service first is refused whole: nothing is indexed twice")
    func staleBatch() async throws {
        let f = try Fixture()
        try await f.queue.createGroup(stream: StreamNames.log, group: StreamNames.loggerGroup)
        try await f.accept(3)
        let first = try await f.read("logger-1")
        let second = try await f.read("logger-2")
        #expect(first == second)
        try await f.index(first)
        await #expect(throws: StaleLogBatch.self) {
            try await f.index(second)
        }
        #expect(try await f.logCount() == 6)
    }

    @Test("a batch read and never indexed (the logger died) is read again: nothing is lost")
    func readAgainAfterCrash() async throws {
        let f = try Fixture()
        try await f.queue.createGroup(stream: StreamNames.log, group: StreamNames.loggerGroup)
        try await f.accept(2)
        let lost = try await f.read("logger-1")
        let again = try await f.read("logger-2")
        #expect(again.entries.map(\.id) == lost.entries.map(\.id))
        try await f.index(again)
        #expect(try await f.logCount() == 4)
    }

    @Test("malformed entries go to log_stream:dead in the transaction that consumes them")
    func malformedToDeadLetter() async throws {
        let f = try Fixture()
        try await f.queue.createGroup(stream: StreamNames.log, group: StreamNames.loggerGroup)
        try await f.accept(1)
        try await f.queue.publish(stream: StreamNames.log, entries: [["service": "nobody"]])
        let batch = try await f.read("logger-1")
        #expect(batch.entries.count == 3)
        let bad = batch.entries.filter { LogRecord(fields: $0.fields) == nil }
        #expect(bad.count == 1)
        try await f.index(batch, deadLetters: bad, reason: "malformed")
        let info = try await f.queue.info(stream: StreamNames.log, group: StreamNames.loggerGroup)
        #expect(info.length == 0)
        #expect(info.deadLetters == 1)
        let dead = try await f.queue.entries(stream: StreamNames.deadLetter(of: StreamNames.log), limit: 10)
        #expect(dead.first?.fields["dead_reason"] == "malformed")
        #expect(dead.first?.fields["service"] == "nobody")
        #expect(try await f.logCount() == 2)
    }

    @Test("entries claimed the usual way whose lease ran out are taken over, then acknowledged when indexed")
    func expiredClaimsAreTakenOver() async throws {
        let f = try Fixture(lease: .milliseconds(200))
        try await f.queue.createGroup(stream: StreamNames.log, group: StreamNames.loggerGroup)
        try await f.accept(1)
        // An older logging service claimed them and died.
        let held = try await f.queue.read(stream: StreamNames.log, group: StreamNames.loggerGroup, consumer: "old", count: 10, block: .zero)
        #expect(held.count == 2)
        try await f.accept(1, from: 2)
        try await Task.sleep(for: .milliseconds(400))
        let batch = try await f.read("logger-1")
        #expect(batch.origin == .claimed)
        #expect(batch.entries.map(\.id) == held.map(\.id))
        #expect(batch.entries.allSatisfy { $0.deliveryCount == 2 })
        try await f.index(batch)
        // Then the new ones, read without a claim.
        let next = try await f.read("logger-1")
        #expect(next.entries.count == 2)
        try await f.index(next)
        let info = try await f.queue.info(stream: StreamNames.log, group: StreamNames.loggerGroup)
        #expect(info.length == 0)
        #expect(info.pending == 0)
        #expect(try await f.logCount() == 4)
    }

    @Test("one log_stream entry per transaction: each record is handed out on its own, with the entry's id")
    func oneEntryPerTransaction() async throws {
        let f = try Fixture()
        try await f.queue.createGroup(stream: StreamNames.log, group: StreamNames.loggerGroup)
        try await f.accept(3)
        try await f.accept(1, from: 4)
        let rows = try await f.db.read { c in try c.scalar("SELECT count(*) FROM stream_entries WHERE stream = 'log_stream'") }
        #expect(rows == 2)
        // Length counts records (what a consumer is handed), not rows.
        #expect(try await f.queue.info(stream: StreamNames.log, group: StreamNames.loggerGroup).length == 8)
        let batch = try await f.read("logger-1")
        #expect(batch.entries.count == 8)
        #expect(Set(batch.entries.map(\.id)).count == 2)
        #expect(f.records(batch).map(\.status) == [.pending, .queued, .pending, .queued, .pending, .queued, .pending, .queued])
        #expect(f.records(batch).map(\.msg) == ["message 0", "message 0", "message 1", "message 1", "message 2", "message 2", "message 0", "message 0"])
        try await f.index(batch)
        #expect(try await f.logCount() == 8)
        #expect(try await f.queue.info(stream: StreamNames.log, group: StreamNames.loggerGroup).length == 0)
    }

    @Test("an accept where some messages are replays of stored ones: only the new messages' records are logged and fed; all replays: nothing")
    func acceptWithReplays() async throws {
        let f = try Fixture()
        try await f.queue.createGroup(stream: StreamNames.log, group: StreamNames.loggerGroup)
        let feed = SQLiteStatusFeed(database: f.db, clock: wallClock)
        let now = wallClock()
        func item(_ n: Int, key: String?) -> NewCommunication {
            NewCommunication(id: String(format: "%024x", n), request: sms(msg: "message \(key ?? String(n))"), idempotencyKey: key, createdAt: now, dispatchAt: now.adding(.seconds(30)))
        }
        _ = try await f.pipeline.accept([item(1, key: "k1"), item(2, key: "k2")], queuedAt: now, service: "router")
        // 1 and 2 again under their keys (new ids, replays), and 3 new between them.
        let outcomes = try await f.pipeline.accept([item(11, key: "k1"), item(3, key: nil), item(12, key: "k2")], queuedAt: now, service: "router")
        #expect(outcomes.map { if case .created = $0 { "created" } else if case .existing = $0 { "existing" } else { "other" } } == ["existing", "created", "existing"])
        // Everything replayed: nothing written.
        _ = try await f.pipeline.accept([item(21, key: "k1")], queuedAt: now, service: "router")
        let batch = try await f.read()
        #expect(f.records(batch).map { "\($0.msg) \($0.status!.rawValue)" } == [
            "message k1 pending", "message k1 queued", "message k2 pending", "message k2 queued", "message 3 pending", "message 3 queued",
        ])
        let fed = try await feed.read(after: nil, count: 100, block: .zero)
        #expect(fed.map { "\($0.record.communicationId) \($0.record.status!.rawValue)" } == [1, 1, 2, 2, 3, 3].enumerated().map { i, n in "\(String(format: "%024x", n)) \(i % 2 == 0 ? "pending" : "queued")" })
        #expect(fed.allSatisfy { $0.record.msg.isEmpty }, "the feed keeps no bodies")
    }

    @Test("a read stops at whole entries once it holds the count asked for; the rest is read next")
    func readStopsAtWholeEntries() async throws {
        let f = try Fixture()
        try await f.queue.createGroup(stream: StreamNames.log, group: StreamNames.loggerGroup)
        for i in 0..<10 { try await f.accept(30, from: 1 + 30 * i) }  // ten entries of 60 records
        let first = try await f.pipeline.readLogs(group: StreamNames.loggerGroup, consumer: "logger-1", count: 100, block: .zero)
        #expect(first.entries.count == 120)  // two whole entries: the first holds 60 < 100
        try await f.index(first)
        var total = first.entries.count
        while true {
            let next = try await f.pipeline.readLogs(group: StreamNames.loggerGroup, consumer: "logger-1", count: 100, block: .zero)
            if next.entries.isEmpty { break }
            #expect(next.entries.count <= 120)
            try await f.index(next)
            total += next.entries.count
        }
        #expect(total == 600)
        #expect(try await f.logCount() == 600)
    }

    @Test("an entry that is not JSON fields is handed out once, counted once, and dead-lettered with its text")
    func malformedBatch() async throws {
        let f = try Fixture()
        try await f.queue.createGroup(stream: StreamNames.log, group: StreamNames.loggerGroup)
        let texts = ["[{\"a\":\"b\"},", "not json", "[]"]
        try await f.db.write { c in for t in texts { _ = try SQLiteQueue.append(c, stream: StreamNames.log, fields: t, at: wallClock()) } }
        #expect(try await f.queue.info(stream: StreamNames.log, group: StreamNames.loggerGroup).length == 3)
        let batch = try await f.read("logger-1")
        #expect(batch.entries.map(\.fields) == texts.map { [SQLiteQueue.rawField: $0] })
        try await f.index(batch, deadLetters: batch.entries, reason: "malformed")
        let info = try await f.queue.info(stream: StreamNames.log, group: StreamNames.loggerGroup)
        #expect(info.length == 0 && info.deadLetters == 3)
        let dead = try await f.queue.entries(stream: StreamNames.deadLetter(of: StreamNames.log), limit: 10)
        #expect(dead.map { $0.fields[SQLiteQueue.rawField] } == texts)
        #expect(dead.allSatisfy { $0.fields["dead_reason"] == "malformed" })
    }

    @Test("a batched entry claimed by a reader outside the pipeline is acknowledged whole")
    func batchedEntryThroughTheQueue() async throws {
        let f = try Fixture()
        try await f.queue.createGroup(stream: StreamNames.log, group: StreamNames.loggerGroup)
        try await f.accept(2)
        let held = try await f.queue.read(stream: StreamNames.log, group: StreamNames.loggerGroup, consumer: "other", count: 10, block: .zero)
        #expect(held.count == 4 && Set(held.map(\.id)).count == 1)
        #expect(held.compactMap { LogRecord(fields: $0.fields) }.count == 4)
        #expect(try await f.queue.info(stream: StreamNames.log, group: StreamNames.loggerGroup).pending == 1)
        try await f.queue.ack(stream: StreamNames.log, group: StreamNames.loggerGroup, ids: [held[0].id])
        let info = try await f.queue.info(stream: StreamNames.log, group: StreamNames.loggerGroup)
        #expect(info.length == 0 && info.pending == 0)
    }

    @Test("a blocked read wakes when this process writes a log entry")
    func blockingReadWakes() async throws {
        let f = try Fixture()
        try await f.queue.createGroup(stream: StreamNames.log, group: StreamNames.loggerGroup)
        let start = ContinuousClock.now
        // A block far longer than any stall of a loaded machine: waking on the write is returning well before it.
        let block = Duration.seconds(120)
        async let got = f.pipeline.readLogs(group: StreamNames.loggerGroup, consumer: "logger-1", count: 100, block: block)
        try await Task.sleep(for: .milliseconds(100))
        try await f.accept(1)
        #expect(try await got.entries.count == 2)
        #expect(ContinuousClock.now - start < block / 2)
    }
}
