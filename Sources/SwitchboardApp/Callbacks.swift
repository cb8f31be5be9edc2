import Logging
import ServiceLifecycle
import SwitchboardCore
import Synchronization

/// How status callbacks are made (`SWITCHBOARD_CALLBACK_*`).
public struct CallbackSettings: Sendable, Hashable {
    /// Callbacks to loopback, private, link-local and metadata addresses are allowed (tests, closed networks).
    public var allowPrivate = false
    /// One attempt's limit (connection, request and the start of the answer).
    public var timeout: Duration = .seconds(10)
    /// How long a delivery is retried after its first attempt before it is failed.
    public var horizon: Duration = .seconds(86_400)
    /// The wait before the second attempt; doubling, jittered, at most `maxDelay`.
    public var baseDelay: Duration = .seconds(5)
    public var maxDelay: Duration = .seconds(3600)
    /// An endpoint whose deliveries have all failed for this long is disabled.
    public var disableAfter: Duration = .seconds(5 * 86_400)
    /// Attempts in flight at once per router.
    public var concurrency = 16
    /// How often the sender looks for due deliveries when it found none.
    public var pollInterval: Duration = .milliseconds(100)
    /// How old the routers' copy of the endpoints may be.
    public var refreshInterval: Duration = .seconds(2)

    public init() {}

    /// The backoff between attempts: exponential from `baseDelay`, capped, half of it random.
    public var backoff: Backoff { Backoff(initial: baseDelay, maximum: maxDelay, jitter: 0.5) }
}

/// The callback endpoints as a router sees them: every endpoint in memory, read again from the store when the copy
/// is older than `refreshInterval` (like `KeyCache` for keys), so an endpoint registered or changed through any
/// router is used by every router within seconds, and the dispatcher does not read the store per event.
public final class CallbackDirectory: Sendable {
    public let store: any CallbackStore
    public let settings: CallbackSettings
    private let copy = Mutex<(endpoints: [CallbackEndpoint], at: ContinuousClock.Instant)?>(nil)
    private let refreshing = Atomic<Bool>(false)

    public init(store: any CallbackStore, settings: CallbackSettings = CallbackSettings()) {
        self.store = store
        self.settings = settings
    }

    /// Reads every endpoint from the store now.
    @discardableResult
    public func refresh() async throws -> [CallbackEndpoint] {
        let endpoints = try await store.endpoints()
        copy.withLock { $0 = (endpoints, .now) }
        return endpoints
    }

    /// The endpoints, read again when the copy is older than `refreshInterval`. While one caller reads them, the
    /// others (the sender's concurrent attempts) use the copy a moment longer rather than read them too.
    public func current() async throws -> [CallbackEndpoint] {
        let c = copy.withLock { $0 }
        if let c, ContinuousClock.now - c.at < settings.refreshInterval { return c.endpoints }
        guard refreshing.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else {
            if let c { return c.endpoints }
            return try await refresh()
        }
        defer { refreshing.store(false, ordering: .releasing) }
        return try await refresh()
    }

    /// The enabled default endpoint of `keyID` (`default: true`), read again from the store when not in the copy.
    public func defaultEndpoint(forKey keyID: String) async throws -> CallbackEndpoint? {
        func find(_ all: [CallbackEndpoint]) -> CallbackEndpoint? { all.first { $0.isDefault && $0.enabled && $0.keyID == keyID } }
        if let found = find(try await current()) { return found }
        return find(try await refresh())
    }
}

/// Turns the status feed into callback deliveries: reads `status_stream` from the cursor kept in the store, makes one
/// delivery per matching enabled endpoint and event (plus one to the message's own `data.callbackUrl` when its key
/// has a default endpoint), and stores them with the cursor past them (`CallbackStore.enqueue`). It reads the feed
/// rather than hooking the pipeline because the feed already holds every change, from every process, in commit
/// order, durably: a router that was down resumes from its cursor, and nothing on the message path waits for it.
///
/// Every router runs one; they share the cursor and their deliveries coincide by id, so two of them insert each
/// delivery once. The feed keeps events for `SWITCHBOARD_EVENTS_RETENTION_SECONDS`: a dispatcher stopped longer
/// than that misses what was trimmed meanwhile.
///
/// It also disables endpoints whose deliveries have failed for `disableAfter`, with an audit record.
public final class CallbackDispatcher: Service, Sendable {
    let store: any CallbackStore
    let feed: any StatusFeed
    let communications: any CommunicationStore
    let directory: CallbackDirectory
    let audit: AuditLog?
    let logger: Logger
    let clock: @Sendable () -> Timestamp
    /// Events read per pass.
    let pageSize: Int

