import Foundation
import NIOConcurrencyHelpers
import ServiceLifecycle
import Testing
import SwitchboardApp
import SwitchboardCore
import SwitchboardSQLite
import SwitchboardTestSupport

/// A search index that fails while `down` and otherwise records the log records it was given.
final class FlakySearch: SearchIndex {
    let down = NIOLockedValueBox(true)
    let failures = NIOLockedValueBox(0)
    let logs = NIOLockedValueBox<[LogRecord]>([])

    func index(communications: [CommunicationDocument]) async throws {}
    func index(logs records: [LogRecord]) async throws {
        if down.withLockedValue({ $0 }) {
            failures.withLockedValue { $0 += 1 }
            throw CancellationError()
        }
        logs.withLockedValue { $0 += records }
    }
    func search(_ query: CommunicationQuery) async throws -> Page<CommunicationDocument> { Page(items: [], nextCursor: nil) }
    func search(_ query: LogQuery) async throws -> Page<LogRecord> { Page(items: [], nextCursor: nil) }
    func ping() async throws {}
}

@Suite("Logging service with an unavailable search index")
struct LogIndexerRetryTests {
    @Test("the batch is kept and retried in process with its leases renewed: another logger takes nothing over, nothing is dead-lettered, acked only after indexing")
    func retriesInProcess() async throws {
        let database = try temporaryDatabase("l")
        // A 4 s lease and two deliveries: without renewal, another logger would take the entries over after four
        // seconds, and a further takeover would dead-letter them. The lease is renewed every third of it: 4 s leave
        // a loaded machine's late wake-ups over 2.5 s of room (at 2 s, a renewal late by 1.3 s let the other in).
        let lease = Duration.seconds(4)
        let queue = SQLiteQueue(database: database, lease: lease, pollInterval: .milliseconds(20), clock: SystemTime.now)
        let search = FlakySearch()
        let (adapters, _) = Adapters.portByPort(store: SQLiteStore(database: database), queue: queue, search: search, mailbox: nil, options: PipelineOptions(), names: (store: "sqlite", queue: "sqlite", search: "flaky"), logger: quiet())
        let records = (0..<5).map { i in
            LogRecord(communicationId: "c\(i)", service: "router", status: .pending, type: .sms, from: "+15550000000", to: "+15550000001", msg: "m\(i)", error: nil, attempt: 0, provider: nil, timestamp: Timestamp(milliseconds: 1000 + Int64(i)))
        }
        try await queue.createGroup(stream: StreamNames.log, group: StreamNames.loggerGroup)
        try await queue.publish(stream: StreamNames.log, entries: records.map(\.fields))
        let indexer = LogIndexer(adapters: adapters, options: PipelineOptions(maxDeliveries: 2, readBlock: .milliseconds(50)), consumer: "logger-test", logger: quiet())
        let group = ServiceGroup(configuration: .init(services: [.init(service: indexer)], logger: quiet()))
        let task = Task { try await group.run() }

        // Once the logging service holds the batch (its first attempt failed): three leases at least, and three
        // failed attempts (a loaded machine may take longer for them). Meanwhile another logging service finds
        // nothing to take over.
        try await eventually("the first attempt") { search.failures.withLockedValue { $0 } >= 1 }
        for _ in 0..<3 {
            try await Task.sleep(for: lease)
            let other = try await queue.read(stream: StreamNames.log, group: StreamNames.loggerGroup, consumer: "logger-other", count: 10, block: .zero)
            #expect(other.isEmpty, "taken over: \(other.map(\.id))")
        }
        let deadline = ContinuousClock.now + .seconds(60)
        while search.failures.withLockedValue({ $0 }) < 3, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(search.failures.withLockedValue { $0 } >= 3)
        var info = try await queue.info(stream: StreamNames.log, group: StreamNames.loggerGroup)
        #expect(info.pending == 5, "not acknowledged while not indexed")
        #expect(info.deadLetters == 0)

        search.down.withLockedValue { $0 = false }
        try await eventually("indexed and acknowledged") {
            try await queue.info(stream: StreamNames.log, group: StreamNames.loggerGroup).pending == 0
        }
        #expect(search.logs.withLockedValue { $0 } == records)
        info = try await queue.info(stream: StreamNames.log, group: StreamNames.loggerGroup)
        #expect(info.deadLetters == 0)
        await group.triggerGracefulShutdown()
        try await task.value
        await database.close()
    }
}
