import CoreMetrics

/// The calls that reach one provider: counted by outcome and timed (`MeteredProvider`; the sandbox's too).
public struct ProviderCallMetrics: Sendable {
    /// The outcome of a provider call, as the label `outcome` says it.
    public enum Outcome: String, Sendable, CaseIterable {
        case sent, retryable, permanent
    }

    private let calls: [Outcome: Counter]
    private let duration: Timer

    public init(provider: String, factory: any MetricsFactory = MetricsSystem.factory) {
        var calls: [Outcome: Counter] = [:]
        for o in Outcome.allCases {
            calls[o] = Counter(label: MetricName.providerCalls, dimensions: [("provider", provider), ("outcome", o.rawValue)], factory: factory)
        }
        self.calls = calls
        self.duration = Timer(label: MetricName.providerCallDuration, dimensions: [("provider", provider)], factory: factory)
    }

    /// A call that reached the provider ended with `outcome` after `nanoseconds`.
    public func called(_ outcome: Outcome, nanoseconds: Int64) {
        calls[outcome]?.increment()
        duration.recordNanoseconds(max(0, nanoseconds))
    }
}

/// One real provider's circuit breaker and rate limit (`ResilientProvider`; the sandbox has neither): the circuit
/// gauge and the calls refused without reaching the provider.
public struct ProviderResilienceMetrics: Sendable {
    /// The circuit breaker's state as the gauge says it: 0 closed, 1 half-open, 2 open.
    public enum CircuitValue: Int, Sendable {
        case closed = 0, halfOpen = 1, open = 2
    }

    private let circuit: Gauge
    private let rateLimited: Counter
    private let circuitRejected: Counter

    public init(provider: String, factory: any MetricsFactory = MetricsSystem.factory) {
        circuit = Gauge(label: MetricName.providerCircuitState, dimensions: [("provider", provider)], factory: factory)
        circuit.record(CircuitValue.closed.rawValue)
        rateLimited = Counter(label: MetricName.providerRateLimited, dimensions: [("provider", provider)], factory: factory)
        circuitRejected = Counter(label: MetricName.providerCircuitRejected, dimensions: [("provider", provider)], factory: factory)
    }

    /// The local rate limit refused a call.
    public func refusedByRateLimit() { rateLimited.increment() }

    /// The open circuit refused a call.
    public func refusedByCircuit() { circuitRejected.increment() }

    /// The circuit is now `state`.
    public func circuit(_ state: CircuitValue) { circuit.record(state.rawValue) }
}