    public init(feed: any StatusFeed, communications: any CommunicationStore, directory: CallbackDirectory, audit: AuditLog?, logger: Logger, clock: @escaping @Sendable () -> Timestamp = SystemTime.now, pageSize: Int = 256) {
        self.store = directory.store
        self.feed = feed
        self.communications = communications
        self.directory = directory
        self.audit = audit
        self.logger = logger
        self.clock = clock
        self.pageSize = pageSize
    }

    public func run() async throws {
        var position: FeedPosition?
        /// communication id → its `data.callbackUrl` (nil: none), for the messages of keys with a default endpoint.
        var callbackURLs: [String: String?] = [:]
        var lastHealthCheck = ContinuousClock.now - .seconds(3600)
        var lastCursorWrite = ContinuousClock.now
        await ServiceLoop.run("callback dispatcher", logger: logger) {
            // Every 10 s, or more often when the limit is that short (tests).
            if ContinuousClock.now - lastHealthCheck >= min(.seconds(10), directory.settings.disableAfter / 4) {
                lastHealthCheck = .now
                try await disableFailing()
            }
            // The first start of the deployment reads the whole feed (what it still holds): an endpoint only gets the
            // changes made after its registration, whenever the dispatcher starts.
            // No endpoint: nothing to read for (the accepts pay nothing for callbacks nobody uses). The cursor stays
            // where it is; once an endpoint exists the feed is read from there, and an endpoint gets only the changes
            // made after its registration anyway.
            let endpoints = try await directory.current().filter(\.enabled)
            guard !endpoints.isEmpty else { return .milliseconds(250) }
            let cursor: FeedPosition? = if let position { position } else { try await store.cursor() }
            position = cursor
            let page = try await feed.read(after: cursor, count: pageSize, block: .milliseconds(500))
            guard let newest = page.last?.position else { return .zero }
            var deliveries: [CallbackDelivery] = []
            let now = clock()
            if callbackURLs.count > 10_000 { callbackURLs.removeAll() }
            for event in page {
                let r = event.record
                guard r.status != nil, r.type != nil else { continue }
                var payload: String?
                func body() -> String {
                    if let payload { return payload }
                    let p = CallbackRules.payload(r, data: LiveEvent.json(r, eventID: event.position.description))
                    payload = p
                    return p
                }
                for e in endpoints where e.matches(r) && e.createdAt <= r.timestamp {
                    deliveries.append(Self.delivery(e, event, url: e.url, payload: body(), perMessage: false, now: now))
                }
                if let key = r.keyID, let def = endpoints.first(where: { $0.isDefault && $0.keyID == key }), def.createdAt <= r.timestamp {
                    let url: String?
                    if let known = callbackURLs[r.communicationId] {
                        url = known
                    } else {
                        url = try await communications.communication(id: r.communicationId)?.request.callbackURL
                        callbackURLs[r.communicationId] = url
                    }
                    if let url { deliveries.append(Self.delivery(def, event, url: url, payload: body(), perMessage: true, now: now)) }
                }
            }
            // The cursor alone (nothing matched) is written at most once a second: reading a page again after a
            // crash inserts nothing twice, and the store's writer is not asked for every page of the feed.
            if !deliveries.isEmpty || ContinuousClock.now - lastCursorWrite >= .seconds(1) {
                try await store.enqueue(deliveries, cursor: newest)
                lastCursorWrite = .now
            }
            position = newest
            return .zero
        }
    }

    static func delivery(_ e: CallbackEndpoint, _ event: FeedRecord, url: String, payload: String, perMessage: Bool, now: Timestamp) -> CallbackDelivery {
        CallbackDelivery(
            id: CallbackDelivery.id(endpointID: e.id, position: event.position, perMessage: perMessage), endpointID: e.id, position: event.position, url: url,
            payload: payload, eventType: CallbackRules.eventType(event.record), communicationID: event.record.communicationId, nextAttemptAt: now, createdAt: now)
    }

    /// Disables the enabled endpoints whose deliveries have all failed for `disableAfter`, with an audit record.
    func disableFailing() async throws {
        let now = clock()
        let limit = directory.settings.disableAfter
        for var e in try await directory.refresh() where e.enabled {
            guard let since = e.failingSince, since.adding(limit) <= now else { continue }
            e.enabled = false
            e.updatedAt = now
            e.disabledReason = "every delivery failed since \(since.iso8601)"
            guard try await store.updateEndpoint(e) else { continue }
            logger.warning("callback endpoint disabled: its deliveries have failed too long", metadata: ["endpoint": "\(e.id)", "failingSince": "\(since.iso8601)"])
            audit?.callbackEndpointDisabled(id: e.id, since: since, failingFor: limit)
        }
    }
}

