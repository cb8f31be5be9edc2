import SwitchboardBackoff

/// Exponential backoff with jitter, bounded attempts.
public struct RetryPolicy: Sendable, Hashable {
    /// Attempts in all, the first included.
    public var maxAttempts: Int
    /// Delay before the second attempt (before jitter).
    public var baseDelay: Duration
    /// No delay is longer than this.
    public var maxDelay: Duration
    /// Fraction of each delay that is random: 0 none, 1 "full jitter". Default 0.5 ("equal jitter").
    public var jitter: Double

    public init(maxAttempts: Int = 5, baseDelay: Duration = .seconds(1), maxDelay: Duration = .seconds(300), jitter: Double = 0.5) {
        self.maxAttempts = max(1, maxAttempts)
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.jitter = min(1, max(0, jitter))
    }

    /// The backoff this policy follows between attempts.
    public var backoff: Backoff { Backoff(initial: baseDelay, maximum: maxDelay, jitter: jitter) }

    /// The delay after failed attempt number `attempt` (1-based): base × 2^(attempt−1), capped, with
    /// `jitter` of it drawn at random from `generator`.
    public func delay(afterAttempt attempt: Int, using generator: inout some RandomNumberGenerator) -> Duration {
        backoff.delay(afterFailures: attempt, using: &generator)
    }

    /// What to do after attempt number `attempt` ended with `result`.
    public func decide(attempt: Int, result: DeliveryResult, using generator: inout some RandomNumberGenerator) -> RetryDecision {
        switch result {
        case .sent: .done
        case .permanent: .fail
        case .retryable:
            attempt >= maxAttempts ? .giveUp : .retry(after: delay(afterAttempt: attempt, using: &generator))
        }
    }
}

/// The retry policy's answer after an attempt.
public enum RetryDecision: Sendable, Hashable {
    /// Delivered; nothing to retry.
    case done
    /// Permanent error: fail now.
    case fail
    /// Retryable error, attempts left: try again after this delay.
    case retry(after: Duration)
    /// Retryable error, no attempts left: fail.
    case giveUp
}
