import Foundation
import Testing
import SwitchboardCore
import SwitchboardTestSupport
@testable import SwitchboardSQLite

/// The shared store contract (`StoreContract`) on SQLite.
@Suite("SQLite store")
struct SQLiteStoreTests {
    @Test func createAndRead() async throws { try await StoreContract.createAndRead(SQLiteStore(database: try temporaryDatabase())) }
    @Test func sameRecipientTwice() async throws { try await StoreContract.sameRecipientTwice(SQLiteStore(database: try temporaryDatabase())) }
    @Test func idempotency() async throws { try await StoreContract.idempotency(SQLiteStore(database: try temporaryDatabase())) }
    @Test func idempotencyRace() async throws { try await StoreContract.idempotencyRace(SQLiteStore(database: try temporaryDatabase())) }
    @Test func transitions() async throws { try await StoreContract.transitions(SQLiteStore(database: try temporaryDatabase())) }
    @Test func retryAndFailure() async throws { try await StoreContract.retryAndFailure(SQLiteStore(database: try temporaryDatabase())) }
    @Test func cancel() async throws { try await StoreContract.cancel(SQLiteStore(database: try temporaryDatabase())) }
    @Test func redrive() async throws { try await StoreContract.redrive(SQLiteStore(database: try temporaryDatabase())) }
    @Test func idempotencyKeys() async throws { try await StoreContract.idempotencyKeys(SQLiteStore(database: try temporaryDatabase())) }
    @Test func scheduled() async throws { try await StoreContract.scheduled(SQLiteStore(database: try temporaryDatabase())) }

    @Test("a redrive's filter reads the failed rows through their partial index (schema 6), in its order: no scan of the table, no sort")
    func failedUsesItsIndex() async throws {
        let db = try temporaryDatabase()
        var plan: [String] = []
        for values: [SQLValue] in [[.null, .null, .null, .null, .int(10)], [.text("sms"), .int(1), .int(2), .text("E1"), .int(10)]] {
            plan += try await db.read { c in
                var details: [String] = []
                try c.query("EXPLAIN QUERY PLAN " + SQLiteStore.failedQuery, values) { s in details.append(s.text(3)) }
                return details
            }
        }
        #expect(plan.count == 2 && plan.allSatisfy { $0.contains("USING INDEX communications_failed") }, "\(plan)")
        #expect(!plan.contains { $0.contains("TEMP B-TREE") }, "\(plan)")
    }
    @Test func createdSince() async throws { try await StoreContract.createdSince(SQLiteStore(database: try temporaryDatabase())) }
    @Test func statusCounts() async throws { try await StoreContract.statusCounts(SQLiteStore(database: try temporaryDatabase())) }
    @Test func concurrentTransitions() async throws { try await StoreContract.concurrentTransitions(SQLiteStore(database: try temporaryDatabase())) }
    @Test func claimDue() async throws { try await StoreContract.claimDue(SQLiteStore(database: try temporaryDatabase())) }
    @Test func outboxDue() async throws { try await StoreContract.outboxDue(SQLiteStore(database: try temporaryDatabase())) }
    @Test func concurrentClaims() async throws { try await StoreContract.concurrentClaims(SQLiteStore(database: try temporaryDatabase())) }
    @Test func acceptedQueuedAndConfirmed() async throws { try await StoreContract.acceptedQueuedAndConfirmed(SQLiteStore(database: try temporaryDatabase())) }
    @Test func purge() async throws { try await StoreContract.purge(SQLiteStore(database: try temporaryDatabase())) }
    @Test func attribution() async throws { try await StoreContract.attribution(SQLiteStore(database: try temporaryDatabase())) }
    @Test func traceContext() async throws { try await StoreContract.traceContext(SQLiteStore(database: try temporaryDatabase())) }
}

/// What only the SQLite engine promises: durability of the file, isolation within a group commit.
@Suite("SQLite store, engine-specific")
struct SQLiteStoreEngineTests {
    func new(_ id: String, _ req: CommunicationRequest = sms(), key: String? = nil, at: Int64 = 1000) -> NewCommunication {
        StoreContract.new(id, req, key: key, at: at)
    }

