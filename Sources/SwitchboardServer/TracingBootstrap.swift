import Tracing
import Logging
import OTel
import ServiceLifecycle
import SwitchboardTelemetry

/// Span export over OTLP/HTTP (swift-otel), configured by the standard `OTEL_*` variables.
///
/// Off unless configured: tracing is on when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
/// is set, or `OTEL_TRACES_EXPORTER=otlp` (then swift-otel's default endpoint, `http://localhost:4318`), unless
/// `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`. Everything else (`OTEL_SERVICE_NAME`,
/// `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`, `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_*`,
/// `OTEL_RESOURCE_ATTRIBUTES`, …) is read by swift-otel itself.
///
/// Only traces: swift-otel's metrics and logs backends are never made, so it bootstraps neither `MetricsSystem`
/// (swift-prometheus's) nor `LoggingSystem` (`LogLineHandler`'s); only `InstrumentationSystem`.
public struct TracingSettings: Sendable, Hashable {
    /// Whether spans are recorded and exported.
    public var enabled: Bool
    /// Where they go, for the start line (the endpoint variable's value, or swift-otel's default).
    public var endpoint: String

    public init(environment env: [String: String]) {
        func value(_ name: String) -> String? { env[name].flatMap { $0.isEmpty ? nil : $0 } }
        let exporter = value("OTEL_TRACES_EXPORTER")?.lowercased()
        let endpoint = value("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") ?? value("OTEL_EXPORTER_OTLP_ENDPOINT")
        let disabled = value("OTEL_SDK_DISABLED")?.lowercased() == "true" || exporter == "none"
        enabled = !disabled && (endpoint != nil || exporter == "otlp")
        self.endpoint = endpoint ?? "http://localhost:4318"
    }

    /// The `OTEL_*` variables `switchboard help config` lists (the rest are swift-otel's, as the OpenTelemetry
    /// specification names them).
    static let variables: [Settings.Variable] = [
        Settings.Variable(name: "OTEL_EXPORTER_OTLP_ENDPOINT", meaning: "OTLP/HTTP collector base URL (e.g. http://127.0.0.1:4318; spans go to <endpoint>/v1/traces): setting it turns tracing on. OTEL_EXPORTER_OTLP_TRACES_ENDPOINT names the full traces URL instead", defaultValue: "unset (no spans; trace ids still on records, answers, log lines and log documents)"),
        Settings.Variable(name: "OTEL_SERVICE_NAME", meaning: "the service name of this process's spans", defaultValue: "switchboard-<command>: switchboard-serve, -router, -worker, -logger"),
        Settings.Variable(name: "OTEL_TRACES_SAMPLER", meaning: "always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio (with OTEL_TRACES_SAMPLER_ARG, the ratio)", defaultValue: "parentbased_always_on"),
        Settings.Variable(name: "OTEL_TRACES_EXPORTER", meaning: "otlp (with no endpoint: http://localhost:4318) or none (tracing off)", defaultValue: "otlp once an endpoint is set"),
        Settings.Variable(name: "OTEL_EXPORTER_OTLP_HEADERS", meaning: "headers sent with each export, key=value,key=value (e.g. a collector's token); other OTEL_* variables of the specification (OTEL_BSP_*, OTEL_RESOURCE_ATTRIBUTES, OTEL_EXPORTER_OTLP_TIMEOUT, OTEL_SDK_DISABLED) are honoured too", defaultValue: "none"),
    ]
}

public enum TracingBootstrap {
    /// Bootstraps `InstrumentationSystem` with swift-otel's tracer (OTLP/HTTP protobuf exporter, W3C Trace Context
    /// propagation) and returns its service — exporter, batch processor and tracer, to run first and stop last so
    /// the last spans are flushed. Call once per process, only when `settings.enabled`.
    ///
    /// - Parameter serviceName: used unless `OTEL_SERVICE_NAME` is set (`switchboard-router`, …).
    public static func bootstrap(serviceName: String, logger: Logger) throws -> any Service {
        var config = OTel.Configuration.default
        config.serviceName = serviceName
        config.logs.enabled = false
        config.metrics.enabled = false
        config.traces.enabled = true
        config.traces.exporter = .otlp
        config.traces.otlpExporter.protocol = .httpProtobuf
        config.diagnosticLogger = .custom(logger)
        // Applies the OTEL_* variables (the service name, sampler, endpoint…) over these defaults.
        let backend = try OTel.makeTracingBackend(configuration: config)
        InstrumentationSystem.bootstrap(backend.factory)
        return backend.service
    }

    /// Log metadata `trace_id` and `span_id` of the span a line is written in (swift-otel's provider, for
    /// `LogLineHandler`; swift-otel's logging backend itself is not used).
    public static func loggingMetadataProvider() -> Logger.MetadataProvider {
        OTel.makeLoggingMetadataProvider()
    }
}
