import SwitchboardCore

/// The embedded `CallbackStore`: tables `callback_endpoints`, `callback_deliveries` and `callback_cursor` of the
/// SQLite file (schema version 8). A page of deliveries and the cursor past it are one transaction; a delivery's id
/// is its primary key, so the same event is never inserted twice for an endpoint (`INSERT OR IGNORE`).
public struct SQLiteCallbackStore: CallbackStore {
    let db: SQLiteDatabase

    public init(database: SQLiteDatabase) { db = database }

    static let endpointColumns = "id, url, events, types, key_id, is_default, description, enabled, secret, created_at, updated_at, failing_since, disabled_reason"
    static let deliveryColumns = "id, endpoint_id, position, url, payload, event_type, communication_id, state, attempts, next_attempt_at, since, created_at, updated_at, last_status_code, last_duration_ms, last_error, attempt_log"

    static func endpoint(_ s: Statement) -> CallbackEndpoint {
        CallbackEndpoint(
            id: s.text(0), url: s.text(1),
            events: Set(s.text(2).split(separator: ",").compactMap { CommunicationStatus(rawValue: String($0)) }),
            types: Set(s.text(3).split(separator: ",").compactMap { MessageChannel(rawValue: String($0)) }),
            keyID: s.optionalText(4), isDefault: s.int(5) != 0, description: s.optionalText(6), enabled: s.int(7) != 0, secret: s.text(8),
            createdAt: Timestamp(milliseconds: s.int(9)), updatedAt: Timestamp(milliseconds: s.int(10)),
            failingSince: s.optionalInt(11).map(Timestamp.init(milliseconds:)), disabledReason: s.optionalText(12))
    }

    static func delivery(_ s: Statement) -> CallbackDelivery {
        CallbackDelivery(
            id: s.text(0), endpointID: s.text(1), position: FeedPosition(parsing: s.text(2)) ?? .start, url: s.text(3), payload: s.text(4),
            eventType: s.text(5), communicationID: s.text(6), state: CallbackDeliveryState(rawValue: s.text(7)) ?? .pending, attempts: Int(s.int(8)),
            nextAttemptAt: Timestamp(milliseconds: s.int(9)), since: Timestamp(milliseconds: s.int(10)), createdAt: Timestamp(milliseconds: s.int(11)),
            updatedAt: Timestamp(milliseconds: s.int(12)), lastStatusCode: s.optionalInt(13).map { Int($0) }, lastDurationMs: s.optionalInt(14).map { Int($0) },
            lastError: s.optionalText(15), history: Self.history(s.text(16)))
    }

    static func history(_ text: String) -> [CallbackAttempt] {
        guard case .array(let items)? = try? JSONParser.parse(text) else { return [] }
        return items.compactMap(CallbackAttempt.init(json:))
    }

    static func values(_ e: CallbackEndpoint) -> [SQLValue] {
        [
            .text(e.id), .text(e.url), .text(e.events.map(\.rawValue).sorted().joined(separator: ",")), .text(e.types.map(\.rawValue).sorted().joined(separator: ",")),
            e.keyID.map { .text($0) } ?? .null, .int(e.isDefault ? 1 : 0), e.description.map { .text($0) } ?? .null, .int(e.enabled ? 1 : 0), .text(e.secret),
            .int(e.createdAt.milliseconds), .int(e.updatedAt.milliseconds), e.failingSince.map { .int($0.milliseconds) } ?? .null, e.disabledReason.map { .text($0) } ?? .null,
        ]
    }

    public func createEndpoint(_ endpoint: CallbackEndpoint) async throws {
        do {
            try await db.write { c in
                try c.run("INSERT INTO callback_endpoints (\(Self.endpointColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", Self.values(endpoint))
            }
        } catch let error as SQLiteError where error.isConstraint {
            throw DuplicateCallbackEndpoint(id: endpoint.id)
        }
    }

    public func endpoints() async throws -> [CallbackEndpoint] {
        try await db.read { c in
            var out: [CallbackEndpoint] = []
            try c.query("SELECT \(Self.endpointColumns) FROM callback_endpoints ORDER BY created_at, id") { s in out.append(Self.endpoint(s)) }
            return out
        }
    }

