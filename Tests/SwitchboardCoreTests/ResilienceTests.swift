import Testing
@testable import SwitchboardCore

@Suite("Circuit breaker state machine")
struct CircuitBreakerTests {
    let config = CircuitBreakerStateMachine.Configuration(failureThreshold: 3, coolDown: .seconds(10))

    @Test("closed: calls pass; failures below the threshold keep it closed; a success resets the count")
    func closedCounts() {
        var b = CircuitBreakerStateMachine(configuration: config)
        #expect(b.beforeCall(now: .zero) == .call)
        #expect(b.failed(now: .seconds(1)) == .none)
        #expect(b.failed(now: .seconds(2)) == .none)
        #expect(b.state == .closed(failures: 2))
        #expect(b.succeeded() == .none)
        #expect(b.state == .closed(failures: 0))
        #expect(b.failed(now: .seconds(3)) == .none)
        #expect(b.failed(now: .seconds(4)) == .none)
        #expect(b.beforeCall(now: .seconds(4)) == .call)
    }

    @Test("N consecutive failures open it; calls are rejected with the time left; after the cool-down exactly one probe")
    func opensAndProbes() {
        var b = CircuitBreakerStateMachine(configuration: config)
        _ = b.failed(now: .seconds(1))
        _ = b.failed(now: .seconds(2))
        #expect(b.failed(now: .seconds(3)) == .opened(until: .seconds(13)))
        #expect(b.beforeCall(now: .seconds(4)) == .reject(retryAfter: .seconds(9)))
        #expect(b.beforeCall(now: .milliseconds(12_999)) == .reject(retryAfter: .milliseconds(1)))
        #expect(b.beforeCall(now: .seconds(13)) == .probe)
        #expect(b.state == .halfOpen)
        // While the probe is in flight, everyone else is rejected.
        #expect(b.beforeCall(now: .seconds(13)) == .reject(retryAfter: .seconds(10)))
        #expect(b.beforeCall(now: .seconds(20)) == .reject(retryAfter: .seconds(10)))
    }

    @Test("a failed probe opens it for another cool-down; a successful one closes it")
    func probeOutcome() {
        var b = CircuitBreakerStateMachine(configuration: CircuitBreakerStateMachine.Configuration(failureThreshold: 1, coolDown: .seconds(5)))
        #expect(b.failed(now: .zero) == .opened(until: .seconds(5)))
        #expect(b.beforeCall(now: .seconds(6)) == .probe)
        #expect(b.failed(now: .seconds(7)) == .opened(until: .seconds(12)))
        #expect(b.beforeCall(now: .seconds(8)) == .reject(retryAfter: .seconds(4)))
        #expect(b.beforeCall(now: .seconds(12)) == .probe)
        #expect(b.succeeded() == .closed)
        #expect(b.state == .closed(failures: 0))
        #expect(b.beforeCall(now: .seconds(12)) == .call)
    }

    @Test("outcomes of calls started before the circuit opened change nothing while it is open; an abandoned probe lets the next call probe")
    func lateOutcomesAndAbandonedProbe() {
        var b = CircuitBreakerStateMachine(configuration: CircuitBreakerStateMachine.Configuration(failureThreshold: 1, coolDown: .seconds(5)))
        _ = b.failed(now: .zero)
        #expect(b.succeeded() == .none)
        #expect(b.failed(now: .seconds(1)) == .none)
        #expect(b.state == .open(until: .seconds(5)))
        #expect(b.beforeCall(now: .seconds(5)) == .probe)
        b.probeAbandoned(now: .seconds(6))
        #expect(b.beforeCall(now: .seconds(6)) == .probe)
    }
}

@Suite("Token bucket state machine")
struct TokenBucketTests {
    @Test("a full bucket lets a burst through, then paces at the rate")
    func burstThenPace() {
        var t = TokenBucketStateMachine(configuration: .init(ratePerSecond: 10, burst: 3, maxWait: .seconds(1)))
        #expect(t.acquire(now: .zero) == .proceed)
        #expect(t.acquire(now: .zero) == .proceed)
        #expect(t.acquire(now: .zero) == .proceed)
        // Empty: the next token comes in 100 ms, the one after in 200 ms (reservations queue up).
        #expect(t.acquire(now: .zero) == .wait(.milliseconds(100)))
        #expect(t.acquire(now: .zero) == .wait(.milliseconds(200)))
        // 300 ms later both reservations are paid and one token is free again.
        #expect(t.acquire(now: .milliseconds(300)) == .proceed)
    }

    @Test("refills at the rate, never above the burst")
    func refill() {
        var t = TokenBucketStateMachine(configuration: .init(ratePerSecond: 2, burst: 2, maxWait: .seconds(1)))
        #expect(t.acquire(now: .zero) == .proceed)
        #expect(t.acquire(now: .zero) == .proceed)
        #expect(t.acquire(now: .milliseconds(500)) == .proceed)
        // A long idle time fills the bucket to the burst only.
        #expect(t.acquire(now: .seconds(100)) == .proceed)
        #expect(t.acquire(now: .seconds(100)) == .proceed)
        #expect(t.acquire(now: .seconds(100)) == .wait(.milliseconds(500)))
    }

    @Test("a wait longer than maxWait is refused and reserves nothing")
    func refuse() {
        var t = TokenBucketStateMachine(configuration: .init(ratePerSecond: 1, burst: 1, maxWait: .milliseconds(1500)))
        #expect(t.acquire(now: .zero) == .proceed)
        #expect(t.acquire(now: .zero) == .wait(.seconds(1)))
        #expect(t.acquire(now: .zero) == .refuse(retryAfter: .seconds(2)))
        #expect(t.acquire(now: .zero) == .refuse(retryAfter: .seconds(2)))
        #expect(t.acquire(now: .seconds(2)) == .proceed)
    }

    @Test("80 messages per second: 80 at once, then one every 12.5 ms")
    func whatsAppDefault() {
        var t = TokenBucketStateMachine(configuration: .init(ratePerSecond: 80))
        for _ in 0..<80 { #expect(t.acquire(now: .zero) == .proceed) }
        #expect(t.acquire(now: .zero) == .wait(.microseconds(12_500)))
    }
}
