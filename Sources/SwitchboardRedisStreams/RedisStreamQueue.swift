import Logging
import Synchronization
import SwitchboardCore
import SwitchboardRedis
import SwitchboardTelemetry

/// The `MessageQueue` on Redis Streams consumer groups: the scale-out adapter selected by `REDIS_URL`.
///
/// How the port maps onto Redis (every stream has exactly one consumer group):
///
/// | port | Redis |
/// |---|---|
/// | `createGroup` | `XGROUP CREATE <stream> <group> 0 MKSTREAM` (`BUSYGROUP` tolerated), so entries published before the group exists are delivered |
/// | `publish` | pipelined `XADD <stream> * field value …` (one flush for a batch), no trimming |
/// | `read` | `XAUTOCLAIM` of entries idle longer than the lease (the crashed holder's entries), with their exact delivery count from `XPENDING <stream> <group> <id> <id> 1`, at most every `claimInterval` once a scan of the pending list found nothing; then `XREADGROUP GROUP <group> <consumer> COUNT n BLOCK ms STREAMS <stream> >` for new ones |
/// | `ack` | `XACK` then `XDEL` in one pipeline: an acknowledged entry is deleted, so a stream holds only its backlog |
/// | `renew` | a script (`EVAL`): for each id still pending for the consumer (`XPENDING <stream> <group> <id> <id> 1`), `XCLAIM <stream> <group> <consumer> 0 <id> JUSTID` (idle time back to 0, delivery count unchanged) |
/// | `deadLetter` | `MULTI; XADD <stream>:dead …fields, dead_reason, dead_entry_id, dead_deliveries; XACK; XDEL; EXEC` |
/// | `entries` | `XRANGE <stream> - + COUNT n` |
/// | `info` | `XLEN`, the `XPENDING` summary (its smallest id gives the oldest pending entry's age), `XLEN <stream>:dead` and `TIME`, pipelined |
/// | `ping` | `PING` |
///
/// **Retention.** Streams are not trimmed with `MAXLEN`: trimming by length would drop entries nobody has
/// read yet when the backlog grows past the limit. Instead an entry is deleted when it is acknowledged, which
/// is right because each stream has a single group. Dead-letter streams keep their entries until an operator
/// deletes them (`DEL <stream>:dead`) or the retention period passes (`purge(before:)`: `XTRIM <stream>:dead
/// MINID <cutoff>`, an entry id being its time in milliseconds). Redis should run with AOF persistence (`appendonly yes`): a Redis that
/// restarts empty loses the entries in flight (the outbox's stall watchdog redispatches those messages).
///
/// **Consumers.** Each process reads under its own consumer name, so names pile up as processes come and go.
/// `createGroup` (called by every reader at start) removes consumers idle longer than `consumerRetention` that
/// hold no pending entry (`XINFO CONSUMERS`, `XGROUP DELCONSUMER`); one that still holds entries stays until
/// another consumer has claimed them.
///
/// **Redis down.** Commands fail after at most the client's reconnect wait (`RedisReconnectPolicy.maximumWait`)
/// instead of hanging: the router's publication then fails fast and the message waits in the store's outbox;
/// workers and the logger retry with backoff. A consumer group that disappeared (Redis restarted without its
/// data, or `FLUSHALL`) is created again on the next read.
public final class RedisStreamQueue: MessageQueue {
    /// The Redis client (one pool for ordinary commands, one for blocking reads).
    public let client: RedisClient
    /// How long a read entry stays with its consumer before another may take it over (`XAUTOCLAIM` min-idle-time).
    public let lease: Duration
    let logger: Logger
    /// How often a reader looks for expired entries once a scan of the pending list found none: a quarter of
    /// the lease (at most 1 s), so a crashed consumer's entries are taken over within `lease + claimInterval`.
    /// Scanning on every read would cost Redis a pending-list scan and a round trip per batch.
    public var claimInterval: Duration { min(lease / 4, .seconds(1)) }
    /// Where the `XAUTOCLAIM` scan of each stream and group is (so that a long pending list is scanned a slice
    /// at a time), and when the last scan that found nothing ended.
    private struct ClaimScan {
        var cursor = "0-0"
        var idleSince: ContinuousClock.Instant?
    }
    private let scans = Mutex<[String: ClaimScan]>([:])

    /// A queue on an existing client.
    /// - Parameters:
    ///   - client: The Redis client; ``shutdown()`` shuts it down.
    ///   - lease: How long a read entry stays with its consumer before another may take it over.
    ///   - logger: Where to log group re-creation.
    public init(client: RedisClient, lease: Duration = .seconds(30), logger: Logger = Logger(label: "switchboard.redis-streams")) {
        self.client = client
        self.lease = lease
        self.logger = logger
    }

