import SwitchboardCore

/// The embedded `SandboxMailbox`: the `sandbox_messages` table.
public struct SQLiteSandboxMailbox: SandboxMailbox {
    let db: SQLiteDatabase

    public init(database: SQLiteDatabase) { db = database }

    public func record(_ m: SandboxMessage) async throws {
        // Not durable on its own: the worker's `sent`, committed after it, waits for the sync that covers it;
        // if that never happens the message is delivered (and recorded) again.
        try await db.write(durable: false) { c in
            try c.run(
                "INSERT INTO sandbox_messages (communication_id, channel, sender, recipient, msg, subject, attempt, provider_message_id, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [.text(m.communicationId), .text(m.channel.rawValue), .text(m.from), .text(m.to), .text(m.msg), m.subject.map(SQLValue.text) ?? .null, .int(Int64(m.attempt)), .text(m.providerMessageID), .int(m.at.milliseconds)])
        }
    }

    public func messages(channel: MessageChannel?, to: String?, limit: Int) async throws -> [SandboxMessage] {
        var clauses: [String] = []
        var values: [SQLValue] = []
        if let channel { clauses.append("channel = ?"); values.append(.text(channel.rawValue)) }
        if let to { clauses.append("recipient = ?"); values.append(.text(to)) }
        values.append(.int(Int64(max(1, min(limit, 1000)))))
        let sql = "SELECT communication_id, channel, sender, recipient, msg, subject, attempt, provider_message_id, at FROM sandbox_messages \(clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")) ORDER BY seq DESC LIMIT ?"
        return try await db.read { [values] c in
            var result: [SandboxMessage] = []
            try c.query(sql, values) { s in
                guard let ch = MessageChannel(rawValue: s.text(1)) else { return }
                result.append(SandboxMessage(communicationId: s.text(0), channel: ch, from: s.text(2), to: s.text(3), msg: s.text(4), subject: s.optionalText(5), attempt: Int(s.int(6)), providerMessageID: s.text(7), at: Timestamp(milliseconds: s.int(8))))
            }
            return result
        }
    }
}
