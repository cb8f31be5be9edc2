import Foundation
import Logging

/// The process's log handler: one line per event on standard error, in `StreamLogHandler`'s format
/// (`<time> <level> <label> : <key=value …> [<source>] <message>`).
///
/// Unlike `StreamLogHandler`, which formats its metadata each time a key is set, it formats metadata only
/// when a line is written. Hummingbird sets a request id on a copy of the logger for every request, so the
/// eager formatting cost every request a sort and a string build even when nothing was logged.
public struct LogLineHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    let label: String
    let write: @Sendable (String) -> Void

    /// - Parameter write: where a finished line goes (standard error by default; tests collect them).
    public init(label: String, level: Logger.Level, metadataProvider: Logger.MetadataProvider? = nil, write: @escaping @Sendable (String) -> Void = LogLineHandler.standardError) {
        self.label = label
        self.logLevel = level
        self.metadataProvider = metadataProvider
        self.write = write
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = metadata
        if let provided = metadataProvider?.get(), !provided.isEmpty { all.merge(provided) { _, new in new } }
        if let explicit = event.metadata, !explicit.isEmpty { all.merge(explicit) { _, new in new } }
        write("\(Self.timestamp()) \(event.level) \(label) :\(Self.format(all)) [\(event.source)] \(event.message)\n")
    }

    /// ` key=value key=value` sorted by key, or "" without metadata.
    static func format(_ metadata: Logger.Metadata) -> String {
        guard !metadata.isEmpty else { return "" }
        return " " + metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
    }

    static func timestamp() -> String {
        var now = time(nil)
        var parts = tm()
        localtime_r(&now, &parts)
        var buffer = [Int8](repeating: 0, count: 64)
        let length = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S%z", &parts)
        return String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
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
