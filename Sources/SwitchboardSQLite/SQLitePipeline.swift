import SwitchboardCore

/// The `Pipeline` port for the embedded engine: store, streams and search live in one SQLite file, so each
/// step of the pipeline is one transaction (and, with group commit, shares its COMMIT with others).
///
/// It goes with a `SQLiteSearchIndex` over the store's rows (`.storeRows`): a communication's search document
/// is its `communications` row, so there is no document to write here.
public struct SQLitePipeline: Pipeline {
    /// The embedded queue: its database, clock, lease and poll interval are the pipeline's.
    let queue: SQLiteQueue
    var db: SQLiteDatabase { queue.db }
    var clock: @Sendable () -> Timestamp { queue.clock }

    public init(queue: SQLiteQueue) {
        self.queue = queue
    }

    public func accept(_ items: [NewCommunication], queuedAt: Timestamp, service: String) async throws -> [CreateOutcome] {
        // Everything that can be encoded is encoded before the write, off the writer thread.
        struct Prepared: Sendable {
            var item: NewCommunication
            /// The record as stored: already `queued`, moved there by `StatusMachine`.
            var queued: Communication
            var dataText: String
            var entry: String
            var logs: [String]
            /// The status feed's records of the same changes (without the body).
            var events: [String]
        }
        let prepared = items.map { item -> Prepared in
            // `pending` → `queued` through `StatusMachine`, not due: its stream entry is written with it. A
            // message with a send time is stored `scheduled` instead, due then, on no stream.
            let queued = item.sendAt != nil ? item.communication : item.communication.queued(at: queuedAt, service: service, due: nil)
            let texts = queued.history.map { LogRecord(queued, change: $0).logAndStatusTexts }
            return Prepared(item: item, queued: queued, dataText: item.request.data.canonicalText, entry: DispatchEntry(queued).fieldsText, logs: texts.map(\.log), events: texts.map(\.status))
        }
        let results = try await db.write { c in
            var logs: [String] = []
            var events: [String] = []
            logs.reserveCapacity(prepared.count * 2)
            events.reserveCapacity(prepared.count * 2)
            let results = try prepared.map { p -> SQLiteStore.CreateResult in
                let r = try SQLiteStore.createOne(c, p.item, as: p.queued, dataText: p.dataText)
                guard case .created = r else { return r }
                // A scheduled message waits in the outbox (due at its send time), on no stream.
                if p.queued.status == .queued { try SQLiteQueue.append(c, stream: p.item.request.channel.stream, fields: p.entry, at: queuedAt) }
                logs += p.logs
                events += p.events
                return r
            }
            // The transaction's log records as one entry (see SQLiteQueue), and its status events as one row.
            if !logs.isEmpty { try SQLiteQueue.append(c, stream: StreamNames.log, fields: SQLiteQueue.batchText(logs), sets: logs.count, at: queuedAt) }
            try SQLiteStatusFeed.append(c, records: events, at: queuedAt)
            return results
        }
        for channel in Set(items.map(\.request.channel)) { db.signal.notify(channel.stream) }
        db.signal.notify(StreamNames.log)
        db.signal.notify(StreamNames.status)
        return zip(prepared, results).map { p, r in
            guard case .created = r else { return SQLiteStore.outcome(p.item, r) }
            return .created(p.queued)
        }
    }

    public func record(_ transitions: [StatusTransition], settle: [QueueEntry?], group: String) async throws -> [TransitionOutcome] {
        precondition(settle.isEmpty || settle.count == transitions.count, "settle must be empty or match transitions")
        let now = clock()
        // Entries are settled only with a durable commit; `processing` alone need not wait for the sync.
        let results = try await db.write(durable: !settle.isEmpty || SQLiteStore.needsSync(transitions)) { c in
            var results: [SQLiteStore.ApplyResult] = []
            results.reserveCapacity(transitions.count)
            var acks: [String: [String]] = [:]
            var logs: [String] = []
            var events: [String] = []
            for (i, t) in transitions.enumerated() {
                let r = try SQLiteStore.applyOne(c, t)
                results.append(r)
                var failed: Communication?
                if case .applied(let loaded, let change) = r {
                    let comm = loaded.communication
                    var record = LogRecord(comm, change: change)
                    // The row's data is parsed off the writer: its metadata comes from the side table (one probe).
                    record.metadata = try SQLiteStore.metadata(c, seq: loaded.seq, dataText: loaded.dataText)
                    let texts = record.logAndStatusTexts
                    logs.append(texts.log)
                    events.append(texts.status)
                    if comm.status == .failed { failed = comm }
                }
                guard i < settle.count, let entry = settle[i] else { continue }
                if let failed {
                    try SQLiteQueue.append(c, stream: StreamNames.deadLetter(of: entry.stream), fields: SQLiteQueue.deadFields(entry, reason: failed.lastError?.description ?? "failed"), at: now)
                }
                acks[entry.stream, default: []].append(entry.id)
            }
            for (stream, ids) in acks { try SQLiteQueue.ack(c, stream: stream, group: group, ids: ids) }
            // The transaction's log records as one entry (see SQLiteQueue).
            if !logs.isEmpty { try SQLiteQueue.append(c, stream: StreamNames.log, fields: SQLiteQueue.batchText(logs), sets: logs.count, at: now) }
            try SQLiteStatusFeed.append(c, records: events, at: now)
            return results
        }
        db.signal.notify(StreamNames.log)
        db.signal.notify(StreamNames.status)
        return results.map(SQLiteStore.outcome)
    }

    public func readLogs(group: String, consumer: String, count: Int, block: Duration) async throws -> LogBatch {
        // Reads happen on reader connections: the writer is only involved when a lease has run out.
        let stream = StreamNames.log
        return try await queue.blocking(stream: stream, block: block, empty: LogBatch(entries: [], origin: .claimed)) {
            let peek = try await queue.peek(stream: stream, group: group, count: count)
            if peek.expired {
                // Claimed entries are few (only a reader outside the pipeline claims log entries), so they are
                // counted as entries, not as the records they hold.
                let claimed = try await queue.claim(stream: stream, group: group, consumer: consumer, count: max(1, count / 64), includeNew: false)
                if !claimed.isEmpty { return LogBatch(entries: claimed, origin: .claimed) }
            }
            guard let through = peek.through else { return nil }
            return LogBatch(entries: peek.entries, origin: .read(after: String(peek.after), through: String(through)))
        }
    }

    public func indexLogs(_ records: [LogRecord], consuming batch: LogBatch, deadLetters: [QueueEntry], reason: String, group: String) async throws {
        let stream = StreamNames.log
        let dead = deadLetters.map { SQLiteQueue.deadFields($0, reason: reason) }
        let now = clock()
        // Not durable: the records and the consumption of their entries are lost or kept together, so a power
        // cut only makes the logging service index those entries again.
        try await db.write(durable: false) { c in
            for r in records { try SQLiteSearchIndex.insert(c, r) }
            for fields in dead { try SQLiteQueue.append(c, stream: StreamNames.deadLetter(of: stream), fields: fields, at: now) }
            switch batch.origin {
            case .claimed:
                try SQLiteQueue.ack(c, stream: stream, group: group, ids: batch.entries.map(\.id))
            case .read(let after, let through):
                guard let after = Int64(after), let through = Int64(through) else { throw StaleLogBatch() }
                try SQLiteQueue.consume(c, stream: stream, group: group, after: after, through: through)
            }
        }
    }
}
