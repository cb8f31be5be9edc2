import Instrumentation
import ServiceContextModule
import SwitchboardCore
import Tracing

/// The bridge between a message's `TraceParent` (Core: stored on its record, carried in its stream entries and
/// log records) and swift-distributed-tracing.
///
/// Spans are started only when the process bootstrapped a tracer (`OTEL_*` configured: `SwitchboardServer`'s
/// `TracingBootstrap`). When it did not, `enabled` is false and every method here returns at its first line: no
/// tracer, context or propagator call on the hot path; the trace id still travels with the message.
///
/// A span's parent is given as a `TraceParent` (what the record, the stream entry or the log record holds) and
/// turned into a `ServiceContext` by the bootstrapped propagator (W3C Trace Context); a started span's own context
/// is read back as a `TraceParent` the same way, to be stored or put in a stream entry. So the trace crosses
/// processes, engines and hours (a retry republished from the outbox) whatever carries the entry.
public struct MessageTracing: Sendable {
    /// Whether spans are recorded (a tracer was bootstrapped).
    public let enabled: Bool

    public init(enabled: Bool) { self.enabled = enabled }

    /// No spans: the default, and what a process without `OTEL_*` configuration runs with.
    public static let off = MessageTracing(enabled: false)

    /// Starts a span whose parent is `parent` (a new trace when nil). Nil when tracing is off. End it with `end()`.
    /// The name is evaluated only when tracing is on.
    public func startSpan(_ name: @autoclosure () -> String, parent: TraceParent?, kind: SpanKind = .internal) -> MessageSpan? {
        guard enabled else { return nil }
        return MessageSpan(Tracing.startSpan(name(), context: Self.context(parent), ofKind: kind))
    }

    /// Starts a span child of the task's current context (the HTTP request's span, set by Hummingbird's
    /// `TracingMiddleware`). Nil when tracing is off.
    public func startSpanInCurrentContext(_ name: String, kind: SpanKind = .internal) -> MessageSpan? {
        guard enabled else { return nil }
        return MessageSpan(Tracing.startSpan(name, context: ServiceContext.current ?? .topLevel, ofKind: kind))
    }

    /// Runs `body` in a span child of `parent` and ends it; an error thrown is recorded on the span. `body` gets
    /// the span (nil when tracing is off), whose `traceParent` is the context to hand on; it runs with the span as
    /// the task's current context, so its log lines carry the span's `trace_id` and `span_id`.
    /// The name is evaluated only when tracing is on (no string is built per message when it is off).
    public func withSpan<T>(_ name: @autoclosure () -> String, parent: TraceParent?, kind: SpanKind = .internal, _ body: (MessageSpan?) async throws -> T) async rethrows -> T {
        guard enabled else { return try await body(nil) }
        let span = MessageSpan(Tracing.startSpan(name(), context: Self.context(parent), ofKind: kind))
        defer { span.end() }
        do {
            return try await ServiceContext.$current.withValue(span.span.context) { try await body(span) }
        } catch {
            span.recordError(error)
            throw error
        }
    }

    /// The `TraceParent` of the task's current context (the HTTP request's span under `TracingMiddleware`), if
    /// tracing is on and there is one.
    public func currentTraceParent() -> TraceParent? {
        guard enabled, let context = ServiceContext.current else { return nil }
        return Self.traceParent(of: context)
    }

    /// `parent` as a context the tracer understands (extracted by the bootstrapped propagator).
    static func context(_ parent: TraceParent?) -> ServiceContext {
        var context = ServiceContext.topLevel
        guard let parent else { return context }
        InstrumentationSystem.instrument.extract(["traceparent": parent.text], into: &context, using: HeaderExtractor())
        return context
    }

    /// A context's span as a `TraceParent` (injected by the bootstrapped propagator), or nil.
    static func traceParent(of context: ServiceContext) -> TraceParent? {
        var headers: [String: String] = [:]
        InstrumentationSystem.instrument.inject(context, into: &headers, using: HeaderInjector())
        return headers["traceparent"].flatMap { TraceParent(parsing: $0) }
    }

    struct HeaderExtractor: Extractor {
        func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
    }

    struct HeaderInjector: Injector {
        func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) { carrier[key] = value }
    }
}

/// A started span (only ever made when tracing is on).
public struct MessageSpan: Sendable {
    let span: any Span
    /// This span as a `TraceParent`: what a child in another process or hour is started from.
    public let traceParent: TraceParent?

    init(_ span: any Span) {
        self.span = span
        self.traceParent = MessageTracing.traceParent(of: span.context)
    }

    public func set(_ key: String, _ value: String) { span.attributes[key] = value }
    public func set(_ key: String, _ value: Int) { span.attributes[key] = value }
    public func set(_ key: String, _ value: Bool) { span.attributes[key] = value }

    /// Marks the span failed with `message`.
    public func fail(_ message: String) { span.setStatus(SpanStatus(code: .error, message: message)) }

    public func recordError(_ error: any Error) {
        span.recordError(error)
        span.setStatus(SpanStatus(code: .error))
    }

    public func end() { span.end() }
}
