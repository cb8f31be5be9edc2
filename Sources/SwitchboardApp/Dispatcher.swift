import Logging
import SwitchboardCore

/// The router's pipeline for one request: persist (`pending`), index, publish to the channel stream,
/// record `queued`. Publication is confirmed by the `queued` transition; if it never happens (the queue is
/// down, the process dies), the outbox scheduler publishes the message once `outboxGrace` has passed.
public struct Dispatcher: Sendable {
    /// What happened to a request.
    public enum Outcome: Sendable, Hashable {
        /// Stored and queued (or, with `replayed`, the earlier result of the same idempotency key).
        case accepted(id: String, request: CommunicationRequest, replayed: Bool)
        /// The idempotency key belongs to a different request.
        case conflict(existingID: String)
    }

    let engine: Engine
    let recorder: StatusRecorder
    let ids: ObjectIDGenerator
    let options: PipelineOptions
    let clock: @Sendable () -> Timestamp
    let logger: Logger

    public init(engine: Engine, options: PipelineOptions, logger: Logger, clock: @escaping @Sendable () -> Timestamp = SystemTime.now) {
        self.engine = engine
        self.recorder = StatusRecorder(engine: engine, logger: logger)
        var rng = SystemRandomNumberGenerator()
        self.ids = ObjectIDGenerator(random: &rng)
        self.options = options
        self.clock = clock
        self.logger = logger
    }

    /// Accepts one validated request. Returns once the message is durably stored (and, normally, published).
    public func accept(_ request: CommunicationRequest, idempotencyKey: String?) async throws -> Outcome {
        let now = clock()
        let new = NewCommunication(id: ids.next(now: now), request: request, idempotencyKey: idempotencyKey, createdAt: now, dispatchAt: now.adding(options.outboxGrace))
        let outcome = try await engine.store.create([new])
        switch outcome.first {
        case .existing(let c)?:
            return .accepted(id: c.id, request: c.request, replayed: true)
        case .conflict(let id)?:
            return .conflict(existingID: id)
        case .created(let c)?:
            await publish(c)
            return .accepted(id: c.id, request: c.request, replayed: false)
        case nil:
            throw StoreContractViolation(message: "create returned no outcome")
        }
    }

    /// Publishes a stored `pending` message to its stream while indexing it and logging `pending` (one group
    /// commit), then, without making the client wait, records `queued`. Failures leave the message in the
    /// outbox (it stays due); they are logged, not thrown. Losing the background step (a crash) is harmless:
    /// the outbox publishes the message again and the worker skips the duplicate entry.
    func publish(_ c: Communication) async {
        async let logged: Void = recorder.publish(logs: c.history.map { LogRecord(c, change: $0).fields }, documents: [CommunicationDocument(c)])
        do {
            try await engine.queue.publish(stream: c.channel.stream, entries: [DispatchEntry(c).fields])
        } catch {
            await logged
            logger.warning("publication deferred to the outbox", metadata: ["id": "\(c.id)", "error": "\(error)"])
            return
        }
        await logged
        let transition = StatusTransition(id: c.id, event: .queued(dispatchSeq: c.dispatchSeq), at: clock(), service: "router")
        Task { [recorder, logger] in
            do {
                try await recorder.record([transition])
            } catch {
                logger.warning("could not record queued; the outbox will republish", metadata: ["id": "\(c.id)", "error": "\(error)"])
            }
        }
    }
}

/// A store answered in a way its contract forbids.
public struct StoreContractViolation: Error, CustomStringConvertible {
    public var message: String
    public var description: String { "store contract violation: \(message)" }
}