    /// A queue on a new client for `url` (`redis://[[user]:password@]host[:port][/db]` or `rediss://…`).
    /// - Parameters:
    ///   - url: The Redis URL.
    ///   - lease: How long a read entry stays with its consumer before another may take it over.
    ///   - unavailableWait: How long a command keeps trying to reach a Redis that is down before it fails.
    ///     Bounds how long an HTTP request waits on publication while Redis is unreachable.
    ///   - blockingConnections: The most blocking reads in flight at once (each holds a connection).
    ///   - logger: Where to log; the password is never logged.
    ///   - metrics: Where the client's two pools record (`RedisClient`'s default: the process's backend).
    /// - Throws: `RedisError.invalidURL` or `RedisError.tlsConfiguration`.
    public convenience init(
        url: String, lease: Duration = .seconds(30), unavailableWait: Duration = .seconds(1), blockingConnections: Int = 32,
        logger: Logger = Logger(label: "switchboard.redis-streams"), metrics: (commands: RedisPoolMetrics, blocking: RedisPoolMetrics)? = nil
    ) throws {
        var reconnect = RedisReconnectPolicy()
        reconnect.maximumWait = unavailableWait
        reconnect.maximumDelay = .seconds(1)
        let options = RedisClient.Options(maximumConnections: 8, maximumBlockingConnections: blockingConnections, leaseTimeout: .seconds(10), reconnect: reconnect)
        try self.init(client: RedisClient(configuration: RedisConfiguration(url: url), options: options, logger: logger, metrics: metrics), lease: lease, logger: logger)
    }

    /// Closes the connections. Later calls fail with `RedisError.shutdown`.
    public func shutdown() async {
        await client.shutdown()
    }

    static func fields(_ entry: StreamEntry) -> [String: String] {
        var result: [String: String] = [:]
        result.reserveCapacity(entry.fields.count)
        for field in entry.fields { result[field.name] = field.value }
        return result
    }

    /// Fields in a stable order (by name), so equal entries are written alike.
    static func streamFields(_ fields: [String: String]) -> [StreamField] {
        fields.sorted { $0.key < $1.key }.map { StreamField($0.key, $0.value) }
    }

    // MARK: MessageQueue

    public func createGroup(stream: String, group: String) async throws {
        try await client.xgroupCreate(stream, group: group, startID: "0", makeStream: true, ignoreExisting: true)
        do {
            let removed = try await removeIdleConsumers(stream: stream, group: group, idleLongerThan: consumerRetention)
            if !removed.isEmpty { logger.info("removed idle consumers", metadata: ["stream": "\(stream)", "consumers": "\(removed.joined(separator: ","))"]) }
        } catch {
            logger.warning("could not list the group's consumers", metadata: ["stream": "\(stream)", "error": "\(error)"])
        }
    }

    /// How long a consumer with nothing pending may stay idle before `createGroup` removes it (default 1 hour).
    public var consumerRetention: Duration {
        get { retention.withLock { $0 } }
        set { retention.withLock { $0 = newValue } }
    }
    private let retention = Mutex<Duration>(.seconds(3600))

    /// Removes the consumers of `group` that hold no pending entry and have been idle longer than `idle`.
    /// - Returns: The names removed.
    @discardableResult
    public func removeIdleConsumers(stream: String, group: String, idleLongerThan idle: Duration) async throws -> [String] {
        let limit = Int(idle.components.seconds * 1000 + idle.components.attoseconds / 1_000_000_000_000_000)
        var removed: [String] = []
        for consumer in try await client.xinfoConsumers(stream, group: group) where consumer.pending == 0 && consumer.idleMilliseconds > limit {
            // DELCONSUMER drops a consumer's pending entries with it: re-check that it holds none at this moment.
            if try await client.xgroupDeleteConsumer(stream, group: group, consumer: consumer.name) > 0 {
                logger.error("a consumer removed as idle still held entries", metadata: ["consumer": "\(consumer.name)"])
            }
            removed.append(consumer.name)
        }
        return removed
    }

    @discardableResult
    public func publish(stream: String, entries: [[String: String]]) async throws -> [String] {
        guard !entries.isEmpty else { return [] }
        if entries.count == 1 {
            return [try await client.xadd(stream, fields: Self.streamFields(entries[0]))]
        }
        return try await client.xaddBatch(stream, entries: entries.map(Self.streamFields))
    }

