#if MongoDB
import struct Foundation.Date
import SwitchboardCore

/// The `AttachmentStore` on MongoDB, beside `communications` (same database, the store's client pool): collection
/// `attachments`, a document per file, `{ _id: sha256, size, bytes: BinData, createdAt }`. The 10 MiB the API allows
/// in all fits in one document (16 MiB). A file stored again is not written again (found first; a race between two
/// routers is a duplicate key, skipped); its `createdAt` is moved to now instead, so that it says when a message
/// last used the file (at most an hour off).
///
/// Retention (`Purging`) deletes the files last used before the cutoff that no message kept by the store's own
/// purge still names (created before the cutoff and not finished); every younger message used its files after it.
public struct MongoAttachmentStore: AttachmentStore, Purging {
    public static let collectionName = "attachments"
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

    public func put(sha256: String, bytes: [UInt8]) async throws {
        try await withCollection { c throws(MongoError) in
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            if try !c.find(["_id": .string(sha256)], options: ["projection": .document(["_id": .int32(1)]), "limit": .int64(1)]).isEmpty {
                // Used again: retention counts from now (an hour's precision spares a write per reuse).
                _ = try c.updateOne(["_id": .string(sha256), "createdAt": .document(["$lt": .datetime(now - 3_600_000)])], ["$set": .document(["createdAt": .datetime(now)])])
                return
            }
            do throws(MongoError) {
                try c.insertOne([
                    "_id": .string(sha256), "size": .int64(Int64(bytes.count)), "bytes": .binary(subtype: 0, bytes: bytes),
                    "createdAt": .datetime(now),
                ])
            } catch .duplicateKey {
                return  // stored meanwhile by another accept of the same bytes
            }
        }
    }

    public func purge(before cutoff: Timestamp) async throws -> Int {
        let db = connection.databaseName
        // The files named by the messages the store's purge keeps although created before the cutoff.
        let kept = try await connection.withClient { client throws(MongoError) in
            try client.collection(db, MongoStore.collectionName) { c throws(MongoError) in
                try c.find(
                    ["createdAt": .document(["$lt": .datetime(cutoff.milliseconds)]), "data.attachments": .document(["$exists": .bool(true)])],
                    options: ["projection": .document(["data.attachments": .int32(1)])])
            }
        }
        var named: Set<String> = []
        for d in kept {
            guard case .document(let data)? = d["data"], case .array(let files)? = data["attachments"] else { continue }
            for case .document(let file) in files { if case .string(let sha)? = file["sha256"] { named.insert(sha) } }
        }
        let keep: [BSON] = named.sorted().map(BSON.string)
        return try await withCollection { c throws(MongoError) in
            let q: BSONDocument = ["createdAt": .document(["$lt": .datetime(cutoff.milliseconds)]), "_id": .document(["$nin": .array(keep)])]
            let reply = try c.writeCommand(["delete": .string(Self.collectionName), "deletes": .array([.document(["q": .document(q), "limit": .int32(0)])])])
            return Int(reply["n"]?.intValue ?? 0)
        }
    }

    public func get(sha256: String) async throws -> [UInt8]? {
        try await withCollection { c throws(MongoError) in
            guard let d = try c.find(["_id": .string(sha256)], options: ["limit": .int64(1)]).first else { return nil }
            guard case .binary(_, let bytes)? = d["bytes"] else { throw .malformedDocument("attachment \(sha256): no binary bytes") }
            return bytes
        }
    }
}
#endif
