import SwitchboardCore

/// The embedded `CommunicationStore`: the `communications` table, each row with its status history.
public struct SQLiteStore: CommunicationStore {
    let db: SQLiteDatabase

    public init(database: SQLiteDatabase) { db = database }

    static let columns = "seq, id, type, sender, recipient, msg, data, status, attempts, dispatch_seq, dispatch_at, provider, provider_message_id, error_code, error_message, idempotency_key, created_at, updated_at, key_id, test, traceparent"

    /// A row as read on the writer thread: everything but the `data` JSON, which is parsed afterwards, off
    /// the writer thread (`finished`), to keep the single writer's work per row small.
    struct Loaded: Sendable {
        var seq: Int64
        var communication: Communication
        var dataText: String

        /// The communication with its request read from `data` (`CommunicationRequest(stored:data:)`; from the
        /// row's sender, recipient and msg columns should `data` not parse).
        var finished: Communication {
            var c = communication
            let data = (try? JSONParser.parse(dataText)) ?? .object(["from": .string(c.request.from), "to": .string(c.request.to), "msg": .string(c.request.msg)])
            c.request = CommunicationRequest(stored: c.channel, data: data)
            return c
        }
    }

    /// Reads a row selected with `columns`.
    static func communication(_ s: Statement) -> Loaded? {
        guard let channel = MessageChannel(rawValue: s.text(2)), let status = CommunicationStatus(rawValue: s.text(7)) else { return nil }
        let request = CommunicationRequest(channel: channel, from: s.text(3), to: s.text(4), msg: s.text(5), data: .null)
        let error: ProviderError? = s.optionalText(14).map { ProviderError(code: s.optionalText(13), message: $0) }
        let c = Communication(
            id: s.text(1), request: request, status: status, attempts: Int(s.int(8)), dispatchSeq: Int(s.int(9)),
            dispatchAt: s.optionalInt(10).map(Timestamp.init(milliseconds:)), provider: s.optionalText(11), providerMessageID: s.optionalText(12),
            lastError: error, idempotencyKey: s.optionalText(15), createdAt: Timestamp(milliseconds: s.int(16)), updatedAt: Timestamp(milliseconds: s.int(17)),
            keyID: s.optionalText(18), test: s.int(19) != 0, traceParent: s.optionalText(20).flatMap { TraceParent(parsing: $0) })
        return Loaded(seq: s.int(0), communication: c, dataText: s.text(6))
    }

    static func load(_ c: Connection, where clause: String, _ values: [SQLValue]) throws -> Loaded? {
        var found: Loaded?
        try c.query("SELECT \(columns) FROM communications WHERE \(clause) LIMIT 1", values) { s in found = communication(s) }
        return found
    }

    static func history(_ c: Connection, seq: Int64) throws -> [StatusChange] {
        var text = ""
        try c.query("SELECT history FROM communications WHERE seq = ?", [.int(seq)]) { s in text = s.text(0) }
        return text.split(separator: "\n").compactMap { line in
            guard let v = try? JSONParser.parse(String(line)), let status = v["s"]?.stringValue.flatMap(CommunicationStatus.init(rawValue:)),
                case .number(let at)? = v["t"], case .number(let attempt)? = v["a"], let service = v["v"]?.stringValue
            else { return nil }
            return StatusChange(status: status, at: Timestamp(milliseconds: Int64(at)), attempt: Int(attempt), service: service, provider: v["p"]?.stringValue, detail: v["d"]?.stringValue)
        }
    }

