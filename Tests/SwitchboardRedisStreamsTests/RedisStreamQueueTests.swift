import Foundation
import Testing
import SwitchboardCore
import SwitchboardRedis
import SwitchboardTestSupport
@testable import SwitchboardRedisStreams

/// How many `XAUTOCLAIM` commands the server has run (`INFO commandstats`).
func xautoclaimCalls(_ q: RedisStreamQueue) async throws -> Int {
    let stats = try await q.client.info("commandstats")
    guard let line = stats.split(separator: "\r\n").first(where: { $0.hasPrefix("cmdstat_xautoclaim:") }),
          let calls = line.split(separator: "=").dropFirst().first?.split(separator: ",").first else { return 0 }
    return Int(calls) ?? 0
}

/// Runs `body` with a queue on a throwaway redis-server, then shuts both down.
func withQueue(lease: Duration = .seconds(30), _ body: (RedisStreamQueue, RedisServer) async throws -> Void) async throws {
    try await withRedisServer { server in
        let queue = try RedisStreamQueue(url: server.url, lease: lease, unavailableWait: .milliseconds(500))
        do {
            try await body(queue, server)
            await queue.shutdown()
        } catch {
            await queue.shutdown()
            throw error
        }
    }
}

@Suite("Redis Streams queue: the queue contract", .timeLimit(.minutes(2)))
struct RedisQueueContractTests {
    @Test func groupsShareWithoutOverlap() async throws { try await withQueue { q, _ in try await QueueContract.groupsShareWithoutOverlap(q) } }
    @Test func entriesBeforeGroupAreDelivered() async throws { try await withQueue { q, _ in try await QueueContract.entriesBeforeGroupAreDelivered(q) } }
    @Test func expiredLeaseIsRedelivered() async throws {
        // A 3 s lease: the check reads twice within it, which a loaded machine (the whole suite in parallel) must manage.
        try await withQueue(lease: .seconds(3)) { q, _ in try await QueueContract.expiredLeaseIsRedelivered(q, lease: .seconds(3)) }
    }
    @Test func renewedLeaseIsKept() async throws {
        try await withQueue(lease: .seconds(3)) { q, _ in try await QueueContract.renewedLeaseIsKept(q, lease: .seconds(3)) }
    }
    @Test func deadLetter() async throws { try await withQueue { q, _ in try await QueueContract.deadLetter(q) } }
    @Test func removeDeadLetters() async throws { try await withQueue { q, _ in try await QueueContract.removeDeadLetters(q) } }
    @Test func blockingReadWakesOnPublish() async throws { try await withQueue { q, _ in try await QueueContract.blockingReadWakesOnPublish(q) } }
    @Test func deliveryCountGrowsWithEachTakeover() async throws {
        try await withQueue(lease: .milliseconds(300)) { q, _ in try await QueueContract.deliveryCountGrowsWithEachTakeover(q, lease: .milliseconds(300)) }
    }
    @Test func acknowledgedEntriesAreDeleted() async throws { try await withQueue { q, _ in try await QueueContract.acknowledgedEntriesAreDeleted(q) } }
    @Test func fieldsRoundTrip() async throws { try await withQueue { q, _ in try await QueueContract.fieldsRoundTrip(q) } }
    @Test func purgeDeadLetters() async throws { try await withQueue { q, _ in try await QueueContract.purgeDeadLetters(q) } }
    @Test func oldestPendingAge() async throws { try await withQueue { q, _ in try await QueueContract.oldestPendingAge(q) } }
}

@Suite("Redis Streams queue: Redis specifics", .timeLimit(.minutes(2)))
struct RedisStreamQueueTests {
    @Test("entries are plain Redis stream entries under the given names, with one group")
    func layout() async throws {
        try await withQueue { q, _ in
            try await q.createGroup(stream: "sms_stream", group: "workers")
            try await q.publish(stream: "sms_stream", entries: [["_id": "a", "msg": "hi"]])
            #expect(try await q.client.xlen("sms_stream") == 1)
            let groups = try await q.client.xinfoGroups("sms_stream")
            #expect(groups.map(\.name) == ["workers"])
            let raw = try await q.client.xrange("sms_stream")
            #expect(raw.first?[field: "msg"] == "hi" && raw.first?[field: "_id"] == "a")
        }
    }

