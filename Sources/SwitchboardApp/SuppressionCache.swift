import Logging
import ServiceLifecycle
import Synchronization
import SwitchboardCore
import SwitchboardLifecycle

/// The router's copy of the suppression list's keys, in front of the `SuppressionStore`, so that an accept asks the
/// store only about a recipient that is on the list: without it, every accept paid a read of the store (on the
/// embedded engine, a hop to a reader thread: 10 % of single-request accepts, `docs/BENCHMARKS.md`).
///
/// A store itself (a decorator): `lookup` answers from the keys and reads the store only for the keys it holds (for
/// the entries' reason and date, and to confirm them); `add` and `remove` write the store and then the keys, so a
/// change made through this process is seen by its next accept. A change made by another process (a worker's
/// suppression after an opt-out, another router's `POST`) is seen after the next reload: `run()` reloads every
/// key every `interval` (1 s), or every 20 times as long as the last reload took, for lists of millions. Until the
/// first reload has finished, and whenever the last one failed, `lookup` reads the store.
public final class SuppressionCache: SuppressionStore, Service, Sendable {
    let base: any SuppressionStore
    let interval: Duration
    let logger: Logger

    struct State {
        /// Nil until loaded, and after a reload failed.
        var keys: Set<SuppressionKey>?
        /// Changes written through this process while a reload runs, applied again on top of what it read.
        var changesDuringReload: [(key: SuppressionKey, added: Bool)]?
    }

    private let state = Mutex(State())

    public init(_ base: any SuppressionStore, interval: Duration = .seconds(1), logger: Logger) {
        self.base = base
        self.interval = interval
        self.logger = logger
    }

    public func add(_ suppression: Suppression) async throws {
        try await base.add(suppression)
        note(suppression.key, added: true)
    }

    public func remove(channel: MessageChannel, to: String) async throws -> Bool {
        let removed = try await base.remove(channel: channel, to: to)
        note(SuppressionKey(channel: channel, to: to), added: false)
        return removed
    }

    public func lookup(_ keys: [SuppressionKey]) async throws -> [SuppressionKey: Suppression] {
        let held: [SuppressionKey]? = state.withLock { state in state.keys.map { known in keys.filter { known.contains($0) } } }
        guard let held else { return try await base.lookup(keys) }
        return held.isEmpty ? [:] : try await base.lookup(held)
    }

    public func list(channel: MessageChannel?, to: String?, limit: Int, cursor: String?) async throws -> Page<Suppression> {
        try await base.list(channel: channel, to: to, limit: limit, cursor: cursor)
    }

    func note(_ key: SuppressionKey, added: Bool) {
        state.withLock { state in
            if added { state.keys?.insert(key) } else { state.keys?.remove(key) }
            state.changesDuringReload?.append((key, added))
        }
    }

    /// Reads every key of the list, page by page, and makes it the copy.
    public func reload() async throws {
        state.withLock { $0.changesDuringReload = [] }
        var keys = Set<SuppressionKey>()
        var cursor: String?
        do {
            repeat {
                let page = try await base.list(channel: nil, to: nil, limit: 1000, cursor: cursor)
                for s in page.items { keys.insert(s.key) }
                cursor = page.nextCursor
            } while cursor != nil
        } catch {
            state.withLock { $0 = State() }
            throw error
        }
        state.withLock { state in
            for change in state.changesDuringReload ?? [] {
                if change.added { keys.insert(change.key) } else { keys.remove(change.key) }
            }
            state = State(keys: keys, changesDuringReload: nil)
        }
    }

    /// The number of keys held (nil: not loaded).
    public var count: Int? { state.withLock { $0.keys?.count } }

    public func run() async throws {
        await ServiceLoop.run("suppression list reload", logger: logger, backoff: Backoff(initial: interval, maximum: .seconds(30)), level: .warning) {
            let started = ContinuousClock.now
            try await reload()
            return max(interval, (ContinuousClock.now - started) * 20)
        }
    }
}