/// Sends due callback deliveries: claims them from the store (leased, so two routers never send one at once), POSTs
/// each through the `CallbackTransport` and records the outcome (`CallbackRules.decide`: delivered, retried later
/// with backoff or `Retry-After`, or failed). At most `concurrency` attempts are in flight, each bounded by the
/// transport's timeout; it runs in the router, apart from the channel workers, so a slow client's endpoint delays
/// nothing but its own callbacks.
public final class CallbackSender: Service, Sendable {
    /// Makes the transport when the service starts, and what closes it when the service ends (an HTTP client
    /// holds connections and threads: it exists only while the service runs).
    public typealias TransportFactory = @Sendable () -> (transport: any CallbackTransport, close: @Sendable () async -> Void)

    let store: any CallbackStore
    let makeTransport: TransportFactory
    let directory: CallbackDirectory
    let logger: Logger
    let clock: @Sendable () -> Timestamp
    private let inFlight = Atomic<Int>(0)

    public init(transport: @escaping TransportFactory, directory: CallbackDirectory, logger: Logger, clock: @escaping @Sendable () -> Timestamp = SystemTime.now) {
        self.store = directory.store
        self.makeTransport = transport
        self.directory = directory
        self.logger = logger
        self.clock = clock
    }

    var settings: CallbackSettings { directory.settings }

    public func run() async throws {
        let (transport, close) = makeTransport()
        await withDiscardingTaskGroup { group in
            await ServiceLoop.run("callback sender", logger: logger) {
                let free = settings.concurrency - inFlight.load(ordering: .acquiring)
                guard free > 0 else { return .milliseconds(20) }
                // No endpoint, no delivery to send (a message's callbackUrl needs its key's default endpoint): the
                // store is not asked.
                guard try await directory.current().isEmpty == false else { return settings.pollInterval * 5 }
                // Leased for longer than an attempt can take (its timeout, and time to record it), so no other sender
                // takes it meanwhile; a sender that dies leaves it to be taken again a few seconds later.
                let due = try await store.claimDue(now: clock(), lease: settings.timeout + .seconds(5), limit: free)
                for d in due {
                    inFlight.add(1, ordering: .acquiringAndReleasing)
                    group.addTask {
                        await self.attempt(d, transport)
                        self.inFlight.subtract(1, ordering: .acquiringAndReleasing)
                    }
                }
                return due.count == free ? .zero : settings.pollInterval
            }
        }
        await close()
    }

    /// One attempt of `d`, recorded.
    func attempt(_ d: CallbackDelivery, _ transport: any CallbackTransport) async {
        let endpoint: CallbackEndpoint?
        do {
            endpoint = try await directory.current().first { $0.id == d.endpointID }
        } catch {
            logger.warning("callback endpoints cannot be read; the delivery waits for its lease to end", metadata: ["delivery": "\(d.id)", "error": "\(error)"])
            return
        }
        let started = ContinuousClock.now
        let answer: CallbackRules.Answer
        if let endpoint, endpoint.enabled {
            answer = await transport.send(d, secret: endpoint.secret, at: clock())
        } else {
            answer = .noAnswer(endpoint == nil ? "the endpoint was deleted" : "the endpoint is disabled", retryable: false)
        }
        let elapsed = ContinuousClock.now - started
        let now = clock()
        var g = SystemRandomNumberGenerator()
        let (state, next, error) = CallbackRules.decide(attempt: d.attempts + 1, answer: answer, since: d.since, now: now, horizon: settings.horizon, backoff: settings.backoff, using: &g)
        var code: Int?
        if case .status(let c, _) = answer { code = c }
        let ms = Int(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)
        let outcome = CallbackAttemptRecord(deliveryID: d.id, endpointID: d.endpointID, at: now, state: state, nextAttemptAt: next, statusCode: code, durationMs: ms, error: error)
        if state == .failed {
            logger.notice("callback failed for good", metadata: ["delivery": "\(d.id)", "endpoint": "\(d.endpointID)", "attempts": "\(d.attempts + 1)", "error": "\(error ?? "")"])
        }
        do {
            try await ServiceLoop.retrying("record a callback attempt", logger: logger) { try await store.record(outcome) }
        } catch {
            // Shutting down: the delivery is due again when its lease ends, and is sent again (at least once).
            logger.warning("callback attempt not recorded; it will be made again", metadata: ["delivery": "\(d.id)", "error": "\(error)"])
        }
    }
}
