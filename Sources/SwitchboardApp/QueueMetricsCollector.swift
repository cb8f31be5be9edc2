import Synchronization
import SwitchboardCore
import SwitchboardTelemetry

/// Samples, when called (at each scrape of `/metrics`), what only the engines know: each stream's backlog
/// (`switchboard_queue_length`, `_pending`, `_oldest_pending_age_seconds`, `_dead_letters` by stream), the outbox's
/// due count (`switchboard_outbox_due_messages`) and whether each engine answers (`switchboard_engine_up` by engine
/// and role: the same pings as `/health/ready`).
///
/// Each question to an engine is bounded by `timeout`, so a dead engine does not hang a scrape: past it the
/// engine counts as down and that stream's or the outbox's gauges keep their last value. A check still running
/// then is not started again by the next scrape (at most one per question in flight); it ends by the engine's own
/// timeout (the Redis client's wait, the search client's request timeout, MongoDB's server selection).
public final class QueueMetricsCollector: Sendable {
    let adapters: Adapters
    let gauges: BacklogGauges
    let timeout: Duration
    let clock: @Sendable () -> Timestamp
    /// The streams and the group whose pending entries are reported: the channels' workers, the logger.
    let streams: [(stream: String, group: String)]
    /// Questions asked and not yet answered (keys: `info:<stream>`, `outbox`, `up:<role>`).
    let inFlight = Mutex<Set<String>>([])

    /// - Parameters:
    ///   - gauges: the gauges to set; by default on the process's metrics backend, named after `adapters.names`.
    ///   - timeout: the longest a scrape waits for one engine's answer.
    public init(adapters: Adapters, gauges: BacklogGauges? = nil, timeout: Duration = .seconds(2), clock: @escaping @Sendable () -> Timestamp = SystemTime.now) {
        self.adapters = adapters
        streams = MessageChannel.allCases.map { ($0.stream, StreamNames.workerGroup) } + [(StreamNames.log, StreamNames.loggerGroup)]
        self.gauges = gauges ?? BacklogGauges(
            streams: streams.map(\.stream),
            engines: [("store", adapters.names.store), ("queue", adapters.names.queue), ("search", adapters.names.search)])
        self.timeout = timeout
        self.clock = clock
    }

    /// Asks every engine at once, then sets the gauges. Returns within about `timeout`.
    public func refresh() async {
        let adapters = adapters
        let now = clock()
        async let store = bounded("up:store") { try await adapters.store.ping() }
        async let queue = bounded("up:queue") { try await adapters.queue.ping() }
        async let search = bounded("up:search") { try await adapters.search.ping() }
        async let due = bounded("outbox") { try await adapters.store.outboxDue(now: now) }
        let backlogs = await withTaskGroup(of: Answer<StreamBacklog>.self) { group in
            for (stream, consumerGroup) in streams {
                group.addTask { await self.bounded("info:\(stream)") { try await adapters.queue.info(stream: stream, group: consumerGroup) } }
            }
            return await group.reduce(into: [StreamBacklog]()) { if case .value(let b) = $1 { $0.append(b) } }
        }
        for b in backlogs { gauges.record(b) }
        if case .value(let due) = await due { gauges.outboxDue(due) }
        for (role, answer) in await [("store", store), ("queue", queue), ("search", search)] {
            switch answer {
            case .value: gauges.engine(role: role, up: true)
            case .failed: gauges.engine(role: role, up: false)
            case .stillAsking: break  // the previous scrape's check has not ended: its answer will say
            }
        }
    }

    /// What one bounded question gave.
    enum Answer<T: Sendable>: Sendable {
        /// The engine answered.
        case value(T)
        /// It threw, or did not answer within `timeout`.
        case failed
        /// The previous scrape's question under the same key is still running (and was counted as failed then,
        /// once past `timeout`): this scrape says nothing new about it.
        case stillAsking
    }

    /// `body`'s answer within `timeout`. The check runs in a task of its own, so that a hung engine does not hold
    /// the scrape: it ends when its engine answers or gives up (the engines' own timeouts).
    func bounded<T: Sendable>(_ key: String, _ body: @escaping @Sendable () async throws -> T) async -> Answer<T> {
        guard inFlight.withLock({ $0.insert(key).inserted }) else { return .stillAsking }
        let timeout = timeout
        return await withCheckedContinuation { (continuation: CheckedContinuation<Answer<T>, Never>) in
            let answer = FirstAnswer(continuation)
            // Both tasks end by themselves: the timer when the check answers (cancelled) or at `timeout`, the
            // check when its engine answers or gives up. The check's answer is given before the timer is
            // cancelled, and a cancelled timer gives nothing: an answer in time always wins.
            let timer = Task {
                do {
                    try await Task.sleep(for: timeout)
                    answer.give(.failed)
                } catch {}
            }
            Task {
                let value = try? await body()
                self.inFlight.withLock { _ = $0.remove(key) }
                answer.give(value.map { .value($0) } ?? .failed)
                timer.cancel()
            }
        }
    }
}

/// Resumes a continuation with the first value given; later ones are dropped.
final class FirstAnswer<T: Sendable>: Sendable {
    private let continuation: Mutex<CheckedContinuation<T, Never>?>

    init(_ continuation: CheckedContinuation<T, Never>) {
        self.continuation = Mutex(continuation)
    }

    func give(_ value: T) {
        continuation.withLock { c in
            c?.resume(returning: value)
            c = nil
        }
    }
}