    @Test("what was committed survives closing and reopening the file", arguments: SQLiteSynchronous.allCases)
    func durability(synchronous: SQLiteSynchronous) async throws {
        let db = try temporaryDatabase(synchronous: synchronous)
        let store = SQLiteStore(database: db)
        _ = try await store.create((0..<100).map { new("p\($0)") })
        await db.close()
        await #expect(throws: DatabaseClosed.self) { try await store.create([new("late")]) }
        let reopened = SQLiteStore(database: try SQLiteDatabase(options: db.options))
        #expect(try await reopened.statusCounts() == [StatusCount(channel: .sms, status: .pending, count: 100)])
    }

    @Test("a failing write in a group rolls back alone", arguments: SQLiteSynchronous.allCases)
    func groupIsolation(synchronous: SQLiteSynchronous) async throws {
        let db = try temporaryDatabase(synchronous: synchronous)
        let store = SQLiteStore(database: db)
        async let good = store.create([new("g1")])
        let bad = Task {
            try await db.write { c in
                try SQLiteQueue.append(c, stream: "orphan", fields: "{}", at: Timestamp(milliseconds: 1))
                throw SQLiteError(code: 1, message: "deliberate")
            }
        }
        async let good2 = store.create([new("g2")])
        _ = try await (good, good2)
        await #expect(throws: SQLiteError.self) { try await bad.value }
        let g1 = try await store.communication(id: "g1")
        let g2 = try await store.communication(id: "g2")
        #expect(g1 != nil && g2 != nil)
        let orphan = try await db.read { c in try c.scalar("SELECT count(*) FROM stream_entries WHERE stream = 'orphan'") }
        #expect(orphan == 0)
    }

