import Foundation
import Testing
import SwitchboardCore

/// Behaviour every `MessageQueue` must show (Redis Streams semantics). The SQLite queue
/// (`SwitchboardSQLiteTests`) and the Redis Streams queue (`SwitchboardRedisStreamsTests`) run every check.
/// Each check uses its own stream names, so a queue may be shared by several checks.
public enum QueueContract {
    /// Consumers of one group share a stream: each entry goes to one of them, in order, with delivery count 1;
    /// acknowledged entries are no longer pending and are not handed out again.
    public static func groupsShareWithoutOverlap(_ q: any MessageQueue) async throws {
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

    /// Entries published before the group was created are delivered; creating a group twice is harmless.
    public static func entriesBeforeGroupAreDelivered(_ q: any MessageQueue) async throws {
        try await q.publish(stream: "early", entries: [["k": "v"]])
        try await q.createGroup(stream: "early", group: "g")
        try await q.createGroup(stream: "early", group: "g")  // idempotent
        let got = try await q.read(stream: "early", group: "g", consumer: "c", count: 10, block: .zero)
        #expect(got.map { $0.fields["k"] } == ["v"])
    }

    /// An entry whose holder did not acknowledge it within `lease` is handed to another consumer with its
    /// delivery count raised; an acknowledged entry is never handed out again. `q` must use `lease`.
    public static func expiredLeaseIsRedelivered(_ q: any MessageQueue, lease: Duration) async throws {
        // That no one else gets the entry while its lease runs is shown only by a read made within the lease: on a
        // machine that stalled the test longer than that, the scenario is run again on a fresh stream (up to five
        // times in all).
        for attempt in 1...5 {
            let stream = "l\(attempt)"
            try await q.createGroup(stream: stream, group: "g")
            try await q.publish(stream: stream, entries: [["x": "1"]])
            let before = ContinuousClock.now
            let first = try await q.read(stream: stream, group: "g", consumer: "crashed", count: 1, block: .zero)
            #expect(first.count == 1)
            let meanwhile = try await q.read(stream: stream, group: "g", consumer: "other", count: 1, block: .zero)
            if ContinuousClock.now - before >= lease, attempt < 5 { continue }
            #expect(meanwhile.isEmpty)
            try await Task.sleep(for: lease + .milliseconds(100))
            let again = try await q.read(stream: stream, group: "g", consumer: "other", count: 1, block: .zero)
            #expect(again.map(\.id) == first.map(\.id))
            #expect(again.first?.deliveryCount == 2)
            #expect(again.first?.fields == ["x": "1"])
            try await q.ack(stream: stream, group: "g", ids: again.map(\.id))
            try await Task.sleep(for: lease + .milliseconds(100))
            #expect(try await q.read(stream: stream, group: "g", consumer: "third", count: 1, block: .zero).isEmpty)
            return
        }
    }

    /// A holder that renews its entries keeps them past the lease, with their delivery count unchanged;
    /// one it stops renewing runs out like any other. Renewing what another consumer holds, or what was
    /// acknowledged, does nothing. `q` must use `lease`.
    public static func renewedLeaseIsKept(_ q: any MessageQueue, lease: Duration) async throws {
        #expect(q.lease == lease)
        try await q.createGroup(stream: "r", group: "g")
        try await q.publish(stream: "r", entries: [["x": "1"], ["x": "2"]])
        let held = try await q.read(stream: "r", group: "g", consumer: "slow", count: 2, block: .zero)
        try #require(held.count == 2)
        // The first is renewed every quarter lease, across more than a lease (three quarters of a lease to spare
        // for a loaded machine's late wake-ups); the second is left to run out.
        for _ in 0..<5 {
            try await Task.sleep(for: lease / 4)
            #expect(try await q.renew(stream: "r", group: "g", consumer: "slow", ids: [held[0].id]) == [held[0].id])
        }
        let other = try await q.read(stream: "r", group: "g", consumer: "other", count: 10, block: .zero)
        #expect(other.map(\.id) == [held[1].id])
        #expect(other.first?.deliveryCount == 2)
        // Neither takes the other's entry back by renewing it.
        #expect(try await q.renew(stream: "r", group: "g", consumer: "slow", ids: [held[1].id]).isEmpty)
        #expect(try await q.renew(stream: "r", group: "g", consumer: "other", ids: [held[0].id]).isEmpty)
        try await q.ack(stream: "r", group: "g", ids: other.map(\.id))
        // Once its holder stops renewing, the first runs out too; renewal did not raise its delivery count.
        try await Task.sleep(for: lease + .milliseconds(200))
        let later = try await q.read(stream: "r", group: "g", consumer: "other", count: 10, block: .zero)
        #expect(later.map(\.id) == [held[0].id])
        #expect(later.first?.deliveryCount == 2)
        try await q.ack(stream: "r", group: "g", ids: later.map(\.id))
        #expect(try await q.renew(stream: "r", group: "g", consumer: "other", ids: held.map(\.id)).isEmpty)
        #expect(try await q.info(stream: "r", group: "g").pending == 0)
    }

    /// `deadLetter` moves an entry to `<stream>:dead` with `dead_reason`, `dead_entry_id` and `dead_deliveries`,
    /// and acknowledges it.
    public static func deadLetter(_ q: any MessageQueue) async throws {
        try await q.createGroup(stream: "d", group: "g")
        try await q.publish(stream: "d", entries: [["x": "1"], ["x": "2"]])
        let got = try await q.read(stream: "d", group: "g", consumer: "c", count: 2, block: .zero)
        try await q.deadLetter(stream: "d", group: "g", entries: [got[0]], reason: "boom")
        try await q.ack(stream: "d", group: "g", ids: [got[1].id])
        let info = try await q.info(stream: "d", group: "g")
        #expect(info.pending == 0 && info.deadLetters == 1)
        let dead = try await q.entries(stream: StreamNames.deadLetter(of: "d"), limit: 10)
        #expect(dead.count == 1 && dead[0].fields["x"] == "1" && dead[0].fields["dead_reason"] == "boom")
        #expect(dead.first?.fields["dead_entry_id"] == got[0].id)
        #expect(dead.first?.fields["dead_deliveries"] == "1")
        #expect(try await q.read(stream: "d", group: "g", consumer: "c", count: 2, block: .zero).isEmpty)
    }

    /// `removeDeadLetters` (a redrive): the dead-letter entries of the named messages whose dispatch (`seq`) is at
    /// most the one given are deleted; a later dispatch's entry, other messages' and malformed entries stay, as does
    /// the live stream. Over more entries than one page of a paging engine (Redis reads 500 at a time).
    public static func removeDeadLetters(_ q: any MessageQueue) async throws {
        try await q.createGroup(stream: "rd", group: "g")
        let sets: [[String: String]] = [
            ["_id": "a", "seq": "1"], ["_id": "b", "seq": "1"], ["_id": "a", "seq": "2"], ["_id": "c", "seq": "1"], ["x": "malformed"],
            ["_id": "a", "seq": "3"], ["_id": "b", "seq": "x"], ["_id": "d", "seq": "1"],
        ]
        try await q.publish(stream: "rd", entries: sets)
        let got = try await q.read(stream: "rd", group: "g", consumer: "c", count: 10, block: .zero)
        #expect(got.count == sets.count)
        try await q.deadLetter(stream: "rd", group: "g", entries: Array(got.prefix(7)), reason: "failed")
        let dead = StreamNames.deadLetter(of: "rd")
        #expect(try await q.removeDeadLetters(stream: "rd", through: [:]) == 0)
        #expect(try await q.removeDeadLetters(stream: "rd", through: ["a": 2, "b": 1, "missing": 4]) == 3)
        let left = try await q.entries(stream: dead, limit: 100).map { "\($0.fields["_id"] ?? "-")/\($0.fields["seq"] ?? $0.fields["x"] ?? "-")" }
        #expect(left == ["c/1", "-/malformed", "a/3", "b/x"])
        // Again: nothing more to delete.
        #expect(try await q.removeDeadLetters(stream: "rd", through: ["a": 2, "b": 1]) == 0)
        // The live stream's entry (not dead-lettered) is untouched, still pending.
        let info = try await q.info(stream: "rd", group: "g")
        #expect(info.length == 1 && info.pending == 1 && info.deadLetters == 4, "\(info)")
        #expect(try await q.removeDeadLetters(stream: "rd", through: ["d": 1]) == 0)

        // Many: 1,100 entries of one message, its dispatches 1 to 1,100; those up to 1,000 go, with pages in between.
        try await q.publish(stream: dead, entries: (1...1100).map { ["_id": "bulk", "seq": "\($0)", "dead_reason": "failed"] })
        #expect(try await q.removeDeadLetters(stream: "rd", through: ["bulk": 1000]) == 1000)
        let rest = try await q.entries(stream: dead, limit: 1000).compactMap { $0.fields["_id"] == "bulk" ? $0.fields["seq"] : nil }
        #expect(rest == (1001...1100).map(String.init))
        #expect(try await q.info(stream: "rd", group: "g").deadLetters == 104)
    }

    /// Retention (`Purging`): the dead-letter entries added before the cutoff are deleted; later ones, and the
    /// live stream's entries, are kept. Uses the seed's stream names (only their dead-letter streams are purged).
    public static func purgeDeadLetters(_ q: any MessageQueue) async throws {
        let purging = try #require(q as? any Purging, "the queue does not purge")
        func now() -> Timestamp { Timestamp(milliseconds: Int64(Date().timeIntervalSince1970 * 1000)) }
        let stream = MessageChannel.sms.stream
        let start = now()
        try await q.createGroup(stream: stream, group: "g")
        try await q.publish(stream: stream, entries: (0..<4).map { ["x": "\($0)"] })
        let got = try await q.read(stream: stream, group: "g", consumer: "c", count: 3, block: .zero)
        try await q.deadLetter(stream: stream, group: "g", entries: [got[0], got[1]], reason: "old")
        try await Task.sleep(for: .milliseconds(50))
        let between = now()
        try await Task.sleep(for: .milliseconds(50))
        try await q.deadLetter(stream: stream, group: "g", entries: [got[2]], reason: "new")

        #expect(try await purging.purge(before: start.adding(.milliseconds(-1000))) == 0)
        #expect(try await purging.purge(before: between) == 2)
        #expect(try await q.entries(stream: StreamNames.deadLetter(of: stream), limit: 10).map { $0.fields["dead_reason"] } == ["new"])
        let info = try await q.info(stream: stream, group: "g")
        #expect(info.length == 1 && info.deadLetters == 1, "\(info)")
    }

    /// A blocked read returns as soon as an entry is published, and an empty read waits the whole `block`.
    public static func blockingReadWakesOnPublish(_ q: any MessageQueue) async throws {
        try await q.createGroup(stream: "b", group: "g")
        let started = ContinuousClock.now
        // A block far longer than any stall of a loaded machine: waking on the publication is returning well before it.
        let block = Duration.seconds(120)
        async let got = q.read(stream: "b", group: "g", consumer: "c", count: 1, block: block)
        try await Task.sleep(for: .milliseconds(150))
        try await q.publish(stream: "b", entries: [["x": "1"]])
        let entries = try await got
        #expect(entries.count == 1)
        #expect(ContinuousClock.now - started < block / 2)
        let empty = ContinuousClock.now
        #expect(try await q.read(stream: "b", group: "g", consumer: "c", count: 1, block: .milliseconds(200)).isEmpty)
        #expect(ContinuousClock.now - empty >= .milliseconds(180))
    }

    /// Each takeover after an expired lease raises the delivery count by one.
    public static func deliveryCountGrowsWithEachTakeover(_ q: any MessageQueue, lease: Duration) async throws {
        try await q.createGroup(stream: "n", group: "g")
        try await q.publish(stream: "n", entries: [["x": "1"], ["x": "2"]])
        let first = try await q.read(stream: "n", group: "g", consumer: "a", count: 2, block: .zero)
        #expect(first.map(\.deliveryCount) == [1, 1])
        try await q.ack(stream: "n", group: "g", ids: [first[1].id])
        try await Task.sleep(for: lease + .milliseconds(100))
        let second = try await q.read(stream: "n", group: "g", consumer: "b", count: 2, block: .zero)
        #expect(second.map(\.id) == [first[0].id] && second.map(\.deliveryCount) == [2])
        try await Task.sleep(for: lease + .milliseconds(100))
        let third = try await q.read(stream: "n", group: "g", consumer: "c", count: 2, block: .zero)
        #expect(third.map(\.id) == [first[0].id] && third.map(\.deliveryCount) == [3])
        #expect(try await q.info(stream: "n", group: "g").pending == 1)
    }

    /// An acknowledged entry is deleted from its stream (each stream has one group), so the stream holds only its
    /// backlog; dead letters stay.
    public static func acknowledgedEntriesAreDeleted(_ q: any MessageQueue) async throws {
        try await q.createGroup(stream: "t", group: "g")
        try await q.publish(stream: "t", entries: (0..<5).map { ["n": "\($0)"] })
        let got = try await q.read(stream: "t", group: "g", consumer: "c", count: 5, block: .zero)
        #expect(got.count == 5)
        try await q.ack(stream: "t", group: "g", ids: Array(got.prefix(4).map(\.id)))
        try await q.deadLetter(stream: "t", group: "g", entries: [got[4]], reason: "r")
        let info = try await q.info(stream: "t", group: "g")
        #expect(info.length == 0 && info.pending == 0 && info.deadLetters == 1)
        #expect(try await q.entries(stream: "t", limit: 10).isEmpty)
    }

    /// Unicode, empty values and many fields survive the round trip.
    public static func fieldsRoundTrip(_ q: any MessageQueue) async throws {
        let fields = ["msg": "Olá — 你好 👋 \"quoted\"\nnew line", "empty": "", "data": "{\"a\":[1,2]}"].merging((0..<20).map { ("f\($0)", "v\($0)") }) { $1 }
        try await q.createGroup(stream: "f", group: "g")
        let ids = try await q.publish(stream: "f", entries: [fields, ["one": "1"]])
        #expect(ids.count == 2 && ids[0] != ids[1])
        let got = try await q.read(stream: "f", group: "g", consumer: "c", count: 5, block: .zero)
        #expect(got.map(\.id) == ids)
        #expect(got.first?.fields == fields)
        #expect(got.allSatisfy { $0.stream == "f" })
    }

    /// `info` gives the age of the oldest pending entry (handed out, not acknowledged), counted from its
    /// publication: nil while nothing is pending (entries not yet read included), at least the time since the
    /// oldest held entry was published, and that of the next one once it is acknowledged.
    public static func oldestPendingAge(_ q: any MessageQueue) async throws {
        let stream = "age"
        try await q.createGroup(stream: stream, group: "g")
        let firstPublished = ContinuousClock.now
        try await q.publish(stream: stream, entries: [["n": "1"]])
        var info = try await q.info(stream: stream, group: "g")
        #expect(info.length == 1 && info.pending == 0)
        #expect(info.oldestPendingAge == nil && info.oldestPendingSeconds == 0, "nothing read yet: \(info)")
        try await Task.sleep(for: .milliseconds(500))
        let secondPublished = ContinuousClock.now
        try await q.publish(stream: stream, entries: [["n": "2"]])
        let first = try await q.read(stream: stream, group: "g", consumer: "a", count: 1, block: .zero)
        #expect(first.map { $0.fields["n"] } == ["1"])
        info = try await q.info(stream: stream, group: "g")
        var bound = ContinuousClock.now - firstPublished + .milliseconds(20)
        #expect(info.pending == 1)
        let firstAge = try #require(info.oldestPendingAge)
        // The age is in whole milliseconds on both engines: allow the rounding below.
        #expect(firstAge >= .milliseconds(495) && firstAge <= bound, "\(firstAge) not in 495 ms … \(bound)")
        #expect(info.oldestPendingSeconds >= 0.495)
        // Two pending: the older one counts.
        let second = try await q.read(stream: stream, group: "g", consumer: "b", count: 1, block: .zero)
        #expect(second.map { $0.fields["n"] } == ["2"])
        info = try await q.info(stream: stream, group: "g")
        #expect(info.pending == 2 && (info.oldestPendingAge ?? .zero) >= firstAge)
        // The oldest acknowledged: the next one's age, which is 500 ms younger.
        try await q.ack(stream: stream, group: "g", ids: first.map(\.id))
        info = try await q.info(stream: stream, group: "g")
        bound = ContinuousClock.now - secondPublished + .milliseconds(20)
        let secondAge = try #require(info.oldestPendingAge)
        #expect(info.pending == 1 && secondAge <= bound, "\(secondAge) > \(bound)")
        try await q.ack(stream: stream, group: "g", ids: second.map(\.id))
        info = try await q.info(stream: stream, group: "g")
        #expect(info.pending == 0 && info.oldestPendingAge == nil && info.oldestPendingSeconds == 0)
    }
}
