#if MongoDB
import NIOConcurrencyHelpers
import SwitchboardCore

/// The `CallbackStore` on MongoDB, beside `communications` (same database, the store's client pool):
///
/// - `callback_endpoints`: `{ _id, url, events: [status], types: [channel], keyId, isDefault, description, enabled,
///   secret, createdAt, updatedAt, failingSince, disabledReason }`;
/// - `callback_deliveries`: `{ _id: "<endpoint>_<position>[_m]", endpointId, position, url, payload, eventType,
///   communicationId, state, attempts, nextAttemptAt, since, createdAt, updatedAt, lastStatusCode, lastDurationMs,
///   lastError }`, indexed on `state + nextAttemptAt` (claims). `_id` holds endpoint and feed position, so a
///   delivery inserted twice is a duplicate-key error, skipped;
/// - `callback_cursor`: one document, `_id: "dispatcher"`, `{major, minor}`.
///
/// No multi-document transaction: deliveries are inserted before the cursor moves, so a crash in between only
/// makes the next read of the feed insert nothing new.
public struct MongoCallbackStore: CallbackStore {
    public static let endpointsName = "callback_endpoints"
    public static let deliveriesName = "callback_deliveries"
    public static let cursorName = "callback_cursor"

    public let connection: MongoConnection
    private let indexesReady = NIOLockedValueBox(false)

    public init(connection: MongoConnection) {
        self.connection = connection
    }

    func withCollection<T: Sendable>(_ name: String, _ body: @escaping @Sendable (MongoConnection.Collection) throws(MongoError) -> T) async throws(MongoError) -> T {
        let db = connection.databaseName
        let ready = indexesReady
        return try await connection.withClient { client throws(MongoError) in
            if !ready.withLockedValue({ $0 }) {
                try client.collection(db, Self.deliveriesName) { c throws(MongoError) in
                    _ = try c.writeCommand([
                        "createIndexes": .string(Self.deliveriesName),
                        "indexes": .array([.document(["key": .document(["state": .int32(1), "nextAttemptAt": .int32(1)]), "name": .string("state_due")])]),
                    ])
                }
                ready.withLockedValue { $0 = true }
            }
            return try client.collection(db, name) { c throws(MongoError) in try body(c) }
        }
    }

    // MARK: documents

    static func document(_ e: CallbackEndpoint) -> BSONDocument {
        [
            "_id": .string(e.id), "url": .string(e.url), "events": .array(e.events.map(\.rawValue).sorted().map(BSON.string)),
            "types": .array(e.types.map(\.rawValue).sorted().map(BSON.string)), "keyId": e.keyID.map(BSON.string) ?? .null, "isDefault": .bool(e.isDefault),
            "description": e.description.map(BSON.string) ?? .null, "enabled": .bool(e.enabled), "secret": .string(e.secret),
            "createdAt": .datetime(e.createdAt.milliseconds), "updatedAt": .datetime(e.updatedAt.milliseconds),
            "failingSince": e.failingSince.map { .datetime($0.milliseconds) } ?? .null, "disabledReason": e.disabledReason.map(BSON.string) ?? .null,
        ]
    }

    static func time(_ d: BSONDocument, _ key: String) -> Timestamp? {
        if case .datetime(let ms)? = d[key] { Timestamp(milliseconds: ms) } else { nil }
    }

    static func strings(_ d: BSONDocument, _ key: String) -> [String] {
        guard case .array(let items)? = d[key] else { return [] }
        return items.compactMap(\.stringValue)
    }

    static func endpoint(_ d: BSONDocument) throws(MongoError) -> CallbackEndpoint {
        guard let id = d["_id"]?.stringValue, let url = d["url"]?.stringValue, let secret = d["secret"]?.stringValue, let created = time(d, "createdAt") else {
            throw .malformedDocument("callback endpoint \(d["_id"]?.stringValue ?? "?"): _id, url, secret or createdAt missing")
        }
        return CallbackEndpoint(
            id: id, url: url, events: Set(strings(d, "events").compactMap(CommunicationStatus.init(rawValue:))),
            types: Set(strings(d, "types").compactMap(MessageChannel.init(rawValue:))), keyID: d["keyId"]?.stringValue, isDefault: d["isDefault"] == .bool(true),
            description: d["description"]?.stringValue, enabled: d["enabled"] != .bool(false), secret: secret, createdAt: created,
            updatedAt: time(d, "updatedAt") ?? created, failingSince: time(d, "failingSince"), disabledReason: d["disabledReason"]?.stringValue)
    }

