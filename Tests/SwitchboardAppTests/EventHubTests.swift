import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import Testing
import SwitchboardCore
import SwitchboardSQLite
import SwitchboardTestSupport
@testable import SwitchboardApp

/// The hub over a real embedded feed, its reader running as a service.
private func withHub(buffer: Int = 1000, heartbeat: Duration = .seconds(15), _ body: (EventHub, SQLiteStatusFeed) async throws -> Void) async throws {
    let database = try temporaryDatabase("hub")
    let feed = SQLiteStatusFeed(database: database, pollInterval: .milliseconds(20), clock: SystemTime.now)
    var settings = EventSettings()
    settings.buffer = buffer
    settings.heartbeat = heartbeat
    var logger = Logger(label: "hub-test")
    logger.logLevel = .critical
    let hub = EventHub(feed: feed, settings: settings, logger: logger)
    let group = ServiceGroup(configuration: .init(services: [.init(service: hub)], logger: logger))
    let task = Task { try await group.run() }
    do {
        try await body(hub, feed)
    } catch {
        await group.triggerGracefulShutdown()
        _ = try? await task.value
        throw error
    }
    await group.triggerGracefulShutdown()
    try await task.value
}

private func append(_ feed: SQLiteStatusFeed, _ ids: [String], status: CommunicationStatus = .pending, type: MessageChannel = .sms, key: String? = nil) async throws {
    try await feed.append(ids.map { id in
        LogRecord(communicationId: id, service: "router", status: status, type: type, from: "f", to: "t", msg: "", error: nil, attempt: 0, provider: nil, timestamp: SystemTime.now(), keyID: key)
    })
}

/// Collects the events `follow` delivers until `count` are in, then stops.
private func collect(_ hub: EventHub, _ filter: EventFilter = EventFilter(), after: FeedPosition?, count: Int) async throws -> ([LiveEvent], EventHub.End) {
    var got: [LiveEvent] = []
    let end = try await hub.follow(filter, after: after) { delivery in
        if case .event(let e, _) = delivery { got.append(e) }
        return got.count < count
    }
    return (got, end)
}

@Suite("EventHub: one reader, many subscribers", .timeLimit(.minutes(1)))
struct EventHubTests {
    /// Resuming after a position delivers what the feed holds after it, then what is appended while it follows:
    /// each event once, in order, nothing skipped.
    @Test func resumeWithoutGapOrDuplicate() async throws {
        try await withHub { hub, feed in
            for i in 0..<10 { try await append(feed, ["a\(i)"]) }
            let first = try await feed.read(after: nil, count: 100, block: .zero)
            async let followed = collect(hub, after: first[3].position, count: 6 + 20)
            try await Task.sleep(for: .milliseconds(100))
            for i in 0..<20 { try await append(feed, ["b\(i)"]) }
            let (got, end) = try await followed
            #expect(end == .done)
            let all = try await feed.read(after: nil, count: 100, block: .zero)
            #expect(got.map(\.position) == Array(all[4...]).map(\.position))
        }
    }

    /// From now (no position): only what is appended after subscribing, even while the hub was idle.
    @Test func fromNow() async throws {
        try await withHub { hub, feed in
            try await append(feed, ["before"])
            async let followed = collect(hub, after: nil, count: 3)
            try await Task.sleep(for: .milliseconds(100))
            try await append(feed, ["x", "y", "z"])
            let (got, _) = try await followed
            #expect(got.map(\.record.communicationId) == ["x", "y", "z"])
        }
    }

    /// Filters by message, type, status and key; a subscriber gets only what matches.
    @Test func filters() async throws {
        try await withHub { hub, feed in
            async let byID = collect(hub, EventFilter(communicationIDs: ["m2"]), after: nil, count: 2)
            async let byType = collect(hub, EventFilter(types: [.email]), after: nil, count: 1)
            async let byStatus = collect(hub, EventFilter(statuses: [.sent]), after: nil, count: 1)
            async let byKey = collect(hub, EventFilter(keyID: "key_k1"), after: nil, count: 1)
            try await Task.sleep(for: .milliseconds(200))
            try await append(feed, ["m1", "m2"])
            try await append(feed, ["m3"], type: .email)
            try await append(feed, ["m4"], status: .sent, key: "key_k1")
            try await append(feed, ["m2"], status: .queued)
            #expect(try await byID.0.map { "\($0.record.communicationId) \($0.record.status!.rawValue)" } == ["m2 pending", "m2 queued"])
            #expect(try await byType.0.map(\.record.communicationId) == ["m3"])
            #expect(try await byStatus.0.map(\.record.communicationId) == ["m4"])
            #expect(try await byKey.0.map(\.record.communicationId) == ["m4"])
            try await eventually("subscriptions end", timeout: .seconds(30)) { hub.subscribers == 0 }
        }
    }

    /// A subscriber that does not keep up is dropped once `buffer` deliveries wait for it: `follow` says so, its
    /// subscription is gone, and the others go on.
    @Test func slowSubscriberIsDropped() async throws {
        try await withHub(buffer: 8) { hub, feed in
            let release = Mutex<Bool>(false)
            let fastSeen = Atomic<Int>(0)
            async let slow = hub.follow(EventFilter(), after: nil) { _ in
                while !release.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(20)) }
                return true
            }
            async let fast = hub.follow(EventFilter(), after: nil) { d in
                guard case .event = d else { return true }
                return fastSeen.add(1, ordering: .relaxed).newValue < 60
            }
            try await eventually("both subscribed", timeout: .seconds(30)) { hub.subscribers == 2 }
            // One at a time, each taken by the fast subscriber before the next: only the slow one falls behind.
            for i in 0..<60 {
                try await append(feed, ["s\(i)"])
                try await eventually("the fast subscriber takes event \(i)", timeout: .seconds(30)) { fastSeen.load(ordering: .relaxed) > i }
            }
            #expect(try await fast == .done)
            #expect(hub.subscribers == 0)
            release.withLock { $0 = true }
            #expect(try await slow == .overflow)
        }
    }

    /// Heartbeats reach an idle subscriber; graceful shutdown ends every subscription (`.stopped`).
    @Test func heartbeatsAndShutdown() async throws {
        final class Seen: Sendable {
            let beats = Atomic<Int>(0)
            let end = Mutex<EventHub.End?>(nil)
        }
        let seen = Seen()
        var follower: Task<Void, any Error>?
        try await withHub(heartbeat: .milliseconds(100)) { hub, _ in
            follower = Task {
                let e = try await hub.follow(EventFilter(), after: nil) { d in
                    if case .heartbeat = d { seen.beats.add(1, ordering: .relaxed) }
                    return true
                }
                seen.end.withLock { $0 = e }
            }
            try await eventually("two heartbeats", timeout: .seconds(30)) { seen.beats.load(ordering: .relaxed) >= 2 }
        }
        try await follower?.value
        #expect(seen.end.withLock { $0 } == .stopped)
    }
}

/// Polls `condition` until it holds or `timeout` passes (then records an issue).
func eventually(_ what: String, timeout: Duration, _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    Issue.record("timed out waiting for \(what)")
}
