import Foundation
import Logging
import Synchronization
import Testing
import SwitchboardCore
import SwitchboardTestSupport
import SwitchboardSQLite

@testable import SwitchboardApp

/// A clock the test moves by hand.
final class ManualClock: Sendable {
    private let value: Mutex<Duration>
    init(_ start: Duration = .seconds(1000)) { value = Mutex(start) }
    var now: Duration { value.withLock { $0 } }
    func advance(_ d: Duration) { value.withLock { $0 += d } }
    var monotonic: @Sendable () -> Duration { { self.now } }
    /// The same time as a wall-clock timestamp (for the audit log).
    var wall: @Sendable () -> Timestamp { { Timestamp(milliseconds: 1_767_225_600_000 + self.now.components.seconds * 1000 + self.now.components.attoseconds / 1_000_000_000_000_000) } }
}

@Suite("Local rate limiter: per-process buckets, bounded memory")
struct LocalRateLimiterTests {
    @Test("burst then refusal, refill at the rate, headers' values, each bucket on its own")
    func burstRefusalRefill() async throws {
        let clock = ManualClock()
        let limiter = LocalRateLimiter(now: clock.monotonic)
        let limit = RateLimit(rate: 10, burst: 3)
        var remaining: [Int] = []
        for _ in 0..<3 {
            let d = try await limiter.take("key-a", limit: limit)
            #expect(d.allowed)
            remaining.append(d.remaining)
        }
        #expect(remaining == [2, 1, 0])
        let refused = try await limiter.take("key-a", limit: limit)
        #expect(!refused.allowed && refused.retryAfterSeconds == 1 && refused.limit == 3 && refused.resetSeconds == 1)
        // Another key has its own bucket.
        #expect(try await limiter.take("key-b", limit: limit).allowed)
        clock.advance(.milliseconds(100))
        #expect(try await limiter.take("key-a", limit: limit).allowed)
        #expect(!(try await limiter.take("key-a", limit: limit).allowed))
        clock.advance(.seconds(10))
        let afterIdle = try await limiter.take("key-a", limit: limit)
        #expect(afterIdle.allowed && afterIdle.remaining == 2)
    }

    @Test("concurrent takes on one bucket never allow more than the burst")
    func concurrent() async throws {
        let limiter = LocalRateLimiter(now: ManualClock().monotonic)
        let limit = RateLimit(rate: 1, burst: 50)
        let allowed = try await withThrowingTaskGroup(of: Bool.self) { group in
            for _ in 0..<200 { group.addTask { try await limiter.take("k", limit: limit).allowed } }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(allowed == 50)
    }

    @Test("idle buckets are forgotten once full again; a flood of names stays within the capacity")
    func boundedMemory() async throws {
        let clock = ManualClock()
        let limiter = LocalRateLimiter(capacity: 100, sweepInterval: .seconds(10), now: clock.monotonic)
        let limit = RateLimit(rate: 1, burst: 5)
        for i in 0..<50 { _ = try await limiter.take("k\(i)", limit: limit) }
        #expect(limiter.bucketCount == 50)
        clock.advance(.seconds(11))  // every bucket full again (1 token used, 1/s) and a sweep due
        _ = try await limiter.take("fresh", limit: limit)
        #expect(limiter.bucketCount == 1)
        // 1,000 distinct names at one instant (none full): never more than the capacity held.
        for i in 0..<1000 {
            _ = try await limiter.take("flood\(i)", limit: limit)
            #expect(limiter.bucketCount <= 100)
        }
        // The newest are kept: the last name is still limited.
        for _ in 0..<4 { _ = try await limiter.take("flood999", limit: limit) }
        #expect(!(try await limiter.take("flood999", limit: limit).allowed))
    }
}

@Suite("Failed authentication per client address")
struct AuthFailureLimiterTests {
    @Test("a burst of failures, then refused until one is forgiven; addresses are apart; success costs nothing")
    func failures() {
        let clock = ManualClock()
        let limiter = AuthFailureLimiter(limit: RateLimit(rate: 0.5, burst: 3), now: clock.monotonic)
        for _ in 0..<3 {
            #expect(limiter.allowFailure("10.0.0.1").allowed)
            #expect(limiter.recordFailure("10.0.0.1").allowed)
        }
        let gate = limiter.allowFailure("10.0.0.1")
        #expect(!gate.allowed && gate.retryAfterSeconds == 2)
        #expect(!limiter.recordFailure("10.0.0.1").allowed)
        #expect(limiter.allowFailure("10.0.0.2").allowed)
        // Asking is free: many asks take nothing.
        for _ in 0..<20 { _ = limiter.allowFailure("10.0.0.3") }
        #expect(limiter.recordFailure("10.0.0.3").remaining == 2)
        clock.advance(.seconds(2))
        #expect(limiter.allowFailure("10.0.0.1").allowed)
    }

