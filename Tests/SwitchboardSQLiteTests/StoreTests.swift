import Foundation
import Testing
import SwitchboardCore
@testable import SwitchboardSQLite

@Suite("SQLite store")
struct SQLiteStoreTests {
    func new(_ id: String, _ req: CommunicationRequest = sms(), key: String? = nil, at: Int64 = 1000) -> NewCommunication {
        NewCommunication(id: id, request: req, idempotencyKey: key, createdAt: Timestamp(milliseconds: at), dispatchAt: Timestamp(milliseconds: at + 10_000))
    }

    @Test("create and read back with history")
    func createAndRead() async throws {
        let store = SQLiteStore(database: try temporaryDatabase())
        let req = CommunicationRequest(channel: .email, from: "a@example.com", to: "b@example.com", msg: "hi", subject: "Subj", html: "<p>hi</p>")
        let out = try await store.create([new("id1", req)])
        guard case .created = out[0] else { Issue.record("not created"); return }
        let c = try #require(try await store.communication(id: "id1"))
        #expect(c.request == req)
        #expect(c.status == .pending && c.dispatchSeq == 1 && c.attempts == 0)
        #expect(c.dispatchAt == Timestamp(milliseconds: 11_000))
        #expect(c.history.map(\.status) == [.pending])
        #expect(try await store.communication(id: "missing") == nil)
    }

    @Test("idempotency: same request returns the first, a different one conflicts")
    func idempotency() async throws {
        let store = SQLiteStore(database: try temporaryDatabase())
        _ = try await store.create([new("a", sms(msg: "one"), key: "k1")])
        let again = try await store.create([new("b", sms(msg: "one"), key: "k1")])
        guard case .existing(let c) = again[0] else { Issue.record("expected existing, got \(again)"); return }
        #expect(c.id == "a")
        let other = try await store.create([new("c", sms(msg: "two"), key: "k1")])
        #expect(other[0] == .conflict(existingID: "a"))
        #expect(try await store.communication(id: "b") == nil)
        #expect(try await store.communication(id: "c") == nil)
    }

    @Test("transitions are compare-and-set and recorded in history")
    func transitions() async throws {
        let store = SQLiteStore(database: try temporaryDatabase())
        _ = try await store.create([new("m")])
        func t(_ e: StatusEvent, _ at: Int64) -> StatusTransition { StatusTransition(id: "m", event: e, at: Timestamp(milliseconds: at), service: "test") }
        let r = try await store.apply([
            t(.queued(dispatchSeq: 1), 2000), t(.processing(dispatchSeq: 1, redelivery: false), 3000),
            t(.processing(dispatchSeq: 1, redelivery: false), 3001),  // duplicate: ignored
            t(.sent(provider: "sandbox", providerMessageID: "pm-1"), 4000), t(.queued(dispatchSeq: 1), 5000),  // late: ignored
        ])
        #expect(r.map { if case .applied = $0 { true } else { false } } == [true, true, false, true, false])
        let c = try #require(try await store.communication(id: "m"))
        #expect(c.status == .sent && c.attempts == 1 && c.provider == "sandbox" && c.providerMessageID == "pm-1" && c.dispatchAt == nil)
        #expect(c.history.map(\.status) == [.pending, .queued, .processing, .sent])
        #expect(c.history.map(\.at.milliseconds) == [1000, 2000, 3000, 4000])
        #expect(try await store.communication(providerMessageID: "pm-1")?.id == "m")
        #expect(try await store.apply([StatusTransition(id: "nope", event: .queued(dispatchSeq: 1), at: Timestamp(milliseconds: 1), service: "x")]) == [.notFound(id: "nope")])
    }

    @Test("communications created since a time, in creation order, paged")
    func createdSince() async throws {
        let store = SQLiteStore(database: try temporaryDatabase())
        _ = try await store.create((0..<7).map { new("s\($0)", at: Int64(1000 * $0)) })
        let first = try await store.communications(createdSince: Timestamp(milliseconds: 2000), after: nil, limit: 3)
        #expect(first.map(\.id) == ["s2", "s3", "s4"])
        #expect(first[0].request == sms() && first[0].status == .pending)
        let second = try await store.communications(createdSince: Timestamp(milliseconds: 2000), after: "s4", limit: 3)
        #expect(second.map(\.id) == ["s5", "s6"])
        #expect(try await store.communications(createdSince: Timestamp(milliseconds: 9000), after: nil, limit: 3).isEmpty)
    }

