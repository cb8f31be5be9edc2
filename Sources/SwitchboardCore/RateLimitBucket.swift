/// One token bucket of a `RateLimiter`, as a pure state machine: no clock, no waiting. The caller passes `now` (any
/// monotonic time, as a `Duration` since an origin of its choosing) and the limit in force, which may change
/// between calls (a key's limits edited): the tokens held are kept, capped at the new burst.
///
/// A bucket starts full (`burst` tokens) and gains `rate` tokens per second up to `burst`. A request takes one
/// token or is refused; a refused request takes nothing (unlike `TokenBucketStateMachine`, which queues callers
/// by reserving ahead: an API client is answered 429 at once, not kept waiting).
///
/// The Redis limiter runs the same arithmetic in its script and builds its answer with
/// `RateDecision(allowed:tokens:limit:)`, so both limiters answer alike.
public struct RateLimitBucket: Sendable, Hashable {
    /// Tokens held at `updated` (fractional: refill is continuous).
    public private(set) var tokens: Double?
    /// When `tokens` was last brought up to date.
    public private(set) var updated: Duration?

    /// A full bucket (it fills on first use).
    public init() {}

    /// The tokens held at `now` under `limit`, without changing anything.
    public func tokens(at now: Duration, limit: RateLimit) -> Double {
        let (rate, burst) = Self.sanitized(limit)
        guard let tokens, let updated else { return burst }
        guard now > updated else { return min(tokens, burst) }
        return min(burst, tokens + Self.seconds(now - updated) * rate)
    }

    /// Takes one token at `now`, or refuses (taking nothing) when less than one is left.
    public mutating func take(now: Duration, limit: RateLimit) -> RateDecision {
        var t = tokens(at: now, limit: limit)
        let allowed = t >= 1
        if allowed { t -= 1 }
        tokens = t
        if updated.map({ now > $0 }) ?? true { updated = now }
        return RateDecision(allowed: allowed, tokens: t, limit: limit)
    }

    /// What a request at `now` would be told, without taking a token.
    public func peek(now: Duration, limit: RateLimit) -> RateDecision {
        let t = tokens(at: now, limit: limit)
        return RateDecision(allowed: t >= 1, tokens: t, limit: limit)
    }

    /// Whether the bucket is full at `now` under `limit`: it is then the same as a bucket never used, and a limiter
    /// may forget it.
    public func isFull(at now: Duration, limit: RateLimit) -> Bool {
        tokens(at: now, limit: limit) >= Self.sanitized(limit).burst
    }

    /// The rate and burst actually applied: a burst of at least one token and a positive rate (a zero or
    /// negative rate, or a non-finite one, would never refill or would divide by zero; it counts as one token
    /// per hour).
    public static func sanitized(_ limit: RateLimit) -> (rate: Double, burst: Double) {
        let rate = limit.rate.isFinite && limit.rate > 0 ? limit.rate : 1.0 / 3600
        return (rate, Double(max(1, limit.burst)))
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}

extension RateDecision {
    /// The decision for a bucket left with `tokens` after the request (`allowed`: whether the request took one).
    ///
    /// - `limit`: the burst (`RateLimit-Limit`);
    /// - `remaining`: whole tokens left (`RateLimit-Remaining`);
    /// - `resetSeconds`: seconds, rounded up, until the bucket is full again (`RateLimit-Reset`; 0 when full);
    /// - `retryAfterSeconds` (refused only): seconds, rounded up and at least 1, until one token is there.
    public init(allowed: Bool, tokens: Double, limit: RateLimit) {
        let (rate, burst) = RateLimitBucket.sanitized(limit)
        let t = tokens.isFinite ? min(max(tokens, 0), burst) : 0
        let remaining = Int(t.rounded(.down))
        let reset = Self.wholeSeconds((burst - t) / rate)
        let retry = allowed ? nil : max(1, Self.wholeSeconds((1 - t) / rate))
        self.init(allowed: allowed, limit: Int(burst), remaining: remaining, resetSeconds: reset, retryAfterSeconds: retry)
    }

    /// `s` rounded up to whole seconds, within 0 and a day's worth times 365 (a rate of one per hour and a huge
    /// burst cannot overflow an `Int`). A hair above a whole number (a float's rounding error) is that number.
    static func wholeSeconds(_ s: Double) -> Int {
        guard s.isFinite, s > 1e-9 else { return 0 }
        return Int(min((s - 1e-9).rounded(.up), 86_400 * 365))
    }
}