    /// One line of the history column.
    static func historyLine(_ h: StatusChange) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(96)
        appendHistoryLine(h, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends one line of the history column to `out`.
    static func appendHistoryLine(_ h: StatusChange, to out: inout [UInt8]) {
        // Canonical JSON (keys sorted: a, d, p, s, t, v) written directly: this runs on the writer thread.
        out.append(contentsOf: "{\"a\":\(h.attempt)".utf8)
        if let d = h.detail {
            out.append(contentsOf: ",\"d\":".utf8)
            JSONValue.writeString(d, to: &out)
        }
        if let p = h.provider {
            out.append(contentsOf: ",\"p\":".utf8)
            JSONValue.writeString(p, to: &out)
        }
        out.append(contentsOf: ",\"s\":".utf8)
        JSONValue.writeString(h.status.rawValue, to: &out)
        out.append(contentsOf: ",\"t\":\(h.at.milliseconds),\"v\":".utf8)
        JSONValue.writeString(h.service, to: &out)
        out.append(contentsOf: "}\n".utf8)
    }

    /// What the writer thread decided for one new communication; turned into a `CreateOutcome` afterwards.
    enum CreateResult: Sendable {
        case created
        case existing(Loaded)
        case conflict(String)
    }

    public func create(_ items: [NewCommunication]) async throws -> [CreateOutcome] {
        // Encode off the writer thread.
        let rows = items.map { item in
            let record = item.communication
            return (item, record, item.request.data.canonicalText, Self.historyText(record))
        }
        let results = try await db.write { c in try rows.map { try Self.createOne(c, $0.0, as: $0.1, dataText: $0.2, historyText: $0.3) } }
        return zip(items, results).map { Self.outcome($0, $1) }
    }

    /// Inserts one new communication on the writer thread, honouring its idempotency key: `item` stored as
    /// `record`, the caller's record of it — `item.communication` (`pending`, or `queued` and still due for the
    /// port-by-port pipeline), or that one moved to `queued` by the caller (`Communication.queued(at:service:due:)`
    /// with no due time, as the embedded pipeline publishes it in the same transaction). Status, due time and
    /// history (with their services) are the record's.
    /// The `history` column's text of `record` (`historyLine` per change), made off the writer thread.
    static func historyText(_ record: Communication) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(96 * record.history.count)
        for h in record.history { appendHistoryLine(h, to: &out) }
        return String(decoding: out, as: UTF8.self)
    }

