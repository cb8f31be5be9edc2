import Logging
import SwitchboardCore
import SwitchboardTelemetry

/// The router's step for one request: the message is given an id and handed to the pipeline, which stores it
/// `queued`, publishes it to its channel stream, logs and indexes it (`Pipeline.accept`: one transaction on the
/// embedded engine; batched across requests in flight, with the outbox behind it, on separate engines).
public struct Dispatcher: Sendable {
    /// What happened to a request.
    public enum Outcome: Sendable, Hashable {
        /// Stored and queued (or, with `replayed`, the earlier result of the same idempotency key), with the
        /// trace context stored on its record (a replay's is the first request's).
        case accepted(id: String, request: CommunicationRequest, replayed: Bool, traceParent: TraceParent?)
        /// The idempotency key belongs to a different request.
        case conflict(existingID: String)
    }

    let pipeline: any Pipeline
    let ids: ObjectIDGenerator
    let options: PipelineOptions
    let clock: @Sendable () -> Timestamp
    /// Whether spans are recorded (the HTTP side asks, to add its tracing middleware and spans).
    public var tracing: MessageTracing { options.tracing }
    /// The accept's span name: on the embedded engine the store write and the publication are one transaction.
    let acceptSpan: String
    let oneTransaction: Bool

    public init(adapters: Adapters, options: PipelineOptions, clock: @escaping @Sendable () -> Timestamp = SystemTime.now) {
        self.pipeline = adapters.pipeline
        oneTransaction = adapters.names == (store: "sqlite", queue: "sqlite", search: "sqlite")
        acceptSpan = oneTransaction ? "store write + publication (one SQLite transaction)" : "accept"
        var rng = SystemRandomNumberGenerator()
        self.ids = ObjectIDGenerator(random: &rng)
        self.options = options
        self.clock = clock
    }

    /// Accepts one validated request. Returns once the message is durably stored (and, normally, published).
    ///
    /// - Parameters:
    ///   - keyID: the API key that sent it (recorded on the message; nil when the API is open).
    ///   - test: sent with a test key: the message goes to the sandbox whatever providers are configured.
    ///   - trace: the trace the message joins: the caller's `traceparent`, or (tracing on) the HTTP request's
    ///     span; nil: a new trace with tracing on, none with tracing off (no id is made and nothing is stored:
    ///     off costs the hot path nothing). With tracing on, the accept's span is its child and is what the record
    ///     keeps; off, the record keeps the caller's `trace` itself.
    public func accept(_ request: CommunicationRequest, idempotencyKey: String?, keyID: String? = nil, test: Bool = false, trace: TraceParent? = nil) async throws -> Outcome {
        let now = clock()
        let id = ids.next(now: now)
        let trace = trace ?? (options.tracing.enabled ? TraceParent.random() : nil)
        return try await options.tracing.withSpan(acceptSpan, parent: trace) { span in
            span?.set("switchboard.communication_id", id)
            span?.set("switchboard.channel", request.channel.rawValue)
            if oneTransaction { span?.set("switchboard.transaction", "record + stream entry + log entries, one COMMIT") }
            let new = NewCommunication(id: id, request: request, idempotencyKey: idempotencyKey, createdAt: now, dispatchAt: now.adding(options.outboxGrace), keyID: keyID, test: test, traceParent: span?.traceParent ?? trace)
            return try await accept(new, at: now)
        }
    }

    func accept(_ new: NewCommunication, at now: Timestamp) async throws -> Outcome {
        switch try await pipeline.accept([new], queuedAt: now, service: "router").first {
        case .created(let c)?:
            return .accepted(id: c.id, request: c.request, replayed: false, traceParent: c.traceParent)
        case .existing(let c)?:
            return .accepted(id: c.id, request: c.request, replayed: true, traceParent: c.traceParent)
        case .conflict(let id)?:
            return .conflict(existingID: id)
        case nil:
            throw StoreContractViolation(message: "accept returned no outcome")
        }
    }
}