    public func endpoint(id: String) async throws -> CallbackEndpoint? {
        try await db.read { c in
            var found: CallbackEndpoint?
            try c.query("SELECT \(Self.endpointColumns) FROM callback_endpoints WHERE id = ?", [.text(id)]) { s in found = Self.endpoint(s) }
            return found
        }
    }

    public func updateEndpoint(_ e: CallbackEndpoint) async throws -> Bool {
        try await db.write { c in
            try c.run(
                "UPDATE callback_endpoints SET url = ?, events = ?, types = ?, key_id = ?, is_default = ?, description = ?, enabled = ?, updated_at = ?, failing_since = ?, disabled_reason = ? WHERE id = ?",
                [.text(e.url), .text(e.events.map(\.rawValue).sorted().joined(separator: ",")), .text(e.types.map(\.rawValue).sorted().joined(separator: ",")),
                 e.keyID.map { .text($0) } ?? .null, .int(e.isDefault ? 1 : 0), e.description.map { .text($0) } ?? .null, .int(e.enabled ? 1 : 0),
                 .int(e.updatedAt.milliseconds), e.failingSince.map { .int($0.milliseconds) } ?? .null, e.disabledReason.map { .text($0) } ?? .null, .text(e.id)])
            return c.changes > 0
        }
    }

    public func deleteEndpoint(id: String) async throws -> Bool {
        try await db.write { c in
            try c.run("DELETE FROM callback_endpoints WHERE id = ?", [.text(id)])
            let found = c.changes > 0
            let (low, high) = Self.range(id)
            try c.run("DELETE FROM callback_deliveries WHERE id >= ? AND id < ?", [.text(low), .text(high)])
            return found
        }
    }

    /// The primary-key range of an endpoint's deliveries (their ids are `<endpoint id>_…`; `` ` `` follows `_`).
    static func range(_ endpointID: String) -> (String, String) { ("\(endpointID)_", "\(endpointID)`") }

    public func cursor() async throws -> FeedPosition? {
        try await db.read { c in
            var found: FeedPosition?
            try c.query("SELECT major, minor FROM callback_cursor WHERE name = 'dispatcher'") { s in
                found = FeedPosition(major: UInt64(s.int(0)), minor: UInt64(s.int(1)))
            }
            return found
        }
    }

