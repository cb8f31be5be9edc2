import Logging
import SwitchboardCore
import SwitchboardTelemetry

/// The router's step for one request: the message is given an id and handed to the pipeline, which stores it
/// `queued`, publishes it to its channel stream, logs and indexes it (`Pipeline.accept`: one transaction on the
/// embedded engine; batched across requests in flight, with the outbox behind it, on separate engines).
public struct Dispatcher: Sendable {
    /// What happened to a request.
    public enum Outcome: Sendable, Hashable {
        /// Stored and queued, or `scheduled` (or, with `replayed`, the earlier result of the same idempotency
        /// key), with the status it was stored in and the trace context stored on its record (a replay's is the
        /// first request's).
        case accepted(id: String, request: CommunicationRequest, status: CommunicationStatus, replayed: Bool, traceParent: TraceParent?)
        /// The idempotency key belongs to a different request.
        case conflict(existingID: String)
    }

    /// One request of `accept(_:keyID:test:trace:)`.
    public struct Item: Sendable {
        public var request: CommunicationRequest
        public var idempotencyKey: String?

        public init(_ request: CommunicationRequest, idempotencyKey: String?) {
            self.request = request
            self.idempotencyKey = idempotencyKey
        }
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
        guard let outcome = try await accept([Item(request, idempotencyKey: idempotencyKey)], keyID: keyID, test: test, trace: trace).first else {
            throw StoreContractViolation(message: "accept returned no outcome")
        }
        return outcome
    }

    /// Accepts validated requests together (a batch): one `Pipeline.accept`, so on the embedded engine one
    /// transaction and one commit. Outcomes in the order of `items`. A message whose `sendAt` is in the future is
    /// stored `scheduled`, due in the outbox at that time, and is on no stream until then. With tracing on, the
    /// accept is one span and every message of the call records it.
    public func accept(_ items: [Item], keyID: String? = nil, test: Bool = false, trace: TraceParent? = nil) async throws -> [Outcome] {
        guard !items.isEmpty else { return [] }
        let now = clock()
        let trace = trace ?? (options.tracing.enabled ? TraceParent.random() : nil)
        return try await options.tracing.withSpan(acceptSpan, parent: trace) { span in
            let news = items.map { item in
                let id = ids.next(now: now)
                let sendAt = item.request.sendAt.flatMap { $0 > now ? $0 : nil }
                return NewCommunication(id: id, request: item.request, idempotencyKey: item.idempotencyKey, createdAt: now, dispatchAt: now.adding(options.outboxGrace), keyID: keyID, test: test, traceParent: span?.traceParent ?? trace, sendAt: sendAt)
            }
            if items.count == 1 {
                span?.set("switchboard.communication_id", news[0].id)
                span?.set("switchboard.channel", news[0].request.channel.rawValue)
            } else {
                span?.set("switchboard.batch_size", items.count)
            }
            if oneTransaction { span?.set("switchboard.transaction", "records + stream entries + log entries, one COMMIT") }
            let outcomes = try await pipeline.accept(news, queuedAt: now, service: "router")
            guard outcomes.count == news.count else { throw StoreContractViolation(message: "accept returned \(outcomes.count) outcomes for \(news.count) messages") }
            return outcomes.map { outcome in
                switch outcome {
                case .created(let c): .accepted(id: c.id, request: c.request, status: c.status, replayed: false, traceParent: c.traceParent)
                // A replay answers what the first request was answered: scheduled when its send time was ahead.
                case .existing(let c): .accepted(id: c.id, request: c.request, status: (c.request.sendAt.map { $0 > c.createdAt } ?? false) ? .scheduled : .queued, replayed: true, traceParent: c.traceParent)
                case .conflict(let id): .conflict(existingID: id)
                }
            }
        }
    }
}