    static func document(_ x: CallbackDelivery) -> BSONDocument {
        [
            "_id": .string(x.id), "endpointId": .string(x.endpointID), "position": .string(x.position.description), "url": .string(x.url),
            "payload": .string(x.payload), "eventType": .string(x.eventType), "communicationId": .string(x.communicationID), "state": .string(x.state.rawValue),
            "attempts": .int64(Int64(x.attempts)), "nextAttemptAt": .datetime(x.nextAttemptAt.milliseconds), "since": .datetime(x.since.milliseconds),
            "createdAt": .datetime(x.createdAt.milliseconds), "updatedAt": .datetime(x.updatedAt.milliseconds),
            "lastStatusCode": x.lastStatusCode.map { .int64(Int64($0)) } ?? .null, "lastDurationMs": x.lastDurationMs.map { .int64(Int64($0)) } ?? .null,
            "lastError": x.lastError.map(BSON.string) ?? .null, "attemptLog": .array(x.history.map { .document(attempt($0)) }),
        ]
    }

    static func attempt(_ a: CallbackAttempt) -> BSONDocument {
        ["at": .datetime(a.at.milliseconds), "statusCode": a.statusCode.map { .int64(Int64($0)) } ?? .null, "durationMs": .int64(Int64(a.durationMs)), "error": a.error.map(BSON.string) ?? .null]
    }

    static func attempts(_ d: BSONDocument) -> [CallbackAttempt] {
        guard case .array(let items)? = d["attemptLog"] else { return [] }
        return items.compactMap { item -> CallbackAttempt? in
            guard let a = item.documentValue, let at = time(a, "at") else { return nil }
            return CallbackAttempt(at: at, statusCode: a["statusCode"]?.intValue.map { Int($0) }, durationMs: Int(a["durationMs"]?.intValue ?? 0), error: a["error"]?.stringValue)
        }
    }

    static func delivery(_ d: BSONDocument) throws(MongoError) -> CallbackDelivery {
        guard let id = d["_id"]?.stringValue, let endpoint = d["endpointId"]?.stringValue, let created = time(d, "createdAt") else {
            throw .malformedDocument("callback delivery \(d["_id"]?.stringValue ?? "?"): _id, endpointId or createdAt missing")
        }
        return CallbackDelivery(
            id: id, endpointID: endpoint, position: d["position"]?.stringValue.flatMap { FeedPosition(parsing: $0) } ?? .start, url: d["url"]?.stringValue ?? "",
            payload: d["payload"]?.stringValue ?? "", eventType: d["eventType"]?.stringValue ?? "", communicationID: d["communicationId"]?.stringValue ?? "",
            state: d["state"]?.stringValue.flatMap(CallbackDeliveryState.init(rawValue:)) ?? .pending, attempts: Int(d["attempts"]?.intValue ?? 0),
            nextAttemptAt: time(d, "nextAttemptAt") ?? created, since: time(d, "since") ?? created, createdAt: created, updatedAt: time(d, "updatedAt") ?? created,
            lastStatusCode: d["lastStatusCode"]?.intValue.map { Int($0) }, lastDurationMs: d["lastDurationMs"]?.intValue.map { Int($0) },
            lastError: d["lastError"]?.stringValue, history: attempts(d))
    }

    // MARK: endpoints

    public func createEndpoint(_ endpoint: CallbackEndpoint) async throws {
        do throws(MongoError) {
            try await withCollection(Self.endpointsName) { c throws(MongoError) in try c.insertOne(Self.document(endpoint)) }
        } catch .duplicateKey {
            throw DuplicateCallbackEndpoint(id: endpoint.id)
        }
    }

    public func endpoints() async throws -> [CallbackEndpoint] {
        try await withCollection(Self.endpointsName) { c throws(MongoError) in
            try c.find([:], options: ["sort": .document(["createdAt": .int32(1), "_id": .int32(1)])]).map(Self.endpoint)
        }
    }

