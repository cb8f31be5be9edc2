import Foundation
import Testing
import SwitchboardCore
@testable import SwitchboardSQLite

/// What the embedded engine keeps on disk for a message.
@Suite("SQLite storage")
struct SQLiteStorageTests {
    @Test("a large body is stored once: its log records read it from the communication's row", arguments: [SQLiteSearchIndex.Documents.storeRows, .ownTable])
    func largeBodyStoredOnce(documents: SQLiteSearchIndex.Documents) async throws {
        let db = try temporaryDatabase()
        let search = SQLiteSearchIndex(database: db, documents: documents)
        let body = String(repeating: "Dear customer, your order has shipped. ", count: 5000)  // ~195 KB
        let request = CommunicationRequest(channel: .email, from: "shop@example.com", to: "c@example.com", msg: body, subject: "Shipped")
        let small = CommunicationRequest(channel: .sms, from: "+15550000000", to: "+15551234567", msg: "short")
        let at = Timestamp(milliseconds: 1000)
        let messages = [NewCommunication(id: "big", request: request, idempotencyKey: nil, createdAt: at, dispatchAt: at), NewCommunication(id: "small", request: small, idempotencyKey: nil, createdAt: at, dispatchAt: at)]
        if documents == .storeRows {
            _ = try await SQLiteStore(database: db).create(messages)
        } else {
            try await search.index(communications: messages.map { CommunicationDocument($0.communication) })
        }
        let records = messages.flatMap { m -> [LogRecord] in
            [CommunicationStatus.pending, .queued, .processing, .sent].map { status in
                LogRecord(communicationId: m.id, service: "test", status: status, type: m.request.channel, from: m.request.from, to: m.request.to, msg: m.request.msg, error: nil, attempt: 1, provider: nil, timestamp: at)
            }
        }
        try await search.index(logs: records)

        let big = try await search.search(LogQuery(communicationId: "big"))
        #expect(big.items.count == 4 && big.items.allSatisfy { $0.msg == body })
        #expect(try await search.search(LogQuery(communicationId: "small")).items.map(\.msg) == ["short", "short", "short", "short"])
        // On disk: the short body with each record, the long one with none of them.
        let stored: Int64 = try await db.read { c in try c.scalar("SELECT sum(length(msg)) FROM search_logs") ?? -1 }
        #expect(stored == 4 * 5)
    }
}
