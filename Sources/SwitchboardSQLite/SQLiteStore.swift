import SwitchboardCore

/// The embedded `CommunicationStore`: the `communications` and `status_history` tables.
public struct SQLiteStore: CommunicationStore {
    let db: SQLiteDatabase

    public init(database: SQLiteDatabase) { db = database }

    static let columns = "seq, id, type, sender, recipient, msg, data, status, attempts, dispatch_seq, dispatch_at, provider, provider_message_id, error_code, error_message, idempotency_key, created_at, updated_at"

    /// Reads a row selected with `columns`; returns its seq too.
    static func communication(_ s: Statement) -> (Int64, Communication)? {
        guard let channel = Channel(rawValue: s.text(2)), let status = CommunicationStatus(rawValue: s.text(7)) else { return nil }
        let from = s.text(3), to = s.text(4), msg = s.text(5)
        var request = CommunicationRequest(channel: channel, from: from, to: to, msg: msg)
        if let data = try? JSONParser.parse(s.text(6)),
            case .success(let r) = RequestValidator.validate(.object(["type": .string(channel.rawValue), "data": data]))
        {
            request = r
        }
        let error: ProviderError? = s.optionalText(14).map { ProviderError(code: s.optionalText(13), message: $0) }
        let c = Communication(
            id: s.text(1), request: request, status: status, attempts: Int(s.int(8)), dispatchSeq: Int(s.int(9)),
            dispatchAt: s.optionalInt(10).map(Timestamp.init(milliseconds:)), provider: s.optionalText(11), providerMessageID: s.optionalText(12),
            lastError: error, idempotencyKey: s.optionalText(15), createdAt: Timestamp(milliseconds: s.int(16)), updatedAt: Timestamp(milliseconds: s.int(17)))
        return (s.int(0), c)
    }

    static func load(_ c: Connection, where clause: String, _ values: [SQLValue]) throws -> (Int64, Communication)? {
        var found: (Int64, Communication)?
        try c.query("SELECT \(columns) FROM communications WHERE \(clause) LIMIT 1", values) { s in found = communication(s) }
        return found
    }

    static func history(_ c: Connection, seq: Int64) throws -> [StatusChange] {
        var h: [StatusChange] = []
        try c.query("SELECT status, at, attempt, service, provider, detail FROM status_history WHERE comm_seq = ? ORDER BY rowid", [.int(seq)]) { s in
            guard let status = CommunicationStatus(rawValue: s.text(0)) else { return }
            h.append(StatusChange(status: status, at: Timestamp(milliseconds: s.int(1)), attempt: Int(s.int(2)), service: s.text(3), provider: s.optionalText(4), detail: s.optionalText(5)))
        }
        return h
    }