    public func endpoint(id: String) async throws -> CallbackEndpoint? {
        try await withCollection(Self.endpointsName) { c throws(MongoError) in
            try c.find(["_id": .string(id)], options: ["limit": .int64(1)]).first.map(Self.endpoint)
        }
    }

    public func updateEndpoint(_ e: CallbackEndpoint) async throws -> Bool {
        var set = Self.document(e)
        set["_id"] = nil
        set["secret"] = nil
        set["createdAt"] = nil
        let fields = set
        return try await withCollection(Self.endpointsName) { c throws(MongoError) in
            try c.updateOne(["_id": .string(e.id)], ["$set": .document(fields)]) > 0
        }
    }

    public func deleteEndpoint(id: String) async throws -> Bool {
        let removed = try await withCollection(Self.endpointsName) { c throws(MongoError) in
            let reply = try c.writeCommand(["delete": .string(Self.endpointsName), "deletes": .array([.document(["q": .document(["_id": .string(id)]), "limit": .int32(1)])])])
            return (reply["n"]?.intValue ?? 0) > 0
        }
        _ = try await withCollection(Self.deliveriesName) { c throws(MongoError) in
            try c.writeCommand(["delete": .string(Self.deliveriesName), "deletes": .array([.document(["q": .document(["endpointId": .string(id)]), "limit": .int32(0)])])])
        }
        return removed
    }

    // MARK: cursor

    public func cursor() async throws -> FeedPosition? {
        try await withCollection(Self.cursorName) { c throws(MongoError) in
            guard let d = try c.find(["_id": .string("dispatcher")], options: ["limit": .int64(1)]).first,
                let major = d["major"]?.intValue, let minor = d["minor"]?.intValue
            else { return nil }
            return FeedPosition(major: UInt64(max(0, major)), minor: UInt64(max(0, minor)))
        }
    }

    public func enqueue(_ deliveries: [CallbackDelivery], cursor: FeedPosition) async throws {
        if !deliveries.isEmpty {
            try await withCollection(Self.deliveriesName) { c throws(MongoError) in
                for d in deliveries {
                    do throws(MongoError) {
                        try c.insertOne(Self.document(d))
                    } catch .duplicateKey {
                        continue  // made before (a page read again): at most one delivery per endpoint and event
                    }
                }
            }
        }
        let (major, minor) = (Int64(clamping: cursor.major), Int64(clamping: cursor.minor))
        try await withCollection(Self.cursorName) { c throws(MongoError) in
            // Never backwards: another router's dispatcher may be ahead.
            let behind: BSONDocument = [
                "_id": .string("dispatcher"),
                "$or": .array([.document(["major": .document(["$lt": .int64(major)])]), .document(["major": .int64(major), "minor": .document(["$lt": .int64(minor)])])]),
            ]
            if try c.updateOne(behind, ["$set": .document(["major": .int64(major), "minor": .int64(minor)])]) > 0 { return }
            do throws(MongoError) {
                try c.insertOne(["_id": .string("dispatcher"), "major": .int64(major), "minor": .int64(minor)])
            } catch .duplicateKey {
                return  // it exists and is at or past `cursor`
            }
        }
    }

    // MARK: sending

    public func claimDue(now: Timestamp, lease: Duration, limit: Int) async throws -> [CallbackDelivery] {
        let until = now.adding(lease)
        return try await withCollection(Self.deliveriesName) { c throws(MongoError) in
            var out: [CallbackDelivery] = []
            // One findAndModify per delivery: each is atomic, so two senders never take the same one.
            while out.count < limit {
                guard let d = try c.findOneAndUpdate(
                    ["state": .string("pending"), "nextAttemptAt": .document(["$lte": .datetime(now.milliseconds)])],
                    sort: ["nextAttemptAt": .int32(1)], update: ["$set": .document(["nextAttemptAt": .datetime(until.milliseconds)])], fields: [:])
                else { break }
                var x = try Self.delivery(d)
                x.nextAttemptAt = until
                out.append(x)
            }
            return out
        }
    }

