#if MongoDB
import struct Foundation.Date
import SwitchboardCore

/// The `AttachmentStore` on MongoDB, beside `communications` (same database, the store's client pool): collection
/// `attachments`, a document per file, `{ _id: sha256, size, bytes: BinData, createdAt }`. The 10 MiB the API allows
/// in all fits in one document (16 MiB). A file stored again is not written again (found first; a race between two
/// routers is a duplicate key, skipped).
///
/// Retention does not delete attachments yet: a file outlives the messages that used it (see docs/ARCHITECTURE.md).
public struct MongoAttachmentStore: AttachmentStore {
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
            if try !c.find(["_id": .string(sha256)], options: ["projection": .document(["_id": .int32(1)]), "limit": .int64(1)]).isEmpty { return }
            do throws(MongoError) {
                try c.insertOne([
                    "_id": .string(sha256), "size": .int64(Int64(bytes.count)), "bytes": .binary(subtype: 0, bytes: bytes),
                    "createdAt": .datetime(Int64(Date().timeIntervalSince1970 * 1000)),
                ])
            } catch .duplicateKey {
                return  // stored meanwhile by another accept of the same bytes
            }
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
