#if MongoDB
import Foundation
import Logging
import Testing
import SwitchboardCore
import SwitchboardTestSupport
@testable import SwitchboardMongo

func quietLogger() -> Logger {
    var l = Logger(label: "mongo-tests")
    l.logLevel = .error
    return l
}

/// Runs `body` with a store on a fresh SecantusDB server (its own database), then closes both.
func withStore(options: String? = SecantusServer.patientOptions, _ body: (MongoStore, SecantusServer) async throws -> Void) async throws {
    try await withSecantusServer { server in
        let store = try MongoStore(url: server.url(database: "switchboard-test", options: options), logger: quietLogger())
        do {
            try await body(store, server)
        } catch {
            await store.shutdown()
            throw error
        }
        await store.shutdown()
    }
}

/// The shared store contract (`StoreContract`) on MongoDB (a SecantusDB peer).
@Suite("MongoDB store contract", .timeLimit(.minutes(2)))
struct MongoStoreContractTests {
    @Test func createAndRead() async throws { try await withStore { s, _ in try await StoreContract.createAndRead(s) } }
    @Test func sameRecipientTwice() async throws { try await withStore { s, _ in try await StoreContract.sameRecipientTwice(s) } }
    @Test func idempotency() async throws { try await withStore { s, _ in try await StoreContract.idempotency(s) } }
    @Test func idempotencyRace() async throws { try await withStore { s, _ in try await StoreContract.idempotencyRace(s) } }
    @Test func transitions() async throws { try await withStore { s, _ in try await StoreContract.transitions(s) } }
    @Test func retryAndFailure() async throws { try await withStore { s, _ in try await StoreContract.retryAndFailure(s) } }
    @Test func cancel() async throws { try await withStore { s, _ in try await StoreContract.cancel(s) } }
    @Test func redrive() async throws { try await withStore { s, _ in try await StoreContract.redrive(s) } }
    @Test func idempotencyKeys() async throws { try await withStore { s, _ in try await StoreContract.idempotencyKeys(s) } }
    @Test func scheduled() async throws { try await withStore { s, _ in try await StoreContract.scheduled(s) } }
    @Test func createdSince() async throws { try await withStore { s, _ in try await StoreContract.createdSince(s) } }
    @Test func statusCounts() async throws { try await withStore { s, _ in try await StoreContract.statusCounts(s) } }
    @Test func concurrentTransitions() async throws { try await withStore { s, _ in try await StoreContract.concurrentTransitions(s) } }
    @Test func claimDue() async throws { try await withStore { s, _ in try await StoreContract.claimDue(s) } }
    @Test func outboxDue() async throws { try await withStore { s, _ in try await StoreContract.outboxDue(s) } }
    @Test func concurrentClaims() async throws { try await withStore { s, _ in try await StoreContract.concurrentClaims(s) } }
    @Test func acceptedQueuedAndConfirmed() async throws { try await withStore { s, _ in try await StoreContract.acceptedQueuedAndConfirmed(s) } }
    @Test func purge() async throws { try await withStore { s, _ in try await StoreContract.purge(s) } }
    @Test func attribution() async throws { try await withStore { s, _ in try await StoreContract.attribution(s) } }
    @Test func traceContext() async throws { try await withStore { s, _ in try await StoreContract.traceContext(s) } }
}

@Suite("MongoDB store", .timeLimit(.minutes(2)))
struct MongoStoreTests {
    /// The raw documents of the collection.
    func documents(_ store: MongoStore, _ filter: BSONDocument = [:]) async throws -> [BSONDocument] {
        try await store.withCollection { c throws(MongoError) in try c.find(filter) }
    }

    func indexes(_ store: MongoStore) async throws -> [BSONDocument] {
        let db = store.databaseName
        let reply = try await store.connection.withClient { client throws(MongoError) in try client.command(db, ["listIndexes": .string(MongoStore.collectionName)]) }
        guard case .array(let batch)? = reply["cursor"]?.documentValue?["firstBatch"] else { return [] }
        return batch.compactMap(\.documentValue)
    }

