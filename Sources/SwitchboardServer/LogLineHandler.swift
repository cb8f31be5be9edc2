import Metrics
import Foundation
import Logging
import SwitchboardCore
import SwitchboardTelemetry

/// The process's log handler: one line per event on standard error, in one of two formats
/// (`SWITCHBOARD_LOG_FORMAT`):
///
/// - `line` (the default), `StreamLogHandler`'s format: `<time> <level> <label> : <key=value …> [<source>] <message>`;
/// - `json`: one JSON object per line, the layout log shippers (Vector, Fluent Bit, Promtail, Filebeat) read
///   without a parser of their own: `{"time":"2026-12-07T13:56:54.123Z","level":"info","label":…,"message":…,
///   "source":…,"metadata":{…},"trace_id":…,"span_id":…}` — `trace_id` and `span_id` at the top when the line
///   concerns a traced message (metadata `trace_id`, `span_id`, set by the services or by the tracing metadata
///   provider), and left out otherwise. Keys in name order; time in UTC with milliseconds.
///
/// Every line written is counted by level in `switchboard_log_messages_total{level}` (`MetricName.logMessages`).
///
/// Unlike `StreamLogHandler`, which formats its metadata each time a key is set, it formats metadata only
/// when a line is written. Hummingbird sets a request id on a copy of the logger for every request, so the
/// eager formatting cost every request a sort and a string build even when nothing was logged.
public struct LogLineHandler: LogHandler {
    /// How lines are written (`SWITCHBOARD_LOG_FORMAT`).
    public enum Format: String, Sendable, Hashable, CaseIterable {
        case line
        case json
    }

    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    let label: String
    let format: Format
    let counters: LogLevelCounters?
    let write: @Sendable (String) -> Void

    /// - Parameters:
    ///   - counters: where lines are counted by level; nil: `LogLevelCounters.shared` (the process's metrics).
    ///   - write: where a finished line goes (standard error by default; tests collect them).
    public init(label: String, level: Logger.Level, format: Format = .line, metadataProvider: Logger.MetadataProvider? = nil, counters: LogLevelCounters? = nil, write: @escaping @Sendable (String) -> Void = LogLineHandler.standardError) {
        self.label = label
        self.logLevel = level
        self.format = format
        self.metadataProvider = metadataProvider
        self.counters = counters
        self.write = write
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        (counters ?? .shared).count(event.level)
        var all = metadata
        if let provided = metadataProvider?.get(), !provided.isEmpty { all.merge(provided) { _, new in new } }
        if let explicit = event.metadata, !explicit.isEmpty { all.merge(explicit) { _, new in new } }
        switch format {
        case .line:
            write("\(Self.timestamp()) \(event.level) \(label) :\(Self.format(all)) [\(event.source)] \(event.message)\n")
        case .json:
            write(Self.jsonLine(time: Self.utcTimestamp(), level: event.level, label: label, message: "\(event.message)", source: event.source, metadata: all))
        }
    }

    /// ` key=value key=value` sorted by key, or "" without metadata.
    static func format(_ metadata: Logger.Metadata) -> String {
        guard !metadata.isEmpty else { return "" }
        return " " + metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
    }

    /// The keys lifted from the metadata to the top of a JSON line (when not empty).
    static let traceKeys = ["trace_id", "span_id"]

    /// One JSON line (with its newline).
    static func jsonLine(time: String, level: Logger.Level, label: String, message: String, source: String, metadata: Logger.Metadata) -> String {
        var rest = metadata
        var object: [String: JSONValue] = [
            "time": .string(time), "level": .string(level.rawValue), "label": .string(label), "message": .string(message), "source": .string(source),
        ]
        for key in traceKeys {
            guard let value = rest.removeValue(forKey: key) else { continue }
            let text = "\(value)"
            if !text.isEmpty { object[key] = .string(text) }
        }
        object["metadata"] = .object(rest.mapValues(json))
        return JSONValue.object(object).canonicalText + "\n"
    }

    static func json(_ value: Logger.MetadataValue) -> JSONValue {
        switch value {
        case .string(let s): .string(s)
        case .stringConvertible(let s): .string(s.description)
        case .array(let a): .array(a.map(json))
        case .dictionary(let d): .object(d.mapValues(json))
        }
    }

    static func timestamp() -> String {
        var now = time(nil)
        var parts = tm()
        localtime_r(&now, &parts)
        var buffer = [Int8](repeating: 0, count: 64)
        let length = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S%z", &parts)
        return String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// RFC 3339 in UTC with milliseconds: `2026-12-07T13:56:54.123Z`.
    static func utcTimestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        var buffer = [Int8](repeating: 0, count: 64)
        let length = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S", &parts)
        let millis = Int(now.tv_nsec / 1_000_000)
        let ms = millis < 10 ? "00\(millis)" : millis < 100 ? "0\(millis)" : "\(millis)"
        return String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self) + "." + ms + "Z"
    }

    /// Writes `line` to standard error in one call (lines of concurrent tasks do not interleave).
    @Sendable public static func standardError(_ line: String) {
        var line = line
        line.withUTF8 { bytes in
            var rest = UnsafeRawBufferPointer(bytes)
            while !rest.isEmpty {
                let n = Foundation.write(2, rest.baseAddress, rest.count)
                if n <= 0 { if n < 0 && errno == EINTR { continue }; return }
                rest = UnsafeRawBufferPointer(rebasing: rest[n...])
            }
        }
    }
}

/// `switchboard_log_messages_total{level}` (`MetricName.logMessages`): one counter per level, made once, never
/// looked up per line.
public final class LogLevelCounters: Sendable {
    /// The fallback, on `MetricsSystem.factory` as it is at the first line written (the executable passes its own,
    /// made on the process's Prometheus registry before any line).
    public static let shared = LogLevelCounters()

    let counters: [Counter]

    public init(factory: any MetricsFactory = MetricsSystem.factory) {
        counters = Logger.Level.allCases.map { Counter(label: MetricName.logMessages, dimensions: [("level", $0.rawValue)], factory: factory) }
    }

    func count(_ level: Logger.Level) {
        let index = switch level {
        case .trace: 0
        case .debug: 1
        case .info: 2
        case .notice: 3
        case .warning: 4
        case .error: 5
        case .critical: 6
        }
        counters[index].increment()
    }
}
