import SwitchboardCore

/// The embedded `SuppressionStore`: table `suppressions` of the SQLite file, keyed on (channel, recipient), so a
/// lookup at accept is one primary-key probe and a batch's lookup one query per channel (in chunks of 400).
public struct SQLiteSuppressionStore: SuppressionStore {
    let db: SQLiteDatabase

    public init(database: SQLiteDatabase) { db = database }

    static let columns = "channel, recipient, reason, source, detail, created_at, key_id"

    static func suppression(_ s: Statement) -> Suppression? {
        guard let channel = MessageChannel(rawValue: s.text(0)) else { return nil }
        var x = Suppression(
            channel: channel, to: s.text(1), reason: s.text(2), source: SuppressionSource(rawValue: s.text(3)) ?? .manual, detail: s.optionalText(4),
            createdAt: Timestamp(milliseconds: s.int(5)), keyID: s.optionalText(6))
        x.to = s.text(1)  // as stored
        return x
    }

    public func add(_ x: Suppression) async throws {
        try await db.write { c in
            try c.run(
                "INSERT OR REPLACE INTO suppressions (\(Self.columns)) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [.text(x.channel.rawValue), .text(x.to), .text(x.reason), .text(x.source.rawValue), x.detail.map(SQLValue.text) ?? .null,
                 .int(x.createdAt.milliseconds), x.keyID.map(SQLValue.text) ?? .null])
        }
    }

    public func remove(channel: MessageChannel, to: String) async throws -> Bool {
        try await db.write { c in
            try c.run("DELETE FROM suppressions WHERE channel = ? AND recipient = ?", [.text(channel.rawValue), .text(to)])
            return c.changes > 0
        }
    }

    public func lookup(_ keys: [SuppressionKey]) async throws -> [SuppressionKey: Suppression] {
        guard !keys.isEmpty else { return [:] }
        if keys.count == 1, let k = keys.first {
            // The single accept: one primary-key probe.
            return try await db.read { c in
                var out: [SuppressionKey: Suppression] = [:]
                try c.query("SELECT \(Self.columns) FROM suppressions WHERE channel = ? AND recipient = ?", [.text(k.channel.rawValue), .text(k.to)]) { s in
                    if let x = Self.suppression(s) { out[x.key] = x }
                }
                return out
            }
        }
        var byChannel: [MessageChannel: [String]] = [:]
        for k in Set(keys) { byChannel[k.channel, default: []].append(k.to) }
        let groups = byChannel
        return try await db.read { c in
            var out: [SuppressionKey: Suppression] = [:]
            for (channel, recipients) in groups {
                var start = 0
                while start < recipients.count {
                    let chunk = recipients[start..<min(start + 400, recipients.count)]
                    start += 400
                    let marks = Array(repeating: "?", count: chunk.count).joined(separator: ", ")
                    try c.query("SELECT \(Self.columns) FROM suppressions WHERE channel = ? AND recipient IN (\(marks))", [.text(channel.rawValue)] + chunk.map(SQLValue.text)) { s in
                        if let x = Self.suppression(s) { out[x.key] = x }
                    }
                }
            }
            return out
        }
    }

    public func list(channel: MessageChannel?, to: String?, limit: Int, cursor: String?) async throws -> Page<Suppression> {
        var clauses: [String] = []
        var values: [SQLValue] = []
        if let cursor {
            guard let after = SuppressionKey(cursor: cursor) else { throw InvalidCursor() }
            clauses.append("(channel > ? OR (channel = ? AND recipient > ?))")
            values += [.text(after.channel.rawValue), .text(after.channel.rawValue), .text(after.to)]
        }
        if let channel { clauses.append("channel = ?"); values.append(.text(channel.rawValue)) }
        if let to { clauses.append("recipient = ?"); values.append(.text(to)) }
        values.append(.int(Int64(limit + 1)))
        let sql = "SELECT \(Self.columns) FROM suppressions \(clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")) ORDER BY channel, recipient LIMIT ?"
        let items = try await db.read { [values] c in
            var out: [Suppression] = []
            try c.query(sql, values) { s in if let x = Self.suppression(s) { out.append(x) } }
            return out
        }
        let page = Array(items.prefix(limit))
        return Page(items: page, nextCursor: items.count > limit ? page.last?.key.cursor : nil)
    }
}