    @Test("consumers idle past the retention with nothing pending are removed; one holding entries stays")
    func idleConsumersRemoved() async throws {
        try await withQueue { q, _ in
            try await q.createGroup(stream: "c_stream", group: "workers")
            try await q.publish(stream: "c_stream", entries: [["n": "1"], ["n": "2"]])
            let done = try await q.read(stream: "c_stream", group: "workers", consumer: "gone-1", count: 1, block: .zero)
            try await q.ack(stream: "c_stream", group: "workers", ids: done.map(\.id))
            _ = try await q.read(stream: "c_stream", group: "workers", consumer: "crashed-2", count: 1, block: .zero)
            try await Task.sleep(for: .milliseconds(3000))
            try await q.publish(stream: "c_stream", entries: [["n": "3"]])
            let fresh = try await q.read(stream: "c_stream", group: "workers", consumer: "alive-3", count: 1, block: .zero)
            try await q.ack(stream: "c_stream", group: "workers", ids: fresh.map(\.id))
            #expect(Set(try await q.client.xinfoConsumers("c_stream", group: "workers").map(\.name)) == ["gone-1", "crashed-2", "alive-3"])
            q.consumerRetention = .seconds(2)  // the first two idle 3 s; alive-3 a moment
            try await q.createGroup(stream: "c_stream", group: "workers")  // what every reader does at start
            let left = try await q.client.xinfoConsumers("c_stream", group: "workers")
            #expect(Set(left.map(\.name)) == ["crashed-2", "alive-3"])
            #expect(left.first { $0.name == "crashed-2" }?.pending == 1)
        }
    }

    @Test("a consumer group that disappeared is created again on the next read")
    func groupRecreated() async throws {
        try await withQueue { q, _ in
            try await q.createGroup(stream: "g_stream", group: "workers")
            try await q.publish(stream: "g_stream", entries: [["x": "1"]])
            try await q.client.xgroupDestroy("g_stream", group: "workers")
            let got = try await q.read(stream: "g_stream", group: "workers", consumer: "c", count: 10, block: .zero)
            #expect(got.map { $0.fields["x"] } == ["1"])
        }
    }

