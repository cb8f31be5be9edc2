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
            var historyText: String
            var entry: String
            /// Its log records' and status events' ranges in `logs` and `events` below.
            var logs: [Range<Int>]
            var events: [Range<Int>]
        }
        // Every message's log records are written into one text, as the log entry of the transaction holds them
        // (`SQLiteQueue.batchText`: `[record,record,…]`), and its status events into another (the status feed's
        // row, without the bodies): no string per record.
        var logs: [UInt8] = [UInt8(ascii: "[")], events: [UInt8] = [UInt8(ascii: "[")]
        logs.reserveCapacity(items.count * 2 * (256 + (items.first?.request.msg.utf8.count ?? 0)))
        events.reserveCapacity(items.count * 2 * 256)
        let prepared = items.map { item -> Prepared in
            // `pending` → `queued` through `StatusMachine`, not due: its stream entry is written with it. A
            // message with a send time is stored `scheduled` instead, due then, on no stream.
            let queued = item.sendAt != nil ? item.communication : item.communication.queued(at: queuedAt, service: service, due: nil)
            var logRanges: [Range<Int>] = [], eventRanges: [Range<Int>] = []
            for change in queued.history {
                let r = LogRecord(queued, change: change).appendLogAndStatus(log: &logs, status: &events)
                logRanges.append(r.log)
                eventRanges.append(r.status)
            }
            let dataText = item.request.data.canonicalText
            return Prepared(item: item, queued: queued, dataText: dataText, historyText: SQLiteStore.historyText(queued), entry: DispatchEntry(queued).fieldsText(dataText: dataText), logs: logRanges, events: eventRanges)
        }
        // As the buffers are: every record, comma-separated.
        let written = (logs: Self.whole(logs, sets: prepared.reduce(0) { $0 + $1.logs.count }), events: Self.whole(events, sets: prepared.reduce(0) { $0 + $1.events.count }))
        let (logText, eventText) = (logs, events)
        let results = try await db.write { c in
            let results = try prepared.map { p -> SQLiteStore.CreateResult in
                let r = try SQLiteStore.createOne(c, p.item, as: p.queued, dataText: p.dataText, historyText: p.historyText)
                guard case .created = r else { return r }
                // A scheduled message waits in the outbox (due at its send time), on no stream.
                if p.queued.status == .queued { try SQLiteQueue.append(c, stream: p.item.request.channel.stream, fields: p.entry, at: queuedAt) }
                return r
            }
            // The records of the messages stored (all of them but for an idempotent replay or a conflict).
            var stored = (logs: written.logs, events: written.events)
            if !results.allSatisfy({ if case .created = $0 { true } else { false } }) {
                let created = zip(prepared, results).compactMap { p, r in if case .created = r { p } else { nil } }
                stored = (Self.batch(logText, created.lazy.flatMap(\.logs)), Self.batch(eventText, created.lazy.flatMap(\.events)))
            }
            if stored.logs.sets > 0 { try SQLiteQueue.append(c, stream: StreamNames.log, fields: stored.logs.text, sets: stored.logs.sets, at: queuedAt) }
            try SQLiteStatusFeed.append(c, text: stored.events.text, sets: stored.events.sets, at: queuedAt)
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

    /// The text `SQLiteQueue.batchText` makes of every record in `buffer` (`[` and the `sets` records,
    /// comma-separated).
    static func whole(_ buffer: [UInt8], sets: Int) -> (text: String, sets: Int) {
        if sets == 1 { return (String(decoding: buffer.dropFirst(), as: UTF8.self), 1) }
        var out = buffer
        out.append(UInt8(ascii: "]"))
        return (String(decoding: out, as: UTF8.self), sets)
    }

    /// The text `SQLiteQueue.batchText` makes of the records at `ranges` of `buffer`, and how many they are.
    static func batch(_ buffer: [UInt8], _ ranges: some Sequence<Range<Int>>) -> (text: String, sets: Int) {
        var out: [UInt8] = [UInt8(ascii: "[")]
        out.reserveCapacity(buffer.count + 1)
        var sets = 0
        for r in ranges {
            if sets > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: buffer[r])
            sets += 1
        }
        // One record is stored as it is (`batchText`).
        if sets == 1 { out.removeFirst() } else { out.append(UInt8(ascii: "]")) }
        return (String(decoding: out, as: UTF8.self), sets)
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