    @Test("concurrent workers: exactly one moves a message to processing")
    func concurrentClaims() async throws {
        let store = SQLiteStore(database: try temporaryDatabase())
        _ = try await store.create((0..<50).map { new("c\($0)") })
        let applied = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    let r = (try? await store.apply((0..<50).map { StatusTransition(id: "c\($0)", event: .processing(dispatchSeq: 1, redelivery: false), at: Timestamp(milliseconds: 2), service: "w") })) ?? []
                    return r.filter { if case .applied = $0 { true } else { false } }.count
                }
            }
            return await group.reduce(0, +)
        }
        #expect(applied == 50)
    }

    @Test("the outbox leases due messages to one scheduler at a time")
    func claimDue() async throws {
        let store = SQLiteStore(database: try temporaryDatabase())
        _ = try await store.create([new("d1", at: 0), new("d2", at: 100_000)])
        let now = Timestamp(milliseconds: 20_000)
        let first = try await store.claimDue(now: now, lease: .seconds(30), limit: 10)
        #expect(first.map(\.id) == ["d1"])
        #expect(try await store.claimDue(now: now, lease: .seconds(30), limit: 10).isEmpty)
        #expect(try await store.claimDue(now: Timestamp(milliseconds: 50_001), lease: .seconds(30), limit: 10).map(\.id) == ["d1"])
        _ = try await store.apply([StatusTransition(id: "d1", event: .queued(dispatchSeq: 1), at: now, service: "s")])
        #expect(try await store.claimDue(now: Timestamp(milliseconds: 90_000), lease: .seconds(30), limit: 10).isEmpty)
    }

    @Test("what was committed survives closing and reopening the file")
    func durability() async throws {
        let db = try temporaryDatabase()
        let store = SQLiteStore(database: db)
        _ = try await store.create((0..<100).map { new("p\($0)") })
        await db.close()
        await #expect(throws: DatabaseClosed.self) { try await store.create([new("late")]) }
        let reopened = SQLiteStore(database: try SQLiteDatabase(options: db.options))
        #expect(try await reopened.statusCounts() == [StatusCount(channel: .sms, status: .pending, count: 100)])
    }

    @Test("a failing write in a group rolls back alone")
    func groupIsolation() async throws {
        let db = try temporaryDatabase()
        let store = SQLiteStore(database: db)
        async let good = store.create([new("g1")])
        let bad = Task {
            try await db.write { c in
                try c.run("INSERT INTO stream_entries (stream, fields, created_at) VALUES ('orphan', '{}', 1)")
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
}

@Suite("SQLite search")
struct SQLiteSearchTests {
    func doc(_ id: String, _ type: Channel, to: String, msg: String, status: CommunicationStatus = .queued, at: Int64) -> CommunicationDocument {
        CommunicationDocument(communicationId: id, type: type, from: "+15550000000", to: to, msg: msg, status: status, createdAt: Timestamp(milliseconds: at), timestamp: Timestamp(milliseconds: at))
    }

    @Test("filters, full text, time range and cursor pagination, newest first")
    func communications() async throws {
        let s = SQLiteSearchIndex(database: try temporaryDatabase())
        var docs: [CommunicationDocument] = []
        for i in 0..<25 {
            let type: Channel = i % 2 == 0 ? .sms : .email
            let msg = i % 5 == 0 ? "Your parcel is arriving" : "Code \(i)"
            docs.append(doc("c\(i)", type, to: "+1555000\(i % 3)", msg: msg, at: Int64(i) * 1000))
        }
        try await s.index(communications: docs)
        try await s.index(communications: [doc("c0", .sms, to: "+15550000", msg: "Your parcel is arriving", status: .sent, at: 0).with(timestamp: 99_000)])
        let all = try await s.search(CommunicationQuery(limit: 10))
        #expect(all.items.map(\.communicationId) == (15..<25).reversed().map { "c\($0)" })
        let page2 = try await s.search(CommunicationQuery(limit: 10, cursor: all.nextCursor))
        let page3 = try await s.search(CommunicationQuery(limit: 10, cursor: page2.nextCursor))
        #expect(page3.items.count == 5 && page3.nextCursor == nil)
        #expect(Set((all.items + page2.items + page3.items).map(\.communicationId)).count == 25)
        #expect(try await s.search(CommunicationQuery(text: "parcel", limit: 50)).items.map(\.communicationId) == ["c20", "c15", "c10", "c5", "c0"])
        #expect(try await s.search(CommunicationQuery(type: .sms, text: "PARCEL arriving", limit: 50)).items.count == 3)
        #expect(try await s.search(CommunicationQuery(status: .sent, limit: 50)).items.map(\.communicationId) == ["c0"])
        #expect(try await s.search(CommunicationQuery(to: "+15550001", limit: 50)).items.count == 8)
        #expect(try await s.search(CommunicationQuery(since: Timestamp(milliseconds: 20_000), until: Timestamp(milliseconds: 22_000), limit: 50)).items.map(\.communicationId) == ["c21", "c20"])
        #expect(try await s.search(CommunicationQuery(text: "\"unbalanced OR ( NEAR", limit: 5)).items.isEmpty)
        await #expect(throws: InvalidCursor.self) { try await s.search(CommunicationQuery(cursor: "garbage")) }
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
