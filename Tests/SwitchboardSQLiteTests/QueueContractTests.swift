import Foundation
import Testing
import SwitchboardCore
@testable import SwitchboardSQLite

/// Behaviour every `MessageQueue` must show (Redis Streams semantics). The Redis adapter runs the same checks.
enum QueueContract {
    static func groupsShareWithoutOverlap(_ q: any MessageQueue) async throws {
        try await q.createGroup(stream: "s", group: "g")
        try await q.publish(stream: "s", entries: (0..<10).map { ["n": "\($0)"] })
        let a = try await q.read(stream: "s", group: "g", consumer: "a", count: 6, block: .zero)
        let b = try await q.read(stream: "s", group: "g", consumer: "b", count: 6, block: .zero)
        #expect(a.count == 6 && b.count == 4)
        #expect(Set(a.map(\.id)).isDisjoint(with: b.map(\.id)))
        #expect((a + b).map { $0.fields["n"]! } == (0..<10).map { "\($0)" })
        #expect((a + b).allSatisfy { $0.deliveryCount == 1 })
        let info = try await q.info(stream: "s", group: "g")
        #expect(info.pending == 10)
        try await q.ack(stream: "s", group: "g", ids: (a + b).map(\.id))
        #expect(try await q.info(stream: "s", group: "g").pending == 0)
        #expect(try await q.read(stream: "s", group: "g", consumer: "a", count: 10, block: .zero).isEmpty)
    }

    static func entriesBeforeGroupAreDelivered(_ q: any MessageQueue) async throws {
        try await q.publish(stream: "early", entries: [["k": "v"]])
        try await q.createGroup(stream: "early", group: "g")
        try await q.createGroup(stream: "early", group: "g")  // idempotent
        let got = try await q.read(stream: "early", group: "g", consumer: "c", count: 10, block: .zero)
        #expect(got.map { $0.fields["k"] } == ["v"])
    }

    static func expiredLeaseIsRedelivered(_ q: any MessageQueue, lease: Duration) async throws {
        try await q.createGroup(stream: "l", group: "g")
        try await q.publish(stream: "l", entries: [["x": "1"]])
        let first = try await q.read(stream: "l", group: "g", consumer: "crashed", count: 1, block: .zero)
        #expect(first.count == 1)
        #expect(try await q.read(stream: "l", group: "g", consumer: "other", count: 1, block: .zero).isEmpty)
        try await Task.sleep(for: lease + .milliseconds(100))
        let again = try await q.read(stream: "l", group: "g", consumer: "other", count: 1, block: .zero)
        #expect(again.map(\.id) == first.map(\.id))
        #expect(again.first?.deliveryCount == 2)
        #expect(again.first?.fields == ["x": "1"])
        try await q.ack(stream: "l", group: "g", ids: again.map(\.id))
        try await Task.sleep(for: lease + .milliseconds(100))
        #expect(try await q.read(stream: "l", group: "g", consumer: "third", count: 1, block: .zero).isEmpty)
    }

    static func deadLetter(_ q: any MessageQueue) async throws {
        try await q.createGroup(stream: "d", group: "g")
        try await q.publish(stream: "d", entries: [["x": "1"], ["x": "2"]])
        let got = try await q.read(stream: "d", group: "g", consumer: "c", count: 2, block: .zero)
        try await q.deadLetter(stream: "d", group: "g", entries: [got[0]], reason: "boom")
        try await q.ack(stream: "d", group: "g", ids: [got[1].id])
        let info = try await q.info(stream: "d", group: "g")
        #expect(info.pending == 0 && info.deadLetters == 1)
        let dead = try await q.entries(stream: StreamNames.deadLetter(of: "d"), limit: 10)
        #expect(dead.count == 1 && dead[0].fields["x"] == "1" && dead[0].fields["dead_reason"] == "boom")
    }

    static func blockingReadWakesOnPublish(_ q: any MessageQueue) async throws {
        try await q.createGroup(stream: "b", group: "g")
        let started = ContinuousClock.now
        async let got = q.read(stream: "b", group: "g", consumer: "c", count: 1, block: .seconds(5))
        try await Task.sleep(for: .milliseconds(150))
        try await q.publish(stream: "b", entries: [["x": "1"]])
        let entries = try await got
        #expect(entries.count == 1)
        #expect(ContinuousClock.now - started < .seconds(3))
        let empty = ContinuousClock.now
        #expect(try await q.read(stream: "b", group: "g", consumer: "c", count: 1, block: .milliseconds(200)).isEmpty)
        #expect(ContinuousClock.now - empty >= .milliseconds(180))
    }
}

@Suite("SQLite queue")
struct SQLiteQueueTests {
    func queue(lease: Duration = .seconds(30)) throws -> SQLiteQueue {
        SQLiteQueue(database: try temporaryDatabase(), lease: lease, pollInterval: .milliseconds(20), clock: wallClock)
    }

    @Test func groupsShareWithoutOverlap() async throws { try await QueueContract.groupsShareWithoutOverlap(try queue()) }
    @Test func entriesBeforeGroupAreDelivered() async throws { try await QueueContract.entriesBeforeGroupAreDelivered(try queue()) }
    @Test func expiredLeaseIsRedelivered() async throws { try await QueueContract.expiredLeaseIsRedelivered(try queue(lease: .seconds(1)), lease: .seconds(1)) }
    @Test func deadLetter() async throws { try await QueueContract.deadLetter(try queue()) }
    @Test func blockingReadWakesOnPublish() async throws { try await QueueContract.blockingReadWakesOnPublish(try queue()) }

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
        async let got = reader.read(stream: "x", group: "g", consumer: "c", count: 5, block: .seconds(3))
        try await Task.sleep(for: .milliseconds(100))
        try await writer.publish(stream: "x", entries: [["a": "b"]])
        #expect(try await got.count == 1)
        await other.close()
    }

    @Test("acknowledged entries are deleted; dead letters stay")
    func trimming() async throws {
        let db = try temporaryDatabase()
        let q = SQLiteQueue(database: db, clock: wallClock)
        try await q.createGroup(stream: "t", group: "g")
        try await q.publish(stream: "t", entries: (0..<5).map { ["n": "\($0)"] })
        let got = try await q.read(stream: "t", group: "g", consumer: "c", count: 5, block: .zero)
        try await q.ack(stream: "t", group: "g", ids: got.map(\.id))
        #expect(try await q.info(stream: "t", group: "g").length == 0)
    }
}
