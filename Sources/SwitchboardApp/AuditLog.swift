import Logging
import ServiceLifecycle
import Synchronization
import SwitchboardCore
import SwitchboardLifecycle

/// The audit trail of access control: key creation, revocation, first use, every admin action and
/// authentication failures. Each event is a line of the process log (level `notice`, metadata `audit=<event>`;
/// failures at `warning`) and a record of the logs index with service `auth`, so
/// `GET /api/v1/logs?service=auth` lists them on every search engine. No secret ever reaches either: the
/// methods take key ids, names and scopes, never a key.
///
/// Audit records are `LogRecord`s without status and channel, written straight to the search index (not
/// through `log_stream`, whose entries are a communication's): on the embedded engine into `search_logs`, on
/// Elasticsearch into `communication-logs` through its bulk indexer. Their fields:
///
/// | event (`msg`) | `communicationId` (subject) | `from` (actor) | `to` | `error` (details) | `attempt` |
/// |---|---|---|---|---|---|
/// | `key_created` | key id | who created it | key id | name, scopes, limits, test | 0 |
/// | `key_revoked` | key id | who revoked it | key id | — | 0 |
/// | `key_first_used` | key id | client address | key id | — | 0 |
/// | `admin_action` | key id | key id | path | method, path, status | 0 |
/// | `auth_failures` | client address | client address | '' | count per reason in the minute | count |
/// | `callback_endpoint_disabled` | endpoint id | `callbacks` | endpoint id | since when it failed, and why | 0 |
///
/// No caller waits for the search index: an event is a log line at once and a record queued in memory, which
/// the log's own `Service` writes every `flushInterval` (1 s) and at graceful shutdown; a process that runs no
/// services (the `keys` commands) calls `flush(all: true)` before it exits. So a slow or unreachable search
/// index never delays the request that caused the event.
///
/// Authentication failures are aggregated per client address and minute (`authFailure` only counts): a flood
/// of bad keys writes one record and one log line per address and minute, not one per request; a minute is
/// written once it has ended (whatever is left, at shutdown). At most `maxAddressesPerMinute` addresses are
/// told apart in a minute; the rest are counted under the address `other`.
///
/// Records the index refuses (search down) stay queued for the next flush (at most `maxPending`, the oldest
/// dropped and counted in the log); the process log has them at once either way.
public final class AuditLog: Service, Sendable {
    /// The `service` of audit records.
    public static let service = "auth"
    /// Events (`msg` of the records).
    public enum Event: String, Sendable, CaseIterable {
        case keyCreated = "key_created"
        case keyRevoked = "key_revoked"
        case keyFirstUsed = "key_first_used"
        case adminAction = "admin_action"
        case authFailures = "auth_failures"
        case callbackEndpointDisabled = "callback_endpoint_disabled"
    }

    let index: any SearchIndex
    let logger: Logger
    let clock: @Sendable () -> Timestamp
    /// How often queued records and ended minutes of failures are written.
    public let flushInterval: Duration
    public let maxAddressesPerMinute: Int
    public let maxPending: Int

    struct Failures {
        /// Minute start (ms) → address → reason → count.
        var minutes: [Int64: [String: [String: Int]]] = [:]
    }

    struct State {
        var failures = Failures()
        /// Records not yet written to the index, oldest first.
        var pending: [LogRecord] = []
        var dropped = 0
        /// Keys whose first use this process has already recorded (bounded; a key seen again after the set was
        /// cleared is not recorded twice in practice: the store's `lastUsedAt` is set by then).
        var firstUses: Set<String> = []
    }

    let state = Mutex(State())

    /// - Parameters:
    ///   - index: the search index audit records go to (`Adapters.search`).
    ///   - logger: the process log.
    ///   - clock: wall time of the records.
    ///   - flushInterval: how often the service writes what is queued and the ended minutes of failures.
    public init(index: any SearchIndex, logger: Logger, clock: @escaping @Sendable () -> Timestamp = SystemTime.now, flushInterval: Duration = .seconds(1), maxAddressesPerMinute: Int = 10_000, maxPending: Int = 10_000) {
        self.index = index
        self.logger = logger
        self.clock = clock
        self.flushInterval = flushInterval
        self.maxAddressesPerMinute = max(1, maxAddressesPerMinute)
        self.maxPending = max(1, maxPending)
    }

