import CoreMetrics

/// One provider's counters, histogram and circuit gauge.
public struct ProviderMetrics: Sendable {
    /// The outcome of a provider call, as the label `outcome` says it.
    public enum Outcome: String, Sendable, CaseIterable {
        case sent, retryable, permanent
    }

    /// The circuit breaker's state as the gauge says it: 0 closed, 1 half-open, 2 open.
    public enum CircuitValue: Int, Sendable {
        case closed = 0, halfOpen = 1, open = 2
    }

    private let calls: [Outcome: Counter]
    private let duration: Timer
    private let circuit: Gauge?
    private let rateLimited: Counter?
    private let circuitRejected: Counter?

    /// - Parameter resilience: whether the provider has a circuit breaker and a rate limit (its gauge and
    ///   refusal counters are made only then: the sandbox has neither).
    public init(provider: String, resilience: Bool = false, factory: any MetricsFactory = MetricsSystem.factory) {
        var calls: [Outcome: Counter] = [:]
        for o in Outcome.allCases {
            calls[o] = Counter(label: MetricName.providerCalls, dimensions: [("provider", provider), ("outcome", o.rawValue)], factory: factory)
        }
        self.calls = calls
        self.duration = Timer(label: MetricName.providerCallDuration, dimensions: [("provider", provider)], factory: factory)
        if resilience {
            let circuit = Gauge(label: MetricName.providerCircuitState, dimensions: [("provider", provider)], factory: factory)
            circuit.record(CircuitValue.closed.rawValue)
            self.circuit = circuit
            self.rateLimited = Counter(label: MetricName.providerRateLimited, dimensions: [("provider", provider)], factory: factory)
            self.circuitRejected = Counter(label: MetricName.providerCircuitRejected, dimensions: [("provider", provider)], factory: factory)
        } else {
            (circuit, rateLimited, circuitRejected) = (nil, nil, nil)
        }
    }

    /// A call that reached the provider ended with `outcome` after `nanoseconds`.
    public func called(_ outcome: Outcome, nanoseconds: Int64) {
        calls[outcome]?.increment()
        duration.recordNanoseconds(max(0, nanoseconds))
    }

    /// The local rate limit refused a call.
    public func refusedByRateLimit() { rateLimited?.increment() }

    /// The open circuit refused a call.
    public func refusedByCircuit() { circuitRejected?.increment() }

    /// The circuit is now `state`.
    public func circuit(_ state: CircuitValue) { circuit?.record(state.rawValue) }
}
