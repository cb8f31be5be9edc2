import SwitchboardCore
import SwitchboardRedis

/// The status feed on Redis: the stream `status_stream`, one entry per status change (the log record's fields
/// without the body), read with `XREAD` (no consumer group: every router reads all of it, nothing is claimed or
/// acknowledged). Each `XADD` trims, approximately, the entries older than `retention` (`MINID ~`), so the feed
/// keeps about that much history whatever the rate. A position is the entry id (`milliseconds-sequence`).
public struct RedisStatusFeed: StatusFeed {
    let client: RedisClient
    /// How long entries are kept.
    public var retention: Duration
    let clock: @Sendable () -> Timestamp

    public init(client: RedisClient, retention: Duration, clock: @escaping @Sendable () -> Timestamp) {
        self.client = client
        self.retention = retention
        self.clock = clock
    }

    var trim: StreamTrim {
        let cutoff = max(0, clock().adding(.zero - retention).milliseconds)
        return .minID("\(cutoff)-0")
    }

    public func append(_ records: [[String: String]]) async throws {
        let entries = records.filter { $0["status"] != nil }.map { RedisStreamQueue.streamFields($0.filter { $0.key != "msg" }) }
        guard !entries.isEmpty else { return }
        if entries.count == 1 {
            _ = try await client.xadd(StreamNames.status, fields: entries[0], trim: trim)
        } else {
            _ = try await client.xaddBatch(StreamNames.status, entries: entries, trim: trim)
        }
    }

    public func read(after position: FeedPosition?, count: Int, block: Duration) async throws -> [FeedRecord] {
        let entries: [StreamEntry]
        do {
            entries = try await client.xread(stream: StreamNames.status, after: (position ?? .start).description, count: count, block: block > .zero ? block : nil)
        } catch {
            if case .cancelled = error, Task.isCancelled { return [] }
            throw error
        }
        var records: [FeedRecord] = []
        records.reserveCapacity(entries.count)
        for entry in entries where !entry.isDeleted {
            guard let position = FeedPosition(parsing: entry.id), let record = LogRecord(fields: RedisStreamQueue.fields(entry)) else { continue }
            records.append(FeedRecord(position: position, record: record))
        }
        return records
    }

    public func end() async throws -> FeedPosition {
        let last = try await client.xrevrange(StreamNames.status, count: 1).first
        return last.flatMap { FeedPosition(parsing: $0.id) } ?? .start
    }

    public func trim(before: Timestamp) async throws {
        // Every XADD trims; this is for a feed nobody writes to any more.
        _ = try await client.send(command: ["XTRIM", StreamNames.status, "MINID", "~", "\(before.milliseconds)-0"])
    }
}
