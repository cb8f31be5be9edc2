/// A token-bucket rate limit as a pure state machine: no clock, no sleeping. The caller passes `now` (any
/// monotonic time as a `Duration` since an origin of its choosing) and waits when told to.
///
/// The bucket holds up to `burst` tokens and gains `ratePerSecond` tokens per second. A call takes one
/// token. When none is left the call *reserves* the next one (the bucket goes into debt) and is told how
/// long to wait, so concurrent callers queue fairly in order; a wait longer than `maxWait` is refused
/// instead and nothing is reserved.
public struct TokenBucketStateMachine: Sendable, Hashable {
    /// The rate and the burst.
    public struct Configuration: Sendable, Hashable {
        /// Tokens added per second (messages per second).
        public var ratePerSecond: Double
        /// Most tokens the bucket holds (the largest burst).
        public var burst: Double
        /// Longest a call may be asked to wait; beyond it the call is refused.
        public var maxWait: Duration

        /// - Parameters:
        ///   - ratePerSecond: tokens added per second (> 0).
        ///   - burst: bucket size; default one second's worth (at least 1).
        ///   - maxWait: longest wait granted before a call is refused.
        public init(ratePerSecond: Double, burst: Double? = nil, maxWait: Duration = .seconds(1)) {
            precondition(ratePerSecond > 0, "ratePerSecond must be positive")
            self.ratePerSecond = ratePerSecond
            self.burst = max(1, burst ?? ratePerSecond)
            self.maxWait = maxWait
        }
    }

    /// What the caller must do.
    public enum Action: Sendable, Hashable {
        /// A token was taken: go ahead now.
        case proceed
        /// A token was reserved: wait this long, then go ahead.
        case wait(Duration)
        /// The wait would be longer than `maxWait`: do not call (nothing was reserved).
        case refuse(retryAfter: Duration)
    }

    /// The rate, the burst and the longest wait.
    public let configuration: Configuration
    /// Tokens available (negative: reserved ahead).
    public private(set) var tokens: Double
    private var last: Duration?

    /// A full bucket.
    public init(configuration: Configuration) {
        self.configuration = configuration
        self.tokens = configuration.burst
    }

    /// Takes or reserves one token at `now`.
    public mutating func acquire(now: Duration) -> Action {
        refill(now)
        if tokens >= 1 {
            tokens -= 1
            return .proceed
        }
        let wait = Self.seconds((1 - tokens) / configuration.ratePerSecond)
        guard wait <= configuration.maxWait else { return .refuse(retryAfter: wait) }
        tokens -= 1
        return .wait(wait)
    }

    private mutating func refill(_ now: Duration) {
        if let last, now > last {
            let elapsed = Double((now - last).components.seconds) + Double((now - last).components.attoseconds) / 1e18
            tokens = min(configuration.burst, tokens + elapsed * configuration.ratePerSecond)
        }
        if last == nil || now > last! { last = now }
    }

    static func seconds(_ s: Double) -> Duration {
        .nanoseconds(Int64((s * 1e9).rounded(.up)))
    }
}
