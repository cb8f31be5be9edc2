import Logging
import SwitchboardCore

/// Puts dead-lettered messages back on their way (`POST /api/v1/dead-letters/redrive`).
///
/// A redrive is one status change per message, `StatusEvent.redriven`, recorded through the `Pipeline` like any
/// other (history with the key that asked, log entry, search document): the state machine takes a `failed`
/// message to `pending` as a new dispatch with a fresh attempt budget, due in the outbox now, and
/// `OutboxScheduler` publishes it as it publishes a retry — on the embedded pipeline and the port-by-port one
/// alike, with no second way to publish. The compare-and-set is what makes a redrive safe to repeat or to race:
/// of two redrives of one message only one finds it `failed`; the other reports it `not_failed`, so nothing is
/// published, or sent, twice. Entries of the failed dispatch still somewhere are stale and skipped by the worker.
///
/// Its entries on `<stream>:dead` are then deleted (`MessageQueue.removeDeadLetters`, only those of the failed
/// dispatch and earlier: if the message fails again, its new entry stays), so `GET /api/v1/dead-letters` lists
/// what is still dead. That deletion comes after the commit: should it fail, the redrive stands and an entry of a
/// message already on its way stays listed (logged; the answer says how many were deleted), rather than the
/// other way round — a message still failed that no longer shows as a dead letter. The same holds for a message
/// redriven in the instant after its failure was committed on separate engines, before the worker's `deadLetter`
/// (`PortByPortPipeline.record` writes the store first): its entry comes after the deletion and stays listed,
/// although the message is on its way (a redrive of it answers `not_failed`). The embedded engine commits the
/// failure and its dead-letter entry together.
public struct Redrive: Sendable {
    /// What became of one message asked for.
    public enum Outcome: Sendable, Hashable {
        /// Back to `pending` in a new dispatch; the outbox publishes it.
        case redriven(Communication)
        /// Not `failed` (redriven already, or never dead-lettered): nothing changed. Its current status.
        case notFailed(id: String, status: CommunicationStatus)
        /// No message has this id.
        case notFound(id: String)

        public var id: String {
            switch self {
            case .redriven(let c): c.id
            case .notFailed(let id, _), .notFound(let id): id
            }
        }
    }

    /// The outcome of each message, in the order asked (each id once), and how many dead-letter entries went.
    public struct Report: Sendable, Hashable {
        public var outcomes: [Outcome]
        public var deadLettersRemoved: Int
    }

    /// The most messages one redrive takes (ids listed, or a filter's `limit`).
    public static let maxMessages = 1000

    let adapters: Adapters
    let logger: Logger
    let clock: @Sendable () -> Timestamp

    public init(adapters: Adapters, logger: Logger, clock: @escaping @Sendable () -> Timestamp = SystemTime.now) {
        self.adapters = adapters
        self.logger = logger
        self.clock = clock
    }

    /// Redrives the messages `ids` names (duplicates count once), by the API key `key` (nil when the API is open).
    public func redrive(ids: [String], by key: String?) async throws -> Report {
        var seen = Set<String>()
        let unique = ids.filter { seen.insert($0).inserted }
        guard !unique.isEmpty else { return Report(outcomes: [], deadLettersRemoved: 0) }
        let now = clock()
        let transitions = unique.map { StatusTransition(id: $0, event: .redriven(by: key, due: now), at: now, service: "router") }
        let recorded = try await adapters.pipeline.record(transitions, settle: [], group: StreamNames.workerGroup)
        let outcomes = zip(unique, recorded).map { id, outcome -> Outcome in
            switch outcome {
            case .applied(let c, _): .redriven(c)
            case .ignored(let c, _): .notFailed(id: c.id, status: c.status)
            case .notFound: .notFound(id: id)
            }
        }
        return Report(outcomes: outcomes, deadLettersRemoved: await removeDeadLetters(of: outcomes))
    }

    /// Redrives the failed messages `query` finds (oldest failure first, at most its `limit`). One that another
    /// redrive took between the search and the change is reported `not_failed`.
    public func redrive(_ query: FailedQuery, by key: String?) async throws -> Report {
        try await redrive(ids: try await adapters.store.failed(query).map(\.id), by: key)
    }

    /// Deletes the dead-letter entries of the dispatches the redriven messages left (the one before their new
    /// dispatch, and earlier ones); returns how many went. A queue that fails is logged, not thrown: the redrive
    /// is committed and its messages are on their way.
    func removeDeadLetters(of outcomes: [Outcome]) async -> Int {
        var byStream: [String: [String: Int]] = [:]
        for case .redriven(let c) in outcomes { byStream[c.channel.stream, default: [:]][c.id] = c.dispatchSeq - 1 }
        var removed = 0
        for (stream, dispatches) in byStream.sorted(by: { $0.key < $1.key }) {
            do {
                removed += try await adapters.queue.removeDeadLetters(stream: stream, through: dispatches)
            } catch {
                logger.warning("redriven messages' dead-letter entries not deleted; they stay listed", metadata: [
                    "stream": "\(StreamNames.deadLetter(of: stream))", "messages": "\(dispatches.count)", "error": "\(error)",
                ])
            }
        }
        return removed
    }
}
