import Foundation
import Synchronization
import Testing
import SwitchboardCore
import SwitchboardTestSupport
@testable import SwitchboardSQLite

@Suite("SQLite status feed", .timeLimit(.minutes(1)))
struct SQLiteStatusFeedTests {
    func feed(clock: @escaping @Sendable () -> Timestamp = wallClock) throws -> SQLiteStatusFeed {
        SQLiteStatusFeed(database: try temporaryDatabase(), pollInterval: .milliseconds(20), clock: clock)
    }

    @Test func orderAndPositions() async throws { try await StatusFeedContract.orderAndPositions(try feed()) }
    @Test func blockingReadWakes() async throws { try await StatusFeedContract.blockingReadWakes(try feed()) }
    @Test func metadata() async throws { try await StatusFeedContract.metadata(try feed()) }

    /// Rows older than the cutoff go; the others stay with their positions.
    @Test func trimByAge() async throws {
        let now = Mutex<Int64>(10_000_000)
        let feed = try feed { Timestamp(milliseconds: now.withLock { $0 }) }
        try await feed.append([StatusFeedContract.record("old", .pending, at: 1)])
        now.withLock { $0 += 7_200_000 }
        try await feed.append([StatusFeedContract.record("new", .pending, at: 2), StatusFeedContract.record("new", .queued, at: 2)])
        let before = try await feed.read(after: nil, count: 10, block: .zero)
        try await feed.trim(before: Timestamp(milliseconds: now.withLock { $0 } - 3_600_000))
        let after = try await feed.read(after: nil, count: 10, block: .zero)
        #expect(after.map(\.record.communicationId) == ["new", "new"])
        #expect(after.map(\.position) == Array(before.dropFirst()).map(\.position))
        // Trimming everything keeps positions growing: a new event comes after the last one ever handed out.
        try await feed.trim(before: Timestamp(milliseconds: now.withLock { $0 } + 1))
        #expect(try await feed.read(after: nil, count: 10, block: .zero).isEmpty)
        try await feed.append([StatusFeedContract.record("later", .pending, at: 3)])
        let later = try await feed.read(after: nil, count: 10, block: .zero)
        #expect(later.count == 1 && later[0].position > before.last!.position)
    }

    /// A trim larger than one chunk deletes everything old, a thousand rows per transaction.
    @Test func trimInChunks() async throws {
        let now = Mutex<Int64>(10_000_000)
        let feed = try feed { Timestamp(milliseconds: now.withLock { $0 }) }
        for i in 0..<2_500 { try await feed.append([StatusFeedContract.record("old\(i)", .pending, at: 1)]) }
        now.withLock { $0 += 7_200_000 }
        try await feed.append([StatusFeedContract.record("new", .pending, at: 2)])
        try await feed.trim(before: Timestamp(milliseconds: now.withLock { $0 } - 3_600_000))
        #expect(try await feed.read(after: nil, count: 10_000, block: .zero).map(\.record.communicationId) == ["new"])
    }

    /// A feed on the same file written by another connection (another process: a separate database handle) is
    /// seen by a blocked reader: the read returns it, not the empty answer at the end of its block (how soon is a
    /// benchmark's business: scripts/bench-events.sh).
    @Test func otherWriterSeenByPolling() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-feed-\(UUID().uuidString)")
        let path = dir.appendingPathComponent("f.sqlite").path
        let reader = SQLiteStatusFeed(database: try SQLiteDatabase(options: SQLiteOptions(path: path, synchronous: .normal)), pollInterval: .milliseconds(20), clock: wallClock)
        let writer = SQLiteStatusFeed(database: try SQLiteDatabase(options: SQLiteOptions(path: path, synchronous: .normal)), pollInterval: .milliseconds(20), clock: wallClock)
        let end = try await reader.end()
        async let read = reader.read(after: end, count: 10, block: .seconds(60))
        try await Task.sleep(for: .milliseconds(100))
        try await writer.append([StatusFeedContract.record("x", .sent, at: 4)])
        let got = try await read
        #expect(got.map(\.record.communicationId) == ["x"])
    }
}
