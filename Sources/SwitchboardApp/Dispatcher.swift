import Logging
import SwitchboardCore

/// The router's pipeline for one request: persist (`pending`), index, publish to the channel stream,
/// record `queued`. Publication is confirmed by the `queued` transition; if it never happens (the queue is
/// down, the process dies), the outbox scheduler publishes the message once `outboxGrace` has passed.
///
/// With separate engines (a Redis queue beside the store), each step is batched across the requests in
/// flight (`Coalescer`): one store call creates a batch of messages, one pipelined write publishes a batch to
/// each stream, and one store call and one log write record a batch's `queued`. A lone request is not
/// delayed; under load one round trip serves many requests.
public struct Dispatcher: Sendable {
    /// What happened to a request.
    public enum Outcome: Sendable, Hashable {
        /// Stored and queued (or, with `replayed`, the earlier result of the same idempotency key).
        case accepted(id: String, request: CommunicationRequest, replayed: Bool)
        /// The idempotency key belongs to a different request.
        case conflict(existingID: String)
    }

    /// The `queued` step of a published message (`transition`), or only the log entries of its `pending`
    /// state when publication failed (the outbox publishes it later).
    struct Confirmation: Sendable {
        var transition: StatusTransition?
        var pendingLogs: [[String: String]]
    }

    let engine: Engine
    let recorder: StatusRecorder
    let ids: ObjectIDGenerator
    let options: PipelineOptions
    let clock: @Sendable () -> Timestamp
    let logger: Logger
    let creations: Coalescer<NewCommunication, Result<CreateOutcome, any Error>>
    let publications: Coalescer<Communication, Bool>
    let confirmations: Coalescer<Confirmation, Void>

    public init(engine: Engine, options: PipelineOptions, logger: Logger, clock: @escaping @Sendable () -> Timestamp = SystemTime.now) {
        let recorder = StatusRecorder(engine: engine, logger: logger)
        self.engine = engine
        self.recorder = recorder
        var rng = SystemRandomNumberGenerator()
        self.ids = ObjectIDGenerator(random: &rng)
        self.options = options
        self.clock = clock
        self.logger = logger
        creations = Coalescer { items in
            do {
                let outcomes = try await engine.store.create(items)
                guard outcomes.count == items.count else {
                    throw StoreContractViolation(message: "create returned \(outcomes.count) outcomes for \(items.count) messages")
                }
                return outcomes.map { .success($0) }
            } catch {
                return items.map { _ in .failure(error) }
            }
        }
        publications = Coalescer { messages in await Self.publish(messages, engine: engine, recorder: recorder, logger: logger) }
        confirmations = Coalescer { items in
            await Self.confirm(items, recorder: recorder, logger: logger)
            return items.map { _ in () }
        }
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
        switch try await creations.submit(new).get() {
        case .existing(let c):
            return .accepted(id: c.id, request: c.request, replayed: true)
        case .conflict(let id):
            return .conflict(existingID: id)
        case .created(let c):
            let published = await publications.submit(c)
            // Without making the client wait: `queued` and the log entries.
            let pendingLogs = c.history.map { LogRecord(c, change: $0).fields }
            let at = clock()
            let transition = published ? StatusTransition(id: c.id, event: .queued(dispatchSeq: c.dispatchSeq), at: at, service: "router", watchdog: options.watchdog(from: at)) : nil
            confirmations.send(Confirmation(transition: transition, pendingLogs: pendingLogs))
            return .accepted(id: c.id, request: c.request, replayed: false)
        }
    }

    /// Indexes stored `pending` messages while publishing them to their streams (one pipelined write per
    /// stream). Returns, per message, whether it was published; failures leave it in the outbox (it stays
    /// due) and are logged, not thrown.
    static func publish(_ messages: [Communication], engine: Engine, recorder: StatusRecorder, logger: Logger) async -> [Bool] {
        async let indexed: Void = recorder.publish(logs: [], documents: messages.map(CommunicationDocument.init))
        var published = [Bool](repeating: true, count: messages.count)
        var byStream: [String: [Int]] = [:]
        for (i, c) in messages.enumerated() { byStream[c.channel.stream, default: []].append(i) }
        for (stream, indices) in byStream {
            do {
                _ = try await engine.queue.publish(stream: stream, entries: indices.map { DispatchEntry(messages[$0]).fields })
            } catch {
                for i in indices { published[i] = false }
                logger.warning("publication deferred to the outbox", metadata: ["stream": "\(stream)", "messages": "\(indices.count)", "first": "\(messages[indices[0]].id)", "error": "\(error)"])
            }
        }
        await indexed
        return published
    }

    /// Records `queued` for the published messages and writes every message's `pending` log entries (before
    /// its `queued` one). Failures are logged: the outbox republishes a message whose `queued` was not
    /// recorded, and a worker skips the duplicate entry. Losing this step (a crash) is harmless for the same reason.
    static func confirm(_ items: [Confirmation], recorder: StatusRecorder, logger: Logger) async {
        let published = items.filter { $0.transition != nil }
        var unconfirmedLogs = items.filter { $0.transition == nil }.flatMap(\.pendingLogs)
        if !published.isEmpty {
            do {
                try await recorder.record(published.compactMap(\.transition), alsoLog: published.flatMap(\.pendingLogs))
            } catch {
                unconfirmedLogs += published.flatMap(\.pendingLogs)
                logger.warning("could not record queued; the outbox will republish", metadata: ["messages": "\(published.count)", "error": "\(error)"])
            }
        }
        if !unconfirmedLogs.isEmpty { await recorder.publish(logs: unconfirmedLogs, documents: []) }
    }
}

/// A store answered in a way its contract forbids.
public struct StoreContractViolation: Error, CustomStringConvertible {
    public var message: String
    public var description: String { "store contract violation: \(message)" }
}
