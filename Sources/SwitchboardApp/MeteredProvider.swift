import SwitchboardCore
import CoreMetrics
import SwitchboardTelemetry

/// A provider whose calls are counted by outcome and timed (`switchboard_provider_calls_total`,
/// `switchboard_provider_call_duration_seconds`): every call that reaches the provider, the sandbox's too.
/// Sits inside `ResilientProvider`, so the calls its circuit or rate limit refuse are not counted as calls.
public struct MeteredProvider: DeliveryProvider {
    public let base: any DeliveryProvider
    let metrics: ProviderCallMetrics

    public var name: String { base.name }

    public init(_ base: any DeliveryProvider, factory: (any MetricsFactory)? = nil) {
        self.base = base
        self.metrics = ProviderCallMetrics(provider: base.name, factory: factory ?? MetricsSystem.factory)
    }

    public func deliver(_ message: OutboundMessage) async -> DeliveryResult {
        let started = ContinuousClock.now
        let result = await base.deliver(message)
        let took = SwitchboardTelemetry.nanoseconds(ContinuousClock.now - started)
        switch result {
        case .sent: metrics.called(.sent, nanoseconds: took)
        case .retryable: metrics.called(.retryable, nanoseconds: took)
        case .permanent: metrics.called(.permanent, nanoseconds: took)
        }
        return result
    }
}
