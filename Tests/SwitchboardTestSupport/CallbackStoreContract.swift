import Foundation
import Testing
import SwitchboardCore

/// Behaviour every `CallbackStore` must show. The SQLite store (`SwitchboardSQLiteTests`) and the MongoDB store
/// (`SwitchboardMongoTests`) run every check, each on an empty store.
public enum CallbackStoreContract {
    public static func endpoint(_ id: String, url: String = "https://example.com/hook", key: String? = nil, isDefault: Bool = false, at: Int64 = 1000) -> CallbackEndpoint {
        CallbackEndpoint(id: id, url: url, events: [.sent, .failed], types: [.sms], keyID: key, isDefault: isDefault, description: "d", secret: "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0", createdAt: Timestamp(milliseconds: at))
    }

    public static func delivery(_ endpointID: String, _ major: UInt64, _ minor: UInt64 = 0, due: Int64 = 2000, perMessage: Bool = false) -> CallbackDelivery {
        let p = FeedPosition(major: major, minor: minor)
        return CallbackDelivery(
            id: CallbackDelivery.id(endpointID: endpointID, position: p, perMessage: perMessage), endpointID: endpointID, position: p, url: "https://example.com/hook",
            payload: #"{"type":"communication.sent"}"#, eventType: "communication.sent", communicationID: "c\(major)", nextAttemptAt: Timestamp(milliseconds: due), createdAt: Timestamp(milliseconds: due))
    }

    /// Endpoints are created, read back whole (their secret too: it signs), listed oldest first, updated without
    /// losing the secret, refused twice under one id, and deleted with their deliveries.
    public static func endpoints(_ store: any CallbackStore) async throws {
        let a = endpoint("whep_a", key: "key_1", isDefault: true, at: 1000)
        try await store.createEndpoint(a)
        try await store.createEndpoint(endpoint("whep_b", at: 2000))
        #expect(try await store.endpoint(id: "whep_a") == a)
        #expect(try await store.endpoint(id: "whep_missing") == nil)
        #expect(try await store.endpoints().map(\.id) == ["whep_a", "whep_b"])
        await #expect(throws: DuplicateCallbackEndpoint.self) { try await store.createEndpoint(endpoint("whep_a")) }
        var changed = a
        changed.url = "https://example.org/other"
        changed.events = []
        changed.types = [.email, .whatsapp]
        changed.enabled = false
        changed.description = nil
        changed.disabledReason = "failing"
        changed.updatedAt = Timestamp(milliseconds: 5000)
        changed.secret = "whsec_not-this-one"
        #expect(try await store.updateEndpoint(changed))
        var expected = changed
        expected.secret = a.secret
        #expect(try await store.endpoint(id: "whep_a") == expected)
        #expect(try await store.updateEndpoint(endpoint("whep_missing")) == false)
        try await store.enqueue([delivery("whep_b", 1), delivery("whep_a", 1)], cursor: FeedPosition(major: 1, minor: 0))
        #expect(try await store.deleteEndpoint(id: "whep_b"))
        #expect(try await store.deleteEndpoint(id: "whep_b") == false)
        #expect(try await store.deliveries(endpointID: "whep_b", limit: 10, cursor: nil).items.isEmpty)
        #expect(try await store.deliveries(endpointID: "whep_a", limit: 10, cursor: nil).items.count == 1)
    }

    /// The cursor starts absent, moves with each enqueue and never backwards; deliveries enqueued again (a page
    /// read twice, two routers) are not duplicated, and an attempt already recorded is kept.
    public static func cursorAndIdempotence(_ store: any CallbackStore) async throws {
        #expect(try await store.cursor() == nil)
        let first = [delivery("whep_a", 5, 0), delivery("whep_a", 5, 1), delivery("whep_a", 5, 1, perMessage: true)]
        try await store.enqueue(first, cursor: FeedPosition(major: 5, minor: 1))
        #expect(try await store.cursor() == FeedPosition(major: 5, minor: 1))
        let claimed = try await store.claimDue(now: Timestamp(milliseconds: 3000), lease: .seconds(30), limit: 1)
        try #require(claimed.count == 1)
        try await store.record(CallbackAttemptRecord(deliveryID: claimed[0].id, endpointID: "whep_a", at: Timestamp(milliseconds: 3000), state: .delivered, nextAttemptAt: Timestamp(milliseconds: 3000), statusCode: 204, durationMs: 12, error: nil))
        // The same page again (a crash before the cursor moved, or another router), and an older cursor.
        try await store.enqueue(first, cursor: FeedPosition(major: 4, minor: 9))
        #expect(try await store.cursor() == FeedPosition(major: 5, minor: 1))
        let all = try await store.deliveries(endpointID: "whep_a", limit: 10, cursor: nil).items
        #expect(all.count == 3)
        #expect(all.filter { $0.state == .delivered }.count == 1)
        try await store.enqueue([], cursor: FeedPosition(major: 6, minor: 0))
        #expect(try await store.cursor() == FeedPosition(major: 6, minor: 0))
        try await store.enqueue([], cursor: FeedPosition(major: 6, minor: 3))
        #expect(try await store.cursor() == FeedPosition(major: 6, minor: 3))
    }

    /// Only due pending deliveries are claimed, oldest due first; a claim leases (not claimed again until the
    /// lease ends); attempts are recorded (count, code, duration, error, state); the endpoint's `failingSince` is
    /// set by the first failure and cleared by a success.
    public static func claimAndRecord(_ store: any CallbackStore) async throws {
        try await store.createEndpoint(endpoint("whep_a"))
        try await store.enqueue([delivery("whep_a", 1, due: 3000), delivery("whep_a", 2, due: 1000), delivery("whep_a", 3, due: 90_000)], cursor: FeedPosition(major: 3, minor: 0))
        let now = Timestamp(milliseconds: 5000)
        let claimed = try await store.claimDue(now: now, lease: .seconds(10), limit: 10)
        #expect(claimed.map(\.position.major) == [2, 1])
        #expect(try await store.claimDue(now: now, lease: .seconds(10), limit: 10).isEmpty)
        // The lease ends: claimed again.
        #expect(Set(try await store.claimDue(now: Timestamp(milliseconds: 15_001), lease: .seconds(10), limit: 10).map(\.position.major)) == [1, 2])
        let d2 = claimed[0]
        try await store.record(CallbackAttemptRecord(deliveryID: d2.id, endpointID: "whep_a", at: Timestamp(milliseconds: 16_000), state: .pending, nextAttemptAt: Timestamp(milliseconds: 20_000), statusCode: 503, durationMs: 40, error: "answered 503"))
        #expect(try await store.endpoint(id: "whep_a")?.failingSince == Timestamp(milliseconds: 16_000))
        try await store.record(CallbackAttemptRecord(deliveryID: claimed[1].id, endpointID: "whep_a", at: Timestamp(milliseconds: 17_000), state: .failed, nextAttemptAt: Timestamp(milliseconds: 17_000), statusCode: 400, durationMs: 5, error: "answered 400: not retried"))
        #expect(try await store.endpoint(id: "whep_a")?.failingSince == Timestamp(milliseconds: 16_000))
        var x = try #require(try await store.delivery(endpointID: "whep_a", id: d2.id))
        #expect(x.state == .pending && x.attempts == 1 && x.lastStatusCode == 503 && x.lastDurationMs == 40 && x.lastError == "answered 503" && x.nextAttemptAt == Timestamp(milliseconds: 20_000))
        #expect(try await store.claimDue(now: Timestamp(milliseconds: 19_999), lease: .seconds(10), limit: 10).map(\.position.major) == [])
        let again = try await store.claimDue(now: Timestamp(milliseconds: 20_000), lease: .seconds(10), limit: 10)
        #expect(again.map(\.position.major) == [2])
        try await store.record(CallbackAttemptRecord(deliveryID: d2.id, endpointID: "whep_a", at: Timestamp(milliseconds: 21_000), state: .delivered, nextAttemptAt: Timestamp(milliseconds: 21_000), statusCode: 200, durationMs: 7, error: nil))
        x = try #require(try await store.delivery(endpointID: "whep_a", id: d2.id))
        #expect(x.state == .delivered && x.attempts == 2 && x.lastStatusCode == 200 && x.lastError == nil)
        #expect(x.history == [
            CallbackAttempt(at: Timestamp(milliseconds: 16_000), statusCode: 503, durationMs: 40, error: "answered 503"),
            CallbackAttempt(at: Timestamp(milliseconds: 21_000), statusCode: 200, durationMs: 7, error: nil),
        ])
        #expect(try await store.endpoint(id: "whep_a")?.failingSince == nil)
        // A delivery no longer pending is not changed by a late record (a sender whose lease ran out).
        try await store.record(CallbackAttemptRecord(deliveryID: d2.id, endpointID: "whep_a", at: Timestamp(milliseconds: 22_000), state: .failed, nextAttemptAt: Timestamp(milliseconds: 22_000), statusCode: 500, durationMs: 7, error: "late"))
        #expect(try await store.delivery(endpointID: "whep_a", id: d2.id)?.state == .delivered)
        #expect(try await store.delivery(endpointID: "whep_other", id: d2.id) == nil)
    }

    /// Deliveries are listed newest first in pages; a failed one is retried by hand (pending, due now, horizon
    /// from now); a delivered one is not changed by a retry.
    public static func listAndRetry(_ store: any CallbackStore) async throws {
        try await store.createEndpoint(endpoint("whep_a"))
        try await store.createEndpoint(endpoint("whep_ab"))
        try await store.enqueue((1...5).map { delivery("whep_a", UInt64($0)) } + [delivery("whep_ab", 9)], cursor: FeedPosition(major: 9, minor: 0))
        let first = try await store.deliveries(endpointID: "whep_a", limit: 2, cursor: nil)
        #expect(first.items.map(\.position.major) == [5, 4])
        let cursor = try #require(first.nextCursor)
        let second = try await store.deliveries(endpointID: "whep_a", limit: 2, cursor: cursor)
        #expect(second.items.map(\.position.major) == [3, 2])
        let third = try await store.deliveries(endpointID: "whep_a", limit: 2, cursor: second.nextCursor)
        #expect(third.items.map(\.position.major) == [1] && third.nextCursor == nil)
        await #expect(throws: InvalidCursor.self) { _ = try await store.deliveries(endpointID: "whep_a", limit: 2, cursor: "nonsense") }
        let claimed = try await store.claimDue(now: Timestamp(milliseconds: 2000), lease: .seconds(300), limit: 10)
        let one = try #require(claimed.first { $0.position.major == 1 })
        let two = try #require(claimed.first { $0.position.major == 2 })
        try await store.record(CallbackAttemptRecord(deliveryID: one.id, endpointID: "whep_a", at: Timestamp(milliseconds: 3000), state: .failed, nextAttemptAt: Timestamp(milliseconds: 3000), statusCode: 410, durationMs: 3, error: "answered 410: not retried"))
        try await store.record(CallbackAttemptRecord(deliveryID: two.id, endpointID: "whep_a", at: Timestamp(milliseconds: 3000), state: .delivered, nextAttemptAt: Timestamp(milliseconds: 3000), statusCode: 200, durationMs: 3, error: nil))
        let retried = try #require(try await store.retry(endpointID: "whep_a", id: one.id, now: Timestamp(milliseconds: 50_000)))
        #expect(retried.state == .pending && retried.nextAttemptAt == Timestamp(milliseconds: 50_000) && retried.since == Timestamp(milliseconds: 50_000) && retried.attempts == 1)
        #expect(try await store.retry(endpointID: "whep_a", id: two.id, now: Timestamp(milliseconds: 50_000))?.state == .delivered)
        #expect(try await store.retry(endpointID: "whep_a", id: "whep_a_missing", now: Timestamp(milliseconds: 50_000)) == nil)
        #expect(try await store.claimDue(now: Timestamp(milliseconds: 50_000), lease: .seconds(30), limit: 10).map(\.id) == [one.id])
    }

    /// Two senders claiming at once never take the same delivery.
    public static func concurrentClaims(_ store: any CallbackStore) async throws {
        try await store.enqueue((1...40).map { delivery("whep_a", UInt64($0)) }, cursor: FeedPosition(major: 40, minor: 0))
        let taken = try await withThrowingTaskGroup(of: [String].self) { group in
            for _ in 0..<4 {
                group.addTask {
                    var mine: [String] = []
                    while true {
                        let got = try await store.claimDue(now: Timestamp(milliseconds: 5000), lease: .seconds(60), limit: 3)
                        if got.isEmpty { return mine }
                        mine += got.map(\.id)
                    }
                }
            }
            var all: [String] = []
            for try await ids in group { all += ids }
            return all
        }
        #expect(taken.count == 40 && Set(taken).count == 40)
    }

    /// Retention: finished deliveries last changed before the cutoff are deleted; pending ones are kept.
    public static func purge(_ store: any CallbackStore & Purging) async throws {
        try await store.enqueue([delivery("whep_a", 1, due: 1000), delivery("whep_a", 2, due: 1000), delivery("whep_a", 3, due: 1000)], cursor: FeedPosition(major: 3, minor: 0))
        let claimed = try await store.claimDue(now: Timestamp(milliseconds: 1000), lease: .seconds(60), limit: 2)
        try #require(claimed.count == 2)
        try await store.record(CallbackAttemptRecord(deliveryID: claimed[0].id, endpointID: "whep_a", at: Timestamp(milliseconds: 2000), state: .delivered, nextAttemptAt: Timestamp(milliseconds: 2000), statusCode: 200, durationMs: 1, error: nil))
        try await store.record(CallbackAttemptRecord(deliveryID: claimed[1].id, endpointID: "whep_a", at: Timestamp(milliseconds: 9000), state: .failed, nextAttemptAt: Timestamp(milliseconds: 9000), statusCode: 400, durationMs: 1, error: "answered 400"))
        #expect(try await store.purge(before: Timestamp(milliseconds: 5000)) == 1)
        let left = try await store.deliveries(endpointID: "whep_a", limit: 10, cursor: nil).items
        #expect(Set(left.map(\.id)) == Set([claimed[1].id, delivery("whep_a", 3).id]))
        #expect(try await store.purge(before: Timestamp(milliseconds: 100_000)) == 1)
        #expect(try await store.deliveries(endpointID: "whep_a", limit: 10, cursor: nil).items.map(\.state) == [.pending])
    }

    /// A delivery keeps its last `CallbackAttempt.kept` attempts, oldest first; a connection failure has no code.
    public static func attemptHistory(_ store: any CallbackStore) async throws {
        try await store.enqueue([delivery("whep_a", 1, due: 0)], cursor: FeedPosition(major: 1, minor: 0))
        let id = delivery("whep_a", 1).id
        for i in 0..<(CallbackAttempt.kept + 3) {
            let at = Timestamp(milliseconds: Int64(1000 * (i + 1)))
            #expect(try await store.claimDue(now: at, lease: .seconds(1), limit: 1).map(\.id) == [id])
            try await store.record(CallbackAttemptRecord(deliveryID: id, endpointID: "whep_a", at: at, state: .pending, nextAttemptAt: at, statusCode: i == 0 ? nil : 500, durationMs: i, error: i == 0 ? "connection refused" : "answered 500"))
        }
        let d = try #require(try await store.delivery(endpointID: "whep_a", id: id))
        #expect(d.attempts == CallbackAttempt.kept + 3 && d.history.count == CallbackAttempt.kept)
        #expect(d.history.map(\.durationMs) == Array(3..<(CallbackAttempt.kept + 3)))
        #expect(d.history.first?.statusCode == 500 && d.history.last?.at == Timestamp(milliseconds: Int64(1000 * (CallbackAttempt.kept + 3))))
    }
}
