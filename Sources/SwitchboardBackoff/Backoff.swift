/// Exponential backoff: the one rule every wait after a failure follows (delivery retries, Redis reconnects,
/// Elasticsearch bulk retries, service loops). Pure: no clock, no I/O.
///
/// The delay after `n` consecutive failures is `initial × multiplier^(n−1)`, capped at `maximum`; `jitter` of
/// it (0…1) is drawn at random below that ("equal jitter" at 0.5, "full jitter" at 1), so that many clients
/// failing together spread out.
public struct Backoff: Sendable, Hashable {
    /// The delay after the first failure (before jitter).
    public var initial: Duration
    /// No delay is longer than this.
    public var maximum: Duration
    /// The growth factor per further failure.
    public var multiplier: Double
    /// The fraction of each delay that is random.
    public var jitter: Double

    public init(initial: Duration, maximum: Duration, multiplier: Double = 2, jitter: Double = 0) {
        self.initial = initial
        self.maximum = maximum
        self.multiplier = max(1, multiplier)
        self.jitter = min(1, max(0, jitter))
    }

    /// A service loop's wait after failures: 200 ms, doubling up to 5 s, no jitter.
    public static let serviceLoop = Backoff(initial: .milliseconds(200), maximum: .seconds(5))

    /// The delay after `failures` consecutive failures (1 or more), jitter excluded.
    public func delay(afterFailures failures: Int) -> Duration {
        .milliseconds(Int64(fullMilliseconds(failures).rounded()))
    }

    /// The delay after `failures` consecutive failures, with `jitter` of it drawn from `generator`.
    public func delay(afterFailures failures: Int, using generator: inout some RandomNumberGenerator) -> Duration {
        let full = fullMilliseconds(failures)
        let random = jitter > 0 ? Double.random(in: 0...(full * jitter), using: &generator) : 0
        return .milliseconds(Int64((full * (1 - jitter) + random).rounded()))
    }

    /// The delay after `failures` consecutive failures, with jitter from the system's generator.
    public func randomizedDelay(afterFailures failures: Int) -> Duration {
        var g = SystemRandomNumberGenerator()
        return delay(afterFailures: failures, using: &g)
    }

    private func fullMilliseconds(_ failures: Int) -> Double {
        let first = Self.milliseconds(initial), cap = Self.milliseconds(maximum)
        var value = first
        var n = max(0, failures - 1)
        while n > 0 && value < cap {
            value *= multiplier
            n -= 1
        }
        return min(cap, value)
    }

    private static func milliseconds(_ d: Duration) -> Double {
        Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
    }
}