    public func record(_ a: CallbackAttemptRecord) async throws {
        let fields: BSONDocument = [
            "state": .string(a.state.rawValue), "nextAttemptAt": .datetime(a.nextAttemptAt.milliseconds), "updatedAt": .datetime(a.at.milliseconds),
            "lastStatusCode": a.statusCode.map { .int64(Int64($0)) } ?? .null, "lastDurationMs": .int64(Int64(a.durationMs)), "lastError": a.error.map(BSON.string) ?? .null,
        ]
        let recorded = try await withCollection(Self.deliveriesName) { c throws(MongoError) -> Bool in
            // Read, then write on the condition that it is still pending with the history read: a delivery is held by
            // one sender at a time (its lease), so the condition fails only for a sender whose lease ran out.
            guard let d = try c.find(["_id": .string(a.deliveryID), "state": .string("pending")], options: ["limit": .int64(1)]).first else { return false }
            let before = d["attemptLog"] ?? .array([])
            let history = (Self.attempts(d) + [a.attempt]).suffix(CallbackAttempt.kept).map { BSON.document(Self.attempt($0)) }
            var set = fields
            set["attemptLog"] = .array(Array(history))
            return try c.updateOne(
                ["_id": .string(a.deliveryID), "state": .string("pending"), "attemptLog": before],
                ["$set": .document(set), "$inc": .document(["attempts": .int64(1)])]) > 0
        }
        guard recorded else { return }
        _ = try await withCollection(Self.endpointsName) { c throws(MongoError) in
            if a.succeeded {
                try c.updateOne(["_id": .string(a.endpointID), "failingSince": .document(["$ne": .null])], ["$set": .document(["failingSince": .null])])
            } else {
                try c.updateOne(["_id": .string(a.endpointID), "failingSince": .null], ["$set": .document(["failingSince": .datetime(a.at.milliseconds)])])
            }
        }
    }

    public func deliveries(endpointID: String, limit: Int, cursor: String?) async throws -> Page<CallbackDelivery> {
        var filter: BSONDocument = ["endpointId": .string(endpointID)]
        if let cursor {
            guard cursor.hasPrefix("\(endpointID)_") else { throw InvalidCursor() }
            filter["_id"] = .document(["$lt": .string(cursor)])
        }
        let query = filter
        let items = try await withCollection(Self.deliveriesName) { c throws(MongoError) in
            try c.find(query, options: ["sort": .document(["_id": .int32(-1)]), "limit": .int64(Int64(limit + 1))]).map(Self.delivery)
        }
        let page = Array(items.prefix(limit))
        return Page(items: page, nextCursor: items.count > limit ? page.last?.id : nil)
    }

    public func delivery(endpointID: String, id: String) async throws -> CallbackDelivery? {
        try await withCollection(Self.deliveriesName) { c throws(MongoError) in
            try c.find(["_id": .string(id), "endpointId": .string(endpointID)], options: ["limit": .int64(1)]).first.map(Self.delivery)
        }
    }

    public func retry(endpointID: String, id: String, now: Timestamp) async throws -> CallbackDelivery? {
        try await withCollection(Self.deliveriesName) { c throws(MongoError) in
            _ = try c.updateOne(
                ["_id": .string(id), "endpointId": .string(endpointID), "state": .string("failed")],
                ["$set": .document(["state": .string("pending"), "nextAttemptAt": .datetime(now.milliseconds), "since": .datetime(now.milliseconds), "updatedAt": .datetime(now.milliseconds)])])
            return try c.find(["_id": .string(id), "endpointId": .string(endpointID)], options: ["limit": .int64(1)]).first.map(Self.delivery)
        }
    }
}

extension MongoCallbackStore: Purging {
    /// Deletes the finished deliveries (delivered or failed) last changed before `cutoff`; pending ones are kept.
    public func purge(before cutoff: Timestamp) async throws -> Int {
        try await withCollection(Self.deliveriesName) { c throws(MongoError) in
            let q: BSONDocument = ["state": .document(["$ne": .string("pending")]), "updatedAt": .document(["$lt": .datetime(cutoff.milliseconds)])]
            let reply = try c.writeCommand(["delete": .string(Self.deliveriesName), "deletes": .array([.document(["q": .document(q), "limit": .int32(0)])])])
            return Int(reply["n"]?.intValue ?? 0)
        }
    }
}
#endif