    // MARK: Events

    /// A key was created (`by`: who created it — an admin key's id, `cli`, `bootstrap`).
    public func keyCreated(id: String, name: String, scopes: Set<APIKeyScope>, rate: Double? = nil, burst: Int? = nil, test: Bool = false, by principal: String) {
        var details = "key created: name=\(Self.clean(name)) scopes=\(scopes.sorted().map(\.rawValue).joined(separator: ","))"
        if let rate { details += " rate=\(rate)" }
        if let burst { details += " burst=\(burst)" }
        if test { details += " test" }
        record(.keyCreated, subject: id, actor: principal, to: id, details: details, metadata: ["key": "\(id)", "name": "\(Self.clean(name))", "by": "\(Self.clean(principal))"])
    }

    /// A key was revoked.
    public func keyRevoked(id: String, by principal: String) {
        record(.keyRevoked, subject: id, actor: principal, to: id, details: "key revoked", metadata: ["key": "\(id)", "by": "\(Self.clean(principal))"])
    }

    /// A key was used for the first time (the middleware calls this when the stored key has no `lastUsedAt`);
    /// recorded once per key and process.
    /// `address` is read only the first time (the caller's request path stays free of formatting it).
    public func keyFirstUsed(id: String, address clientAddress: @autoclosure () -> String) {
        let first = state.withLock { s -> Bool in
            if s.firstUses.count >= 100_000 { s.firstUses.removeAll() }
            return s.firstUses.insert(id).inserted
        }
        guard first else { return }
        let address = clientAddress()
        record(.keyFirstUsed, subject: id, actor: address, to: id, details: "key first used from \(Self.clean(address))", metadata: ["key": "\(id)", "address": "\(Self.clean(address))"])
    }

    /// A request that needed the `admin` scope was answered (`path` without its query).
    public func adminAction(key: String, method: String, path: String, status: Int) {
        let p = Self.clean(String(path.prefix { $0 != "?" }))
        record(.adminAction, subject: key, actor: key, to: p, details: "admin action: \(Self.clean(method)) \(p) answered \(status)", metadata: ["key": "\(key)", "method": "\(Self.clean(method))", "path": "\(p)", "status": "\(status)"])
    }

    /// A status-callback endpoint was disabled by the server: every delivery to it failed for `failingFor` (its URL
    /// is not recorded: it may hold a client's token).
    public func callbackEndpointDisabled(id: String, since: Timestamp, failingFor: Duration) {
        record(.callbackEndpointDisabled, subject: id, actor: "callbacks", to: id, details: "callback endpoint disabled: every delivery failed since \(since.iso8601) (\(failingFor) or more)", metadata: ["endpoint": "\(id)"])
    }

    /// A request from `address` failed authentication (`reason`: a short fixed text such as `missing key`,
    /// `unknown key`, `revoked key`). Counted only; written per address and minute by the service.
    public func authFailure(address: String, reason: String) {
        let minute = clock().milliseconds / 60_000 * 60_000
        let address = Self.clean(address), reason = Self.clean(reason)
        state.withLock { s in
            var byAddress = s.failures.minutes[minute, default: [:]]
            let key = byAddress[address] != nil || byAddress.count < maxAddressesPerMinute ? address : "other"
            var reasons = byAddress[key, default: [:]]
            let r = reasons[reason] != nil || reasons.count < 8 ? reason : "other"
            reasons[r, default: 0] += 1
            byAddress[key] = reasons
            s.failures.minutes[minute] = byAddress
        }
    }

    // MARK: Writing

