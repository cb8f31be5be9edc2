import Foundation
import Logging
import MetricsTestKit
import SwitchboardTelemetry
import Synchronization
import SwitchboardServer
import Testing

@Suite("Log lines")
struct LogLineHandlerTests {
    final class Lines: Sendable {
        let lines = Mutex<[String]>([])
        func append(_ line: String) { lines.withLock { $0.append(line) } }
        var all: [String] { lines.withLock { $0 } }
    }

    @Test("one line per event in StreamLogHandler's layout; metadata of the logger, the provider and the call merged and sorted; levels below the logger's dropped")
    func format() {
        let lines = Lines()
        let provider = Logger.MetadataProvider { ["trace": "t1", "b": "provider"] }
        var logger = Logger(label: "switchboard.test") { label in
            LogLineHandler(label: label, level: .info, metadataProvider: provider, write: { lines.append($0) })
        }
        logger[metadataKey: "b"] = "logger"
        logger[metadataKey: "a"] = "1"
        logger.debug("not written")
        logger.info("started", metadata: ["c": "call", "a": "call"])
        logger[metadataKey: "a"] = nil
        logger.warning("plain")
        let all = lines.all
        #expect(all.count == 2)
        #expect(all.allSatisfy { $0.hasSuffix("\n") && $0.filter { $0 == "\n" }.count == 1 })
        let first = all[0].split(separator: " ", maxSplits: 1).map(String.init)
        #expect(first.count == 2)
        #expect(first[0].count == "2026-12-06T03:18:41+0000".count)
        #expect(first[1] == "info switchboard.test : a=call b=provider c=call trace=t1 [SwitchboardEndToEndTests] started\n")
        #expect(all[1].hasSuffix(" warning switchboard.test : b=provider trace=t1 [SwitchboardEndToEndTests] plain\n"))
    }

    @Test("without metadata the line has none")
    func bare() {
        let lines = Lines()
        let logger = Logger(label: "x") { LogLineHandler(label: $0, level: .trace, write: { lines.append($0) }) }
        logger.trace("hello")
        #expect(lines.all.first?.hasSuffix(" trace x : [SwitchboardEndToEndTests] hello\n") == true)
    }

    /// A JSON line as a dictionary (and the check that it is one object on one line).
    static func object(_ line: String) throws -> [String: Any] {
        #expect(line.hasSuffix("\n") && line.filter { $0 == "\n" }.count == 1)
        return try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }

    @Test("SWITCHBOARD_LOG_FORMAT=json: one object a line with time, level, label, message, source and metadata; trace and span ids at the top when present")
    func json() throws {
        let lines = Lines()
        let provider = Logger.MetadataProvider { ["span_id": "00f067aa0ba902b7"] }
        var logger = Logger(label: "switchboard.test") { LogLineHandler(label: $0, level: .info, format: .json, metadataProvider: provider, write: { lines.append($0) }) }
        logger[metadataKey: "channel"] = "sms"
        logger.debug("not written")
        logger.info("provider failed, \"retryable\"\nsecond line", metadata: ["trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "n": .stringConvertible(3), "list": ["a", "b"], "nested": ["k": "v"]])
        let plain = Logger(label: "x") { LogLineHandler(label: $0, level: .trace, format: .json, write: { lines.append($0) }) }
        plain.error("no metadata")
        plain.notice("empty trace id", metadata: ["trace_id": ""])
        let all = lines.all
        #expect(all.count == 3)
        let first = try Self.object(all[0])
        #expect(Set(first.keys) == ["time", "level", "label", "message", "source", "metadata", "trace_id", "span_id"])
        #expect(first["level"] as? String == "info")
        #expect(first["label"] as? String == "switchboard.test")
        #expect(first["message"] as? String == "provider failed, \"retryable\"\nsecond line")
        #expect(first["source"] as? String == "SwitchboardEndToEndTests")
        #expect(first["trace_id"] as? String == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(first["span_id"] as? String == "00f067aa0ba902b7")
        let metadata = try #require(first["metadata"] as? [String: Any])
        #expect(metadata["channel"] as? String == "sms")
        #expect(metadata["n"] as? String == "3")
        #expect(metadata["list"] as? [String] == ["a", "b"])
        #expect((metadata["nested"] as? [String: String]) == ["k": "v"])
        #expect(metadata["trace_id"] == nil && metadata["span_id"] == nil)
        // RFC 3339, UTC, milliseconds.
        let time = try #require(first["time"] as? String)
        #expect(time.count == "2026-12-07T13:56:54.123Z".count && time.hasSuffix("Z"))
        #expect(ISO8601DateFormatter.withFractionalSeconds.date(from: time) != nil)
        let second = try Self.object(all[1])
        #expect(second["level"] as? String == "error" && second["trace_id"] == nil && (second["metadata"] as? [String: Any])?.isEmpty == true)
        #expect(try Self.object(all[2])["trace_id"] == nil)
    }

    @Test("every line written is counted by level in switchboard_log_messages_total{level}, in both formats; dropped levels are not")
    func counted() throws {
        let metrics = TestMetrics()
        let counters = LogLevelCounters(factory: metrics)
        for format in LogLineHandler.Format.allCases {
            let logger = Logger(label: "x") { LogLineHandler(label: $0, level: .info, format: format, counters: counters, write: { _ in }) }
            logger.debug("dropped")
            logger.info("one")
            logger.error("two")
            logger.error("three")
            logger.critical("four")
        }
        #expect(try metrics.expectCounter(MetricName.logMessages, [("level", "error")]).totalValue == 4)
        #expect(try metrics.expectCounter(MetricName.logMessages, [("level", "info")]).totalValue == 2)
        #expect(try metrics.expectCounter(MetricName.logMessages, [("level", "critical")]).totalValue == 2)
        #expect(try metrics.expectCounter(MetricName.logMessages, [("level", "debug")]).totalValue == 0)
        #expect(try metrics.expectCounter(MetricName.logMessages, [("level", "warning")]).totalValue == 0)
    }

    @Test("SWITCHBOARD_LOG_FORMAT: line by default, json on request, anything else refused")
    func setting() throws {
        #expect(try Settings.fromEnvironment([:]).logFormat == .line)
        #expect(try Settings.fromEnvironment(["SWITCHBOARD_LOG_FORMAT": "JSON"]).logFormat == .json)
        #expect(throws: SettingsError.self) { try Settings.fromEnvironment(["SWITCHBOARD_LOG_FORMAT": "yaml"]) }
        #expect(Settings.configurationHelp().contains("SWITCHBOARD_LOG_FORMAT"))
    }
}

extension ISO8601DateFormatter {
    static var withFractionalSeconds: ISO8601DateFormatter {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f
    }
}
