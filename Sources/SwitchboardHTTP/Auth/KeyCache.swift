import Logging
import SwitchboardApp
import SwitchboardCore
import Synchronization

/// Every API key of the deployment, in memory, so that authenticating a request costs a hash and a dictionary
/// lookup, not a store round trip.
///
/// Freshness: the whole list is read again every `refreshInterval` (`KeyCache.service`, on every router), and a
/// request that finds the copy older than `maxAge` reads it again before answering — so a key revoked by any
/// process (the CLI, another router) stops working everywhere within `maxAge` + a store read, under 5 s. An
/// unknown key also reads the list again when the copy is older than `missRefresh` (a key just made by the CLI
/// works at once), at most that often whatever a client sends. Concurrent reads share one store read.
///
/// Last use: a request with a key whose recorded last use is older than `usageResolution` queues its id; the
/// periodic refresh writes the queue (`KeyStore.markUsed`) before reading the list.
public final class KeyCache: Sendable {
    public static let refreshInterval: Duration = .seconds(2)
    public static let maxAge: Duration = .seconds(3)
    public static let missRefresh: Duration = .milliseconds(500)
    /// A key's "last used" is written at most this often.
    public static let usageResolution: Duration = .seconds(60)

    /// The keys as last read.
    public struct Snapshot: Sendable {
        /// Every key (revoked ones too, to say so), by the first 16 hex digits of its hash; the whole hash is
        /// then compared in constant time.
        var byHashPrefix: [Substring: [APIKeyRecord]]
        /// Keys in the store, revoked ones included, plus the bootstrap key.
        public var count: Int
        var readAt: ContinuousClock.Instant

        init(keys: [APIKeyRecord], readAt: ContinuousClock.Instant) {
            byHashPrefix = Dictionary(grouping: keys, by: { KeyCache.prefix($0.secretHash) })
            count = keys.count
            self.readAt = readAt
        }
    }

    /// What a presented key is.
    public enum Lookup: Sendable, Hashable {
        case valid(APIKeyRecord)
        case revoked(APIKeyRecord)
        case unknown
    }

    public let store: any KeyStore
    /// The `SWITCHBOARD_ADMIN_KEY` key: never stored, always valid while the variable is set.
    public let bootstrap: APIKeyRecord?
    let clock: @Sendable () -> Timestamp
    private let snapshot = Mutex<Snapshot?>(nil)
    private let inFlight = Mutex<Task<Snapshot, any Error>?>(nil)
    /// Ids whose use is to be recorded, and when each was last queued.
    private let usage = Mutex<(pending: Set<String>, queuedAt: [String: Timestamp])>(([], [:]))

    public init(store: any KeyStore, bootstrap: APIKeyRecord? = nil, clock: @escaping @Sendable () -> Timestamp = SystemTime.now) {
        self.store = store
        self.bootstrap = bootstrap
        self.clock = clock
    }

    /// The bootstrap key's record for the secret `secret` (`SWITCHBOARD_ADMIN_KEY`): scope `admin`.
    public static func bootstrapRecord(secret: String, at: Timestamp) -> APIKeyRecord {
        APIKeyRecord(id: "key_bootstrap", name: "SWITCHBOARD_ADMIN_KEY", scopes: [.admin], test: APIKeySecret.isTest(secret), secretHash: KeyIssuer.hash(secret), createdAt: at)
    }

    static func prefix(_ hash: String) -> Substring { hash.prefix(16) }

    /// Reads the keys from the store now (or joins a read under way) and keeps them.
    @discardableResult
    public func refresh() async throws -> Snapshot {
        let task = inFlight.withLock { current -> Task<Snapshot, any Error> in
            if let current { return current }
            let store = self.store, bootstrap = self.bootstrap
            let t = Task<Snapshot, any Error> {
                var keys = try await store.keys()
                if let bootstrap { keys.append(bootstrap) }
                return Snapshot(keys: keys, readAt: .now)
            }
            current = t
            return t
        }
        do {
            let fresh = try await task.value
            inFlight.withLock { if $0 == task { $0 = nil } }
            snapshot.withLock { current in
                if current.map({ $0.readAt < fresh.readAt }) ?? true { current = fresh }
            }
            return fresh
        } catch {
            inFlight.withLock { if $0 == task { $0 = nil } }
            throw error
        }
    }

    /// The keys, read again first when older than `age` (or never read).
    func current(maxAge age: Duration) async throws -> Snapshot {
        if let s = snapshot.withLock({ $0 }), ContinuousClock.now - s.readAt < age { return s }
        return try await refresh()
    }

    /// Whether requests must give a key: some key exists (revoked ones count: a deployment that had keys
    /// never falls back to open), or the bootstrap key is set.
    public func keysRequired() async throws -> Bool {
        if bootstrap != nil { return true }
        return try await current(maxAge: Self.maxAge).count > 0
    }

    /// The key whose hash is `hash`.
    public func lookup(hash: String) async throws -> Lookup {
        var s = try await current(maxAge: Self.maxAge)
        var found = Self.find(hash, in: s)
        if case .unknown = found, ContinuousClock.now - s.readAt >= Self.missRefresh {
            s = try await refresh()
            found = Self.find(hash, in: s)
        }
        if case .valid(let key) = found { noteUse(key) }
        return found
    }

    static func find(_ hash: String, in s: Snapshot) -> Lookup {
        for key in s.byHashPrefix[prefix(hash)] ?? [] where APIKeySecret.constantTimeEquals(key.secretHash, hash) {
            return key.revokedAt == nil ? .valid(key) : .revoked(key)
        }
        return .unknown
    }

    func noteUse(_ key: APIKeyRecord) {
        guard key.id != bootstrap?.id else { return }
        let now = clock()
        if let last = key.lastUsedAt, now < last.adding(Self.usageResolution) { return }
        usage.withLock { u in
            if let queued = u.queuedAt[key.id], now < queued.adding(Self.usageResolution) { return }
            u.queuedAt[key.id] = now
            u.pending.insert(key.id)
        }
    }

    /// Writes the last uses queued since the previous call.
    public func flushUsage() async throws {
        let ids = usage.withLock { u -> [String] in
            defer { u.pending = [] }
            return u.pending.sorted()
        }
        guard !ids.isEmpty else { return }
        do {
            try await store.markUsed(ids, at: clock())
        } catch {
            usage.withLock { u in u.pending.formUnion(ids) }
            throw error
        }
    }

    /// The router's service that keeps the copy fresh: every `refreshInterval`, the queued uses are written and
    /// the list is read again.
    public func service(logger: Logger) -> PeriodicTask {
        PeriodicTask(name: "api key refresh", interval: Self.refreshInterval, logger: logger) { [self] in
            try await flushUsage()
            try await refresh()
        }
    }
}