    /// Writes the queued records and the minutes of failures that have ended by now (every minute with `all`:
    /// at shutdown). Never throws: a refusal keeps the records queued for the next flush.
    public func flush(all: Bool = false) async {
        let now = clock()
        let records: [LogRecord] = state.withLock { s in
            var out = s.pending
            s.pending.removeAll()
            for minute in s.failures.minutes.keys.sorted() where all || minute + 60_000 <= now.milliseconds {
                for (address, reasons) in s.failures.minutes.removeValue(forKey: minute)!.sorted(by: { $0.key < $1.key }) {
                    out.append(Self.failureRecord(address: address, reasons: reasons, minute: minute, now: now))
                }
            }
            return out
        }
        for r in records where r.msg == Event.authFailures.rawValue {
            logger.warning("audit: authentication failures", metadata: ["audit": "\(Event.authFailures.rawValue)", "address": "\(r.communicationId)", "count": "\(r.attempt)", "details": "\(r.error ?? "")"])
        }
        await store(records)
    }

    /// The failures of one address in one minute as an audit record.
    static func failureRecord(address: String, reasons: [String: Int], minute: Int64, now: Timestamp) -> LogRecord {
        let count = reasons.values.reduce(0, +)
        let start = Timestamp(milliseconds: minute)
        let details = "\(count) authentication failure\(count == 1 ? "" : "s") from \(address) in the minute from \(start.iso8601): "
            + reasons.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ")
        // Stamped at the end of the minute (its last millisecond), as it sums up the minute; a minute written
        // before its end (at shutdown) at the time it was written, never in the future.
        let at = Timestamp(milliseconds: min(minute + 59_999, max(minute, now.milliseconds)))
        return LogRecord(communicationId: address, service: service, status: nil, type: nil, from: address, to: "", msg: Event.authFailures.rawValue, error: details, attempt: count, provider: nil, timestamp: at)
    }

    /// Logs the event and queues its record.
    func record(_ event: Event, subject: String, actor who: String, to: String, details: String, metadata: Logger.Metadata) {
        var m = metadata
        m["audit"] = "\(event.rawValue)"
        logger.notice("audit: \(details)", metadata: m)
        let record = LogRecord(communicationId: Self.clean(subject), service: Self.service, status: nil, type: nil, from: Self.clean(who), to: Self.clean(to), msg: event.rawValue, error: details, attempt: 0, provider: nil, timestamp: clock())
        let dropped = queue([record], front: false)
        if dropped > 0 { logger.warning("audit records dropped: the queue for the search index is full", metadata: ["dropped": "\(dropped)"]) }
    }

    /// Queues `records` (at the front: records taken for a flush that failed); drops the oldest beyond
    /// `maxPending` and returns how many.
    func queue(_ records: [LogRecord], front: Bool) -> Int {
        state.withLock { s -> Int in
            s.pending = front ? records + s.pending : s.pending + records
            let over = max(0, s.pending.count - maxPending)
            if over > 0 { s.pending.removeFirst(over); s.dropped += over }
            return over
        }
    }

    func store(_ records: [LogRecord]) async {
        guard !records.isEmpty else { return }
        do {
            try await index.index(logs: records)
        } catch {
            let dropped = queue(records, front: true)
            logger.warning("audit records not indexed yet; kept for the next attempt", metadata: ["count": "\(records.count)", "dropped": "\(dropped)", "error": "\(error)"])
        }
    }

    /// Records waiting for the index (for tests and statistics).
    public var pendingCount: Int { state.withLock { $0.pending.count } }

    /// Text fit for a log line and a record: control characters replaced, at most 256 characters.
    static func clean(_ s: String) -> String {
        String(String.UnicodeScalarView(s.unicodeScalars.prefix(256).map { $0.properties.generalCategory == .control ? "?" : $0 }))
    }

    // MARK: Service

    /// Writes what is queued and the ended minutes every `flushInterval`; at graceful shutdown, everything left.
    public func run() async throws {
        while ServiceLoop.shouldContinue {
            await pause(for: flushInterval)
            await flush()
        }
        await flush(all: true)
    }
}