    public func read(stream: String, group: String, consumer: String, count: Int, block: Duration) async throws -> [QueueEntry] {
        guard count > 0 else { return [] }
        do {
            return try await readOnce(stream: stream, group: group, consumer: consumer, count: count, block: block)
        } catch RedisError.noGroup {
            // The group vanished (Redis restarted without its data, or was flushed): create it again.
            logger.warning("consumer group missing; creating it again", metadata: ["stream": "\(stream)", "group": "\(group)"])
            try await createGroup(stream: stream, group: group)
            scans.withLock { $0[Self.cursorKey(stream, group)] = nil }
            return try await readOnce(stream: stream, group: group, consumer: consumer, count: count, block: block)
        } catch RedisError.cancelled where Task.isCancelled {
            return []
        }
    }

    static func cursorKey(_ stream: String, _ group: String) -> String { stream + "\u{0}" + group }

    func readOnce(stream: String, group: String, consumer: String, count: Int, block: Duration) async throws -> [QueueEntry] {
        var result = try await claimExpired(stream: stream, group: group, consumer: consumer, count: count)
        let room = count - result.count
        guard room > 0 else { return result }
        // Block only when nothing was taken over; BLOCK 0 would mean "forever", so at least 1 ms.
        let wait: Duration? = result.isEmpty && block > .zero ? max(block, .milliseconds(1)) : nil
        let fresh = try await client.xreadgroup(group: group, consumer: consumer, stream: stream, id: ">", count: room, block: wait)
        for entry in fresh where !entry.isDeleted {
            result.append(QueueEntry(id: entry.id, stream: stream, fields: Self.fields(entry), deliveryCount: 1))
        }
        return result
    }

    /// Takes over up to `count` entries whose holder kept them longer than the lease (`XAUTOCLAIM`), with
    /// their delivery counts (`XPENDING` of each id, in one pipeline). Scans again at once while the last scan
    /// found entries or stopped midway; after a whole scan that found nothing, waits `claimInterval`.
    func claimExpired(stream: String, group: String, consumer: String, count: Int) async throws -> [QueueEntry] {
        let key = Self.cursorKey(stream, group)
        let interval = claimInterval
        let now = ContinuousClock.now
        guard let start = scans.withLock({ s -> String? in
            let scan = s[key, default: ClaimScan()]
            if let idle = scan.idleSince, now - idle < interval { return nil }
            return scan.cursor
        }) else { return [] }
        let claim = try await client.xautoclaim(stream, group: group, consumer: consumer, minIdleTime: lease, start: start, count: count)
        let claimed = claim.entries.filter { !$0.isDeleted }
        let finished = claim.nextCursor == "0-0" && claim.entries.isEmpty
        scans.withLock { $0[key] = ClaimScan(cursor: claim.nextCursor, idleSince: finished ? ContinuousClock.now : nil) }
        guard !claimed.isEmpty else { return [] }
        let pending = try await client.xpending(stream, group: group, ids: claimed.map(\.id))
        // An entry acknowledged or taken by another consumer in between is no longer ours.
        var deliveries: [String: Int] = [:]
        for p in pending where p.consumer == consumer { deliveries[p.id] = p.deliveryCount }
        return claimed.compactMap { entry in
            deliveries[entry.id].map { QueueEntry(id: entry.id, stream: stream, fields: Self.fields(entry), deliveryCount: $0) }
        }
    }

    /// Renews each id still pending for `consumer` with `XCLAIM <stream> <group> <consumer> 0 <id> JUSTID`
    /// (idle time back to 0, delivery count unchanged), in a script so that checking the holder
    /// (`XPENDING`) and claiming are one step: an entry another consumer took over is not taken back.
    static let renewScript = """
        local renewed = {}
        for i = 3, #ARGV do
          local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
          if p[1] and p[1][2] == ARGV[2] then
            redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
            renewed[#renewed + 1] = ARGV[i]
          end
        end
        return renewed
        """

    public func renew(stream: String, group: String, consumer: String, ids: [String]) async throws -> [String] {
        guard !ids.isEmpty else { return [] }
        let reply = try await client.send(command: ["EVAL", Self.renewScript, "1", stream, group, consumer] + ids).throwingIfError()
        guard let items = reply.array else { throw RedisError.unexpectedReply(command: "EVAL", reply: "\(reply)") }
        return items.compactMap(\.string)
    }

    public func ack(stream: String, group: String, ids: [String]) async throws {
        guard !ids.isEmpty else { return }
        let replies = try await client.pipeline([["XACK", stream, group] + ids, ["XDEL", stream] + ids])
        for reply in replies { _ = try reply.throwingIfError() }
    }