    @Test("the counts kept by the writer match a recount of the table after concurrent creates and transitions, writes rolled back, and a purge")
    func statusCountsMatchRecount() async throws {
        let db = try temporaryDatabase()
        let store = SQLiteStore(database: db)
        @Sendable func t(_ id: String, _ e: StatusEvent) -> StatusTransition { StatusTransition(id: id, event: e, at: Timestamp(milliseconds: 2000), service: "test") }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<300 {
                group.addTask {
                    let channel = MessageChannel.allCases[i % 3]
                    let id = "c\(i)"
                    if i % 10 == 3 {
                        // Creates and moves a message, then fails: none of it may count.
                        try? await db.write { c in
                            let item = self.new(id, CommunicationRequest(channel: .sms, from: "+15550000000", to: "+15551234567", msg: "x"))
                            _ = try SQLiteStore.createOne(c, item, as: item.communication, dataText: "{}", historyText: SQLiteStore.historyText(item.communication))
                            _ = try SQLiteStore.applyOne(c, t(id, .queued(dispatchSeq: 1)))
                            throw SQLiteError(code: 1, message: "deliberate \(i)")
                        }
                        return
                    }
                    let request = channel == .email ? CommunicationRequest(channel: .email, from: "a@example.com", to: "b@example.com", msg: "x") : CommunicationRequest(channel: channel, from: "+15550000000", to: "+15551234567", msg: "x")
                    _ = try await store.create([self.new(id, request)])
                    if i % 2 == 0 { _ = try await store.apply([t(id, .queued(dispatchSeq: 1)), t(id, .processing(dispatchSeq: 1, redelivery: false))]) }
                    if i % 4 == 0 { _ = try await store.apply([t(id, .sent(provider: "sandbox", providerMessageID: nil))]) }
                    if i % 6 == 1 { _ = try await store.apply([t(id, .failed(error: ProviderError(message: "no"), provider: nil))]) }
                    // An ignored transition (already past it) changes nothing.
                    _ = try await store.apply([t(id, .queued(dispatchSeq: 1))])
                }
            }
            try await group.waitForAll()
        }
        func recount() async throws -> [StatusCount] {
            try await db.read { c in
                var counts: [StatusCount] = []
                try c.query("SELECT type, status, count(*) FROM communications GROUP BY type, status ORDER BY type, status") { s in
                    counts.append(StatusCount(channel: MessageChannel(rawValue: s.text(0))!, status: CommunicationStatus(rawValue: s.text(1))!, count: Int(s.int(2))))
                }
                return counts
            }
        }
        let counted = try await store.statusCounts()
        #expect(counted == (try await recount()))
        #expect(counted.reduce(0) { $0 + $1.count } == 270)
        #expect(try await store.purge(before: Timestamp(milliseconds: 10_000)) > 0)
        #expect(try await store.statusCounts() == (try await recount()))
    }

    @Test("many concurrent writes, some failing, while commits are synced: each caller gets its own outcome", arguments: SQLiteSynchronous.allCases)
    func concurrentWritesWithFailures(synchronous: SQLiteSynchronous) async throws {
        let db = try temporaryDatabase(synchronous: synchronous)
        let store = SQLiteStore(database: db)
        let outcomes = try await withThrowingTaskGroup(of: (Int, Bool).self) { group in
            for i in 0..<400 {
                group.addTask {
                    if i % 10 == 3 {
                        do {
                            try await db.write { c in
                                try SQLiteQueue.append(c, stream: "doomed", fields: "{}", at: Timestamp(milliseconds: 1))
                                throw SQLiteError(code: 1, message: "deliberate \(i)")
                            }
                            return (i, true)
                        } catch {
                            return (i, false)
                        }
                    }
                    _ = try await store.create([self.new("w\(i)")])
                    return (i, true)
                }
            }
            var all: [Int: Bool] = [:]
            for try await (i, ok) in group { all[i] = ok }
            return all
        }
        #expect(outcomes.count == 400)
        #expect(outcomes.filter { !$0.value }.keys.sorted() == (0..<400).filter { $0 % 10 == 3 })
        #expect(try await db.read { c in try c.scalar("SELECT count(*) FROM communications") } == 360)
        #expect(try await db.read { c in try c.scalar("SELECT count(*) FROM stream_entries WHERE stream = 'doomed'") } == 0)
        let stats = db.writerStatistics
        #expect(stats.writes == 400)
        #expect(stats.groups >= 1 && stats.groups <= 400)
    }

    @Test("with synchronous=full, writes not marked durable are committed and visible without a sync of their own; the next durable write's sync covers them")
    func nonDurableWrites() async throws {
        let db = try temporaryDatabase(synchronous: .full)
        let queue = SQLiteQueue(database: db, clock: wallClock)
        try await queue.createGroup(stream: "s", group: "g")
        let before = db.writerStatistics.syncs
        // Claims are not durable: a claim lost in a power cut only hands its entries out again.
        for i in 0..<20 {
            _ = try await db.write(durable: false) { c in try SQLiteQueue.append(c, stream: "s", fields: "{\"n\":\"\(i)\"}", at: Timestamp(milliseconds: 1)) }
            #expect(try await queue.read(stream: "s", group: "g", consumer: "c", count: 1, block: .zero).count == 1)
        }
        #expect(db.writerStatistics.syncs == before)
        // Seen by another connection at once.
        #expect(try await db.read { c in try c.scalar("SELECT count(*) FROM stream_pending WHERE stream = 's'") } == 20)
        // A durable write waits for a sync, which makes everything before it durable too.
        _ = try await db.write { c in try SQLiteQueue.append(c, stream: "s", fields: "{}", at: Timestamp(milliseconds: 1)) }
        #expect(db.writerStatistics.syncs == before + 1)
        // A store transition: `processing` alone is not waited for; any other status is.
        let store = SQLiteStore(database: db)
        let c = try #require(try await store.create([new("d1")]).first.flatMap { if case .created(let c) = $0 { c } else { nil } })
        let synced = db.writerStatistics.syncs
        _ = try await store.apply([StatusTransition(id: c.id, event: .queued(dispatchSeq: 1), at: Timestamp(milliseconds: 2), service: "test")])
        #expect(db.writerStatistics.syncs == synced + 1)
        _ = try await store.apply([StatusTransition(id: c.id, event: .processing(dispatchSeq: 1, redelivery: false), at: Timestamp(milliseconds: 3), service: "test")])
        #expect(db.writerStatistics.syncs == synced + 1)
        #expect(try await store.communication(id: c.id)?.status == .processing)
        await db.close()
        // Everything committed is there after a reopen (a clean close checkpoints the log).
        let reopened = try SQLiteDatabase(options: db.options)
        #expect(try await reopened.read { c in try c.scalar("SELECT count(*) FROM stream_entries WHERE stream = 's'") } == 21)
        await reopened.close()
    }

    @Test("checkpoints run on their own thread as the log grows, and the log stays bounded under sustained writes")
    func checkpoints() async throws {
        // The writer's automatic checkpoint (200 pages of 4 KiB) bounds the log: it is retried after every commit
        // once the log is that long, and skipped only while a background checkpoint holds the lock. How many commits
        // go by while it does depends on the checkpoint thread getting a core: on a machine loaded enough to stall it
        // or its sync (two cores and one disk shared with the parallel suite and other builds), the log outgrew the
        // bound by dozens of commits, once never starting over in a run of ~0.1 s. Such a run shows nothing about
        // the bound, so the scenario is run again after a pause (up to ten times in all) before the bound is held
        // against it; a log never started over (~4 MB, 1,000 pages) exceeds it in every run.
        let bound = 2 * 200 * 4_096
        var sizes: [Int] = []
        for attempt in 0..<10 {
            if attempt > 0 { try await Task.sleep(for: .milliseconds(500)) }
            let wal = try await checkpointRun()
            sizes.append(wal)
            if wal <= bound { break }
        }
        #expect(sizes.last! <= bound, "the log outgrew the bound in every run: \(sizes) bytes")
    }

    /// One run of the checkpoint scenario on a fresh database; returns the log's size (its high-water mark).
    func checkpointRun() async throws -> Int {
        // Small thresholds (50 and 200 pages) keep the test's disk traffic small beside the parallel suite.
        let db = try temporaryDatabase("ckpt") { o in
            o.checkpointPages = 50
            o.autocheckpointPages = 200
        }
        let text = String(repeating: "x", count: 1_000)
        // ~4 MB of rows in 100 transactions: five times the log's automatic checkpoint size.
        for i in 0..<100 {
            try await db.write { c in
                for j in 0..<40 { try SQLiteQueue.append(c, stream: "big", fields: "{\"n\":\"\(i)-\(j)\",\"t\":\"\(text)\"}", at: Timestamp(milliseconds: 1)) }
            }
        }
        let stats = db.writerStatistics
        #expect(stats.checkpoints >= 3)
        let wal = try FileManager.default.attributesOfItem(atPath: db.options.path + "-wal")[.size] as? Int ?? 0
        #expect(try await db.read { c in try c.scalar("SELECT count(*) FROM stream_entries WHERE stream = 'big'") } == 4_000)
        await db.close()
        return wal
    }

    @Test("closing with writes in flight: each either commits (and is kept) or is refused, none hangs", arguments: SQLiteSynchronous.allCases)
    func closeUnderLoad(synchronous: SQLiteSynchronous) async throws {
        let db = try temporaryDatabase(synchronous: synchronous)
        let store = SQLiteStore(database: db)
        let writers = Task {
            try await withThrowingTaskGroup(of: String?.self) { group in
                for i in 0..<300 {
                    group.addTask {
                        do {
                            _ = try await store.create([self.new("s\(i)")])
                            return "s\(i)"
                        } catch is DatabaseClosed {
                            return nil
                        }
                    }
                }
                var committed: [String] = []
                for try await id in group { if let id { committed.append(id) } }
                return committed
            }
        }
        try await Task.sleep(for: .milliseconds(5))
        await db.close()
        let committed = try await writers.value
        let reopened = try SQLiteDatabase(options: db.options)
        let stored = try await reopened.read { c in try c.scalar("SELECT count(*) FROM communications") }
        #expect(stored == Int64(committed.count))
        await reopened.close()
    }
}

