import Foundation
import Testing
import SwitchboardCore
import SwitchboardTestSupport
@testable import SwitchboardSQLite

@Suite("SQLite queue")
struct SQLiteQueueTests {
    func queue(lease: Duration = .seconds(30)) throws -> SQLiteQueue {
        SQLiteQueue(database: try temporaryDatabase(), lease: lease, pollInterval: .milliseconds(20), clock: wallClock)
    }

    @Test func groupsShareWithoutOverlap() async throws { try await QueueContract.groupsShareWithoutOverlap(try queue()) }
    @Test func entriesBeforeGroupAreDelivered() async throws { try await QueueContract.entriesBeforeGroupAreDelivered(try queue()) }
    // A 1 s lease: the check reads twice within it, which a loaded machine must manage.
    @Test func expiredLeaseIsRedelivered() async throws { try await QueueContract.expiredLeaseIsRedelivered(try queue(lease: .seconds(3)), lease: .seconds(3)) }
    @Test func renewedLeaseIsKept() async throws { try await QueueContract.renewedLeaseIsKept(try queue(lease: .seconds(3)), lease: .seconds(3)) }
    @Test func deadLetter() async throws { try await QueueContract.deadLetter(try queue()) }
    @Test func removeDeadLetters() async throws { try await QueueContract.removeDeadLetters(try queue()) }
    @Test func blockingReadWakesOnPublish() async throws { try await QueueContract.blockingReadWakesOnPublish(try queue()) }
    @Test func deliveryCountGrowsWithEachTakeover() async throws { try await QueueContract.deliveryCountGrowsWithEachTakeover(try queue(lease: .milliseconds(300)), lease: .milliseconds(300)) }
    @Test func acknowledgedEntriesAreDeleted() async throws { try await QueueContract.acknowledgedEntriesAreDeleted(try queue()) }
    @Test func fieldsRoundTrip() async throws { try await QueueContract.fieldsRoundTrip(try queue()) }
    @Test func purgeDeadLetters() async throws { try await QueueContract.purgeDeadLetters(try queue()) }
    @Test func oldestPendingAge() async throws { try await QueueContract.oldestPendingAge(try queue()) }

    @Test("reading without a group is a typed NOGROUP error")
    func noGroup() async throws {
        let q = try queue()
        await #expect(throws: QueueError.self) { try await q.read(stream: "none", group: "g", consumer: "c", count: 1, block: .zero) }
    }

    @Test("a reader in another process sees entries by polling")
    func crossConnection() async throws {
        let db = try temporaryDatabase()
        let writer = SQLiteQueue(database: db, pollInterval: .milliseconds(20), clock: wallClock)
        // A second database object on the same file stands for another process: no shared in-memory signal.
        let other = try SQLiteDatabase(options: SQLiteOptions(path: db.options.path, synchronous: .normal))
        let reader = SQLiteQueue(database: other, pollInterval: .milliseconds(20), clock: wallClock)
        try await reader.createGroup(stream: "x", group: "g")
        // Blocks up to 20 s (it returns as soon as the entry is seen): under the full suite the publish itself can take seconds.
        async let got = reader.read(stream: "x", group: "g", consumer: "c", count: 5, block: .seconds(20))
        try await Task.sleep(for: .milliseconds(100))
        try await writer.publish(stream: "x", entries: [["a": "b"]])
        #expect(try await got.count == 1)
        await other.close()
    }
}
