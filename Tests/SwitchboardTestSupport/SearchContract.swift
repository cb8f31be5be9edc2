import Foundation
import Testing
import SwitchboardCore

/// Behaviour every `SearchIndex` must show, with exact expected results, so that every adapter answers as the
/// SQLite index does. `settle` makes written data visible (flush and refresh; nothing for SQLite). Run on an
/// empty index: it writes `communications` and `communication-logs`.
public enum SearchContract {
    /// 2026-01-01T00:00:00Z.
    public static let base: Int64 = 1_767_225_600_000
    static let channels: [MessageChannel] = [.email, .sms, .whatsapp]

    static func recipient(_ i: Int) -> String {
        let c = channels[i % 3]
        return c == .email ? "user\(i % 5)@example.com" : "+1555000000\(i % 5)"
    }

    /// The API key of communication `i`: `key_a` for every fourth, `key_b` for the next, none for the others.
    static func key(_ i: Int) -> String? { i % 4 == 0 ? "key_a" : i % 4 == 1 ? "key_b" : nil }

    /// The `data.metadata` of communication `i`: every third has an order id (`o0`…`o3`), a tenant and a note
    /// holding `=` and a space; the others none.
    static func metadata(_ i: Int) -> [String: String] {
        i % 3 == 0 ? ["orderId": "o\(i % 4)", "tenant": "t\(i % 2)", "note": "a=b c"] : [:]
    }

    /// The 30 communications: created one second apart, channel cycling, even ones say "alpha", odd ones "beta";
    /// some made with an API key (`key(_:)`), some with metadata (`metadata(_:)`).
    public static func documents() -> [CommunicationDocument] {
        (0..<30).map { i in
            let c = channels[i % 3]
            return CommunicationDocument(
                communicationId: String(format: "c%04d", i), type: c, from: c == .email ? "noreply@example.com" : "+15559999999", to: recipient(i),
                msg: "message number \(i) \(i % 2 == 0 ? "alpha" : "beta")", status: .queued,
                createdAt: Timestamp(milliseconds: base + Int64(i) * 1000), timestamp: Timestamp(milliseconds: base + Int64(i) * 1000 + 10), keyID: key(i), metadata: metadata(i))
        }
    }

    /// The 40 log records: 100 ms apart, on the first ten communications; every fourth carries an error; those
    /// of communication c0004 are a test message's.
    public static func logs() -> [LogRecord] {
        let docs = documents()
        let services = ["router", "email", "sms", "whatsapp"]
        let statuses: [CommunicationStatus] = [.pending, .queued, .processing, .sent, .failed]
        return (0..<40).map { i in
            let d = docs[i % 10]
            return LogRecord(communicationId: d.communicationId, service: services[i % 4], status: statuses[i % 5], type: d.type, from: d.from, to: d.to, msg: d.msg,
                             error: i % 4 == 3 ? "provider timeout after \(i) ms" : nil, attempt: i % 3, provider: i % 2 == 0 ? "sandbox" : nil,
                             timestamp: Timestamp(milliseconds: base + 100_000 + Int64(i) * 100), test: i % 10 == 4)
        }
    }

    /// Every page of `query`, following cursors; fails on a repeated cursor.
    static func all<T>(_ first: String?, _ fetch: (String?) async throws -> Page<T>) async throws -> [[T]] {
        var pages: [[T]] = []
        var cursor = first
        var seen: Set<String> = []
        repeat {
            let page = try await fetch(cursor)
            pages.append(page.items)
            cursor = page.nextCursor
            if let c = cursor {
                #expect(!seen.contains(c), "cursor \(c) issued twice")
                seen.insert(c)
            }
        } while cursor != nil && pages.count < 100
        return pages
    }

