import Foundation
import Logging
import Testing
import SwitchboardCore
import SwitchboardSQLite
import SwitchboardTestSupport

@testable import SwitchboardApp

/// A queue that forwards to another but cannot delete dead letters (as a Redis gone down after the redrive's commit).
final class RemovalRefusingQueue: MessageQueue {
    let base: any MessageQueue
    init(base: any MessageQueue) { self.base = base }

    func createGroup(stream: String, group: String) async throws { try await base.createGroup(stream: stream, group: group) }
    func publish(stream: String, entries: [[String: String]]) async throws -> [String] { try await base.publish(stream: stream, entries: entries) }
    func read(stream: String, group: String, consumer: String, count: Int, block: Duration) async throws -> [QueueEntry] {
        try await base.read(stream: stream, group: group, consumer: consumer, count: count, block: block)
    }
    func ack(stream: String, group: String, ids: [String]) async throws { try await base.ack(stream: stream, group: group, ids: ids) }
    var lease: Duration { base.lease }
    func renew(stream: String, group: String, consumer: String, ids: [String]) async throws -> [String] { try await base.renew(stream: stream, group: group, consumer: consumer, ids: ids) }
    func deadLetter(stream: String, group: String, entries: [QueueEntry], reason: String) async throws {
        try await base.deadLetter(stream: stream, group: group, entries: entries, reason: reason)
    }
    func removeDeadLetters(stream: String, through dispatches: [String: Int]) async throws -> Int { throw Refused() }
    func entries(stream: String, limit: Int) async throws -> [QueueEntry] { try await base.entries(stream: stream, limit: limit) }
    func info(stream: String, group: String) async throws -> StreamBacklog { try await base.info(stream: stream, group: group) }
    func ping() async throws { try await base.ping() }

    struct Refused: Error {}
}

@Suite("Redrive service")
struct RedriveServiceTests {
    @Test("ids count once, unknown ones are reported; a queue that cannot delete the dead letters leaves the redrive committed, logged, with nothing counted as deleted")
    func removalFails() async throws {
        let db = try temporaryDatabase("r")
        let store = SQLiteStore(database: db)
        let queue = RemovalRefusingQueue(base: SQLiteQueue(database: db, clock: SystemTime.now))
        let capture = LogCapture()
        let (adapters, _) = Adapters.portByPort(store: store, queue: queue, search: SQLiteSearchIndex(database: db), mailbox: nil, options: PipelineOptions(), names: (store: "sqlite", queue: "refusing", search: "sqlite"), logger: capture.logger)
        try await queue.createGroup(stream: "sms_stream", group: StreamNames.workerGroup)
        let now = SystemTime.now()
        let new = NewCommunication(id: "000000000000000000000001", request: CommunicationRequest(channel: .sms, from: "+15550000000", to: "+15551112222", msg: "m"), idempotencyKey: nil, createdAt: now, dispatchAt: now.adding(.seconds(10)))
        _ = try await adapters.pipeline.accept([new], queuedAt: now, service: "router")
        let entry = try #require(try await queue.read(stream: "sms_stream", group: StreamNames.workerGroup, consumer: "w", count: 1, block: .zero).first)
        try await adapters.pipeline.record([
            StatusTransition(id: new.id, event: .processing(dispatchSeq: 1, redelivery: false), at: now, service: "sms"),
            StatusTransition(id: new.id, event: .failed(error: ProviderError(code: "E", message: "no"), provider: "p", dispatchSeq: 1), at: now, service: "sms"),
        ], settle: [nil, entry], group: StreamNames.workerGroup)
        #expect(try await queue.info(stream: "sms_stream", group: StreamNames.workerGroup).deadLetters == 1)

        let redrive = Redrive(adapters: adapters, logger: capture.logger, clock: { now.adding(.seconds(1)) })
        let report = try await redrive.redrive(ids: [new.id, "nope", new.id], by: "key_x")
        #expect(report.outcomes.map(\.id) == [new.id, "nope"])
        guard case .redriven(let c) = report.outcomes.first else { Issue.record("\(report)"); return }
        #expect(c.status == .pending && c.dispatchSeq == 2 && c.dispatchAt == now.adding(.seconds(1)))
        #expect(report.outcomes.last == .notFound(id: "nope") && report.deadLettersRemoved == 0)
        #expect(try await store.communication(id: new.id)?.status == .pending)
        #expect(try await queue.info(stream: "sms_stream", group: StreamNames.workerGroup).deadLetters == 1)
        #expect(capture.matching("dead-letter entries not deleted").first?.level == .warning)
        // By filter: nothing failed any more.
        #expect(try await redrive.redrive(FailedQuery(channel: .sms, limit: 10), by: nil).outcomes.isEmpty)
        #expect(try await redrive.redrive(ids: [new.id], by: nil).outcomes == [.notFailed(id: new.id, status: .pending)])
    }
}
