import Foundation
import Testing
import SwitchboardCore

/// Behaviour every `StatusFeed` must show: the embedded one (`SwitchboardSQLiteTests`) and Redis's
/// (`SwitchboardRedisStreamsTests`) run every check, each on a fresh feed.
public enum StatusFeedContract {
    /// A status-change record of message `id` at `ms`.
    public static func record(_ id: String, _ status: CommunicationStatus, at ms: Int64, key: String? = nil) -> LogRecord {
        LogRecord(communicationId: id, service: "router", status: status, type: .sms, from: "+15550000000", to: "+15551112222", msg: "the body", error: nil, attempt: 0, provider: nil, timestamp: Timestamp(milliseconds: ms), keyID: key)
    }

    /// Appended records come back in order, once, with increasing positions; records without a status (audit
    /// records) are not events; the body is not kept; reading after a position gives exactly what follows it;
    /// `end()` is the newest position and reading after it gives nothing.
    public static func orderAndPositions(_ feed: any StatusFeed) async throws {
        #expect(try await feed.read(after: nil, count: 100, block: .zero).isEmpty)
        let empty = try await feed.end()
        var audit = record("a", .queued, at: 1)
        audit.status = nil
        try await feed.append([record("m1", .pending, at: 1_000, key: "key_abc"), record("m1", .queued, at: 1_000), audit])
        try await feed.append([record("m1", .processing, at: 1_001)])
        try await feed.append([record("m2", .pending, at: 1_002), record("m1", .sent, at: 1_003)])
        let all = try await feed.read(after: nil, count: 100, block: .zero)
        #expect(all.map { "\($0.record.communicationId) \($0.record.status!.rawValue)" } == ["m1 pending", "m1 queued", "m1 processing", "m2 pending", "m1 sent"])
        #expect(all.map(\.position) == all.map(\.position).sorted() && Set(all.map(\.position)).count == all.count)
        #expect(all.allSatisfy { $0.position > empty })
        #expect(all[0].record.keyID == "key_abc" && all[1].record.keyID == nil)
        #expect(all.allSatisfy { $0.record.msg.isEmpty })
        #expect(all.allSatisfy { FeedPosition(parsing: $0.position.description) == $0.position })
        for k in 0..<all.count {
            let rest = try await feed.read(after: all[k].position, count: 100, block: .zero)
            #expect(rest.map(\.position) == all[(k + 1)...].map(\.position), "after \(all[k].position)")
        }
        #expect(try await feed.end() == all.last!.position)
        #expect(try await feed.read(after: try await feed.end(), count: 100, block: .zero).isEmpty)
        // Counted reads stop near `count` (whole rows on the embedded engine) without skipping anything.
        var seen: [FeedPosition] = []
        var after: FeedPosition?
        while true {
            let page = try await feed.read(after: after, count: 2, block: .zero)
            guard let last = page.last else { break }
            seen += page.map(\.position)
            after = last.position
        }
        #expect(seen == all.map(\.position))
    }

    /// A record's metadata comes back whole (keys and values with dots, `=`, quotes and non-ASCII); a record without
    /// any comes back without.
    public static func metadata(_ feed: any StatusFeed) async throws {
        let end = try await feed.end()
        var with = record("m1", .queued, at: 10)
        with.metadata = ["orderId": "123", "user.id": "a=b \"c\" é"]
        try await feed.append([with, record("m2", .queued, at: 11)])
        let read = try await feed.read(after: end, count: 10, block: .zero)
        #expect(read.map(\.record.communicationId) == ["m1", "m2"])
        #expect(read.first?.record.metadata == ["orderId": "123", "user.id": "a=b \"c\" é"])
        #expect(read.last?.record.metadata == [:])
    }

    /// A blocked read returns as soon as something is appended (in this process), well before its block ends.
    public static func blockingReadWakes(_ feed: any StatusFeed) async throws {
        let end = try await feed.end()
        let started = ContinuousClock.now
        async let read = feed.read(after: end, count: 10, block: .seconds(10))
        try await Task.sleep(for: .milliseconds(200))
        try await feed.append([record("w", .pending, at: 5)])
        let got = try await read
        #expect(got.map(\.record.communicationId) == ["w"])
        // Before the 10 s block ran out (a loaded parallel run has taken 5.9 s to get here).
        #expect(ContinuousClock.now - started < .seconds(9))
    }
}