    @Test("indexes are created at start, idempotently; only _id and idempotencyKey are unique, `to` is not")
    func indexesExist() async throws {
        try await withStore { store, server in
            try await store.prepare()
            let second = try MongoStore(url: server.url(database: "switchboard-test"), logger: quietLogger())
            try await second.prepare()  // again, from another pool: no error
            await second.shutdown()
            let byName = Dictionary(uniqueKeysWithValues: try await indexes(store).map { ($0["name"]?.stringValue ?? "", $0) })
            #expect(Set(byName.keys) == ["_id_", "status_createdAt", "idempotencyKey_unique", "providerMessageId", "dispatchAt", "createdAt_id", "status_updatedAt"])
            #expect(byName["status_createdAt"]?["key"]?.documentValue?.keys == ["status", "createdAt"])
            #expect(byName["createdAt_id"]?["key"]?.documentValue?.keys == ["createdAt", "_id"])
            let idem = try #require(byName["idempotencyKey_unique"])
            #expect(idem["unique"] == .bool(true))
            #expect(idem["partialFilterExpression"] == .document(["idempotencyKey": .document(["$type": .string("string")])]))
            let unique = byName.values.filter { $0["unique"] == .bool(true) }.compactMap { $0["name"]?.stringValue }
            #expect(unique == ["idempotencyKey_unique"])
            // Many messages without a key, and many to one recipient.
            _ = try await store.create((0..<5).map { StoreContract.new("n\($0)", StoreContract.sms("+15550001111")) })
            #expect(try await documents(store, ["data.to": .string("+15550001111")]).count == 5)
        }
    }

    @Test("the document holds the seed's fields (type, data) and ours, with real dates")
    func documentLayout() async throws {
        try await withStore { store, _ in
            let req = CommunicationRequest(channel: .email, from: "a@example.com", to: "b@example.com", msg: "hi", subject: "S")
            _ = try await store.create([StoreContract.new("doc1", req, key: "key-1")])
            _ = try await store.apply([StatusTransition(id: "doc1", event: .processing(dispatchSeq: 1, redelivery: false), at: Timestamp(milliseconds: 2000), service: "email")])
            let d = try #require(try await documents(store).first)
            #expect(d["_id"] == .string("doc1") && d["type"] == .string("email") && d["status"] == .string("processing"))
            #expect(d["data"] == .document(["from": .string("a@example.com"), "msg": .string("hi"), "subject": .string("S"), "to": .string("b@example.com")]))
            #expect(d["createdAt"] == .datetime(1000) && d["updatedAt"] == .datetime(2000) && d["dispatchAt"] == .null)
            #expect(d["idempotencyKey"] == .string("key-1") && d["attempts"]?.intValue == 1 && d["dispatchSeq"]?.intValue == 1 && d["revision"]?.intValue == 2)
            guard case .array(let history)? = d["history"] else { Issue.record("no history"); return }
            #expect(history.map { $0.documentValue?["status"] } == [.string("pending"), .string("processing")])
            #expect(history.last?.documentValue?["at"] == .datetime(2000))
            // A message without a key has no idempotencyKey field (the unique index is partial).
            _ = try await store.create([StoreContract.new("doc2")])
            #expect(try await documents(store, ["_id": .string("doc2")]).first?["idempotencyKey"] == nil)
        }
    }

    @Test("two pools (two processes) racing on the same messages: each transition is applied once")
    func concurrentCAS() async throws {
        try await withStore { store, server in
            let other = try MongoStore(url: server.url(database: "switchboard-test"), logger: quietLogger())
            _ = try await store.create((0..<30).map { StoreContract.new("cas\($0)") })
            let events: [StatusEvent] = [.queued(dispatchSeq: 1), .processing(dispatchSeq: 1, redelivery: false), .sent(provider: "sandbox", providerMessageID: nil)]
            let applied = try await withThrowingTaskGroup(of: Int.self) { group in
                for worker in 0..<6 {
                    let s = worker % 2 == 0 ? store : other
                    group.addTask {
                        var n = 0
                        for event in events {
                            n += StoreContract.appliedCount(try await s.apply((0..<30).map { StatusTransition(id: "cas\($0)", event: event, at: Timestamp(milliseconds: 5000), service: "w\(worker)") }))
                        }
                        return n
                    }
                }
                return try await group.reduce(0, +)
            }
            await other.shutdown()
            #expect(applied == 90)
            for i in 0..<30 {
                let c = try #require(try await store.communication(id: "cas\(i)"))
                #expect(c.status == .sent && c.attempts == 1)
                // No double entries: every status once, whatever order the workers' events won in.
                #expect(Set(c.history.map(\.status)).count == c.history.count)
            }
        }
    }

