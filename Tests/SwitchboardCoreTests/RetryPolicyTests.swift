import Testing
@testable import SwitchboardCore

/// A deterministic generator (SplitMix64) for reproducible jitter.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("Retry policy")
struct RetryPolicyTests {
    @Test("exponential without jitter, capped")
    func exponential() {
        let p = RetryPolicy(maxAttempts: 10, baseDelay: .seconds(1), maxDelay: .seconds(10), jitter: 0)
        var g = SeededGenerator(state: 1)
        #expect((1...6).map { p.delay(afterAttempt: $0, using: &g) } == [.seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(10), .seconds(10)])
    }

    @Test("jitter stays within [d·(1−j), d]")
    func jitterBounds() {
        let p = RetryPolicy(maxAttempts: 5, baseDelay: .milliseconds(1000), maxDelay: .seconds(300), jitter: 0.5)
        var g = SeededGenerator(state: 42)
        var seen = Set<Duration>()
        for _ in 0..<200 {
            let d = p.delay(afterAttempt: 3, using: &g)
            #expect(d >= .milliseconds(2000) && d <= .milliseconds(4000))
            seen.insert(d)
        }
        #expect(seen.count > 50)
    }

    @Test("decisions: sent done, permanent fail, retryable retries until the last attempt")
    func decisions() {
        let p = RetryPolicy(maxAttempts: 3, baseDelay: .seconds(1), maxDelay: .seconds(5), jitter: 0)
        var g = SeededGenerator(state: 7)
        let e = ProviderError(message: "x")
        #expect(p.decide(attempt: 1, result: .sent(providerMessageID: nil), using: &g) == .done)
        #expect(p.decide(attempt: 1, result: .permanent(e), using: &g) == .fail)
        #expect(p.decide(attempt: 1, result: .retryable(e), using: &g) == .retry(after: .seconds(1)))
        #expect(p.decide(attempt: 2, result: .retryable(e), using: &g) == .retry(after: .seconds(2)))
        #expect(p.decide(attempt: 3, result: .retryable(e), using: &g) == .giveUp)
    }
}
