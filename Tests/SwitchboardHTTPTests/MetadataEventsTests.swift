import Foundation
import Logging
import Testing
import SwitchboardTestSupport
import SwitchboardCore
@testable import SwitchboardApp
@testable import SwitchboardSQLite

/// `data.metadata` travels with every status change into the status feed, so into live events and callbacks, on
/// both write paths; a message without metadata carries none (no field).
@Suite("Metadata in the status feed, live events and callbacks")
struct MetadataEventsTests {
    static func request(_ to: String, metadata: JSONValue?) throws -> CommunicationRequest {
        var data: [String: JSONValue] = ["from": .string("+14155550100"), "to": .string(to), "msg": .string("hi")]
        if let metadata { data["metadata"] = metadata }
        guard case .success(let r) = RequestValidator.validate(.object(["type": .string("sms"), "data": .object(data)])) else { throw TestEnvironmentFailure() }
        return r
    }

    struct TestEnvironmentFailure: Error {}

    @Test("accept and a worker's transitions: every feed record of the message carries its metadata", arguments: [true, false])
    func feedRecords(atomic: Bool) async throws {
        let db = try temporaryDatabase("m")
        let queue = SQLiteQueue(database: db, clock: SystemTime.now)
        let feed = SQLiteStatusFeed(database: db, clock: SystemTime.now)
        var logger = Logger(label: "t")
        logger.logLevel = .critical
        let pipeline: any Pipeline = atomic
            ? SQLitePipeline(queue: queue)
            : Adapters.portByPort(store: SQLiteStore(database: db), queue: queue, search: SQLiteSearchIndex(database: db), mailbox: nil, feed: feed, options: PipelineOptions(), names: (store: "sqlite", queue: "sqlite", search: "sqlite"), logger: logger).1
        let now = SystemTime.now()
        let with = NewCommunication(id: "000000000000000000000001", request: try Self.request("+14155550123", metadata: .object(["orderId": .string("123"), "user.id": .string("u-1")])), idempotencyKey: nil, createdAt: now, dispatchAt: now.adding(.seconds(30)))
        let without = NewCommunication(id: "000000000000000000000002", request: try Self.request("+14155550124", metadata: nil), idempotencyKey: nil, createdAt: now, dispatchAt: now.adding(.seconds(30)))
        _ = try await pipeline.accept([with, without], queuedAt: now, service: "router")
        let later = now.adding(.milliseconds(5))
        let outcomes = try await pipeline.record([with.id, without.id].map { StatusTransition(id: $0, event: .processing(dispatchSeq: 1, redelivery: false), at: later, service: "sms") }, settle: [], group: StreamNames.workerGroup)
        #expect(outcomes.count == 2)
        _ = try await pipeline.record([with.id, without.id].map { StatusTransition(id: $0, event: .sent(provider: "sandbox", providerMessageID: "p"), at: later.adding(.milliseconds(1)), service: "sms") }, settle: [], group: StreamNames.workerGroup)

        let records = try await feed.read(after: nil, count: 100, block: .zero)
        let ofWith = records.filter { $0.record.communicationId == with.id }
        let ofWithout = records.filter { $0.record.communicationId == without.id }
        #expect(ofWith.map { $0.record.status } == [.pending, .queued, .processing, .sent])
        #expect(ofWith.allSatisfy { $0.record.metadata == ["orderId": "123", "user.id": "u-1"] })
        #expect(ofWithout.count == 4)
        #expect(ofWithout.allSatisfy { $0.record.metadata.isEmpty })

        // The live event and the callback's body (built from it) show it; the other message's have no field.
        let event = try JSONParser.parse(LiveEvent(try #require(ofWith.last)).json)
        #expect(event["metadata"] == .object(["orderId": .string("123"), "user.id": .string("u-1")]))
        let plain = try JSONParser.parse(LiveEvent(try #require(ofWithout.last)).json)
        #expect(plain["metadata"] == nil)
        let callback = try JSONParser.parse(CallbackRules.payload(ofWith.last!.record, data: LiveEvent(ofWith.last!).json))
        #expect(callback["data"]?["metadata"]?["orderId"] == .string("123"))
        await db.close()
    }
}
