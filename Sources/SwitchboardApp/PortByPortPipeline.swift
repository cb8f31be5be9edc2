import Logging
import ServiceLifecycle
import Synchronization
import SwitchboardCore
import SwitchboardLifecycle
import SwitchboardTelemetry

/// The `Pipeline` port on separate engines (a Redis queue, a MongoDB store, Elasticsearch): the store, the
/// queue and the search index are written one after the other, each step batched across the callers in
/// flight (`Coalescer`, group-commit style: a lone caller goes at once, under load one round trip serves many).
///
/// **Accept.** One store write stores each message already `queued` (history `pending`, `queued`) and due in
/// the outbox at `dispatchAt` (now + the outbox grace). Then, concurrently: its entry is appended to its
/// channel stream, its two log entries to `log_stream`, and its search document is indexed; the caller is
/// answered once these are done (or failed). Last, without making the caller wait, the store learns which
/// publications happened (`confirmPublished`: their due time becomes the stall watchdog). The store is thus
/// written twice per message: the outbox guarantee needs it to know whether a publication to another engine
/// happened, else it could not tell a lost publication from a slow backlog. A message whose publication or log
/// entries failed (the queue is down), or whose confirmation a crash lost, stays due: the outbox redispatches
/// it, and writes its accept's log entries again where they may be missing.
///
/// **Record.** `store.apply` (compare-and-set through `StatusMachine`), then each applied change's log entry
/// (kept in the `LogSpool` while the queue is unreachable) and search document, then the stream entries are
/// acknowledged or dead-lettered.
///
/// The confirmations are written by `run()`: add the pipeline to the service group.
public final class PortByPortPipeline: Pipeline, Service {
    let store: any CommunicationStore
    let queue: any MessageQueue
    let search: any SearchIndex
    let spool: LogSpool
    /// Where status changes go beside `log_stream` (the status feed), when there is one.
    let feed: (any StatusFeed)?
    let options: PipelineOptions
    let clock: @Sendable () -> Timestamp
    let logger: Logger
    private let creations: Coalescer<NewCommunication, Result<CreateOutcome, any Error>>
    private let publications: Coalescer<Communication, Bool>
    private let confirmations = ConfirmationBuffer()

    public init(store: any CommunicationStore, queue: any MessageQueue, search: any SearchIndex, spool: LogSpool, feed: (any StatusFeed)? = nil, options: PipelineOptions, logger: Logger, clock: @escaping @Sendable () -> Timestamp = SystemTime.now) {
        self.store = store
        self.feed = feed
        self.queue = queue
        self.search = search
        self.spool = spool
        self.options = options
        self.clock = clock
        self.logger = logger
        creations = Coalescer { items in
            do {
                let outcomes = try await store.create(items)
                guard outcomes.count == items.count else {
                    throw StoreContractViolation(message: "create returned \(outcomes.count) outcomes for \(items.count) messages")
                }
                return outcomes.map { .success($0) }
            } catch {
                return items.map { _ in .failure(error) }
            }
        }
        publications = Coalescer { messages in
            await Self.publish(messages, queue: queue, search: search, spool: spool, feed: feed, logger: logger)
        }
    }

    // MARK: accept

    public func accept(_ items: [NewCommunication], queuedAt: Timestamp, service: String) async throws -> [CreateOutcome] {
        if items.count > 1 { return try await acceptBatch(items, queuedAt: queuedAt, service: service) }
        var outcomes: [CreateOutcome] = []
        outcomes.reserveCapacity(items.count)
        for var item in items {
            item.queued = true
            item.service = service
            item.createdAt = queuedAt
            // Spans (tracing on): the store write, then the publication (stream entry, log entries, search
            // document), each the time this message waited for its batch.
            let outcome = try await options.tracing.withSpan("store write", parent: item.traceParent) { span in
                span?.set("switchboard.communication_id", item.id)
                return try await creations.submit(item).get()
            }
            if case .created(let c) = outcome, c.status == .scheduled {
                // Kept out of its stream until its send time (the outbox publishes it then): its log entries,
                // status event and search document are written now.
                await Self.writeHistory([c], queue: queue, search: search, spool: spool, feed: feed, logger: logger)
            } else if case .created(let c) = outcome {
                let published = await options.tracing.withSpan("publication", parent: item.traceParent) { span in
                    span?.set("switchboard.stream", c.channel.stream)
                    let done = await publications.submit(c)
                    if !done { span?.fail("publication deferred to the outbox") }
                    return done
                }
                if published { confirmations.append(Publication(id: c.id, dispatchSeq: c.dispatchSeq)) }
            }
            outcomes.append(outcome)
        }
        return outcomes
    }

