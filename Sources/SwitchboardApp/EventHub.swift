import Logging
import ServiceLifecycle
import SwitchboardCore
import Synchronization

/// How a router serves live status.
public struct EventSettings: Sendable, Hashable {
    /// How long the status feed keeps events (`SWITCHBOARD_EVENTS_RETENTION_SECONDS`).
    public var retention: Duration = .seconds(3600)
    /// Embedded engine: how often the hub looks for events other processes wrote (`SWITCHBOARD_EVENTS_POLL_MS`).
    public var pollInterval: Duration = .milliseconds(20)
    /// How often an idle subscriber gets a heartbeat (`SWITCHBOARD_EVENTS_HEARTBEAT_MS`).
    public var heartbeat: Duration = .seconds(15)
    /// How many events a subscriber may fall behind before it is disconnected (`SWITCHBOARD_EVENTS_BUFFER`).
    public var buffer = 1000
    /// The longest one event stream stays open (`SWITCHBOARD_EVENTS_STREAM_MAX_SECONDS`; nil: no limit): an SSE
    /// client then reconnects with `Last-Event-ID` (an EventSource does by itself), which spreads long-lived
    /// clients over the routers behind a load balancer.
    public var streamLimit: Duration?

    public init() {}
}

/// Which status changes a subscriber wants. Empty sets match everything.
public struct EventFilter: Sendable, Hashable {
    public var communicationIDs: Set<String>
    public var types: Set<MessageChannel>
    public var statuses: Set<CommunicationStatus>
    /// Only messages sent with this API key id.
    public var keyID: String?

    public init(communicationIDs: Set<String> = [], types: Set<MessageChannel> = [], statuses: Set<CommunicationStatus> = [], keyID: String? = nil) {
        self.communicationIDs = communicationIDs
        self.types = types
        self.statuses = statuses
        self.keyID = keyID
    }

    public func matches(_ r: LogRecord) -> Bool {
        guard let status = r.status, let type = r.type else { return false }
        if !communicationIDs.isEmpty, !communicationIDs.contains(r.communicationId) { return false }
        if !types.isEmpty, !types.contains(type) { return false }
        if !statuses.isEmpty, !statuses.contains(status) { return false }
        if let keyID, r.keyID != keyID { return false }
        return true
    }
}

/// One status change as subscribers receive it: its place in the feed, the record, and its JSON (made once and
/// shared by every subscriber).
public struct LiveEvent: Sendable {
    public let position: FeedPosition
    public let record: LogRecord
    /// The change as a JSON object (`id`: the communication; `eventId`: the position; no message body).
    public let json: String

    public init(_ r: FeedRecord) {
        position = r.position
        record = r.record
        json = Self.json(r.record, eventID: r.position.description)
    }

    /// What identifies a change whether it comes from the feed or from a record's history (its status, time,
    /// attempt and service): to write a change once when it is in both.
    public static func changeKey(_ r: LogRecord) -> String {
        "\(r.status?.rawValue ?? "")|\(r.timestamp.milliseconds)|\(r.attempt)|\(r.service)"
    }

    /// The JSON of a change: the same fields whether it comes from the feed or from a record's history.
    public static func json(_ r: LogRecord, eventID: String) -> String { object(r, eventID: eventID).canonicalText }

    /// `json` as a value (for an answer that holds changes, as a WebSocket's `subscribed` holds the history).
    public static func object(_ r: LogRecord, eventID: String) -> JSONValue {
        var o: [String: JSONValue] = [
            "id": .string(r.communicationId), "eventId": .string(eventID), "status": .string(r.status?.rawValue ?? ""),
            "type": .string(r.type?.rawValue ?? ""), "at": .string(r.timestamp.iso8601), "attempt": .number(Double(r.attempt)),
            "service": .string(r.service), "to": .string(r.to), "test": .bool(r.test),
        ]
        if let p = r.provider { o["provider"] = .string(p) }
        if let e = r.error { o["error"] = .string(e) }
        if let k = r.keyID { o["keyId"] = .string(k) }
        if let t = r.traceParent { o["traceId"] = .string(t.traceID) }
        if !r.metadata.isEmpty { o["metadata"] = Metadata.json(r.metadata) }
        return .object(o)
    }
}

/// The router's fan-out of the status feed: one reader of `status_stream` per process, whatever the number of
/// subscribers (SSE streams, WebSocket subscriptions), each with a bounded buffer. A subscriber that falls
/// `buffer` events behind is dropped (`Subscription.overflowed`), so a slow client never grows the process's
/// memory; an SSE client resumes from the feed with `Last-Event-ID`.
///
/// The hub reads only while someone subscribes; it also trims the feed to its retention every 10 s. On
/// graceful shutdown it ends every subscription first, so open event streams close and the HTTP server can stop.
public final class EventHub: Service, Sendable {
    /// What a subscription receives.
    public enum Delivery: Sendable {
        /// A change matching the subscription with this id.
        case event(LiveEvent, subscription: Int)
        /// Nothing happened for a heartbeat interval: time for an SSE comment.
        case heartbeat
        /// A message the consumer queued itself (`Sink.post`), behind the events already buffered: a WebSocket's
        /// replies, which must not overtake or fall behind its events. `opens`: the subscription it announces.
        case note(String, opens: Int?, skip: Set<String>)
    }

