#if MongoDB
import Logging
import NIOConcurrencyHelpers
import SwitchboardCore
import SwitchboardTelemetry

/// The `CommunicationStore` on MongoDB (`MONGODB_URL`): one document per communication in the `communications`
/// collection, its status history embedded.
///
/// Status changes are compare-and-set on a `revision` counter: a change reads the document, lets
/// `StatusMachine` decide, and writes only if `revision` is still the one it read (raising it); on a lost race
/// it reads again. `claimDue` leases with `findAndModify`, one document at a time, so two schedulers never
/// take the same one.
public struct MongoStore: CommunicationStore {
    /// The collection name (the seed's).
    public static let collectionName = "communications"
    /// How often a compare-and-set is retried after losing a race before `MongoError.contention` is thrown.
    static let maxRaces = 1000

    public let connection: MongoConnection
    let logger: Logger
    /// Write durations (`create`, `apply`, `confirmPublished`) and, through the connection, failed requests.
    let metrics: StoreEngineMetrics
    private let indexesReady = NIOLockedValueBox(false)

    /// Opens a client pool on `url` (passed untouched to libmongoc). Does not connect: the first operation does,
    /// and creates the indexes if missing (as `prepare()` does).
    /// - Parameter metrics: where writes are timed and failed requests counted (`engine` `mongodb`).
    public init(url: String, threads: Int = 8, logger: Logger, metrics: StoreEngineMetrics = StoreEngineMetrics(engine: "mongodb")) throws(MongoError) {
        self.connection = try MongoConnection(url: url, threads: threads, metrics: metrics)
        self.logger = logger
        self.metrics = metrics
    }

    /// `withCollection` for a write of the port: its duration, until the server acknowledged it (as the caller
    /// waits for it: the hop to a connection thread included), is the store's commit duration. Failed writes
    /// are counted by the connection, not timed.
    func timedWrite<T: Sendable>(_ body: @escaping @Sendable (MongoConnection.Collection) throws(MongoError) -> T) async throws(MongoError) -> T {
        let start = ContinuousClock.now
        let result = try await withCollection(body)
        metrics.committed(ContinuousClock.now - start)
        return result
    }

    /// The database in use: the URL's, else `communication-aggregator`.
    public var databaseName: String { connection.databaseName }

    /// Creates the indexes if they are missing (idempotent) and checks that no unique index forbids what this
    /// store writes.
    public func prepare() async throws(MongoError) {
        try await withCollection { _ in }
    }

    /// Closes the client pool.
    public func shutdown() async {
        await connection.shutdown()
    }

    /// The indexes this store needs, in `createIndexes` form.
    static let indexes: [BSON] = [
        // Status queries and counts by age.
        .document(["key": .document(["status": .int32(1), "createdAt": .int32(1)]), "name": .string("status_createdAt")]),
        // Idempotency keys: unique where present (most messages have none).
        .document([
            "key": .document(["idempotencyKey": .int32(1)]), "name": .string("idempotencyKey_unique"), "unique": .bool(true),
            "partialFilterExpression": .document(["idempotencyKey": .document(["$type": .string("string")])]),
        ]),
        // Provider status webhooks find their message by the provider's id.
        .document(["key": .document(["providerMessageId": .int32(1)]), "name": .string("providerMessageId")]),
        // The outbox: due messages by time.
        .document(["key": .document(["dispatchAt": .int32(1)]), "name": .string("dispatchAt")]),
        // Search catch-up pages in creation order.
        .document(["key": .document(["createdAt": .int32(1), "_id": .int32(1)]), "name": .string("createdAt_id")]),
        // A redrive's filter: failed messages by the time they failed (their last change).
        .document(["key": .document(["status": .int32(1), "updatedAt": .int32(1)]), "name": .string("status_updatedAt")]),
    ]

    static let ourUniqueIndexes: Set<String> = ["_id_", "idempotencyKey_unique"]