    /// A batch (`POST /api/v1/communications/batch`): one store write for all of it, then one publication (its
    /// stream entries, log entries and documents), not one coalesced round per message.
    func acceptBatch(_ items: [NewCommunication], queuedAt: Timestamp, service: String) async throws -> [CreateOutcome] {
        let items = items.map { item in
            var item = item
            item.queued = true
            item.service = service
            item.createdAt = queuedAt
            return item
        }
        let outcomes = try await options.tracing.withSpan("store write", parent: items[0].traceParent) { span in
            span?.set("switchboard.batch_size", items.count)
            return try await store.create(items)
        }
        guard outcomes.count == items.count else {
            throw StoreContractViolation(message: "create returned \(outcomes.count) outcomes for \(items.count) messages")
        }
        var queued: [Communication] = [], scheduled: [Communication] = []
        for case .created(let c) in outcomes { if c.status == .scheduled { scheduled.append(c) } else { queued.append(c) } }
        async let history: Void = Self.writeHistory(scheduled, queue: queue, search: search, spool: spool, feed: feed, logger: logger)
        let published = await options.tracing.withSpan("publication", parent: items[0].traceParent) { span in
            await Self.publish(queued, queue: queue, search: search, spool: spool, feed: feed, logger: logger)
        }
        await history
        for (c, done) in zip(queued, published) where done { confirmations.append(Publication(id: c.id, dispatchSeq: c.dispatchSeq)) }
        return outcomes
    }

    /// Appends the entries of stored messages to their streams (one pipelined write per stream), writes their
    /// history's log entries and indexes their documents, concurrently. Returns, per message, whether its
    /// entry and its log entries were written; failures are logged, not thrown (the message stays due).
    static func publish(_ messages: [Communication], queue: any MessageQueue, search: any SearchIndex, spool: LogSpool, feed: (any StatusFeed)?, logger: Logger) async -> [Bool] {
        async let indexed: Void = index(messages.map(CommunicationDocument.init), search: search, logger: logger)
        // The log entries (and status events) first: a worker that takes the entry at once must not get its
        // `processing` into the status feed before the message's `pending` and `queued`.
        let logged = await writeLogs(messages.flatMap { c in c.history.map { LogRecord(c, change: $0) } }, queue: queue, spool: spool, feed: feed, logger: logger)
        var published = [Bool](repeating: true, count: messages.count)
        var byStream: [String: [Int]] = [:]
        for (i, c) in messages.enumerated() { byStream[c.channel.stream, default: []].append(i) }
        for (stream, indices) in byStream {
            do {
                _ = try await queue.publish(stream: stream, entries: indices.map { DispatchEntry(messages[$0]).fields })
            } catch {
                for i in indices { published[i] = false }
                logger.warning("publication deferred to the outbox", metadata: ["stream": "\(stream)", "messages": "\(indices.count)", "first": "\(messages[indices[0]].id)", "trace_id": "\(messages[indices[0]].traceParent?.traceID ?? "")", "error": "\(error)"])
            }
        }
        await indexed
        guard logged else { return messages.map { _ in false } }
        return published
    }

    /// Writes the log entries, status events and search documents of stored messages that are on no stream.
    static func writeHistory(_ messages: [Communication], queue: any MessageQueue, search: any SearchIndex, spool: LogSpool, feed: (any StatusFeed)?, logger: Logger) async {
        async let indexed: Void = index(messages.map(CommunicationDocument.init), search: search, logger: logger)
        _ = await writeLogs(messages.flatMap { c in c.history.map { LogRecord(c, change: $0) } }, queue: queue, spool: spool, feed: feed, logger: logger)
        await indexed
    }

    // MARK: record

    public func record(_ transitions: [StatusTransition], settle: [QueueEntry?], group: String) async throws -> [TransitionOutcome] {
        precondition(settle.isEmpty || settle.count == transitions.count, "settle must be empty or match transitions")
        guard !transitions.isEmpty else { return [] }
        let outcomes = try await store.apply(transitions)
        var logs: [LogRecord] = []
        var documents: [CommunicationDocument] = []
        for case .applied(let c, let change) in outcomes {
            logs.append(LogRecord(c, change: change))
            // `processing` is logged, not indexed: it lasts milliseconds; the index shows the status before and after.
            if c.status != .processing { documents.append(CommunicationDocument(c)) }
        }
        async let indexed: Void = Self.index(documents, search: search, logger: logger)
        _ = await Self.writeLogs(logs, queue: queue, spool: spool, feed: feed, logger: logger)
        await indexed
        var acks: [String: [String]] = [:]
        for (outcome, entry) in zip(outcomes, settle) {
            guard let entry else { continue }
            if case .applied(let c, _) = outcome, c.status == .failed {
                try await queue.deadLetter(stream: entry.stream, group: group, entries: [entry], reason: c.lastError?.description ?? "failed")
            } else {
                acks[entry.stream, default: []].append(entry.id)
            }
        }
        for (stream, ids) in acks { try await queue.ack(stream: stream, group: group, ids: ids) }
        return outcomes
    }