    /// Where deliveries go: a bounded buffer read by one consumer (an SSE response, a WebSocket), shared by that
    /// consumer's subscriptions. When it is full the consumer has fallen behind: it is finished and marked.
    public final class Sink: Sendable {
        public let deliveries: AsyncStream<Delivery>
        let continuation: AsyncStream<Delivery>.Continuation
        private let dropped = Atomic<Bool>(false)

        init(buffer: Int) {
            (deliveries, continuation) = AsyncStream.makeStream(of: Delivery.self, bufferingPolicy: .bufferingOldest(buffer))
        }

        /// True when the hub dropped it because its buffer was full.
        public var overflowed: Bool { dropped.load(ordering: .acquiring) }

        func overflow() {
            dropped.store(true, ordering: .releasing)
            continuation.finish()
        }

        /// Ends the deliveries (the consumer is done).
        public func finish() { continuation.finish() }

        /// Queues the consumer's own message behind the buffered events; `opens` names the subscription it announces,
        /// `skip` the changes (`LiveEvent.changeKey`) it already holds. False when the buffer is full.
        @discardableResult
        public func post(_ text: String, opens: Int? = nil, skip: Set<String> = []) -> Bool {
            send(.note(text, opens: opens, skip: skip))
        }

        /// Yields unless dropped; false when the buffer was full (the sink is then finished).
        func send(_ d: Delivery) -> Bool {
            guard !overflowed else { return true }
            if case .dropped = continuation.yield(d) { return false }
            return true
        }
    }

    /// One subscriber's filter and where its deliveries go.
    public final class Subscription: Sendable {
        public let id: Int
        public let filter: EventFilter
        let sink: Sink

        init(id: Int, filter: EventFilter, sink: Sink) {
            self.id = id
            self.filter = filter
            self.sink = sink
        }

        /// Where the hub files it: by its messages, else its key, else its channels, else with every event.
        var buckets: [String] {
            if !filter.communicationIDs.isEmpty { return filter.communicationIDs.map { "m:" + $0 } }
            if let key = filter.keyID { return ["k:" + key] }
            if !filter.types.isEmpty { return filter.types.map { "t:" + $0.rawValue } }
            return ["*"]
        }
    }

    private struct State {
        var nextID = 1
        /// Subscriptions by what an event must have to concern them (`Subscription.buckets`): an event looks in
        /// the few buckets it can match, so subscribers to other messages, keys or channels cost it nothing.
        var buckets: [String: [Int: Subscription]] = [:]
        var count = 0
        var stopped = false
        /// Where the reader is; nil while idle.
        var position: FeedPosition?
        /// The smallest start of the subscriptions made while idle.
        var pendingStart: FeedPosition?
    }

    let feed: any StatusFeed
    public let settings: EventSettings
    let logger: Logger
    let clock: @Sendable () -> Timestamp
    private let state = Mutex(State())

    public init(feed: any StatusFeed, settings: EventSettings = EventSettings(), logger: Logger, clock: @escaping @Sendable () -> Timestamp = SystemTime.now) {
        self.feed = feed
        self.settings = settings
        self.logger = logger
        self.clock = clock
    }

    /// How many subscriptions are open.
    public var subscribers: Int { state.withLock { $0.count } }

    /// A sink with the configured buffer, for `subscribe`.
    public func makeSink() -> Sink { Sink(buffer: settings.buffer) }

    /// Registers a subscription delivering into `sink`, whose catch-up (if any) starts after `start`: the hub
    /// never starts reading after it. Nil when the hub has stopped.
    public func subscribe(_ filter: EventFilter, start: FeedPosition, sink: Sink) -> Subscription? {
        state.withLock { s -> Subscription? in
            guard !s.stopped else { return nil }
            let sub = Subscription(id: s.nextID, filter: filter, sink: sink)
            s.nextID += 1
            s.count += 1
            for bucket in sub.buckets { s.buckets[bucket, default: [:]][sub.id] = sub }
            if s.position == nil { s.pendingStart = min(s.pendingStart ?? start, start) }
            return sub
        }
    }

    /// Ends a subscription (its sink stays open for the others sharing it).
    public func unsubscribe(_ sub: Subscription) {
        state.withLock { s in Self.remove(sub, from: &s) }
    }

    /// The feed's newest position: a subscription made with it as `start` gets what is committed from now on.
    public func now() async throws -> FeedPosition { try await feed.end() }

    private static func remove(_ sub: Subscription, from s: inout State) {
        var found = false
        for bucket in sub.buckets {
            if s.buckets[bucket]?.removeValue(forKey: sub.id) != nil { found = true }
            if s.buckets[bucket]?.isEmpty == true { s.buckets[bucket] = nil }
        }
        if found { s.count -= 1 }
    }