    /// Runs `body` with the collection on a connection thread, creating the indexes first if not done yet.
    func withCollection<T: Sendable>(_ body: @escaping @Sendable (MongoConnection.Collection) throws(MongoError) -> T) async throws(MongoError) -> T {
        let db = connection.databaseName
        let ready = indexesReady
        let logger = logger
        return try await connection.withClient { client throws(MongoError) in
            try client.collection(db, Self.collectionName) { c throws(MongoError) in
                if !ready.withLockedValue({ $0 }) {
                    try Self.createIndexes(c, client: client, database: db)
                    let first = ready.withLockedValue { r in
                        defer { r = true }
                        return !r
                    }
                    if first { logger.info("mongodb indexes ready", metadata: ["database": "\(db)", "collection": "\(Self.collectionName)"]) }
                }
                return try body(c)
            }
        }
    }

    static func createIndexes(_ c: MongoConnection.Collection, client: MongoConnection.Client, database: String) throws(MongoError) {
        _ = try c.writeCommand(["createIndexes": .string(collectionName), "indexes": .array(indexes)])
        // A unique index of someone else's (the seed's schema declares `to` unique) would refuse a second
        // message to one recipient: refuse to start rather than fail requests one by one.
        let listed = try client.command(database, ["listIndexes": .string(collectionName)])
        guard case .array(let batch)? = listed["cursor"]?.documentValue?["firstBatch"] else { return }
        for case .document(let index) in batch where index["unique"] == .bool(true) {
            let name = index["name"]?.stringValue ?? "?"
            if !ourUniqueIndexes.contains(name) {
                throw .server(code: 0, message: "the unique index \(name) on \(database).\(collectionName) would refuse a second message to one recipient; drop it (db.\(collectionName).dropIndex(\"\(name)\"))")
            }
        }
    }

    // MARK: create

    public func create(_ items: [NewCommunication]) async throws -> [CreateOutcome] {
        guard !items.isEmpty else { return [] }
        return try await timedWrite { c throws(MongoError) in
            var out: [CreateOutcome] = []
            for item in items {
                out.append(try Self.createOne(c, item))
            }
            return out
        }
    }

    static func createOne(_ c: MongoConnection.Collection, _ item: NewCommunication) throws(MongoError) -> CreateOutcome {
        func existing(_ key: String) throws(MongoError) -> CreateOutcome? {
            guard let doc = try c.find(["idempotencyKey": .string(key)], options: ["limit": .int64(1), "projection": .document(["history": .int32(0)])]).first else { return nil }
            let found = try MongoDocuments.communication(doc)
            return found.channel == item.request.channel && found.request.data == item.request.data ? .existing(found) : .conflict(existingID: found.id)
        }
        if let key = item.idempotencyKey, let r = try existing(key) { return r }
        do throws(MongoError) {
            try c.insertOne(MongoDocuments.document(item))
        } catch .duplicateKey(let message) {
            // Another router stored the same idempotency key first.
            guard let key = item.idempotencyKey, let r = try existing(key) else { throw .duplicateKey(message) }
            return r
        }
        return .created(item.communication)
    }

    // MARK: reads

    public func communication(id: String) async throws -> Communication? {
        try await one(["_id": .string(id)])
    }

    public func communication(providerMessageID: String) async throws -> Communication? {
        try await one(["providerMessageId": .string(providerMessageID)])
    }

    public func communications(idempotencyKeys keys: [String]) async throws -> [String: Communication] {
        guard !keys.isEmpty else { return [:] }
        return try await withCollection { c throws(MongoError) in
            var found: [String: Communication] = [:]
            let docs = try c.find(["idempotencyKey": .document(["$in": .array(keys.map { .string($0) })])], options: ["projection": .document(["history": .int32(0)])])
            for doc in docs {
                let comm = try MongoDocuments.communication(doc)
                if let key = comm.idempotencyKey { found[key] = comm }
            }
            return found
        }
    }

    func one(_ filter: BSONDocument) async throws(MongoError) -> Communication? {
        try await withCollection { c throws(MongoError) in
            try c.find(filter, options: ["limit": .int64(1)]).first.map(MongoDocuments.communication)
        }
    }

