/// A delivery channel. The raw value is the seed's `type` field.
public enum MessageChannel: String, Sendable, CaseIterable, Codable, Hashable {
    case email
    case sms
    case whatsapp

    /// The stream the router publishes this channel's messages to (the seed's names).
    public var stream: String { "\(rawValue)_stream" }

    /// The largest `msg` this channel accepts, in characters (email: bytes of UTF-8).
    public var maxMessageLength: Int {
        switch self {
        case .sms: 1600
        case .whatsapp: 4096
        case .email: 1 << 20
        }
    }
}

/// Names of the streams of the seed, shared by every queue engine.
public enum StreamNames {
    /// The stream every service writes status log entries to.
    public static let log = "log_stream"
    /// The consumer group channel workers read their stream with.
    public static let workerGroup = "workers"
    /// The consumer group the logging service reads `log_stream` with.
    public static let loggerGroup = "logger"
    /// The dead-letter stream of `stream`.
    public static func deadLetter(of stream: String) -> String { "\(stream):dead" }
    /// Every stream of the seed.
    public static var all: [String] { MessageChannel.allCases.map(\.stream) + [log] }
}