    /// Why `follow` returned.
    public enum End: Sendable, Equatable {
        /// The subscriber fell `buffer` events behind and was dropped.
        case overflow
        /// The hub stopped (graceful shutdown).
        case stopped
        /// `body` asked to stop.
        case done
    }

    /// Follows the feed: the events after `after` still in the feed (nil: from now), then live ones, each once, in
    /// order, matching `filter`, with heartbeats; until `body` returns false or throws (a client gone), the
    /// subscriber overflows, or the hub stops. `prelude` runs once subscribed, before the first event (what it
    /// reads from the store then cannot miss a change: a change committed meanwhile is delivered after it).
    public func follow(_ filter: EventFilter, after: FeedPosition?, prelude: () async throws -> Bool = { true }, _ body: (Delivery) async throws -> Bool) async throws -> End {
        let start: FeedPosition
        if let after { start = after } else { start = try await feed.end() }
        let sink = makeSink()
        defer { sink.continuation.finish() }
        guard let sub = subscribe(filter, start: start, sink: sink) else { return .stopped }
        defer { unsubscribe(sub) }
        guard try await prelude() else { return .done }
        // Catch up from the feed (registered first: what the hub reads from now on reaches the buffer too).
        var last = start
        while true {
            let page = try await feed.read(after: last, count: 256, block: .zero)
            guard let newest = page.last?.position else { break }
            for r in page where filter.matches(r.record) {
                guard try await body(.event(LiveEvent(r), subscription: sub.id)) else { return .done }
            }
            last = newest
        }
        for await delivery in sink.deliveries {
            if sink.overflowed { break }
            if case .event(let e, _) = delivery, e.position <= last { continue }
            guard try await body(delivery) else { return .done }
            if case .event(let e, _) = delivery { last = e.position }
        }
        return sink.overflowed ? .overflow : .stopped
    }

    // MARK: the reader

    public func run() async throws {
        var lastTrim = ContinuousClock.now - .seconds(3600)
        var lastBeat = ContinuousClock.now
        await withGracefulShutdownHandler {
            await ServiceLoop.run("event hub", logger: logger) {
                let now = ContinuousClock.now
                if now - lastTrim >= .seconds(10) {
                    lastTrim = now
                    try await feed.trim(before: clock().adding(.zero - settings.retention))
                }
                guard let position = reader() else { return .milliseconds(50) }
                let records = try await feed.read(after: position, count: 512, block: min(settings.pollInterval * 25, .milliseconds(500)))
                if let newest = records.last?.position {
                    dispatch(records, through: newest)
                }
                if ContinuousClock.now - lastBeat >= settings.heartbeat {
                    lastBeat = ContinuousClock.now
                    beat()
                }
                return .zero
            }
        } onGracefulShutdown: {
            self.stop()
        }
        stop()
    }

    /// Where to read from, or nil when nobody subscribes (the hub is then idle).
    private func reader() -> FeedPosition? {
        state.withLock { s -> FeedPosition? in
            guard s.count > 0 else {
                s.position = nil
                return nil
            }
            if s.position == nil {
                s.position = s.pendingStart ?? .start
                s.pendingStart = nil
            }
            return s.position
        }
    }

    /// Hands each record to the subscriptions it matches; its JSON is made only when one does (most events of a
    /// busy router concern none of its subscribers).
    private func dispatch(_ records: [FeedRecord], through newest: FeedPosition) {
        var overflowed: [Subscription] = []
        state.withLock { s in
            s.position = newest
            for r in records {
                // Each subscription is in at most one of these buckets for a given event.
                var event: LiveEvent?
                func deliver(_ subs: [Int: Subscription]) {
                    for sub in subs.values where sub.filter.matches(r.record) {
                        if event == nil { event = LiveEvent(r) }
                        if !sub.sink.send(.event(event!, subscription: sub.id)) { overflowed.append(sub) }
                    }
                }
                if let subs = s.buckets["m:" + r.record.communicationId] { deliver(subs) }
                if let subs = s.buckets["*"] { deliver(subs) }
                if let type = r.record.type, let subs = s.buckets["t:" + type.rawValue] { deliver(subs) }
                if let key = r.record.keyID, let subs = s.buckets["k:" + key] { deliver(subs) }
            }
            for sub in overflowed { Self.remove(sub, from: &s) }
        }
        for sub in overflowed {
            logger.info("event subscriber dropped: it fell behind", metadata: ["buffer": "\(settings.buffer)"])
            sub.sink.overflow()
        }
    }

    private func beat() {
        state.withLock { s in
            var beaten = Set<ObjectIdentifier>()
            for subs in s.buckets.values {
                for sub in subs.values where beaten.insert(ObjectIdentifier(sub.sink)).inserted { _ = sub.sink.send(.heartbeat) }
            }
        }
    }

    /// Ends every subscription; later ones are refused.
    private func stop() {
        let all = state.withLock { s -> [Subscription] in
            s.stopped = true
            var all: [Subscription] = []
            for subs in s.buckets.values { all += subs.values }
            s.buckets = [:]
            s.count = 0
            return all
        }
        for sub in all { sub.sink.continuation.finish() }
    }
}