    static func insertHistory(_ c: Connection, seq: Int64, _ change: StatusChange) throws {
        try c.run(
            "INSERT INTO status_history (comm_seq, status, at, attempt, service, provider, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [.int(seq), .text(change.status.rawValue), .int(change.at.milliseconds), .int(Int64(change.attempt)), .text(change.service), change.provider.map(SQLValue.text) ?? .null, change.detail.map(SQLValue.text) ?? .null])
    }

    public func create(_ items: [NewCommunication]) async throws -> [CreateOutcome] {
        try await db.write { c in
            var outcomes: [CreateOutcome] = []
            outcomes.reserveCapacity(items.count)
            for item in items {
                let new = item.communication
                if let key = item.idempotencyKey, let (_, existing) = try Self.load(c, where: "idempotency_key = ?", [.text(key)]) {
                    let same = existing.channel == item.request.channel && existing.request.data == item.request.data
                    outcomes.append(same ? .existing(existing) : .conflict(existingID: existing.id))
                    continue
                }
                let r = item.request
                do {
                try c.run(
                    """
                    INSERT INTO communications (id, type, sender, recipient, msg, data, status, attempts, dispatch_seq, dispatch_at, idempotency_key, created_at, updated_at)
                    VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, 1, ?, ?, ?, ?)
                    """,
                    [.text(item.id), .text(r.channel.rawValue), .text(r.from), .text(r.to), .text(r.msg), .text(r.data.canonicalText), .int(item.dispatchAt.milliseconds),
                     item.idempotencyKey.map(SQLValue.text) ?? .null, .int(item.createdAt.milliseconds), .int(item.createdAt.milliseconds)])
                } catch let error as SQLiteError where error.isConstraint {
                    // Another process stored the same idempotency key first.
                    guard let key = item.idempotencyKey, let (_, existing) = try Self.load(c, where: "idempotency_key = ?", [.text(key)]) else { throw error }
                    let same = existing.channel == item.request.channel && existing.request.data == item.request.data
                    outcomes.append(same ? .existing(existing) : .conflict(existingID: existing.id))
                    continue
                }
                try Self.insertHistory(c, seq: c.lastInsertRowID, new.history[0])
                outcomes.append(.created(new))
            }
            return outcomes
        }
    }

    public func communication(id: String) async throws -> Communication? {
        try await db.read { c in
            guard let (seq, found) = try Self.load(c, where: "id = ?", [.text(id)]) else { return nil }
            var comm = found
            comm.history = try Self.history(c, seq: seq)
            return comm
        }
    }

    public func communication(providerMessageID: String) async throws -> Communication? {
        try await db.read { c in
            guard let (seq, found) = try Self.load(c, where: "provider_message_id = ?", [.text(providerMessageID)]) else { return nil }
            var comm = found
            comm.history = try Self.history(c, seq: seq)
            return comm
        }
    }

    public func apply(_ transitions: [StatusTransition]) async throws -> [TransitionOutcome] {
        try await db.write { c in
            var outcomes: [TransitionOutcome] = []
            outcomes.reserveCapacity(transitions.count)
            for t in transitions {
                guard let (seq, current) = try Self.load(c, where: "id = ?", [.text(t.id)]) else {
                    outcomes.append(.notFound(id: t.id))
                    continue
                }
                switch StatusMachine.decide(current.dispatchState, t.event) {
                case .ignore(let reason):
                    outcomes.append(.ignored(current, reason: reason))
                case .apply(let effect):
                    let (next, change) = current.applying(effect, at: t.at, service: t.service)
                    try c.run(
                        """
                        UPDATE communications SET status = ?, attempts = ?, dispatch_seq = ?, dispatch_at = ?, provider = ?, provider_message_id = ?,
                        error_code = ?, error_message = ?, updated_at = ? WHERE seq = ?
                        """,
                        [.text(next.status.rawValue), .int(Int64(next.attempts)), .int(Int64(next.dispatchSeq)), next.dispatchAt.map { .int($0.milliseconds) } ?? .null,
                         next.provider.map(SQLValue.text) ?? .null, next.providerMessageID.map(SQLValue.text) ?? .null,
                         next.lastError?.code.map(SQLValue.text) ?? .null, next.lastError.map { .text($0.message) } ?? .null, .int(next.updatedAt.milliseconds), .int(seq)])
                    try Self.insertHistory(c, seq: seq, change)
                    var applied = next
                    applied.history = []
                    outcomes.append(.applied(applied, change))
                }
            }
            return outcomes
        }
    }

    public func claimDue(now: Timestamp, lease: Duration, limit: Int) async throws -> [Communication] {
        let until = now.adding(lease)
        return try await db.write { c in
            var due: [(Int64, Communication)] = []
            try c.query("SELECT \(Self.columns) FROM communications WHERE dispatch_at IS NOT NULL AND dispatch_at <= ? ORDER BY dispatch_at LIMIT ?", [.int(now.milliseconds), .int(Int64(limit))]) { s in
                if let row = Self.communication(s) { due.append(row) }
            }
            for (seq, _) in due {
                try c.run("UPDATE communications SET dispatch_at = ? WHERE seq = ?", [.int(until.milliseconds), .int(seq)])
            }
            return due.map { $0.1 }
        }
    }

    public func statusCounts() async throws -> [StatusCount] {
        try await db.read { c in
            var counts: [StatusCount] = []
            try c.query("SELECT type, status, count(*) FROM communications GROUP BY type, status") { s in
                if let ch = Channel(rawValue: s.text(0)), let st = CommunicationStatus(rawValue: s.text(1)) {
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
