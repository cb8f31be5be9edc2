import Synchronization
import SwitchboardCore

/// The `RateLimiter` of one process: a `RateLimitBucket` per name in memory. What a deployment without Redis uses
/// (each router then has its own allowance per key), and what the Redis limiter falls back to while Redis is
/// unreachable.
///
/// Memory is bounded. A bucket that has refilled to its burst is the same as one never used, so it is forgotten:
/// a sweep (at most every `sweepInterval`, run by the calls themselves, no task of its own) removes every full
/// bucket. Should more than `capacity` buckets still be in use (a flood of distinct names), the least recently
/// used are dropped down to nine tenths of it; a dropped bucket starts full again, so the bound can only make the
/// limiter more lenient, never refuse more.
public final class LocalRateLimiter: RateLimiter {
    /// Most buckets kept.
    public let capacity: Int
    /// Least time between two sweeps of the full buckets.
    public let sweepInterval: Duration
    private let now: @Sendable () -> Duration

    private struct Entry {
        var bucket: RateLimitBucket
        var limit: RateLimit
        var used: Duration
    }

    private struct State {
        var buckets: [String: Entry] = [:]
        var lastSweep: Duration = .zero
    }

    private let state = Mutex(State())

    /// - Parameters:
    ///   - capacity: most buckets kept (at least 1).
    ///   - sweepInterval: least time between two sweeps of the full buckets.
    ///   - now: a monotonic clock (tests pass their own).
    public init(capacity: Int = 100_000, sweepInterval: Duration = .seconds(10), now: @escaping @Sendable () -> Duration = LocalRateLimiter.monotonicNow) {
        self.capacity = max(1, capacity)
        self.sweepInterval = sweepInterval
        self.now = now
    }

    /// Time since this process's first call, on the continuous clock.
    @Sendable public static func monotonicNow() -> Duration {
        ContinuousClock.now - origin
    }

    private static let origin = ContinuousClock.now

    public func take(_ bucket: String, limit: RateLimit) async throws -> RateDecision {
        takeNow(bucket, limit: limit)
    }

    /// `take` without suspending.
    public func takeNow(_ bucket: String, limit: RateLimit) -> RateDecision {
        let t = now()
        return state.withLock { s in
            let decision = s.buckets[bucket, default: Entry(bucket: RateLimitBucket(), limit: limit, used: t)].bucket.take(now: t, limit: limit)
            s.buckets[bucket]!.limit = limit
            s.buckets[bucket]!.used = t
            Self.sweepIfDue(&s, now: t, interval: sweepInterval, capacity: capacity)
            return decision
        }
    }

    /// What `take` would answer now, without taking a token.
    public func peek(_ bucket: String, limit: RateLimit) -> RateDecision {
        let t = now()
        return state.withLock { s in (s.buckets[bucket]?.bucket ?? RateLimitBucket()).peek(now: t, limit: limit) }
    }

    /// How many buckets are held (for tests and statistics).
    public var bucketCount: Int { state.withLock { $0.buckets.count } }

    private static func sweepIfDue(_ s: inout State, now: Duration, interval: Duration, capacity: Int) {
        guard now - s.lastSweep >= interval || s.buckets.count > capacity else { return }
        s.lastSweep = now
        s.buckets = s.buckets.filter { !$0.value.bucket.isFull(at: now, limit: $0.value.limit) }
        if s.buckets.count > capacity {
            let keep = capacity - capacity / 10
            let newest = s.buckets.sorted { $0.value.used > $1.value.used }.prefix(max(1, keep))
            s.buckets = Dictionary(uniqueKeysWithValues: newest.map { ($0.key, $0.value) })
        }
    }
}

/// Limits failed authentication per client address, in this process: a bucket of `limit.burst` failures per
/// address refilled at `limit.rate` per second (default: 10 failures at once, then one every 6 s). The auth
/// middleware asks `allowFailure` before it looks at a request's key — a client out of failures gets 429 without
/// its key being checked — and calls `recordFailure` when the key was missing, unknown or revoked. Successful
/// requests cost nothing.
///
/// Per process on purpose: it guards against guessing keys and against floods of bad keys, not a quota; behind a
/// load balancer an address gets this allowance on each router, which still bounds guessing to a few attempts a
/// minute per router against 256-bit keys. Memory is bounded as in `LocalRateLimiter`.
public struct AuthFailureLimiter: Sendable {
    /// Failures allowed at once, and how fast they are forgiven.
    public let limit: RateLimit
    let buckets: LocalRateLimiter

    /// 10 failures at once, then one every 6 seconds (10 a minute).
    public static let defaultLimit = RateLimit(rate: 1.0 / 6, burst: 10)

    public init(limit: RateLimit = AuthFailureLimiter.defaultLimit, capacity: Int = 100_000, now: @escaping @Sendable () -> Duration = LocalRateLimiter.monotonicNow) {
        self.limit = limit
        self.buckets = LocalRateLimiter(capacity: capacity, now: now)
    }

    /// Whether a request from `address` may still try a key: `allowed` false (with `retryAfterSeconds`) once
    /// its failures are used up. Takes nothing.
    public func allowFailure(_ address: String) -> RateDecision {
        buckets.peek(address, limit: limit)
    }

    /// Counts one failed authentication from `address`; the answer says whether it was still within the
    /// allowance (`allowed` false: this failure was over it).
    @discardableResult
    public func recordFailure(_ address: String) -> RateDecision {
        buckets.takeNow(address, limit: limit)
    }
}