@Suite("SQLite search")
struct SQLiteSearchTests {
    func doc(_ id: String, _ type: MessageChannel, to: String, msg: String, status: CommunicationStatus = .queued, at: Int64) -> CommunicationDocument {
        CommunicationDocument(communicationId: id, type: type, from: "+15550000000", to: to, msg: msg, status: status, createdAt: Timestamp(milliseconds: at), timestamp: Timestamp(milliseconds: at))
    }

    /// Over the 25 communications both tests store (c0…c24, one a second; every fifth about a parcel; even
    /// ones SMS): newest first in pages of 10, and full text.
    func expectPagesAndText(_ s: SQLiteSearchIndex) async throws {
        let all = try await s.search(CommunicationQuery(limit: 10))
        #expect(all.items.map(\.communicationId) == (15..<25).reversed().map { "c\($0)" })
        let page2 = try await s.search(CommunicationQuery(limit: 10, cursor: all.nextCursor))
        let page3 = try await s.search(CommunicationQuery(limit: 10, cursor: page2.nextCursor))
        #expect(page3.items.count == 5 && page3.nextCursor == nil)
        #expect(Set((all.items + page2.items + page3.items).map(\.communicationId)).count == 25)
        #expect(try await s.search(CommunicationQuery(text: "parcel", limit: 50)).items.map(\.communicationId) == ["c20", "c15", "c10", "c5", "c0"])
        #expect(try await s.search(CommunicationQuery(type: .sms, text: "PARCEL arriving", limit: 50)).items.count == 3)
    }