    @Test("the pending list is scanned at most once per claimInterval once a scan found nothing, not before every read")
    func claimScansAreSpaced() async throws {
        // A lease far longer than the test: nothing expires, whatever the load.
        try await withQueue(lease: .seconds(120)) { q, _ in
            #expect(q.claimInterval == .seconds(1))
            try await q.createGroup(stream: "s_stream", group: "g")
            try await q.publish(stream: "s_stream", entries: [["n": "0"]])
            let start = ContinuousClock.now
            #expect(try await q.read(stream: "s_stream", group: "g", consumer: "holder", count: 1, block: .zero).count == 1)
            #expect(try await xautoclaimCalls(q) == 1)
            // Twenty reads: one scan per read would make 21; allowed is the first plus one per claimInterval since.
            for _ in 0..<20 { #expect(try await q.read(stream: "s_stream", group: "g", consumer: "other", count: 1, block: .zero).isEmpty) }
            let allowed = 1 + Int(((ContinuousClock.now - start) / q.claimInterval).rounded(.up))
            #expect(try await xautoclaimCalls(q) <= allowed)
        }
    }

    @Test("with spaced scans, a dead holder's entry is still taken over once its lease has run out, delivered a second time")
    func takeoverWithSpacedScans() async throws {
        try await withQueue(lease: .seconds(1)) { q, _ in
            try await q.createGroup(stream: "t_stream", group: "g")
            try await q.publish(stream: "t_stream", entries: [["n": "0"]])
            // Taken before the holder's read: Redis counts the entry's idle time from its delivery, which the
            // reply reaches us after (under load, by tens of milliseconds).
            let start = ContinuousClock.now
            let held = try await q.read(stream: "t_stream", group: "g", consumer: "dead", count: 1, block: .zero)
            #expect(held.count == 1)
            var taken: [QueueEntry] = []
            while taken.isEmpty, ContinuousClock.now - start < .seconds(30) {
                taken = try await q.read(stream: "t_stream", group: "g", consumer: "alive", count: 1, block: .milliseconds(20))
            }
            #expect(taken.map(\.id) == held.map(\.id))
            #expect(taken.first?.deliveryCount == 2)
            #expect(ContinuousClock.now - start >= .seconds(1))
        }
    }

    @Test("a takeover reports the exact delivery count from XPENDING, and skips entries acknowledged meanwhile")
    func takeoverCounts() async throws {
        try await withQueue(lease: .milliseconds(200)) { q, _ in
            try await q.createGroup(stream: "c_stream", group: "g")
            try await q.publish(stream: "c_stream", entries: (0..<4).map { ["n": "\($0)"] })
            let held = try await q.read(stream: "c_stream", group: "g", consumer: "dead", count: 4, block: .zero)
            #expect(held.count == 4)
            // The holder was slow, not dead: it acknowledges two just before the takeover.
            try await Task.sleep(for: .milliseconds(300))
            try await q.ack(stream: "c_stream", group: "g", ids: [held[0].id, held[2].id])
            let taken = try await q.read(stream: "c_stream", group: "g", consumer: "alive", count: 10, block: .zero)
            #expect(taken.map(\.id) == [held[1].id, held[3].id])
            #expect(taken.allSatisfy { $0.deliveryCount == 2 })
            let pending = try await q.client.xpending("c_stream", group: "g", ids: taken.map(\.id))
            #expect(pending.allSatisfy { $0.consumer == "alive" && $0.deliveryCount == 2 })
        }
    }

    @Test("with Redis down, calls fail fast with a connection error, and work again once it is back")
    func redisDown() async throws {
        try await withQueue { q, server in
            try await q.createGroup(stream: "r_stream", group: "g")
            try await q.publish(stream: "r_stream", entries: [["x": "1"]])
            await server.terminate()
            for _ in 0..<3 {
                let started = ContinuousClock.now
                await #expect(throws: RedisError.self) { try await q.publish(stream: "r_stream", entries: [["x": "2"]]) }
                #expect(ContinuousClock.now - started < .seconds(3))
            }
            let started = ContinuousClock.now
            await #expect(throws: RedisError.self) { try await q.read(stream: "r_stream", group: "g", consumer: "c", count: 1, block: .milliseconds(100)) }
            #expect(ContinuousClock.now - started < .seconds(3))
            await #expect(throws: RedisError.self) { try await q.ping() }
            try await server.launch()  // empty: the server keeps no data in these tests
            try await eventuallyTrue { (try? await q.ping()) != nil }
            try await q.publish(stream: "r_stream", entries: [["x": "3"]])
            let got = try await q.read(stream: "r_stream", group: "g", consumer: "c", count: 10, block: .zero)
            #expect(got.map { $0.fields["x"] } == ["3"])
        }
    }

    @Test("info counts length, pending and dead letters; a stream without a group has nothing pending")
    func info() async throws {
        try await withQueue { q, _ in
            let empty = try await q.info(stream: "nothing", group: "g")
            #expect(empty == SwitchboardCore.StreamBacklog(stream: "nothing", length: 0, pending: 0, deadLetters: 0))
            try await q.createGroup(stream: "i_stream", group: "g")
            try await q.publish(stream: "i_stream", entries: (0..<3).map { ["n": "\($0)"] })
            let got = try await q.read(stream: "i_stream", group: "g", consumer: "c", count: 2, block: .zero)
            try await q.deadLetter(stream: "i_stream", group: "g", entries: [got[0]], reason: "why")
            var info = try await q.info(stream: "i_stream", group: "g")
            #expect(info.oldestPendingAge != nil)
            info.oldestPendingAge = nil
            #expect(info == SwitchboardCore.StreamBacklog(stream: "i_stream", length: 2, pending: 1, deadLetters: 1))
        }
    }
}

/// Polls `condition` every 50 ms for up to 10 s.
func eventuallyTrue(_ condition: () async -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(60)  // generous: the condition is what ends the wait
    while ContinuousClock.now < deadline {
        if await condition() { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    Issue.record("condition not met within 60 s")
}

@Suite("Redis status feed: the feed contract", .timeLimit(.minutes(1)))
struct RedisStatusFeedContractTests {
    func withFeed(_ body: (RedisStatusFeed) async throws -> Void) async throws {
        try await withQueue { q, _ in try await body(RedisStatusFeed(client: q.client, retention: .seconds(3600), clock: { Timestamp(milliseconds: Int64(Date().timeIntervalSince1970 * 1000)) })) }
    }

    @Test func orderAndPositions() async throws { try await withFeed { try await StatusFeedContract.orderAndPositions($0) } }
    @Test func blockingReadWakes() async throws { try await withFeed { try await StatusFeedContract.blockingReadWakes($0) } }
    @Test func metadata() async throws { try await withFeed { try await StatusFeedContract.metadata($0) } }

    /// Every XADD trims what is older than the retention (MINID, approximate: Redis drops whole nodes): the
    /// command carries it, and an exact trim at the same cutoff leaves only the newer entries.
    @Test func trimByAge() async throws {
        try await withQueue { q, _ in
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            _ = try await q.client.send(command: ["XADD", StreamNames.status, "\(now - 7_200_000)-0", "communicationId", "old", "service", "router", "status", "pending", "type", "sms", "timestamp", "2026-01-01T00:00:00Z"])
            let feed = RedisStatusFeed(client: q.client, retention: .seconds(3600), clock: { Timestamp(milliseconds: now) })
            #expect(feed.retentionTrim == .minID("\(now - 3_600_000)-0"))
            try await feed.append([StatusFeedContract.record("new", .pending, at: now)])
            _ = try await q.client.send(command: ["XTRIM", StreamNames.status, "MINID", "=", "\(now - 3_600_000)-0"])
            let left = try await feed.read(after: nil, count: 10, block: .zero)
            #expect(left.map(\.record.communicationId) == ["new"])
        }
    }
}