    /// Writes entries to `log_stream`, then their status changes to the status feed; entries the queue refused
    /// wait in the `LogSpool` for `LogSpoolService`, which writes both again (a feed that failed after `log_stream`
    /// took the entries may so hold an event twice: at least once, like the log). Returns whether they were written.
    static func writeLogs(_ records: [LogRecord], queue: any MessageQueue, spool: LogSpool, feed: (any StatusFeed)?, logger: Logger) async -> Bool {
        guard !records.isEmpty else { return true }
        let logs = records.map(\.fields)
        do {
            // Both at once: the accept waits for the two (see `publish`), one round trip.
            async let fed: Void = feed?.append(records) ?? ()
            try await queue.publish(stream: StreamNames.log, entries: logs)
            try await fed
            return true
        } catch {
            let dropped = await spool.keep(logs)
            logger.warning("could not write to log_stream; entries kept for a later attempt", metadata: ["error": "\(error)", "entries": "\(logs.count)", "dropped": "\(dropped)"])
            return false
        }
    }

    /// Indexes documents; a failure is logged (the search catch-up, where there is one, re-indexes from the store).
    static func index(_ documents: [CommunicationDocument], search: any SearchIndex, logger: Logger) async {
        guard !documents.isEmpty else { return }
        do { try await search.index(communications: documents) } catch {
            logger.warning("could not index communications", metadata: ["error": "\(error)", "documents": "\(documents.count)"])
        }
    }

    // MARK: logging service

    public func readLogs(group: String, consumer: String, count: Int, block: Duration) async throws -> LogBatch {
        let entries = try await queue.read(stream: StreamNames.log, group: group, consumer: consumer, count: count, block: block)
        return LogBatch(entries: entries, origin: .claimed, consumer: consumer)
    }

    /// Indexes the records, retrying while the search index is unavailable (Elasticsearch down) with the batch in
    /// hand and its leases renewed meanwhile — not by letting them expire, which would raise the delivery counts
    /// and dead-letter the entries —; then acknowledges the batch and dead-letters `deadLetters`.
    public func indexLogs(_ records: [LogRecord], consuming batch: LogBatch, deadLetters: [QueueEntry], reason: String, group: String) async throws {
        let stream = StreamNames.log
        try await queue.keepingLeases(stream: stream, group: group, consumer: batch.consumer, ids: batch.entries.map(\.id), maxRenewals: .max, logger: logger) {
            try await ServiceLoop.retrying("index log records", logger: logger) { try await search.index(logs: records) }
        }
        let dead = Set(deadLetters.map(\.id))
        try await queue.ack(stream: stream, group: group, ids: batch.entries.map(\.id).filter { !dead.contains($0) })
        if !deadLetters.isEmpty {
            try await queue.deadLetter(stream: stream, group: group, entries: deadLetters, reason: reason)
        }
    }

    // MARK: confirmations

    /// Writes the confirmations of publications (`confirmPublished`), batched, every `confirmInterval` until
    /// graceful shutdown, then the last ones. (A confirmation only moves an outbox due time, so it need not be
    /// prompt; a lost one costs a redispatch.)
    public func run() async throws {
        await ServiceLoop.run("publication confirmations", logger: logger) {
            await confirmWaiting()
            return Self.confirmInterval
        }
        await confirmWaiting()
    }

    static let confirmInterval: Duration = .milliseconds(20)

    /// Publications answered to their callers and not yet confirmed to the store.
    public var unconfirmedCount: Int { confirmations.count }

    private func confirmWaiting() async {
        while true {
            let batch = confirmations.take(1024)
            guard !batch.isEmpty else { return }
            do {
                try await store.confirmPublished(batch, due: options.watchdog(from: clock()))
            } catch {
                // Harmless: the messages stay due and the outbox redispatches them (a worker skips the stale entry).
                logger.warning("could not confirm publications; the outbox will redispatch them", metadata: ["messages": "\(batch.count)", "error": "\(error)"])
            }
        }
    }
}

/// Publications waiting to be confirmed to the store.
final class ConfirmationBuffer: Sendable {
    private let waiting = Mutex<[Publication]>([])

    var count: Int { waiting.withLock { $0.count } }

    func append(_ p: Publication) {
        waiting.withLock { $0.append(p) }
    }

    func take(_ limit: Int) -> [Publication] {
        waiting.withLock { w in
            let n = min(limit, w.count)
            defer { w.removeFirst(n) }
            return Array(w.prefix(n))
        }
    }
}

/// A store answered in a way its contract forbids.
public struct StoreContractViolation: Error, CustomStringConvertible {
    public var message: String
    public var description: String { "store contract violation: \(message)" }
}
