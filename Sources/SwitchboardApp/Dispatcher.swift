import Logging
import SwitchboardCore

/// The router's step for one request: the message is given an id and handed to the pipeline, which stores it
/// `queued`, publishes it to its channel stream, logs and indexes it (`Pipeline.accept`: one transaction on the
/// embedded engine; batched across requests in flight, with the outbox behind it, on separate engines).
public struct Dispatcher: Sendable {
    /// What happened to a request.
    public enum Outcome: Sendable, Hashable {
        /// Stored and queued (or, with `replayed`, the earlier result of the same idempotency key).
        case accepted(id: String, request: CommunicationRequest, replayed: Bool)
        /// The idempotency key belongs to a different request.
        case conflict(existingID: String)
    }

    let pipeline: any Pipeline
    let ids: ObjectIDGenerator
    let options: PipelineOptions
    let clock: @Sendable () -> Timestamp

    public init(adapters: Adapters, options: PipelineOptions, clock: @escaping @Sendable () -> Timestamp = SystemTime.now) {
        self.pipeline = adapters.pipeline
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
    public func accept(_ request: CommunicationRequest, idempotencyKey: String?, keyID: String? = nil, test: Bool = false) async throws -> Outcome {
        let now = clock()
        let new = NewCommunication(id: ids.next(now: now), request: request, idempotencyKey: idempotencyKey, createdAt: now, dispatchAt: now.adding(options.outboxGrace), keyID: keyID, test: test)
        switch try await pipeline.accept([new], queuedAt: now, service: "router").first {
        case .created(let c)?:
            return .accepted(id: c.id, request: c.request, replayed: false)
        case .existing(let c)?:
            return .accepted(id: c.id, request: c.request, replayed: true)
        case .conflict(let id)?:
            return .conflict(existingID: id)
        case nil:
            throw StoreContractViolation(message: "accept returned no outcome")
        }
    }
}
