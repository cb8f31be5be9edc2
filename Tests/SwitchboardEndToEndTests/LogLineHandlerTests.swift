import Logging
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
}
