/// The status feed: every status change, in commit order, kept for a while so a client can follow it live and
/// resume where it stopped. It is a channel of its own, `status_stream`, written by the `Pipeline` where it writes
/// `log_stream` (in the same transaction on the embedded engine; beside the `log_stream` entries, and spooled with
/// them, on Redis), and read without a consumer group: every router reads all of it, nothing consumes it, and it is
/// trimmed by age (`SWITCHBOARD_EVENTS_RETENTION_SECONDS`). `log_stream` is not used for this because the logging
/// service deletes what it has indexed: it could not be resumed from.
///
/// Its records are the status-change log records (`LogRecord` with a status), so an event says exactly what the
/// log says.
public protocol StatusFeed: Sendable {
    /// Appends status-change records, oldest first (records without a status are skipped by adapters), without
    /// their bodies (`LogRecord.statusFieldsText`).
    func append(_ records: [LogRecord]) async throws

    /// Up to about `count` events after `position` (from the feed's start when nil), oldest first; waits up to
    /// `block` when there are none yet (`.zero`: answers at once).
    func read(after position: FeedPosition?, count: Int, block: Duration) async throws -> [FeedRecord]

    /// The position of the newest event (`FeedPosition.start` when the feed is empty): reading after it returns
    /// only what is appended later.
    func end() async throws -> FeedPosition

    /// Deletes the events older than `before`.
    func trim(before: Timestamp) async throws
}

/// A place in the status feed: two numbers, ordered. On the embedded engine the row and the record's index in
/// it; on Redis the entry id (`milliseconds-sequence`). Written `major-minor`: the `id` of a Server-Sent Event and
/// what `Last-Event-ID` resumes from.
public struct FeedPosition: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var major: UInt64
    public var minor: UInt64

    public init(major: UInt64, minor: UInt64) {
        self.major = major
        self.minor = minor
    }

    /// Before every event.
    public static let start = FeedPosition(major: 0, minor: 0)

    /// Parses `major-minor` (a bare number is `major-0`); nil for anything else.
    public init?(parsing text: some StringProtocol) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count <= 2, let major = UInt64(parts[0]) else { return nil }
        var minor: UInt64 = 0
        if parts.count == 2 {
            guard let m = UInt64(parts[1]) else { return nil }
            minor = m
        }
        self.init(major: major, minor: minor)
    }

    public var description: String { "\(major)-\(minor)" }

    public static func < (a: FeedPosition, b: FeedPosition) -> Bool {
        (a.major, a.minor) < (b.major, b.minor)
    }
}

/// One event of the status feed: where it is and the status change it records.
public struct FeedRecord: Sendable, Hashable {
    public var position: FeedPosition
    public var record: LogRecord

    public init(position: FeedPosition, record: LogRecord) {
        self.position = position
        self.record = record
    }
}

extension StreamNames {
    /// The status feed's stream (`StatusFeed`): one entry per status change, read by every router, never consumed.
    public static let status = "status_stream"
}
