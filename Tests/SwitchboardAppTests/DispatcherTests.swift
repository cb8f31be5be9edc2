import Foundation
import Logging
import Synchronization
import Testing
import SwitchboardTestSupport
import SwitchboardCore
import SwitchboardSQLite

@testable import SwitchboardApp

/// A queue that forwards to another and counts the `publish` calls per stream; with `failing`, publishing to
/// a channel stream throws (as a Redis that is down would).
final class CountingQueue: MessageQueue {
    let base: any MessageQueue
    let failing: Bool
    let calls = Mutex<[String: Int]>([:])

    init(base: any MessageQueue, failing: Bool) {
        self.base = base
        self.failing = failing
    }

    func createGroup(stream: String, group: String) async throws { try await base.createGroup(stream: stream, group: group) }
    func publish(stream: String, entries: [[String: String]]) async throws -> [String] {
        calls.withLock { $0[stream, default: 0] += 1 }
        if failing && stream != StreamNames.log { throw QueueDown() }
        return try await base.publish(stream: stream, entries: entries)
    }
    func read(stream: String, group: String, consumer: String, count: Int, block: Duration) async throws -> [QueueEntry] {
        try await base.read(stream: stream, group: group, consumer: consumer, count: count, block: block)
    }
    func ack(stream: String, group: String, ids: [String]) async throws { try await base.ack(stream: stream, group: group, ids: ids) }
    var lease: Duration { base.lease }
    func renew(stream: String, group: String, consumer: String, ids: [String]) async throws -> [String] { try await base.renew(stream: stream, group: group, consumer: consumer, ids: ids) }
    func deadLetter(stream: String, group: String, entries: [QueueEntry], reason: String) async throws {
        try await base.deadLetter(stream: stream, group: group, entries: entries, reason: reason)
    }
    func removeDeadLetters(stream: String, through dispatches: [String: Int]) async throws -> Int { try await base.removeDeadLetters(stream: stream, through: dispatches) }
    func entries(stream: String, limit: Int) async throws -> [QueueEntry] { try await base.entries(stream: stream, limit: limit) }
    func info(stream: String, group: String) async throws -> StreamBacklog { try await base.info(stream: stream, group: group) }
    func ping() async throws { try await base.ping() }

    struct QueueDown: Error {}
}

/// The router's steps with a queue beside the store (as with Redis): batched across concurrent requests.
@Suite("Dispatcher with a separate queue")
struct DispatcherTests {
    struct Fixture {
        let store: SQLiteStore
        let queue: CountingQueue
        let dispatcher: Dispatcher

        init(failing: Bool = false) throws {
            let db = try temporaryDatabase("d")
            store = SQLiteStore(database: db)
            queue = CountingQueue(base: SQLiteQueue(database: db, clock: SystemTime.now), failing: failing)
            var logger = Logger(label: "test")
            logger.logLevel = .critical
            let options = PipelineOptions(outboxGrace: .seconds(10))
            let (adapters, _) = Adapters.portByPort(store: store, queue: queue, search: SQLiteSearchIndex(database: db), mailbox: nil, options: options, names: (store: "sqlite", queue: "counting", search: "sqlite"), logger: logger)
            dispatcher = Dispatcher(adapters: adapters, options: options)
        }

        /// `n` requests at once, spread over the three channels; returns the accepted ids.
        func acceptConcurrently(_ n: Int) async throws -> [String] {
            try await withThrowingTaskGroup(of: String.self) { group in
                for i in 0..<n {
                    let request: CommunicationRequest = switch i % 3 {
                    case 0: CommunicationRequest(channel: .sms, from: "+15550000000", to: "+1555000\(1000 + i)", msg: "m\(i)")
                    case 1: CommunicationRequest(channel: .whatsapp, from: "+15550000000", to: "+1555000\(1000 + i)", msg: "m\(i)")
                    default: CommunicationRequest(channel: .email, from: "a@example.com", to: "b\(i)@example.com", msg: "m\(i)", subject: "s")
                    }
                    group.addTask {
                        guard case .accepted(let id, _, .queued, false, _) = try await dispatcher.accept(request, idempotencyKey: nil) else { throw Unexpected() }
                        return id
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
        }

        func statuses(_ ids: [String]) async throws -> [CommunicationStatus] {
            var out: [CommunicationStatus] = []
            for id in ids { out.append(try #require(try await store.communication(id: id)).status) }
            return out
        }
    }

    struct Unexpected: Error {}

    @Test("300 concurrent requests: each published once to its stream in fewer writes than requests, then queued with both log entries")
    func batched() async throws {
        let f = try Fixture()
        let ids = try await f.acceptConcurrently(300)
        #expect(Set(ids).count == 300)
        var published: [String] = []
        for channel in MessageChannel.allCases {
            published += try await f.queue.entries(stream: channel.stream, limit: 1_000).compactMap { DispatchEntry(fields: $0.fields)?.communicationId }
        }
        #expect(published.sorted() == ids.sorted())
        let calls = f.queue.calls.withLock { $0 }
        let channelCalls = MessageChannel.allCases.map { calls[$0.stream] ?? 0 }.reduce(0, +)
        #expect(channelCalls < 300)
        // `queued` and the log entries are written after the answers, without the client waiting.
        try await eventually { try await !f.statuses(ids).contains(.pending) }
        #expect(try await f.statuses(ids).allSatisfy { $0 == .queued })
        try await eventually { try await f.queue.entries(stream: StreamNames.log, limit: 10_000).count >= 600 }
        let logs = try await f.queue.entries(stream: StreamNames.log, limit: 10_000)
        #expect(logs.count == 600)
        // Per message: pending logged before queued.
        var seen: [String: [String]] = [:]
        for e in logs { seen[e.fields["communicationId"] ?? "", default: []].append(e.fields["status"] ?? "") }
        #expect(seen.count == 300)
        #expect(seen.values.allSatisfy { $0 == ["pending", "queued"] })
    }

    @Test("publication failing for a whole batch: every request is still answered, every message is stored queued as answered and stays due in the outbox, and its pending and queued log entries are written")
    func publicationFails() async throws {
        let f = try Fixture(failing: true)
        let ids = try await f.acceptConcurrently(60)
        #expect(try await f.statuses(ids).allSatisfy { $0 == .queued })
        for channel in MessageChannel.allCases { #expect(try await f.queue.entries(stream: channel.stream, limit: 100).isEmpty) }
        // Due once the grace has passed: the outbox scheduler claims them all.
        let due = try await f.store.claimDue(now: SystemTime.now().adding(.seconds(11)), lease: .seconds(30), limit: 1_000)
        #expect(Set(due.map(\.id)) == Set(ids))
        let logs = try await f.queue.entries(stream: StreamNames.log, limit: 1_000)
        #expect(logs.count == 120)
        var seen: [String: [String]] = [:]
        for e in logs { seen[e.fields["communicationId"] ?? "", default: []].append(e.fields["status"] ?? "") }
        #expect(Set(seen.keys) == Set(ids) && seen.values.allSatisfy { $0 == ["pending", "queued"] })
    }
}
