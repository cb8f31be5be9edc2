import Foundation
import Testing
import SwitchboardCore
@testable import SwitchboardSQLite

/// Retention on the embedded engine: what the store contract (`StoreContract.purge`) cannot see — deleted
/// rows leave the full-text indexes (read directly), and the search tables and the sandbox purge too.
@Suite("SQLite retention")
struct SQLiteRetentionTests {
    static let cutoff = Timestamp(milliseconds: 40_000)

    /// Fails unless the full-text index `fts` matches its content table (every row of which it indexes).
    func checkIntegrity(_ db: SQLiteDatabase, _ fts: String) async throws {
        try await db.write { c in try c.execute("INSERT INTO \(fts)(\(fts), rank) VALUES('integrity-check', 1)") }
    }

    /// How many rows the full-text index `fts` itself holds for `term` (deleted rows included, if it still
    /// had them: the index is read, not the content table).
    func indexed(_ db: SQLiteDatabase, _ fts: String, _ term: String) async throws -> Int64 {
        try await db.read { c in try c.scalar("SELECT count(*) FROM \(fts) WHERE \(fts) MATCH ?", [.text(term)]) ?? -1 }
    }

    func texts(_ page: Page<CommunicationDocument>) -> Set<String> { Set(page.items.map(\.msg)) }

    @Test("purged communications leave the store's full-text index, which stays exact")
    func storeRows() async throws {
        let db = try temporaryDatabase()
        let store = SQLiteStore(database: db)
        let search = SQLiteSearchIndex(database: db, documents: .storeRows)
        _ = try await store.create((0..<700).map { StoreContractLite.new("o\($0)", msg: "alpha old \($0)", at: 1000) })
        _ = try await store.apply((0..<700).flatMap { StoreContractLite.delivered("o\($0)", at: 2000) })
        _ = try await store.create([StoreContractLite.new("kept", msg: "alpha kept", at: 1000), StoreContractLite.new("new", msg: "alpha new", at: 50_000)])
        try await search.refresh()  // the old rows are in the index before they go
        #expect(try await indexed(db, "communications_fts", "alpha") == 702)
        #expect(try await store.purge(before: Self.cutoff) == 700)
        #expect(try await indexed(db, "communications_fts", "alpha") == 2)
        try await checkIntegrity(db, "communications_fts")
        #expect(texts(try await search.search(CommunicationQuery(text: "alpha", limit: 1000))) == ["alpha kept", "alpha new"])
        // Rows written after the purge are indexed as before.
        _ = try await store.create([StoreContractLite.new("later", msg: "alpha later", at: 60_000)])
        #expect(texts(try await search.search(CommunicationQuery(text: "alpha", limit: 1000))) == ["alpha kept", "alpha new", "alpha later"])
        try await checkIntegrity(db, "communications_fts")
    }

    @Test("log records before the cutoff are deleted with their full-text entries; rows that reuse their rowids are indexed")
    func logs() async throws {
        let db = try temporaryDatabase()
        let search = SQLiteSearchIndex(database: db)
        func log(_ id: String, _ error: String?, _ at: Int64) -> LogRecord {
            LogRecord(communicationId: id, service: "sms", status: error == nil ? .sent : .failed, type: .sms, from: "+15550000000", to: "+15551234567", msg: "hi", error: error, attempt: 1, provider: "sandbox", timestamp: Timestamp(milliseconds: at))
        }
        try await search.index(logs: (0..<1200).map { log("o\($0)", $0 % 2 == 0 ? "boom \($0)" : nil, 1000 + Int64($0)) })
        try await search.index(logs: [log("n1", "boom new", 50_000), log("n2", nil, 50_000)])
        try await search.refresh()
        #expect(try await indexed(db, "search_logs_fts", "boom") == 601)
        #expect(try await search.purge(before: Self.cutoff) == 1200)
        #expect(try await indexed(db, "search_logs_fts", "boom") == 1)
        #expect(try await search.search(LogQuery(text: "boom", limit: 1000)).items.map(\.communicationId) == ["n1"])
        #expect(try await search.search(LogQuery(limit: 1000)).items.count == 2)

        // Everything goes; the next records take rowids from 1 again and must still be searchable.
        #expect(try await search.purge(before: Timestamp(milliseconds: 100_000)) == 2)
        try await search.index(logs: [log("again", "zap", 110_000)])
        #expect(try await search.search(LogQuery(text: "zap")).items.map(\.communicationId) == ["again"])
        #expect(try await indexed(db, "search_logs_fts", "boom") == 0)
    }

    @Test("beside another store, the index's copies of finished communications are purged; those on their way are kept")
    func ownTable() async throws {
        let db = try temporaryDatabase()
        let search = SQLiteSearchIndex(database: db, documents: .ownTable)
        func doc(_ id: String, _ status: CommunicationStatus, _ created: Int64, _ changed: Int64) -> CommunicationDocument {
            CommunicationDocument(communicationId: id, type: .sms, from: "+15550000000", to: "+15551234567", msg: "beta \(id)", status: status, createdAt: Timestamp(milliseconds: created), timestamp: Timestamp(milliseconds: changed))
        }
        try await search.index(communications: (0..<600).map { doc("o\($0)", .sent, 1000, 2000) })
        try await search.index(communications: [doc("queued", .queued, 1000, 2000), doc("late", .delivered, 1000, 45_000), doc("new", .sent, 50_000, 50_000)])
        try await search.refresh()
        #expect(try await search.purge(before: Self.cutoff) == 600)
        #expect(try await indexed(db, "search_communications_fts", "beta") == 3)
        try await checkIntegrity(db, "search_communications_fts")
        #expect(Set(try await search.search(CommunicationQuery(text: "beta", limit: 1000)).items.map(\.communicationId)) == ["queued", "late", "new"])
    }

    @Test("sandbox messages recorded before the cutoff are deleted")
    func sandbox() async throws {
        let db = try temporaryDatabase()
        let mailbox = SQLiteSandboxMailbox(database: db)
        for i in 0..<600 {
            try await mailbox.record(SandboxMessage(communicationId: "o\(i)", channel: .sms, from: "+15550000000", to: "+15551234567", msg: "hi", subject: nil, attempt: 1, providerMessageID: "sb-\(i)", at: Timestamp(milliseconds: 1000)))
        }
        try await mailbox.record(SandboxMessage(communicationId: "new", channel: .sms, from: "+15550000000", to: "+15551234567", msg: "hi", subject: nil, attempt: 1, providerMessageID: "sb-new", at: Timestamp(milliseconds: 50_000)))
        #expect(try await mailbox.purge(before: Self.cutoff) == 600)
        #expect(try await mailbox.messages(channel: nil, to: nil, limit: 1000).map(\.communicationId) == ["new"])
    }
}

/// Shorthands for the tests above.
enum StoreContractLite {
    static func new(_ id: String, msg: String, at: Int64) -> NewCommunication {
        NewCommunication(id: id, request: sms(msg: msg), idempotencyKey: nil, createdAt: Timestamp(milliseconds: at), dispatchAt: Timestamp(milliseconds: at + 10_000))
    }

    static func delivered(_ id: String, at: Int64) -> [StatusTransition] {
        [StatusEvent.queued(dispatchSeq: 1), .processing(dispatchSeq: 1, redelivery: false), .sent(provider: "sandbox", providerMessageID: nil)].map {
            StatusTransition(id: id, event: $0, at: Timestamp(milliseconds: at), service: "test")
        }
    }
}