    static func createOne(_ c: Connection, _ item: NewCommunication, as record: Communication, dataText: String, historyText history: String) throws -> CreateResult {
        func existing(_ key: String) throws -> CreateResult? {
            guard let found = try load(c, where: "idempotency_key = ?", [.text(key)]) else { return nil }
            return found.communication.channel == item.request.channel && found.dataText == dataText ? .existing(found) : .conflict(found.communication.id)
        }
        if let key = item.idempotencyKey, let r = try existing(key) { return r }
        let r = item.request
        do {
            try c.run(
                """
                INSERT INTO communications (id, type, sender, recipient, msg, data, status, attempts, dispatch_seq, dispatch_at, idempotency_key, created_at, updated_at, history, key_id, test, traceparent)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [.text(item.id), .text(r.channel.rawValue), .text(r.from), .text(r.to), .text(r.msg), .text(dataText),
                 .text(record.status.rawValue), .int(Int64(record.attempts)), .int(Int64(record.dispatchSeq)), record.dispatchAt.map { .int($0.milliseconds) } ?? .null,
                 item.idempotencyKey.map(SQLValue.text) ?? .null, .int(record.createdAt.milliseconds), .int(record.updatedAt.milliseconds), .text(history),
                 item.keyID.map(SQLValue.text) ?? .null, .int(item.test ? 1 : 0), item.traceParent.map { .text($0.text) } ?? .null])
        } catch let error as SQLiteError where error.isConstraint {
            // Another process stored the same idempotency key first.
            guard let key = item.idempotencyKey, let r = try existing(key) else { throw error }
            return r
        }
        let metadata = r.metadata
        if !metadata.isEmpty {
            let seq = c.lastInsertRowID
            for (key, value) in metadata {
                try c.run("INSERT OR IGNORE INTO communication_metadata (key, value, seq) VALUES (?, ?, ?)", [.text(key), .text(value), .int(seq)])
            }
        }
        c.countStatus(r.channel, record.status, 1)
        return .created
    }

    static func outcome(_ item: NewCommunication, _ result: CreateResult) -> CreateOutcome {
        switch result {
        case .created: .created(item.communication)
        case .existing(let loaded): .existing(loaded.finished)
        case .conflict(let id): .conflict(existingID: id)
        }
    }

    public func communication(id: String) async throws -> Communication? {
        try await loadWithHistory(where: "id = ?", [.text(id)])
    }

    public func communication(providerMessageID: String) async throws -> Communication? {
        try await loadWithHistory(where: "provider_message_id = ?", [.text(providerMessageID)])
    }

    public func communications(idempotencyKeys keys: [String]) async throws -> [String: Communication] {
        guard !keys.isEmpty else { return [:] }
        return try await db.read { c in
            var found: [String: Communication] = [:]
            // In chunks well under SQLite's limit on bound parameters.
            for start in stride(from: 0, to: keys.count, by: 500) {
                let chunk = keys[start..<min(keys.count, start + 500)]
                let marks = Array(repeating: "?", count: chunk.count).joined(separator: ", ")
                try c.query("SELECT \(Self.columns) FROM communications WHERE idempotency_key IN (\(marks))", chunk.map { .text($0) }) { s in
                    if let row = Self.communication(s), let key = row.finished.idempotencyKey { found[key] = row.finished }
                }
            }
            return found
        }
    }

    func loadWithHistory(where clause: String, _ values: [SQLValue]) async throws -> Communication? {
        try await db.read { c in
            guard let found = try Self.load(c, where: clause, values) else { return nil }
            var comm = found.finished
            comm.history = try Self.history(c, seq: found.seq)
            return comm
        }
    }

    /// What the writer thread did with one transition; turned into a `TransitionOutcome` afterwards.
    enum ApplyResult: Sendable {
        case applied(Loaded, StatusChange)
        case ignored(Loaded, String)
        case notFound(String)
    }

    /// The `data.metadata` pairs of the row `seq`, from `communication_metadata` (filled by `createOne`): one index
    /// probe, and none for a row whose `data` does not mention metadata (a substring check, no JSON parse).
    static func metadata(_ c: Connection, seq: Int64, dataText: String) throws -> [String: String] {
        guard dataText.utf8.count > 12, dataText.utf8.firstRange(of: "\"metadata\"".utf8) != nil else { return [:] }
        var out: [String: String] = [:]
        try c.query("SELECT key, value FROM communication_metadata WHERE seq = ?", [.int(seq)]) { s in out[s.text(0)] = s.text(1) }
        return out
    }

    public func apply(_ transitions: [StatusTransition]) async throws -> [TransitionOutcome] {
        let results = try await db.write(durable: Self.needsSync(transitions)) { c in try transitions.map { try Self.applyOne(c, $0) } }
        return results.map(Self.outcome)
    }

    /// Whether the caller must wait for `transitions` to be on disk: not when they are all `processing`. That
    /// status marks a delivery in flight; lost in a power cut, the message is still `queued` with its stream
    /// entry unacknowledged, and is delivered again — as it would be after a crash just after a durable
    /// `processing`. Every other status is waited for.
    static func needsSync(_ transitions: [StatusTransition]) -> Bool {
        !transitions.allSatisfy { if case .processing = $0.event { true } else { false } }
    }

    /// Applies one transition on the writer thread (compare-and-set through `StatusMachine`).
    static func applyOne(_ c: Connection, _ t: StatusTransition) throws -> ApplyResult {
        guard var loaded = try load(c, where: "id = ?", [.text(t.id)]) else { return .notFound(t.id) }
        switch StatusMachine.decide(loaded.communication.dispatchState, t.event, watchdog: t.watchdog) {
        case .ignore(let reason):
            return .ignored(loaded, reason)
        case .apply(let effect):
            let (next, change) = loaded.communication.applying(effect, at: t.at, service: t.service)
            try c.run(
                """
                UPDATE communications SET status = ?, attempts = ?, dispatch_seq = ?, dispatch_at = ?, provider = ?, provider_message_id = ?,
                error_code = ?, error_message = ?, updated_at = ?, history = history || ? WHERE seq = ?
                """,
                [.text(next.status.rawValue), .int(Int64(next.attempts)), .int(Int64(next.dispatchSeq)), next.dispatchAt.map { .int($0.milliseconds) } ?? .null,
                 next.provider.map(SQLValue.text) ?? .null, next.providerMessageID.map(SQLValue.text) ?? .null,
                 next.lastError?.code.map(SQLValue.text) ?? .null, next.lastError.map { .text($0.message) } ?? .null, .int(next.updatedAt.milliseconds),
                 .text(historyLine(change)), .int(loaded.seq)])
            if next.status != loaded.communication.status {
                c.countStatus(next.channel, loaded.communication.status, -1)
                c.countStatus(next.channel, next.status, 1)
            }
            loaded.communication = next
            loaded.communication.history = []
            return .applied(loaded, change)
        }
    }

    static func outcome(_ r: ApplyResult) -> TransitionOutcome {
        switch r {
        case .applied(let loaded, let change): .applied(loaded.finished, change)
        case .ignored(let loaded, let reason): .ignored(loaded.finished, reason: reason)
        case .notFound(let id): .notFound(id: id)
        }
    }

    /// The condition is `StatusMachine.publicationConfirmed`'s, in SQL. Not durable: a confirmation lost in a
    /// power cut only leaves the message due, and the outbox redispatches it.
    public func confirmPublished(_ publications: [Publication], due: Timestamp?) async throws {
        guard !publications.isEmpty else { return }
        let dueValue: SQLValue = due.map { .int($0.milliseconds) } ?? .null
        try await db.write(durable: false) { c in
            for p in publications {
                try c.run("UPDATE communications SET dispatch_at = ? WHERE id = ? AND status = 'queued' AND dispatch_seq = ?", [dueValue, .text(p.id), .int(Int64(p.dispatchSeq))])
            }
        }
    }

    public func claimDue(now: Timestamp, lease: Duration, limit: Int) async throws -> [Communication] {
        let until = now.adding(lease)
        return try await db.write { c in
            var due: [Loaded] = []
            try c.query("SELECT \(Self.columns) FROM communications WHERE dispatch_at IS NOT NULL AND dispatch_at <= ? ORDER BY dispatch_at LIMIT ?", [.int(now.milliseconds), .int(Int64(limit))]) { s in
                if let row = Self.communication(s) { due.append(row) }
            }
            for row in due {
                try c.run("UPDATE communications SET dispatch_at = ? WHERE seq = ?", [.int(until.milliseconds), .int(row.seq)])
            }
            return due
        }.map(\.finished)
    }

    /// Creation order is `seq` here (ids and times are assigned together on the writer thread).
    public func communications(createdSince since: Timestamp, after: String?, limit: Int) async throws -> [Communication] {
        try await db.read { c -> [Loaded] in
            var rows: [Loaded] = []
            let start: Int64
            if let after {
                guard let seq = try c.scalar("SELECT seq FROM communications WHERE id = ?", [.text(after)]) else { return [] }
                start = seq
            } else {
                start = 0
            }
            try c.query("SELECT \(Self.columns) FROM communications WHERE seq > ? AND created_at >= ? ORDER BY seq LIMIT ?", [.int(start), .int(since.milliseconds), .int(Int64(max(0, limit)))]) { s in
                if let row = Self.communication(s) { rows.append(row) }
            }
            return rows
        }.map { (row: Loaded) in row.finished }
    }

    /// `failed`'s statement: ?1 channel, ?2 since, ?3 until, ?4 error code (each NULL for any), ?5 limit.
    static let failedQuery = """
        SELECT \(columns) FROM communications WHERE status = 'failed'
        AND (?1 IS NULL OR type = ?1) AND (?2 IS NULL OR updated_at >= ?2) AND (?3 IS NULL OR updated_at < ?3) AND (?4 IS NULL OR error_code = ?4)
        ORDER BY updated_at, seq LIMIT ?5
        """

    /// Over the partial index on the failed rows' `updated_at` (`communications_failed`, schema version 6): a
    /// redrive reads the failed messages only, however many others the table holds. `seq` breaks ties (the
    /// index's own order after `updated_at`).
    public func failed(_ query: FailedQuery) async throws -> [Communication] {
        guard query.limit > 0 else { return [] }
        let values: [SQLValue] = [
            query.channel.map { .text($0.rawValue) } ?? .null, query.since.map { .int($0.milliseconds) } ?? .null,
            query.until.map { .int($0.milliseconds) } ?? .null, query.errorCode.map(SQLValue.text) ?? .null, .int(Int64(query.limit)),
        ]
        return try await db.read { c -> [Loaded] in
            var rows: [Loaded] = []
            try c.query(Self.failedQuery, values) { s in
                if let row = Self.communication(s) { rows.append(row) }
            }
            return rows
        }.map { (row: Loaded) in row.finished }
    }

    /// A count over the partial index on `dispatch_at` (`communications_dispatch`): the due rows only.
    public func outboxDue(now: Timestamp) async throws -> Int {
        try await db.read { c in
            Int(try c.scalar("SELECT count(*) FROM communications WHERE dispatch_at IS NOT NULL AND dispatch_at <= ?", [.int(now.milliseconds)]) ?? 0)
        }
    }

    public func statusCounts() async throws -> [StatusCount] {
        try await db.read { c in
            var counts: [StatusCount] = []
            // Kept by the writer (`Connection.countStatus`): a few rows, however many messages there are.
            try c.query("SELECT type, status, n FROM communication_counts WHERE n <> 0 ORDER BY type, status") { s in
                if let ch = MessageChannel(rawValue: s.text(0)), let st = CommunicationStatus(rawValue: s.text(1)) {
                    counts.append(StatusCount(channel: ch, status: st, count: Int(s.int(2))))
                }
            }
            return counts
        }
    }

    public func ping() async throws {
        _ = try await db.read { c in try c.scalar("SELECT 1") }
    }
}
