/// A circuit breaker as a pure state machine: no clock, no I/O. The caller passes `now` (any monotonic
/// time, as a `Duration` since an origin of its choosing) and performs the actions it is told.
///
/// ```
/// closed ──N consecutive failures──▶ open ──cool-down elapsed, one call──▶ half-open (one probe)
///   ▲                                  ▲                                       │
///   └────────── probe succeeded ───────┼───────────────────────────────────────┤
///                                      └────────── probe failed ───────────────┘
/// ```
public struct CircuitBreakerStateMachine: Sendable, Hashable {
    /// When the breaker opens and how long it stays open.
    public struct Configuration: Sendable, Hashable {
        /// Consecutive failures that open the circuit.
        public var failureThreshold: Int
        /// How long the circuit stays open before one probe call is let through.
        public var coolDown: Duration

        /// - Parameters:
        ///   - failureThreshold: consecutive failures that open the circuit (at least 1).
        ///   - coolDown: how long it stays open before one probe.
        public init(failureThreshold: Int = 5, coolDown: Duration = .seconds(30)) {
            precondition(failureThreshold >= 1, "failureThreshold must be at least 1")
            self.failureThreshold = failureThreshold
            self.coolDown = coolDown
        }
    }

    /// Where the breaker is.
    public enum State: Sendable, Hashable {
        /// Calls pass; `failures` consecutive failures so far.
        case closed(failures: Int)
        /// Calls are rejected until `until`.
        case open(until: Duration)
        /// One probe call is in flight; other calls are rejected.
        case halfOpen
    }

    /// What the caller must do with a call.
    public enum CallAction: Sendable, Hashable {
        /// Make the call, then report its outcome with `succeeded` or `failed`.
        case call
        /// Make the call as the single probe after a cool-down; report its outcome.
        case probe
        /// Do not call; the circuit is open (retry after `retryAfter`).
        case reject(retryAfter: Duration)
    }

    /// What changed after an outcome was reported (for logging).
    public enum Transition: Sendable, Hashable {
        /// The circuit stayed as it was.
        case none
        /// The circuit opened (threshold reached or probe failed) until the given time.
        case opened(until: Duration)
        /// The circuit closed again after a successful probe.
        case closed
    }

    /// The threshold and the cool-down.
    public let configuration: Configuration
    /// Where the breaker is now.
    public private(set) var state: State = .closed(failures: 0)

    /// A closed breaker.
    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// Decides whether a call may go ahead at `now`.
    public mutating func beforeCall(now: Duration) -> CallAction {
        switch state {
        case .closed:
            return .call
        case .open(let until):
            guard now >= until else { return .reject(retryAfter: until - now) }
            state = .halfOpen
            return .probe
        case .halfOpen:
            return .reject(retryAfter: configuration.coolDown)
        }
    }

    /// Reports that a call (or the probe) succeeded.
    public mutating func succeeded() -> Transition {
        switch state {
        case .halfOpen:
            state = .closed(failures: 0)
            return .closed
        case .closed:
            state = .closed(failures: 0)
            return .none
        case .open:
            // A call started before the circuit opened finished well: keep the circuit open until the probe.
            return .none
        }
    }

    /// Reports that the probe was not made after all (e.g. refused by a rate limit): the next call at or
    /// after `now` may probe instead.
    public mutating func probeAbandoned(now: Duration) {
        if case .halfOpen = state { state = .open(until: now) }
    }

    /// Reports that a call (or the probe) failed at `now`.
    public mutating func failed(now: Duration) -> Transition {
        switch state {
        case .closed(let failures):
            let n = failures + 1
            guard n >= configuration.failureThreshold else {
                state = .closed(failures: n)
                return .none
            }
            state = .open(until: now + configuration.coolDown)
            return .opened(until: now + configuration.coolDown)
        case .halfOpen:
            state = .open(until: now + configuration.coolDown)
            return .opened(until: now + configuration.coolDown)
        case .open:
            return .none
        }
    }
}
