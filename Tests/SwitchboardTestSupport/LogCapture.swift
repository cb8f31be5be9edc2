import Logging
import Synchronization

/// Every log line of a logger, kept for the test to read.
public final class LogCapture: Sendable {
    public struct Line: Sendable {
        public var level: Logger.Level
        public var message: String
        public var metadata: Logger.Metadata
    }

    public let lines = Mutex<[Line]>([])

    public init() {}

    public var logger: Logger {
        var logger = Logger(label: "capture") { _ in Handler(capture: self) }
        logger.logLevel = .trace
        return logger
    }

    public var all: [Line] { lines.withLock { $0 } }

    public func matching(_ text: String) -> [Line] { all.filter { $0.message.contains(text) } }

    public struct Handler: LogHandler {
        let capture: LogCapture
        public var metadata: Logger.Metadata = [:]
        public var logLevel: Logger.Level = .trace

        public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        public func log(event: LogEvent) {
            var m = metadata
            m.merge(event.metadata ?? [:]) { $1 }
            capture.lines.withLock { $0.append(Line(level: event.level, message: "\(event.message)", metadata: m)) }
        }
    }
}