    @Test("claimDue leases atomically across pools and moves the revision")
    func claimLease() async throws {
        try await withStore { store, server in
            let other = try MongoStore(url: server.url(database: "switchboard-test"), logger: quietLogger())
            _ = try await store.create((0..<20).map { StoreContract.new("l\($0)", at: 0) })
            let now = Timestamp(milliseconds: 20_000)
            async let a = store.claimDue(now: now, lease: .seconds(30), limit: 20)
            async let b = other.claimDue(now: now, lease: .seconds(30), limit: 20)
            let (fromA, fromB) = try await (a, b)
            await other.shutdown()
            #expect(fromA.count + fromB.count == 20)
            #expect(Set(fromA.map(\.id)).isDisjoint(with: fromB.map(\.id)))
            let d = try #require(try await documents(store, ["_id": .string("l0")]).first)
            #expect(d["dispatchAt"] == .datetime(50_000) && d["revision"]?.intValue == 2)
        }
    }

    @Test("a seed-style unique index on `to` is refused at start with a clear error")
    func foreignUniqueIndex() async throws {
        try await withStore { store, server in
            let db = store.databaseName
            _ = try await store.connection.withClient { client throws(MongoError) in
                try client.command(db, ["createIndexes": .string("communications"), "indexes": .array([.document(["key": .document(["to": .int32(1)]), "name": .string("to_1"), "unique": .bool(true)])])])
            }
            let fresh = try MongoStore(url: server.url(database: "switchboard-test"), logger: quietLogger())
            do {
                try await fresh.prepare()
                Issue.record("a unique index on `to` was accepted")
            } catch {
                #expect("\(error)".contains("to_1") && "\(error)".contains("dropIndex"))
            }
            await fresh.shutdown()
        }
    }

    @Test("the URL is passed through: options are accepted, the path names the database, else the seed's")
    func urlOptions() async throws {
        try await withStore(options: "appname=switchboard-test&serverSelectionTimeoutMS=100000&connectTimeoutMS=60000&maxPoolSize=4&retryWrites=true&w=majority&journal=true&readPreference=primary") { store, _ in
            #expect(store.databaseName == "switchboard-test")
            _ = try await store.create([StoreContract.new("u1")])
            try await store.ping()
            #expect(try await store.communication(id: "u1")?.status == .pending)
        }
        // Parsed without connecting: replica sets, TLS and auth options are libmongoc's to interpret.
        let rs = try MongoStore(url: "mongodb://app:s3cret@db1.internal:27017,db2.internal:27017/?replicaSet=rs0&authSource=admin&tls=true&tlsAllowInvalidHostnames=true", logger: quietLogger())
        #expect(rs.databaseName == "communication-aggregator")
        await rs.shutdown()
        do {
            _ = try MongoStore(url: "mongodb://app:s3cret@host:notaport/", logger: quietLogger())
            Issue.record("a bad port was accepted")
        } catch {
            guard case .invalidURL(let message) = error else { Issue.record("\(error)"); return }
            #expect(!message.contains("s3cret"))
        }
        #expect(throws: MongoError.self) { try MongoStore(url: "http://host", logger: quietLogger()) }
    }

    @Test("an unreachable server fails with a connection error, quickly when the URL says so")
    func unreachable() async throws {
        let port = try await freeLoopbackPort()
        let store = try MongoStore(url: "mongodb://127.0.0.1:\(port)/?serverSelectionTimeoutMS=300&connectTimeoutMS=300", logger: quietLogger())
        let started = ContinuousClock.now
        do {
            try await store.ping()
            Issue.record("ping succeeded on a closed port")
        } catch let error as MongoError {
            guard case .connection = error else { Issue.record("not a connection error: \(error)"); return }
        }
        do {
            _ = try await store.create([StoreContract.new("x")])
            Issue.record("create succeeded on a closed port")
        } catch let error as MongoError {
            guard case .connection = error else { Issue.record("not a connection error: \(error)"); return }
            // It passes: the API answers 503 store_unavailable with Retry-After, not 500.
            #expect(error.temporaryReason == "the MongoDB store does not answer")
        }
        #expect(MongoError.duplicateKey("x").temporaryReason == nil)
        #expect(MongoError.malformedDocument("x").temporaryReason == nil)
        #expect(ContinuousClock.now - started < .seconds(10))
        await store.shutdown()
        await #expect(throws: MongoError.closed) { try await store.ping() }
    }
}
#endif
