import Testing
@testable import SwitchboardCore

@Suite("Rate limit bucket (API keys): burst, refusal, refill and the RateLimit-* values")
struct RateLimitBucketTests {
    let limit = RateLimit(rate: 2, burst: 5)  // 5 at once, then one every 500 ms

    @Test("a full bucket allows the burst, then refuses with Retry-After; the refused request takes nothing")
    func burstThenRefusal() {
        var b = RateLimitBucket()
        for i in 1...5 {
            let d = b.take(now: .zero, limit: limit)
            #expect(d.allowed)
            #expect(d.limit == 5)
            #expect(d.remaining == 5 - i)
            #expect(d.retryAfterSeconds == nil)
        }
        let refused = b.take(now: .zero, limit: limit)
        #expect(!refused.allowed)
        #expect(refused.remaining == 0)
        #expect(refused.retryAfterSeconds == 1)  // 500 ms, rounded up to a whole second
        #expect(refused.resetSeconds == 3)  // 5 tokens at 2/s = 2.5 s → 3
        // Refusals take nothing: 500 ms later exactly one token is there.
        for _ in 0..<10 { _ = b.take(now: .milliseconds(100), limit: limit) }
        #expect(b.take(now: .milliseconds(500), limit: limit).allowed)
        #expect(!b.take(now: .milliseconds(500), limit: limit).allowed)
    }

    @Test("refill is continuous at the rate and stops at the burst")
    func refill() {
        var b = RateLimitBucket()
        for _ in 0..<5 { _ = b.take(now: .zero, limit: limit) }
        #expect(b.tokens(at: .milliseconds(250), limit: limit) == 0.5)
        #expect(b.peek(now: .milliseconds(1500), limit: limit).remaining == 3)
        #expect(b.peek(now: .milliseconds(1500), limit: limit).resetSeconds == 1)
        #expect(!b.isFull(at: .milliseconds(2499), limit: limit))
        #expect(b.isFull(at: .milliseconds(2500), limit: limit))
        // Long idle: full, never more than the burst.
        let d = b.take(now: .seconds(3600), limit: limit)
        #expect(d.allowed && d.remaining == 4 && d.resetSeconds == 1)
    }

    @Test("a slow rate: Retry-After is the time to the next token, in whole seconds")
    func slowRate() {
        var b = RateLimitBucket()
        let slow = RateLimit(rate: 0.1, burst: 1)  // one every 10 s
        #expect(b.take(now: .zero, limit: slow).allowed)
        let r = b.take(now: .seconds(3), limit: slow)
        #expect(!r.allowed && r.retryAfterSeconds == 7 && r.resetSeconds == 7)
        #expect(b.take(now: .seconds(10), limit: slow).allowed)
    }

    @Test("a changed limit keeps the tokens held, capped at the new burst")
    func changedLimit() {
        var b = RateLimitBucket()
        for _ in 0..<2 { _ = b.take(now: .zero, limit: limit) }  // 3 left
        let smaller = RateLimit(rate: 2, burst: 2)
        let d = b.take(now: .zero, limit: smaller)
        #expect(d.allowed && d.limit == 2 && d.remaining == 1)
    }

    @Test("a clock that goes back refills nothing and never crashes")
    func clockBack() {
        var b = RateLimitBucket()
        for _ in 0..<5 { _ = b.take(now: .seconds(10), limit: limit) }
        #expect(!b.take(now: .seconds(5), limit: limit).allowed)
        #expect(!b.take(now: .seconds(10), limit: limit).allowed)
        #expect(b.take(now: .milliseconds(10_500), limit: limit).allowed)
    }

    @Test("nonsense limits are made safe: burst at least 1, a rate of 0 or less or not finite refills slowly")
    func sanitized() {
        var b = RateLimitBucket()
        for bad in [RateLimit(rate: 0, burst: 0), RateLimit(rate: -1, burst: -5), RateLimit(rate: .nan, burst: 1), RateLimit(rate: .infinity, burst: 1)] {
            b = RateLimitBucket()
            let first = b.take(now: .zero, limit: bad)
            #expect(first.allowed && first.limit == 1 && first.remaining == 0)
            let second = b.take(now: .seconds(1), limit: bad)
            #expect(!second.allowed && second.retryAfterSeconds == 3599)
        }
    }

    @Test("RateDecision from a bucket's tokens: the fields of the headers")
    func decisionFields() {
        let d = RateDecision(allowed: true, tokens: 199.4, limit: RateLimit(rate: 100, burst: 200))
        #expect(d == RateDecision(allowed: true, limit: 200, remaining: 199, resetSeconds: 1, retryAfterSeconds: nil))
        let full = RateDecision(allowed: true, tokens: 200, limit: RateLimit(rate: 100, burst: 200))
        #expect(full.resetSeconds == 0)
        let refused = RateDecision(allowed: false, tokens: 0.25, limit: RateLimit(rate: 0.5, burst: 3))
        #expect(refused == RateDecision(allowed: false, limit: 3, remaining: 0, resetSeconds: 6, retryAfterSeconds: 2))
        // Out-of-range tokens (a bucket written by another version) are clamped, not trusted.
        #expect(RateDecision(allowed: true, tokens: 1e9, limit: RateLimit(rate: 1, burst: 3)).remaining == 3)
        #expect(RateDecision(allowed: false, tokens: -4, limit: RateLimit(rate: 1, burst: 3)).remaining == 0)
        #expect(RateDecision(allowed: false, tokens: .nan, limit: RateLimit(rate: 1, burst: 3)).retryAfterSeconds == 1)
    }
}
