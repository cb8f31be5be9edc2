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
        if let pipeline = engine.pipeline {
            // One transaction: stored, queued, on its stream, logged and indexed.
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

    /// Indexes a stored `pending` message while publishing it to its stream (one group commit), then, without
    /// making the client wait, records `queued` and writes the `pending` and `queued` log entries. Failures
    /// leave the message in the outbox (it stays due); they are logged, not thrown. Losing the background step
    /// (a crash) is harmless: the outbox publishes the message again and the worker skips the duplicate entry.
    func publish(_ c: Communication) async {
        async let indexed: Void = recorder.publish(logs: [], documents: [CommunicationDocument(c)])
        var published = true
        do {
            try await engine.queue.publish(stream: c.channel.stream, entries: [DispatchEntry(c).fields])
        } catch {
            published = false
            logger.warning("publication deferred to the outbox", metadata: ["id": "\(c.id)", "error": "\(error)"])
        }
        await indexed
        let pendingLogs = c.history.map { LogRecord(c, change: $0).fields }
        let at = clock()
        let transition = StatusTransition(id: c.id, event: .queued(dispatchSeq: c.dispatchSeq), at: at, service: "router", watchdog: options.watchdog(from: at))
        Task { [recorder, logger] in
            guard published else {
                await recorder.publish(logs: pendingLogs, documents: [])
                return
            }
            do {
                try await recorder.record([transition], alsoLog: pendingLogs)
            } catch {
                await recorder.publish(logs: pendingLogs, documents: [])
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