    public func communications(createdSince since: Timestamp, after: String?, limit: Int) async throws -> [Communication] {
        guard limit > 0 else { return [] }
        return try await withCollection { c throws(MongoError) in
            var filter: BSONDocument = ["createdAt": .document(["$gte": .datetime(since.milliseconds)])]
            if let after {
                guard let anchor = try c.find(["_id": .string(after)], options: ["limit": .int64(1), "projection": .document(["createdAt": .int32(1)])]).first,
                    let at = anchor["createdAt"]
                else { return [] }
                filter = ["$and": .array([
                    .document(filter),
                    .document(["$or": .array([
                        .document(["createdAt": .document(["$gt": at])]),
                        .document(["createdAt": at, "_id": .document(["$gt": .string(after)])]),
                    ])]),
                ])]
            }
            let docs = try c.find(filter, options: [
                "sort": .document(["createdAt": .int32(1), "_id": .int32(1)]), "limit": .int64(Int64(limit)), "projection": .document(["history": .int32(0)]),
            ])
            return try docs.map(MongoDocuments.communication)
        }
    }

    /// `status` and `updatedAt` on their index (`status_updatedAt`), the channel and error code checked on what it finds.
    public func failed(_ query: FailedQuery) async throws -> [Communication] {
        guard query.limit > 0 else { return [] }
        var filter: BSONDocument = ["status": .string(CommunicationStatus.failed.rawValue)]
        if let channel = query.channel { filter["type"] = .string(channel.rawValue) }
        var failedAt: BSONDocument = [:]
        if let since = query.since { failedAt["$gte"] = .datetime(since.milliseconds) }
        if let until = query.until { failedAt["$lt"] = .datetime(until.milliseconds) }
        if !failedAt.isEmpty { filter["updatedAt"] = .document(failedAt) }
        if let code = query.errorCode { filter["lastError.code"] = .string(code) }
        let options: BSONDocument = [
            "sort": .document(["updatedAt": .int32(1), "_id": .int32(1)]), "limit": .int64(Int64(query.limit)), "projection": .document(["history": .int32(0)]),
        ]
        let query = filter
        return try await withCollection { c throws(MongoError) in
            try c.find(query, options: options).map(MongoDocuments.communication)
        }
    }

    /// `$match` on `dispatchAt` (its index) and a `$group` count; a null `dispatchAt` never matches `$lte`.
    public func outboxDue(now: Timestamp) async throws -> Int {
        try await withCollection { c throws(MongoError) in
            let groups = try c.aggregate([
                .document(["$match": .document(["dispatchAt": .document(["$lte": .datetime(now.milliseconds)])])]),
                .document(["$group": .document(["_id": .null, "n": .document(["$sum": .int32(1)])])]),
            ])
            return Int(groups.first?["n"]?.intValue ?? 0)
        }
    }

    public func statusCounts() async throws -> [StatusCount] {
        try await withCollection { c throws(MongoError) in
            let groups = try c.aggregate([
                .document(["$group": .document([
                    "_id": .document(["type": .string("$type"), "status": .string("$status")]),
                    "count": .document(["$sum": .int32(1)]),
                ])]),
            ])
            return groups.compactMap { g in
                guard let key = g["_id"]?.documentValue, let channel = key["type"]?.stringValue.flatMap(MessageChannel.init(rawValue:)),
                    let status = key["status"]?.stringValue.flatMap(CommunicationStatus.init(rawValue:)), let n = g["count"]?.intValue
                else { return nil }
                return StatusCount(channel: channel, status: status, count: Int(n))
            }
        }
    }

    public func ping() async throws {
        let db = connection.databaseName
        _ = try await connection.withClient { client throws(MongoError) in try client.command(db, ["ping": .int32(1)]) }
    }

    // MARK: writes

    public func apply(_ transitions: [StatusTransition]) async throws -> [TransitionOutcome] {
        guard !transitions.isEmpty else { return [] }
        return try await timedWrite { c throws(MongoError) in
            var out: [TransitionOutcome] = []
            for t in transitions {
                out.append(try Self.applyOne(c, t))
            }
            return out
        }
    }