    /// Runs every check.
    public static func run(_ index: any SearchIndex, settle: () async throws -> Void) async throws {
        try await index.ping()
        let docs = documents()
        try await index.index(communications: docs)
        // Updates: every third is sent later; then a late, older update must not overwrite it.
        let sent = docs.enumerated().filter { $0.offset % 3 == 0 }.map { d -> CommunicationDocument in
            var d = d.element
            d.status = .sent
            d.timestamp = Timestamp(milliseconds: d.timestamp.milliseconds + 5000)
            return d
        }
        try await index.index(communications: sent)
        let late = sent.map { d -> CommunicationDocument in
            var d = d
            d.status = .processing
            d.timestamp = Timestamp(milliseconds: d.timestamp.milliseconds - 1000)
            return d
        }
        try await index.index(communications: late)
        try await index.index(logs: logs())
        try await settle()

        let expected = docs.enumerated().map { i, d -> CommunicationDocument in i % 3 == 0 ? sent[i / 3] : d }
        let newestFirst = Array(expected.reversed())
        func ids(_ items: [CommunicationDocument]) -> [String] { items.map(\.communicationId) }

        // Everything, newest first, the upserts holding the newest version.
        let everything = try await index.search(CommunicationQuery(limit: 1000))
        #expect(everything.items == newestFirst)
        #expect(everything.nextCursor == nil)

        // Term filters.
        #expect(try await index.search(CommunicationQuery(type: .sms, limit: 100)).items == newestFirst.filter { $0.type == .sms })
        #expect(try await index.search(CommunicationQuery(status: .sent, limit: 100)).items == newestFirst.filter { $0.status == .sent })
        #expect(try await index.search(CommunicationQuery(status: .processing, limit: 100)).items.isEmpty, "a late older update overwrote a newer one")
        #expect(try await index.search(CommunicationQuery(to: recipient(4), limit: 100)).items == newestFirst.filter { $0.to == recipient(4) })
        #expect(try await index.search(CommunicationQuery(type: .email, status: .sent, limit: 100)).items == newestFirst.filter { $0.type == .email && $0.status == .sent })
        // By the API key that created them (`?key=`).
        #expect(try await index.search(CommunicationQuery(key: "key_a", limit: 100)).items == newestFirst.filter { $0.keyID == "key_a" })
        #expect(try await index.search(CommunicationQuery(type: .sms, key: "key_b", limit: 100)).items == newestFirst.filter { $0.type == .sms && $0.keyID == "key_b" })
        #expect(try await index.search(CommunicationQuery(key: "key_none", limit: 100)).items.isEmpty)

        // By metadata (`?metadata.<key>=`): exact key and value, every pair required, case-sensitive, no prefix.
        #expect(ids(try await index.search(CommunicationQuery(metadata: ["orderId": "o2"], limit: 100)).items) == ids(newestFirst.filter { $0.metadata["orderId"] == "o2" }))
        #expect(!ids(try await index.search(CommunicationQuery(metadata: ["orderId": "o2"], limit: 100)).items).isEmpty)
        #expect(ids(try await index.search(CommunicationQuery(metadata: ["orderId": "o2", "tenant": "t0"], limit: 100)).items) == ids(newestFirst.filter { $0.metadata["orderId"] == "o2" && $0.metadata["tenant"] == "t0" }))
        #expect(ids(try await index.search(CommunicationQuery(metadata: ["note": "a=b c"], limit: 100)).items) == ids(newestFirst.filter { !$0.metadata.isEmpty }))
        #expect(ids(try await index.search(CommunicationQuery(type: .sms, metadata: ["tenant": "t1"], limit: 100)).items) == ids(newestFirst.filter { $0.type == .sms && $0.metadata["tenant"] == "t1" }))
        #expect(try await index.search(CommunicationQuery(metadata: ["orderId": "O2"], limit: 100)).items.isEmpty)
        #expect(try await index.search(CommunicationQuery(metadata: ["orderId": "o"], limit: 100)).items.isEmpty)
        #expect(try await index.search(CommunicationQuery(metadata: ["note": "a"], limit: 100)).items.isEmpty)
        #expect(try await index.search(CommunicationQuery(metadata: ["tenant": "t0", "missing": "x"], limit: 100)).items.isEmpty)

        // Full text: every word required, over msg; exact sender and recipient.
        #expect(ids(try await index.search(CommunicationQuery(text: "alpha", limit: 100)).items) == ids(newestFirst.filter { $0.msg.hasSuffix("alpha") }))
        #expect(ids(try await index.search(CommunicationQuery(text: "number 7", limit: 100)).items) == ["c0007"])
        #expect(ids(try await index.search(CommunicationQuery(text: "Beta 7", limit: 100)).items) == ["c0007"])
        #expect(ids(try await index.search(CommunicationQuery(text: "alpha 7", limit: 100)).items).isEmpty)
        #expect(ids(try await index.search(CommunicationQuery(text: "zebra", limit: 100)).items).isEmpty)
        #expect(ids(try await index.search(CommunicationQuery(text: "user3@example.com", limit: 100)).items) == ids(newestFirst.filter { $0.to == "user3@example.com" }))
        #expect(ids(try await index.search(CommunicationQuery(text: "+15550000002", limit: 100)).items) == ids(newestFirst.filter { $0.to == "+15550000002" }))

        // Time range on createdAt: since inclusive, until exclusive.
        let since = Timestamp(milliseconds: base + 10_000), until = Timestamp(milliseconds: base + 20_000)
        #expect(ids(try await index.search(CommunicationQuery(since: since, until: until, limit: 100)).items) == (10..<20).reversed().map { String(format: "c%04d", $0) })
        #expect(try await index.search(CommunicationQuery(since: Timestamp(milliseconds: base + 29_000), limit: 100)).items.map(\.communicationId) == ["c0029"])
        #expect(try await index.search(CommunicationQuery(until: Timestamp(milliseconds: base + 1), limit: 100)).items.map(\.communicationId) == ["c0000"])

        // Paging through everything and through a filter: no duplicates, no gaps, a last page without cursor.
        for limit in [1, 7, 10, 29] {
            let pages = try await all(nil) { try await index.search(CommunicationQuery(limit: limit, cursor: $0)) }
            #expect(pages.flatMap { $0 } == newestFirst, "paging by \(limit)")
            #expect(pages.dropLast().allSatisfy { $0.count == limit })
        }
        let smsPages = try await all(nil) { try await index.search(CommunicationQuery(type: .sms, text: "message", limit: 3, cursor: $0)) }
        #expect(smsPages.flatMap { $0 } == newestFirst.filter { $0.type == .sms })
        #expect(smsPages.count == 4)

        // Cursors we did not issue.
        for bad in ["garbage", "", "r0", "e1.x.y", "e1.12.!!!", "eyJ9"] {
            await #expect(throws: InvalidCursor.self, "cursor \(bad)") { _ = try await index.search(CommunicationQuery(cursor: bad)) }
            await #expect(throws: InvalidCursor.self, "cursor \(bad)") { _ = try await index.search(LogQuery(cursor: bad)) }
        }

        // Logs: newest first, filters, full text over error and the communication's msg/from/to, paging.
        let allLogs = Array(logs().reversed())
        #expect(try await index.search(LogQuery(limit: 1000)).items == allLogs)
        #expect(try await index.search(LogQuery(communicationId: "c0003", limit: 100)).items == allLogs.filter { $0.communicationId == "c0003" })
        #expect(try await index.search(LogQuery(communicationId: "c0004", limit: 100)).items.allSatisfy(\.test))
        #expect(try await index.search(LogQuery(service: "email", limit: 100)).items == allLogs.filter { $0.service == "email" })
        #expect(try await index.search(LogQuery(status: .failed, limit: 100)).items == allLogs.filter { $0.status == .failed })
        #expect(try await index.search(LogQuery(communicationId: "c0001", service: "email", limit: 100)).items == allLogs.filter { $0.communicationId == "c0001" && $0.service == "email" })
        #expect(try await index.search(LogQuery(text: "timeout", limit: 100)).items == allLogs.filter { $0.error != nil })
        #expect(try await index.search(LogQuery(text: "timeout 23", limit: 100)).items.map(\.error) == ["provider timeout after 23 ms"])
        #expect(try await index.search(LogQuery(text: "alpha", limit: 100)).items == allLogs.filter { $0.msg.hasSuffix("alpha") })
        for limit in [1, 9] {
            let pages = try await all(nil) { try await index.search(LogQuery(limit: limit, cursor: $0)) }
            #expect(pages.flatMap { $0 } == allLogs, "log paging by \(limit)")
        }
        let errorPages = try await all(nil) { try await index.search(LogQuery(text: "timeout", limit: 4, cursor: $0)) }
        #expect(errorPages.flatMap { $0 } == allLogs.filter { $0.error != nil })

        try await auditRecords(index, settle: settle, communicationLogs: allLogs)
    }