    /// Over the same 25: the recipient filter and a time range.
    func expectFilters(_ s: SQLiteSearchIndex) async throws {
        #expect(try await s.search(CommunicationQuery(to: "+15550001", limit: 50)).items.count == 8)
        #expect(try await s.search(CommunicationQuery(since: Timestamp(milliseconds: 20_000), until: Timestamp(milliseconds: 22_000), limit: 50)).items.map(\.communicationId) == ["c21", "c20"])
    }

    @Test("the full-text refresh goes in writes of at most refreshChunk rows per index and catches up with every row")
    func refreshInChunks() async throws {
        let db = try temporaryDatabase()
        let s = SQLiteSearchIndex(database: db)
        try await s.index(communications: (0..<1_250).map { doc("c\($0)", .sms, to: "+15550000", msg: "word\($0) common", at: Int64($0)) })
        try await s.index(logs: (0..<30).map {
            LogRecord(communicationId: "c\($0)", service: "sms", status: .failed, type: .sms, from: "+15550000000", to: "+15550000", msg: "m", error: "boom \($0)", attempt: 1, provider: nil, timestamp: Timestamp(milliseconds: Int64($0)))
        })
        #expect(SQLiteSearchIndex.refreshChunk == 500)
        var writes = 1
        while try await db.write({ c in try SQLiteSearchIndex.refresh(c, documents: .ownTable, chunk: SQLiteSearchIndex.refreshChunk) }) { writes += 1 }
        #expect(writes == 3)  // 500 + 500 + 250
        #expect(try await db.read { c in try c.scalar("SELECT count(*) FROM search_communications_fts WHERE search_communications_fts MATCH 'common'") } == 1_250)
        #expect(try await db.read { c in try c.scalar("SELECT count(*) FROM search_logs_fts WHERE search_logs_fts MATCH 'boom'") } == 30)
        // Nothing left: a refresh does nothing more, and what was indexed once is not indexed twice.
        try await s.refresh()
        #expect(try await db.read { c in try c.scalar("SELECT count(*) FROM search_communications_fts WHERE search_communications_fts MATCH 'common'") } == 1_250)
        #expect(try await s.search(CommunicationQuery(text: "word1249", limit: 5)).items.map(\.communicationId) == ["c1249"])
        // Rows written later are found by a text query (which refreshes first), across chunks.
        try await s.index(communications: (1_250..<2_000).map { doc("c\($0)", .sms, to: "+15550000", msg: "later\($0) common", at: Int64($0)) })
        #expect(try await s.search(CommunicationQuery(text: "later1999", limit: 5)).items.map(\.communicationId) == ["c1999"])
        #expect(try await db.read { c in try c.scalar("SELECT count(*) FROM search_communications_fts WHERE search_communications_fts MATCH 'common'") } == 2_000)
    }

    @Test("filters, full text, time range and cursor pagination, newest first")
    func communications() async throws {
        let s = SQLiteSearchIndex(database: try temporaryDatabase())
        var docs: [CommunicationDocument] = []
        for i in 0..<25 {
            let type: MessageChannel = i % 2 == 0 ? .sms : .email
            let msg = i % 5 == 0 ? "Your parcel is arriving" : "Code \(i)"
            docs.append(doc("c\(i)", type, to: "+1555000\(i % 3)", msg: msg, at: Int64(i) * 1000))
        }
        try await s.index(communications: docs)
        try await s.index(communications: [doc("c0", .sms, to: "+15550000", msg: "Your parcel is arriving", status: .sent, at: 0).with(timestamp: 99_000)])
        try await expectPagesAndText(s)
        #expect(try await s.search(CommunicationQuery(status: .sent, limit: 50)).items.map(\.communicationId) == ["c0"])
        try await expectFilters(s)
        #expect(try await s.search(CommunicationQuery(text: "\"unbalanced OR ( NEAR", limit: 5)).items.isEmpty)
        await #expect(throws: InvalidCursor.self) { try await s.search(CommunicationQuery(cursor: "garbage")) }
    }

