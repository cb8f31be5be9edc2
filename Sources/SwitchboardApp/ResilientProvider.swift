import Logging
import Synchronization
import SwitchboardCore
import CoreMetrics
import SwitchboardTelemetry

/// Wraps a provider with a circuit breaker and an optional token-bucket rate limit (the I/O-free state
/// machines of the core), so a failing provider is skipped quickly and a fast one is not overrun.
///
/// - An open circuit answers `.retryable` with code `circuit_open` without calling the provider, so the
///   channel worker tries the next provider at once.
/// - A retryable failure counts against the breaker (unless `countsAgainstCircuit` says it concerns one
///   recipient only, such as an SMTP 4xx at RCPT); a success or a permanent failure (the provider answered;
///   the message was at fault) resets the count.
/// - The rate limit waits for a token (at most `maxWait`); a longer wait answers `.retryable` with code
///   `rate_limited`.
public final class ResilientProvider: DeliveryProvider {
    /// The wrapped provider.
    public let base: any DeliveryProvider
    private let breaker: Mutex<CircuitBreakerStateMachine>
    private let bucket: Mutex<TokenBucketStateMachine?>
    private let origin = ContinuousClock.now
    private let logger: Logger
    private let countsAgainstCircuit: @Sendable (ProviderError) -> Bool
    private let metrics: ProviderResilienceMetrics

    /// The wrapped provider's name (what is recorded on the message).
    public var name: String { base.name }

    /// - Parameters:
    ///   - breaker: when the circuit opens and for how long.
    ///   - rateLimit: messages per second, or nil for none.
    ///   - countsAgainstCircuit: whether a retryable error says the provider is unwell (default: every one).
    ///   - metricsFactory: where the circuit's state and the refusals go (`switchboard_provider_circuit_state`,
    ///     `…_rate_limited_total`, `…_circuit_rejected_total`); the process's by default. The calls themselves are
    ///     counted by `MeteredProvider`.
    public init(_ base: any DeliveryProvider, breaker: CircuitBreakerStateMachine.Configuration, rateLimit: TokenBucketStateMachine.Configuration?, logger: Logger, countsAgainstCircuit: @escaping @Sendable (ProviderError) -> Bool = { _ in true }, metricsFactory: (any MetricsFactory)? = nil) {
        self.base = base
        self.metrics = ProviderResilienceMetrics(provider: base.name, factory: metricsFactory ?? MetricsSystem.factory)
        self.countsAgainstCircuit = countsAgainstCircuit
        self.breaker = Mutex(CircuitBreakerStateMachine(configuration: breaker))
        self.bucket = Mutex(rateLimit.map { TokenBucketStateMachine(configuration: $0) })
        var l = logger
        l[metadataKey: "provider"] = "\(base.name)"
        self.logger = l
    }

    private var now: Duration { ContinuousClock.now - origin }

    /// The breaker's state (for tests and diagnostics).
    public var circuitState: CircuitBreakerStateMachine.State { breaker.withLock { $0.state } }

    /// Delivers through the wrapped provider unless the circuit is open or the rate limit refuses.
    public func deliver(_ message: OutboundMessage) async -> DeliveryResult {
        let t = now
        let action = breaker.withLock { $0.beforeCall(now: t) }
        if case .reject(let after) = action {
            metrics.refusedByCircuit()
            return .retryable(ProviderError(code: "circuit_open", message: "\(base.name): circuit open after repeated failures; next probe in \(after)"))
        }
        if action == .probe { metrics.circuit(.halfOpen) }
        let t2 = now
        if let pace = bucket.withLock({ $0?.acquire(now: t2) }) {
            switch pace {
            case .proceed: break
            case .wait(let d): try? await Task.sleep(for: d)
            case .refuse(let after):
                // Not a provider failure: release a probe slot without judging the provider.
                if action == .probe {
                    breaker.withLock { $0.probeAbandoned(now: self.now) }
                    metrics.circuit(.open)
                }
                metrics.refusedByRateLimit()
                return .retryable(ProviderError(code: "rate_limited", message: "\(base.name): local rate limit reached; next token in \(after)"))
            }
        }
        let result = await base.deliver(message)
        let transition: CircuitBreakerStateMachine.Transition
        switch result {
        case .sent, .permanent: transition = breaker.withLock { $0.succeeded() }
        case .retryable(let e) where countsAgainstCircuit(e): transition = breaker.withLock { $0.failed(now: self.now) }
        case .retryable: transition = .none
        }
        switch transition {
        case .none: break
        case .opened(let until):
            metrics.circuit(.open)
            logger.warning("circuit opened", metadata: ["coolDown": "\(until - now)"])
        case .closed:
            metrics.circuit(.closed)
            logger.notice("circuit closed again")
        }
        return result
    }
}