    public func enqueue(_ deliveries: [CallbackDelivery], cursor: FeedPosition) async throws {
        try await db.write { c in
            for d in deliveries {
                try c.run(
                    "INSERT OR IGNORE INTO callback_deliveries (\(Self.deliveryColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [.text(d.id), .text(d.endpointID), .text(d.position.description), .text(d.url), .text(d.payload), .text(d.eventType), .text(d.communicationID),
                     .text(d.state.rawValue), .int(Int64(d.attempts)), .int(d.nextAttemptAt.milliseconds), .int(d.since.milliseconds), .int(d.createdAt.milliseconds),
                     .int(d.updatedAt.milliseconds), .null, .null, .null, .text("[]")])
            }
            // Never backwards: another router's dispatcher may be ahead.
            let (major, minor) = (Int64(clamping: cursor.major), Int64(clamping: cursor.minor))
            try c.run(
                """
                INSERT INTO callback_cursor (name, major, minor) VALUES ('dispatcher', ?, ?)
                ON CONFLICT(name) DO UPDATE SET major = excluded.major, minor = excluded.minor
                WHERE excluded.major > major OR (excluded.major = major AND excluded.minor > minor)
                """, [.int(major), .int(minor)])
        }
    }

    public func claimDue(now: Timestamp, lease: Duration, limit: Int) async throws -> [CallbackDelivery] {
        let until = now.adding(lease)
        // Looked at on a reader first: the writer (shared with every accept) is asked only when something is due.
        let anyDue = try await db.read { c in
            try c.scalar("SELECT EXISTS (SELECT 1 FROM callback_deliveries WHERE state = 'pending' AND next_attempt_at <= ?)", [.int(now.milliseconds)]) == 1
        }
        guard anyDue else { return [] }
        return try await db.write(durable: false) { c in
            var due: [CallbackDelivery] = []
            try c.query(
                "SELECT \(Self.deliveryColumns) FROM callback_deliveries WHERE state = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?",
                [.int(now.milliseconds), .int(Int64(limit))]) { s in due.append(Self.delivery(s)) }
            for d in due {
                try c.run("UPDATE callback_deliveries SET next_attempt_at = ? WHERE id = ?", [.int(until.milliseconds), .text(d.id)])
            }
            return due
        }
    }

    public func record(_ a: CallbackAttemptRecord) async throws {
        try await db.write { c in
            var log: String?
            try c.query("SELECT attempt_log FROM callback_deliveries WHERE id = ? AND state = 'pending'", [.text(a.deliveryID)]) { s in log = s.text(0) }
            guard let log else { return }  // not pending any more: a sender whose lease ran out
            let history = (Self.history(log) + [a.attempt]).suffix(CallbackAttempt.kept)
            try c.run(
                """
                UPDATE callback_deliveries SET state = ?, attempts = attempts + 1, next_attempt_at = ?, updated_at = ?, last_status_code = ?,
                last_duration_ms = ?, last_error = ?, attempt_log = ? WHERE id = ? AND state = 'pending'
                """,
                [.text(a.state.rawValue), .int(a.nextAttemptAt.milliseconds), .int(a.at.milliseconds), a.statusCode.map { .int(Int64($0)) } ?? .null,
                 .int(Int64(a.durationMs)), a.error.map { .text($0) } ?? .null, .text(JSONValue.array(history.map(\.json)).canonicalText), .text(a.deliveryID)])
            if a.succeeded {
                try c.run("UPDATE callback_endpoints SET failing_since = NULL WHERE id = ? AND failing_since IS NOT NULL", [.text(a.endpointID)])
            } else {
                try c.run("UPDATE callback_endpoints SET failing_since = ? WHERE id = ? AND failing_since IS NULL", [.int(a.at.milliseconds), .text(a.endpointID)])
            }
        }
    }

    public func deliveries(endpointID: String, limit: Int, cursor: String?) async throws -> Page<CallbackDelivery> {
        let (low, high) = Self.range(endpointID)
        if let cursor, !cursor.hasPrefix(low) { throw InvalidCursor() }
        let items = try await db.read { c in
            var out: [CallbackDelivery] = []
            try c.query(
                "SELECT \(Self.deliveryColumns) FROM callback_deliveries WHERE id >= ? AND id < ? ORDER BY id DESC LIMIT ?",
                [.text(low), .text(cursor ?? high), .int(Int64(limit + 1))]) { s in out.append(Self.delivery(s)) }
            return out
        }
        let page = Array(items.prefix(limit))
        return Page(items: page, nextCursor: items.count > limit ? page.last?.id : nil)
    }

    public func delivery(endpointID: String, id: String) async throws -> CallbackDelivery? {
        try await db.read { c in
            var found: CallbackDelivery?
            try c.query("SELECT \(Self.deliveryColumns) FROM callback_deliveries WHERE id = ? AND endpoint_id = ?", [.text(id), .text(endpointID)]) { s in found = Self.delivery(s) }
            return found
        }
    }

    public func retry(endpointID: String, id: String, now: Timestamp) async throws -> CallbackDelivery? {
        try await db.write { c in
            try c.run(
                "UPDATE callback_deliveries SET state = 'pending', next_attempt_at = ?, since = ?, updated_at = ? WHERE id = ? AND endpoint_id = ? AND state = 'failed'",
                [.int(now.milliseconds), .int(now.milliseconds), .int(now.milliseconds), .text(id), .text(endpointID)])
            var found: CallbackDelivery?
            try c.query("SELECT \(Self.deliveryColumns) FROM callback_deliveries WHERE id = ? AND endpoint_id = ?", [.text(id), .text(endpointID)]) { s in found = Self.delivery(s) }
            return found
        }
    }
}

extension SQLiteCallbackStore: Purging {
    /// Deletes the finished deliveries (delivered or failed) last changed before `cutoff`, 1,000 per transaction;
    /// pending ones are kept whatever their age.
    public func purge(before cutoff: Timestamp) async throws -> Int {
        var deleted = 0
        while true {
            let n = try await db.write(durable: false) { c in
                try c.run(
                    "DELETE FROM callback_deliveries WHERE id IN (SELECT id FROM callback_deliveries WHERE state != 'pending' AND updated_at < ? LIMIT 1000)",
                    [.int(cutoff.milliseconds)])
                return c.changes
            }
            deleted += n
            if n < 1000 { return deleted }
        }
    }
}