    @Test("over the store's own rows: filters, full text, time range, pagination, and the current status without a copy")
    func storeRows() async throws {
        let db = try temporaryDatabase()
        let store = SQLiteStore(database: db)
        let s = SQLiteSearchIndex(database: db, documents: .storeRows)
        var items: [NewCommunication] = []
        for i in 0..<25 {
            let msg = i % 5 == 0 ? "Your parcel is arriving" : "Code \(i)"
            let request = i % 2 == 0 ? sms("+1555000\(i % 3)", msg: msg) : CommunicationRequest(channel: .email, from: "a@example.com", to: "+1555000\(i % 3)", msg: msg)
            items.append(NewCommunication(id: "c\(i)", request: request, idempotencyKey: nil, createdAt: Timestamp(milliseconds: Int64(i) * 1000), dispatchAt: Timestamp(milliseconds: 0)))
        }
        _ = try await store.create(items)
        // Indexing documents is not needed (and does nothing): the rows are the documents.
        try await s.index(communications: [doc("ghost", .sms, to: "+1", msg: "parcel", at: 1)])
        let at = Timestamp(milliseconds: 50_000)
        for event in [StatusEvent.queued(dispatchSeq: 1), .processing(dispatchSeq: 1, redelivery: false), .sent(provider: "sandbox", providerMessageID: "SBX1")] {
            _ = try await store.apply([StatusTransition(id: "c0", event: event, at: at, service: "test")])
        }
        try await expectPagesAndText(s)
        let sent = try await s.search(CommunicationQuery(status: .sent, limit: 50)).items
        #expect(sent.map(\.communicationId) == ["c0"])
        #expect(sent.first?.timestamp == at)
        try await expectFilters(s)
        // Rows stored after a refresh are found by the next text search.
        _ = try await store.create([NewCommunication(id: "c25", request: sms(msg: "another parcel"), idempotencyKey: nil, createdAt: Timestamp(milliseconds: 25_000), dispatchAt: Timestamp(milliseconds: 0))])
        #expect(try await s.search(CommunicationQuery(text: "parcel", limit: 1)).items.map(\.communicationId) == ["c25"])

        // A log's msg is searched through its communication's row.
        try await s.index(logs: [LogRecord(communicationId: "c1", service: "email", status: .processing, type: .email, from: "a@example.com", to: "+15550001", msg: "Code 1", error: nil, attempt: 1, provider: nil, timestamp: at)])
        #expect(try await s.search(LogQuery(text: "code 1")).items.map(\.communicationId) == ["c1"])
    }

    @Test("logs: by communication, service, status and text")
    func logs() async throws {
        let s = SQLiteSearchIndex(database: try temporaryDatabase())
        func log(_ id: String, _ status: CommunicationStatus, error: String? = nil) -> LogRecord {
            LogRecord(communicationId: id, service: "sms", status: status, type: .sms, from: "+1", to: "+2", msg: "hello world", error: error, attempt: 1, provider: "sandbox", timestamp: Timestamp(milliseconds: 5))
        }
        try await s.index(logs: [log("a", .processing), log("a", .failed, error: "carrier unreachable"), log("b", .sent)])
        // A log's msg is searched through its communication's document.
        try await s.index(communications: ["a", "b"].map { CommunicationDocument(communicationId: $0, type: .sms, from: "+1", to: "+2", msg: "hello world", status: .sent, createdAt: Timestamp(milliseconds: 1), timestamp: Timestamp(milliseconds: 1)) })
        #expect(try await s.search(LogQuery(communicationId: "a")).items.map(\.status) == [.failed, .processing])
        #expect(try await s.search(LogQuery(text: "unreachable")).items.map(\.communicationId) == ["a"])
        #expect(try await s.search(LogQuery(service: "sms", status: .sent)).items.map(\.communicationId) == ["b"])
        #expect(try await s.search(LogQuery(text: "hello")).items.count == 3)
    }
}

extension CommunicationDocument {
    func with(timestamp: Int64) -> CommunicationDocument {
        var d = self
        d.timestamp = Timestamp(milliseconds: timestamp)
        return d
    }
}