    /// Compare-and-set: read, decide, write if `revision` did not move; else read again.
    static func applyOne(_ c: MongoConnection.Collection, _ t: StatusTransition) throws(MongoError) -> TransitionOutcome {
        for _ in 0..<maxRaces {
            guard let doc = try c.find(["_id": .string(t.id)], options: ["limit": .int64(1), "projection": .document(["history": .int32(0)])]).first else {
                return .notFound(id: t.id)
            }
            let current = try MongoDocuments.communication(doc)
            switch StatusMachine.decide(current.dispatchState, t.event, watchdog: t.watchdog) {
            case .ignore(let reason):
                return .ignored(current, reason: reason)
            case .apply(let effect):
                let (next, change) = current.applying(effect, at: t.at, service: t.service)
                let revision = doc["revision"]
                let filter: BSONDocument = ["_id": .string(t.id), "revision": revision ?? .document(["$exists": .bool(false)])]
                let update: BSONDocument = [
                    "$set": .document(MongoDocuments.mutableFields(next)),
                    "$inc": .document(["revision": .int64(1)]),
                    "$push": .document(["history": .document(MongoDocuments.document(change))]),
                ]
                if try c.updateOne(filter, update) == 1 {
                    var applied = next
                    applied.history = []
                    return .applied(applied, change)
                }
            // Lost the race: someone changed it between the read and the write.
            }
        }
        throw .contention(id: t.id)
    }

    /// One conditional `updateOne` per publication (the condition is `StatusMachine.publicationConfirmed`'s);
    /// the revision moves, so that a status change decided on the old `dispatchAt` decides again.
    public func confirmPublished(_ publications: [Publication], due: Timestamp?) async throws {
        guard !publications.isEmpty else { return }
        try await timedWrite { c throws(MongoError) in
            for p in publications {
                _ = try c.updateOne(
                    ["_id": .string(p.id), "status": .string(CommunicationStatus.queued.rawValue), "dispatchSeq": .int64(Int64(p.dispatchSeq))],
                    ["$set": .document(["dispatchAt": due.map { .datetime($0.milliseconds) } ?? .null]), "$inc": .document(["revision": .int64(1)])])
            }
        }
    }

    public func claimDue(now: Timestamp, lease: Duration, limit: Int) async throws -> [Communication] {
        guard limit > 0 else { return [] }
        let until = now.adding(lease)
        return try await withCollection { c throws(MongoError) in
            var claimed: [Communication] = []
            // One findAndModify per message: each is atomic on its document, so a message is leased to one
            // scheduler; the revision moves so that a status change decided on the old `dispatchAt` retries.
            while claimed.count < limit {
                guard let doc = try c.findOneAndUpdate(
                    ["dispatchAt": .document(["$lte": .datetime(now.milliseconds)])],
                    sort: ["dispatchAt": .int32(1)],
                    update: ["$set": .document(["dispatchAt": .datetime(until.milliseconds)]), "$inc": .document(["revision": .int64(1)])],
                    fields: ["history": .int32(0)])
                else { break }
                claimed.append(try MongoDocuments.communication(doc))
            }
            return claimed
        }
    }
}
extension MongoStore: Purging {
    /// Deletes the communications past dispatch whose last change is before `cutoff`, in one `delete` command
    /// (the server deletes document by document; the `status_createdAt` index finds them). A message still on
    /// its way is kept however old.
    public func purge(before cutoff: Timestamp) async throws -> Int {
        let filter: BSONDocument = [
            "status": .document(["$in": .array(CommunicationStatus.allCases.filter(\.isPastDispatch).map { .string($0.rawValue) })]),
            "createdAt": .document(["$lt": .datetime(cutoff.milliseconds)]),
            "updatedAt": .document(["$lt": .datetime(cutoff.milliseconds)]),
        ]
        return try await withCollection { c throws(MongoError) in
            let reply = try c.writeCommand(["delete": .string(Self.collectionName), "deletes": .array([.document(["q": .document(filter), "limit": .int32(0)])])])
            return Int(reply["n"]?.intValue ?? 0)
        }
    }
}
#endif