    public func deadLetter(stream: String, group: String, entries: [QueueEntry], reason: String) async throws {
        guard !entries.isEmpty else { return }
        let dead = StreamNames.deadLetter(of: stream)
        var commands: [[String]] = [["MULTI"]]
        for e in entries {
            var fields = e.fields
            fields["dead_reason"] = reason
            fields["dead_entry_id"] = e.id
            fields["dead_deliveries"] = String(e.deliveryCount)
            commands.append(RedisCommands.xadd(dead, fields: Self.streamFields(fields)))
        }
        let ids = entries.map(\.id)
        commands.append(["XACK", stream, group] + ids)
        commands.append(["XDEL", stream] + ids)
        commands.append(["EXEC"])
        let replies = try await client.pipeline(commands)
        for reply in replies { _ = try reply.throwingIfError() }
        guard let results = replies.last?.array else {
            throw RedisError.unexpectedReply(command: "EXEC", reply: replies.last.map { "\($0)" } ?? "nothing")
        }
        for result in results { _ = try result.throwingIfError() }
    }

    /// `XRANGE` over the dead-letter stream a page at a time (`removalPage` entries, from after the last id read),
    /// then one `XDEL` per page for the entries that match. Not atomic, and needs none: a dead-letter entry is never
    /// changed, and one added meanwhile belongs to a later dispatch (or is read by a later page).
    @discardableResult
    public func removeDeadLetters(stream: String, through dispatches: [String: Int]) async throws -> Int {
        guard !dispatches.isEmpty else { return 0 }
        let dead = StreamNames.deadLetter(of: stream)
        var start = "-"
        var removed = 0
        while true {
            let page = try await client.xrange(dead, start: start, count: Self.removalPage)
            let matching = page.filter { entry in
                let fields = Self.fields(entry)
                guard let id = fields["_id"], let last = dispatches[id], let seq = fields["seq"].flatMap(Int.init) else { return false }
                return seq <= last
            }.map(\.id)
            if !matching.isEmpty { removed += try await client.xdel(dead, ids: matching) }
            guard page.count == Self.removalPage, let last = page.last else { return removed }
            start = "(" + last.id
        }
    }

    /// Dead-letter entries read per `XRANGE` by `removeDeadLetters`.
    static let removalPage = 500

    public func entries(stream: String, limit: Int) async throws -> [QueueEntry] {
        guard limit > 0 else { return [] }
        return try await client.xrange(stream, count: limit).map { QueueEntry(id: $0.id, stream: stream, fields: Self.fields($0), deliveryCount: 0) }
    }

    public func info(stream: String, group: String) async throws -> SwitchboardCore.StreamBacklog {
        let replies = try await client.pipeline([["XLEN", stream], ["XPENDING", stream, group], ["XLEN", StreamNames.deadLetter(of: stream)], ["TIME"]])
        guard replies.count == 4 else { throw RedisError.unexpectedReply(command: "XLEN/XPENDING/TIME", reply: "\(replies.count) replies") }
        let length = try replies[0].throwingIfError().int ?? 0
        // No group yet (NOGROUP): nothing is pending.
        let summary = replies[1].errorMessage == nil ? replies[1].array : nil
        let pending = summary?.first?.int ?? 0
        let dead = try replies[2].throwingIfError().int ?? 0
        // The summary's smallest pending id starts with the millisecond the entry was added at; Redis's own
        // clock (TIME: seconds, microseconds) gives the age without trusting this machine's clock to agree.
        var oldest: Duration?
        if pending > 0, let summary, summary.count >= 2, let id = summary[1].string,
            let published = Int64(id.prefix { $0 != "-" }),
            let time = try replies[3].throwingIfError().array, time.count == 2,
            let seconds = time[0].int64, let micros = time[1].int64 {
            oldest = SwitchboardCore.StreamBacklog.age(publishedAt: published, now: seconds * 1000 + micros / 1000)
        }
        return SwitchboardCore.StreamBacklog(stream: stream, length: length, pending: pending, deadLetters: dead, oldestPendingAge: oldest)
    }

    public func ping() async throws {
        try await client.ping()
    }
}

extension RedisStreamQueue: Purging {
    /// Deletes the dead-letter entries (`<stream>:dead`) added before `cutoff`: `XTRIM … MINID`, exact (an
    /// entry's id starts with the millisecond it was added at). Live streams are left alone: their entries go
    /// when acknowledged.
    public func purge(before cutoff: Timestamp) async throws -> Int {
        let replies = try await client.pipeline(StreamNames.all.map { ["XTRIM", StreamNames.deadLetter(of: $0), "MINID", "\(cutoff.milliseconds)"] })
        return try replies.reduce(0) { $0 + Int(try $1.throwingIfError().int ?? 0) }
    }
}
