import SwitchboardCore
import SwitchboardRedis

/// The status feed on Redis: the stream `status_stream`, read with `XREAD` (no consumer group: every router reads
/// all of it, nothing is claimed or acknowledged). One entry per `append` (a batch of the pipeline), its field
/// `records` a JSON array of the status changes (the log records' fields without the body): one `XADD` for a
/// batch, as the embedded feed writes one row per transaction. Each `XADD` trims, approximately, the entries older
/// than `retention` (`MINID ~`), so the feed keeps about that much history whatever the rate.
///
/// A position is the entry id and the record's index in it: `milliseconds-(sequence × 1024 + index)` (an entry
/// holds at most `perEntry` records).
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

    /// What every `XADD` trims: entries older than `retention`.
    var retentionTrim: StreamTrim {
        let cutoff = max(0, clock().adding(.zero - retention).milliseconds)
        return .minID("\(cutoff)-0")
    }

    /// Most records in one entry (the index takes the low 10 bits of a position's second number).
    static let perEntry = 1024

    public func append(_ records: [LogRecord]) async throws {
        let texts = records.filter { $0.status != nil }.map(\.statusFieldsText)
        guard !texts.isEmpty else { return }
        let entries = stride(from: 0, to: texts.count, by: Self.perEntry).map { start in
            [StreamField("records", "[" + texts[start..<min(start + Self.perEntry, texts.count)].joined(separator: ",") + "]")]
        }
        if entries.count == 1 {
            _ = try await client.xadd(StreamNames.status, fields: entries[0], trim: retentionTrim)
        } else {
            _ = try await client.xaddBatch(StreamNames.status, entries: entries, trim: retentionTrim)
        }
    }

    /// The entry id and record index of a position.
    static func entry(of p: FeedPosition) -> (milliseconds: UInt64, sequence: UInt64, index: Int) {
        (p.major, p.minor / UInt64(perEntry), Int(p.minor % UInt64(perEntry)))
    }

    /// The id just before entry `ms-seq`, so that `XREAD` returns that entry again.
    static func idBefore(_ ms: UInt64, _ seq: UInt64) -> String {
        if seq > 0 { return "\(ms)-\(seq - 1)" }
        if ms > 0 { return "\(ms - 1)-\(UInt64.max)" }
        return "0-0"
    }

    /// The records of an entry, with their positions.
    static func records(_ entry: StreamEntry) -> [FeedRecord] {
        guard !entry.isDeleted, let id = FeedPosition(parsing: entry.id),
            let text = RedisStreamQueue.fields(entry)["records"], let list = JSONParser.parseStringFieldsList(text)
        else { return [] }
        return list.enumerated().compactMap { i, fields in
            guard i < perEntry, let record = LogRecord(fields: fields) else { return nil }
            return FeedRecord(position: FeedPosition(major: id.major, minor: id.minor * UInt64(perEntry) + UInt64(i)), record: record)
        }
    }

    public func read(after position: FeedPosition?, count: Int, block: Duration) async throws -> [FeedRecord] {
        // From the entry holding `position` (its later records are still to come), or from the start.
        var from = "0-0"
        if let position, position != .start {
            let e = Self.entry(of: position)
            from = Self.idBefore(e.milliseconds, e.sequence)
        }
        let batch = max(2, count / 4)
        let first = try await xread(after: from, count: batch, block: nil)
        let records = first.flatMap(Self.records).filter { position == nil || $0.position > position! }
        if !records.isEmpty || block <= .zero && first.count < batch { return records }
        // Nothing after `position` yet (or only the rest of its own entry, already read): wait past what was read.
        if let last = first.last { from = last.id }
        return try await xread(after: from, count: batch, block: block > .zero ? block : nil).flatMap(Self.records)
    }

    func xread(after id: String, count: Int, block: Duration?) async throws -> [StreamEntry] {
        do {
            return try await client.xread(stream: StreamNames.status, after: id, count: count, block: block)
        } catch {
            if case .cancelled = error, Task.isCancelled { return [] }
            throw error
        }
    }

    public func end() async throws -> FeedPosition {
        guard let last = try await client.xrevrange(StreamNames.status, count: 1).first else { return .start }
        return Self.records(last).last?.position ?? FeedPosition(parsing: last.id).map { FeedPosition(major: $0.major, minor: $0.minor * UInt64(Self.perEntry)) } ?? .start
    }

    public func trim(before: Timestamp) async throws {
        // Every XADD trims; this is for a feed nobody writes to any more.
        _ = try await client.send(command: ["XTRIM", StreamNames.status, "MINID", "~", "\(before.milliseconds)-0"])
    }
}
