import SwitchboardCore

/// The embedded `TemplateStore`: the `templates` table of the SQLite file, one row per version. A version is
/// numbered inside the write that inserts it (`MAX(version) + 1` under SQLite's one writer), so two saves of one
/// name, even from two processes on the file, never get the same number.
public struct SQLiteTemplateStore: TemplateStore {
    let db: SQLiteDatabase

    public init(database: SQLiteDatabase) { db = database }

    static let columns = "name, locale, version, channel, subject, body, html, archived, created_at, key_id"

    static func template(_ s: Statement) -> MessageTemplate {
        MessageTemplate(
            name: s.text(0), channel: MessageChannel(rawValue: s.text(3)) ?? .email, locale: s.text(1), version: Int(s.int(2)), subject: s.optionalText(4),
            body: s.text(5), html: s.optionalText(6), archived: s.int(7) != 0, createdAt: Timestamp(milliseconds: s.int(8)), keyID: s.optionalText(9))
    }

    public func save(_ draft: TemplateDraft) async throws -> MessageTemplate {
        try await db.write { c in
            let version = (try c.scalar("SELECT MAX(version) FROM templates WHERE name = ? AND locale = ?", [.text(draft.name), .text(draft.locale)]) ?? 0) + 1
            try c.run(
                "INSERT INTO templates (\(Self.columns)) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
                [.text(draft.name), .text(draft.locale), .int(version), .text(draft.channel.rawValue), draft.subject.map { .text($0) } ?? .null,
                 .text(draft.body), draft.html.map { .text($0) } ?? .null, .int(draft.createdAt.milliseconds), draft.keyID.map { .text($0) } ?? .null])
            return draft.template(version: Int(version))
        }
    }

    public func versions(name: String) async throws -> [MessageTemplate] {
        try await db.read { c in
            var out: [MessageTemplate] = []
            try c.query("SELECT \(Self.columns) FROM templates WHERE name = ? ORDER BY locale, version", [.text(name)]) { out.append(Self.template($0)) }
            return out
        }
    }

    public func latest(archived: Bool, after: TemplateKey?, limit: Int) async throws -> [MessageTemplate] {
        try await db.read { c in
            var out: [MessageTemplate] = []
            try c.query(
                """
                SELECT \(Self.columns) FROM templates t
                WHERE version = (SELECT MAX(version) FROM templates u WHERE u.name = t.name AND u.locale = t.locale)
                  AND (? OR archived = 0) AND (name, locale) > (?, ?)
                ORDER BY name, locale LIMIT ?
                """,
                [.int(archived ? 1 : 0), .text(after?.name ?? ""), .text(after?.locale ?? ""), .int(Int64(limit))]) { out.append(Self.template($0)) }
            return out
        }
    }

    public func archive(name: String) async throws -> Int {
        try await db.write { c in
            try c.run("UPDATE templates SET archived = 1 WHERE name = ? AND archived = 0", [.text(name)])
            return c.changes
        }
    }
}
