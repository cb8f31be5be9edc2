import CoreMetrics
import Prometheus
import SwitchboardTelemetry

/// One process's metrics in the Prometheus text format: a swift-prometheus registry behind the swift-metrics
/// API (every `Counter`, `Timer`, `Gauge` made through `factory` lands in it) and the `process_*` metrics.
public final class PrometheusExposition: Sendable {
    public let registry: PrometheusCollectorRegistry
    /// The swift-metrics factory writing into `registry`, with Switchboard's buckets.
    public let factory: PrometheusMetricsFactory
    private let process: ProcessMetrics

    public init() {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets = MetricBuckets.durations
        factory.valueHistogramBuckets = MetricBuckets.values
        factory.defaultDurationHistogramBuckets = MetricBuckets.request
        self.registry = registry
        self.factory = factory
        self.process = ProcessMetrics(factory: factory)
    }

    /// The process's exposition, bootstrapped as swift-metrics' backend the first time it is used: what every
    /// handle made with `MetricsSystem.factory` records into.
    public static let process: PrometheusExposition = {
        let exposition = PrometheusExposition()
        MetricsSystem.bootstrap(exposition.factory)
        return exposition
    }()

    /// Renders every metric, after `sample` has set the gauges that are read when scraped (queue depths,
    /// engine health: it must bound its own time).
    public func scrape(sampling sample: @Sendable () async -> Void = {}) async -> [UInt8] {
        await sample()
        process.refresh()
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 * 1024)
        registry.emit(into: &buffer)
        return buffer
    }
}