    @Test("the default: 10 failures at once, then one every 6 s")
    func defaults() {
        let clock = ManualClock()
        let limiter = AuthFailureLimiter(now: clock.monotonic)
        for _ in 0..<10 { limiter.recordFailure("::1") }
        #expect(!limiter.allowFailure("::1").allowed)
        #expect(limiter.allowFailure("::1").retryAfterSeconds == 6)
        clock.advance(.seconds(6))
        #expect(limiter.allowFailure("::1").allowed)
    }
}

/// A search index that refuses while `down` is set, else forwards.
final class SwitchableIndex: SearchIndex {
    let base: any SearchIndex
    let down = Mutex(false)
    init(_ base: any SearchIndex) { self.base = base }
    struct Down: Error {}
    func index(communications: [CommunicationDocument]) async throws { try await base.index(communications: communications) }
    func index(logs: [LogRecord]) async throws {
        if down.withLock({ $0 }) { throw Down() }
        try await base.index(logs: logs)
    }
    func search(_ query: CommunicationQuery) async throws -> Page<CommunicationDocument> { try await base.search(query) }
    func search(_ query: LogQuery) async throws -> Page<LogRecord> { try await base.search(query) }
    func ping() async throws { try await base.ping() }
}

@Suite("Audit log: records of service auth in the process log and the logs index (SQLite)")
struct AuditLogTests {
    func withIndex(_ body: (SQLiteSearchIndex) async throws -> Void) async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-audit-\(UUID().uuidString)")
        let database = try SQLiteDatabase(options: SQLiteOptions(path: dir.appendingPathComponent("a.sqlite").path, synchronous: .normal))
        do {
            try await body(SQLiteSearchIndex(database: database))
        } catch {
            await database.close()
            try? FileManager.default.removeItem(at: dir)
            throw error
        }
        await database.close()
        try? FileManager.default.removeItem(at: dir)
    }

    @Test("key created, revoked, first used (once) and admin actions are records of service auth; no secret anywhere")
    func keyEvents() async throws {
        try await withIndex { index in
            let lines = LogCapture()
            let clock = ManualClock()
            let audit = AuditLog(index: index, logger: lines.logger, clock: clock.wall)
            let secret = "sb_live_" + String(repeating: "x", count: 43)
            audit.keyCreated(id: "key_1", name: "ci", scopes: [.send, .read], rate: 5, burst: 10, test: true, by: "cli")
            clock.advance(.seconds(1))
            audit.keyFirstUsed(id: "key_1", address: "10.1.2.3")
            audit.keyFirstUsed(id: "key_1", address: "10.1.2.3")  // once per key
            clock.advance(.seconds(1))
            audit.adminAction(key: "key_admin", method: "DELETE", path: "/api/v1/keys/key_1?x=\(secret)", status: 204)
            audit.keyRevoked(id: "key_1", by: "key_admin")
            // An unrelated communication log record is not listed under service=auth.
            try await index.index(logs: [LogRecord(communicationId: "c1", service: "router", status: .queued, type: .email, from: "a@b.c", to: "d@e.f", msg: "hi", error: nil, attempt: 0, provider: nil, timestamp: clock.wall())])
            // Nothing reaches the index before a flush (the service's, every second): no caller waits for it.
            #expect(try await index.search(LogQuery(service: AuditLog.service)).items.isEmpty)
            #expect(audit.pendingCount == 4)
            await audit.flush()
            #expect(audit.pendingCount == 0)

            let page = try await index.search(LogQuery(service: AuditLog.service))
            #expect(page.items.map(\.msg) == ["key_revoked", "admin_action", "key_first_used", "key_created"])
            #expect(page.items.allSatisfy { $0.service == "auth" && $0.status == nil && $0.type == nil })
            let created = try #require(page.items.last)
            #expect(created.communicationId == "key_1" && created.from == "cli")
            #expect(created.error == "key created: name=ci scopes=send,read rate=5.0 burst=10 test")
            let admin = page.items[1]
            #expect(admin.from == "key_admin" && admin.to == "/api/v1/keys/key_1")
            #expect(admin.error == "admin action: DELETE /api/v1/keys/key_1 answered 204")
            #expect(page.items[2].from == "10.1.2.3")
            // By subject: the trail of one key.
            #expect(try await index.search(LogQuery(communicationId: "key_1", service: "auth")).items.count == 3)
            // Full text (the details are the searchable part).
            #expect(try await index.search(LogQuery(service: "auth", text: "revoked")).items.map(\.msg) == ["key_revoked"])

            // The process log: one notice per event, tagged, and the secret nowhere.
            let audits = lines.all.filter { $0.metadata["audit"] != nil }
            #expect(audits.map { "\($0.metadata["audit"]!)" } == ["key_created", "key_first_used", "admin_action", "key_revoked"])
            #expect(audits.allSatisfy { $0.level == .notice })
            #expect(!lines.all.contains { "\($0.message) \($0.metadata)".contains(secret) })
            #expect(!page.items.contains { "\($0)".contains(secret) })
        }
    }

