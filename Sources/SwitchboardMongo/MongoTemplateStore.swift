#if MongoDB
import NIOConcurrencyHelpers
import SwitchboardCore

/// The `TemplateStore` on MongoDB: the `templates` collection beside `communications` (same database, same client
/// pool as the `MongoStore`). One document per version:
///
/// ```
/// { _id: "<name>/<locale>/<version>", name, locale, version: long, channel, subject: string | null, body,
///   html: string | null, archived: bool, createdAt: Date, keyId: string | null }
/// ```
///
/// The `_id` holds the version, so two saves that read the same highest version cannot both insert it: the
/// loser's insert is a duplicate key, and it reads again and takes the next number.
public struct MongoTemplateStore: TemplateStore {
    public static let collectionName = "templates"

    public let connection: MongoConnection
    private let indexesReady = NIOLockedValueBox(false)

    public init(connection: MongoConnection) {
        self.connection = connection
    }

    static let indexes: [BSON] = [
        .document(["key": .document(["name": .int32(1), "locale": .int32(1), "version": .int32(1)]), "name": .string("name_locale_version")]),
    ]

    func withCollection<T: Sendable>(_ body: @escaping @Sendable (MongoConnection.Collection) throws(MongoError) -> T) async throws(MongoError) -> T {
        let db = connection.databaseName
        let ready = indexesReady
        return try await connection.withClient { client throws(MongoError) in
            try client.collection(db, Self.collectionName) { c throws(MongoError) in
                if !ready.withLockedValue({ $0 }) {
                    _ = try c.writeCommand(["createIndexes": .string(Self.collectionName), "indexes": .array(Self.indexes)])
                    ready.withLockedValue { $0 = true }
                }
                return try body(c)
            }
        }
    }

    static func document(_ t: MessageTemplate) -> BSONDocument {
        [
            "_id": .string("\(t.name)/\(t.locale)/\(t.version)"), "name": .string(t.name), "locale": .string(t.locale), "version": .int64(Int64(t.version)),
            "channel": .string(t.channel.rawValue), "subject": t.subject.map(BSON.string) ?? .null, "body": .string(t.body), "html": t.html.map(BSON.string) ?? .null,
            "archived": .bool(t.archived), "createdAt": .datetime(t.createdAt.milliseconds), "keyId": t.keyID.map(BSON.string) ?? .null,
        ]
    }

    static func template(_ d: BSONDocument) throws(MongoError) -> MessageTemplate {
        guard let name = d["name"]?.stringValue, let locale = d["locale"]?.stringValue, let version = d["version"]?.intValue,
              let channel = d["channel"]?.stringValue.flatMap(MessageChannel.init(rawValue:)), let body = d["body"]?.stringValue, case .datetime(let created)? = d["createdAt"]
        else {
            throw .malformedDocument("template \(d["_id"]?.stringValue ?? "?"): name, locale, version, channel, body or createdAt missing")
        }
        return MessageTemplate(
            name: name, channel: channel, locale: locale, version: Int(version), subject: d["subject"]?.stringValue, body: body, html: d["html"]?.stringValue,
            archived: d["archived"] == .bool(true), createdAt: Timestamp(milliseconds: created), keyID: d["keyId"]?.stringValue)
    }

    public func save(_ draft: TemplateDraft) async throws -> MessageTemplate {
        // Each lost race means another save took the number: bounded by the number of saves at once.
        for _ in 0..<100 {
            let newest = try await withCollection { c throws(MongoError) in
                try c.find(["name": .string(draft.name), "locale": .string(draft.locale)], options: ["sort": .document(["version": .int32(-1)]), "limit": .int64(1), "projection": .document(["version": .int32(1)])])
                    .first?["version"]?.intValue ?? 0
            }
            let template = draft.template(version: Int(newest) + 1)
            do throws(MongoError) {
                try await withCollection { c throws(MongoError) in try c.insertOne(Self.document(template)) }
                return template
            } catch .duplicateKey {
                continue
            }
        }
        throw MongoError.malformedDocument("template \(draft.name)/\(draft.locale): no version could be taken after 100 tries")
    }

    public func versions(name: String) async throws -> [MessageTemplate] {
        try await withCollection { c throws(MongoError) in
            try c.find(["name": .string(name)], options: ["sort": .document(["locale": .int32(1), "version": .int32(1)])]).map(Self.template)
        }
    }

    /// Reads the versions after `after` in (name, locale, newest first) order and keeps the first of each (name,
    /// locale) until `limit`: templates are few (a read of all of them is small), and no aggregation is needed.
    public func latest(archived: Bool, after: TemplateKey?, limit: Int) async throws -> [MessageTemplate] {
        var filter: BSONDocument = [:]
        if let after {
            filter = ["$or": .array([
                .document(["name": .document(["$gt": .string(after.name)])]),
                .document(["name": .string(after.name), "locale": .document(["$gt": .string(after.locale)])]),
            ])]
        }
        let documents = try await withCollection { [filter] c throws(MongoError) in
            try c.find(filter, options: ["sort": .document(["name": .int32(1), "locale": .int32(1), "version": .int32(-1)])]).map(Self.template)
        }
        var out: [MessageTemplate] = []
        var last: TemplateKey?
        for t in documents {
            let key = TemplateKey(name: t.name, locale: t.locale)
            guard key != last else { continue }
            last = key
            if !archived, t.archived { continue }
            out.append(t)
            if out.count == limit { break }
        }
        return out
    }

    public func archive(name: String) async throws -> Int {
        try await withCollection { c throws(MongoError) in
            let reply = try c.writeCommand([
                "update": .string(Self.collectionName),
                "updates": .array([.document(["q": .document(["name": .string(name), "archived": .bool(false)]), "u": .document(["$set": .document(["archived": .bool(true)])]), "multi": .bool(true)])]),
            ])
            return Int(reply["nModified"]?.intValue ?? reply["n"]?.intValue ?? 0)
        }
    }
}
#endif