    /// Audit records (service `auth`, no status, no channel): two about one key in the same millisecond, and an
    /// aggregate of failures. Written after `run`'s data, newer than all of it.
    public static func auditLogs() -> [LogRecord] {
        let at = Timestamp(milliseconds: base + 200_000)
        return [
            LogRecord(communicationId: "key_1", service: "auth", status: nil, type: nil, from: "cli", to: "key_1", msg: "key_created", error: "key created: name=ci scopes=send", attempt: 0, provider: nil, timestamp: at),
            LogRecord(communicationId: "key_1", service: "auth", status: nil, type: nil, from: "key_1", to: "/api/v1/keys", msg: "admin_action", error: "admin action: GET /api/v1/keys answered 200", attempt: 0, provider: nil, timestamp: at),
            LogRecord(communicationId: "203.0.113.9", service: "auth", status: nil, type: nil, from: "203.0.113.9", to: "", msg: "auth_failures", error: "12 authentication failures from 203.0.113.9: unknown key ×12", attempt: 12, provider: nil, timestamp: Timestamp(milliseconds: base + 259_999)),
        ]
    }

    /// Audit records are stored and read back whole (no status or channel made up), listed by `service=auth`
    /// and by subject, found by the words of their details, and kept out of a status filter.
    static func auditRecords(_ index: any SearchIndex, settle: () async throws -> Void, communicationLogs: [LogRecord]) async throws {
        let audit = auditLogs()
        try await index.index(logs: audit)
        try await settle()
        // Newest first; the two of one millisecond in the order written (SQLite: by row; Elasticsearch: by id, so as a set).
        let listed = try await index.search(LogQuery(service: "auth", limit: 100)).items
        #expect(listed.count == 3)
        #expect(listed.first == audit[2])
        #expect(Set(listed) == Set(audit))
        #expect(Set(try await index.search(LogQuery(communicationId: "key_1", service: "auth", limit: 100)).items) == Set(audit[0...1]))
        #expect(try await index.search(LogQuery(service: "auth", text: "failures", limit: 100)).items == [audit[2]])
        #expect(try await index.search(LogQuery(status: .failed, limit: 100)).items == communicationLogs.filter { $0.status == .failed })
        #expect(try await index.search(LogQuery(limit: 1000)).items.count == communicationLogs.count + 3)
    }
}