    @Test("authentication failures: one record and one log line per address and minute, written when the minute ends")
    func failuresAggregated() async throws {
        try await withIndex { index in
            let lines = LogCapture()
            let clock = ManualClock(.seconds(60 * 1000))  // at the start of a minute
            let audit = AuditLog(index: index, logger: lines.logger, clock: clock.wall)
            for _ in 0..<500 { audit.authFailure(address: "203.0.113.9", reason: "unknown key") }
            for _ in 0..<3 { audit.authFailure(address: "203.0.113.9", reason: "missing key") }
            audit.authFailure(address: "198.51.100.7", reason: "revoked key")
            await audit.flush()  // the minute has not ended: nothing yet
            #expect(try await index.search(LogQuery(service: "auth")).items.isEmpty)
            clock.advance(.seconds(61))
            audit.authFailure(address: "203.0.113.9", reason: "unknown key")  // the next minute
            await audit.flush()
            let page = try await index.search(LogQuery(service: "auth"))
            #expect(page.items.count == 2)
            let flood = try #require(page.items.first { $0.communicationId == "203.0.113.9" })
            #expect(flood.msg == "auth_failures" && flood.attempt == 503 && flood.from == "203.0.113.9")
            #expect(flood.error?.hasPrefix("503 authentication failures from 203.0.113.9 in the minute from ") == true)
            #expect(flood.error?.hasSuffix(": missing key ×3, unknown key ×500") == true)
            #expect(page.items.first { $0.communicationId == "198.51.100.7" }?.attempt == 1)
            let warnings = lines.all.filter { $0.level == .warning }
            #expect(warnings.count == 2)
            // Shutdown writes the minute in progress.
            await audit.flush(all: true)
            #expect(try await index.search(LogQuery(communicationId: "203.0.113.9", service: "auth")).items.map(\.attempt) == [1, 503])
        }
    }

    @Test("a flood of distinct addresses is bounded: past the limit they are counted under `other`")
    func manyAddresses() async throws {
        try await withIndex { index in
            let audit = AuditLog(index: index, logger: LogCapture().logger, clock: ManualClock().wall, maxAddressesPerMinute: 5)
            for i in 0..<100 { audit.authFailure(address: "10.0.0.\(i)", reason: "unknown key") }
            await audit.flush(all: true)
            let items = try await index.search(LogQuery(service: "auth", limit: 100)).items
            #expect(items.count == 6)
            #expect(items.first { $0.communicationId == "other" }?.attempt == 95)
            #expect(items.map(\.attempt).reduce(0, +) == 100)
        }
    }

    @Test("records the index refuses are kept and written at the next flush")
    func indexDown() async throws {
        try await withIndex { sqlite in
            let index = SwitchableIndex(sqlite)
            let lines = LogCapture()
            let audit = AuditLog(index: index, logger: lines.logger, clock: ManualClock().wall)
            index.down.withLock { $0 = true }
            audit.keyCreated(id: "key_9", name: "n", scopes: [.admin], by: "bootstrap")
            await audit.flush()
            #expect(audit.pendingCount == 1)
            #expect(lines.all.contains { $0.level == .warning && $0.message.contains("not indexed yet") })
            #expect(lines.all.contains { $0.metadata["audit"] == "key_created" })  // the process log has it at once
            index.down.withLock { $0 = false }
            await audit.flush()
            #expect(audit.pendingCount == 0)
            let ids = try await sqlite.search(LogQuery(service: "auth")).items.map(\.communicationId)
            #expect(ids == ["key_9"])
        }
    }

    @Test("the service writes ended minutes on its own and the rest at graceful shutdown")
    func service() async throws {
        try await withIndex { index in
            let audit = AuditLog(index: index, logger: LogCapture().logger, clock: SystemTime.now, flushInterval: .milliseconds(50))
            audit.authFailure(address: "192.0.2.1", reason: "missing key")
            let task = Task { try await audit.run() }
            try await Task.sleep(for: .milliseconds(200))
            task.cancel()  // cancellation ends the loop like a graceful shutdown
            try await task.value
            #expect(try await index.search(LogQuery(service: "auth")).items.map(\.attempt) == [1])
        }
    }
}
