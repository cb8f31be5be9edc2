#if MongoDB
import SwitchboardCore

/// The `SuppressionStore` on MongoDB, beside `communications` (same database, the store's client pool): collection
/// `suppressions`, `{ _id: "<channel>:<recipient>", channel, to, reason, source, detail, createdAt, keyId }`. The
/// `_id` is the key, so an accept's lookup is one `_id` probe and a batch's one `$in`; the list sorts on `_id`,
/// which orders like (channel, recipient) since a channel name holds no `:`.
public struct MongoSuppressionStore: SuppressionStore {
    public static let collectionName = "suppressions"

    public let connection: MongoConnection

    public init(connection: MongoConnection) {
        self.connection = connection
    }

    func withCollection<T: Sendable>(_ body: @escaping @Sendable (MongoConnection.Collection) throws(MongoError) -> T) async throws(MongoError) -> T {
        let db = connection.databaseName
        return try await connection.withClient { client throws(MongoError) in
            try client.collection(db, Self.collectionName) { c throws(MongoError) in try body(c) }
        }
    }

    static func id(_ k: SuppressionKey) -> String { "\(k.channel.rawValue):\(k.to)" }

    static func document(_ x: Suppression) -> BSONDocument {
        [
            "_id": .string(id(x.key)), "channel": .string(x.channel.rawValue), "to": .string(x.to), "reason": .string(x.reason), "source": .string(x.source.rawValue),
            "detail": x.detail.map(BSON.string) ?? .null, "createdAt": .datetime(x.createdAt.milliseconds), "keyId": x.keyID.map(BSON.string) ?? .null,
        ]
    }

    static func suppression(_ d: BSONDocument) throws(MongoError) -> Suppression {
        guard let channel = d["channel"]?.stringValue.flatMap(MessageChannel.init(rawValue:)), let to = d["to"]?.stringValue, case .datetime(let ms)? = d["createdAt"] else {
            throw .malformedDocument("suppression \(d["_id"]?.stringValue ?? "?"): channel, to or createdAt missing")
        }
        var x = Suppression(
            channel: channel, to: to, reason: d["reason"]?.stringValue ?? "", source: d["source"]?.stringValue.flatMap(SuppressionSource.init(rawValue:)) ?? .manual,
            detail: d["detail"]?.stringValue, createdAt: Timestamp(milliseconds: ms), keyID: d["keyId"]?.stringValue)
        x.to = to
        return x
    }

    public func add(_ x: Suppression) async throws {
        let doc = Self.document(x)
        _ = try await withCollection { c throws(MongoError) in
            try c.writeCommand([
                "update": .string(Self.collectionName),
                "updates": .array([.document(["q": .document(["_id": doc["_id"] ?? .null]), "u": .document(doc), "upsert": .bool(true)])]),
            ])
        }
    }

    public func remove(channel: MessageChannel, to: String) async throws -> Bool {
        let id = Self.id(SuppressionKey(channel: channel, to: to))
        return try await withCollection { c throws(MongoError) in
            let reply = try c.writeCommand(["delete": .string(Self.collectionName), "deletes": .array([.document(["q": .document(["_id": .string(id)]), "limit": .int32(1)])])])
            return (reply["n"]?.intValue ?? 0) > 0
        }
    }

    public func lookup(_ keys: [SuppressionKey]) async throws -> [SuppressionKey: Suppression] {
        guard !keys.isEmpty else { return [:] }
        let ids = Set(keys).map { BSON.string(Self.id($0)) }
        let filter: BSONDocument = ids.count == 1 ? ["_id": ids[0]] : ["_id": .document(["$in": .array(ids)])]
        let found = try await withCollection { c throws(MongoError) in try c.find(filter).map(Self.suppression) }
        var out: [SuppressionKey: Suppression] = [:]
        for x in found { out[x.key] = x }
        return out
    }

    public func list(channel: MessageChannel?, to: String?, limit: Int, cursor: String?) async throws -> Page<Suppression> {
        var filter: BSONDocument = [:]
        if let cursor {
            guard let after = SuppressionKey(cursor: cursor) else { throw InvalidCursor() }
            filter["_id"] = .document(["$gt": .string(Self.id(after))])
        }
        if let channel { filter["channel"] = .string(channel.rawValue) }
        if let to { filter["to"] = .string(to) }
        let query = filter
        let items = try await withCollection { c throws(MongoError) in
            try c.find(query, options: ["sort": .document(["_id": .int32(1)]), "limit": .int64(Int64(limit + 1))]).map(Self.suppression)
        }
        let page = Array(items.prefix(limit))
        return Page(items: page, nextCursor: items.count > limit ? page.last?.key.cursor : nil)
    }
}
#endif
