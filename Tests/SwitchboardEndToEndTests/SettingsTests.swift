import Foundation
import SwitchboardCore
import SwitchboardServer
import SwitchboardTestSupport
import Testing
import Logging

@Suite("Settings: one list of known variables, printed whole and checked at start")
struct SettingsTests {
    @Test("an unknown SWITCHBOARD_* variable is reported, with the known name it most likely meant")
    func unknownVariables() {
        let env = [
            "SWITCHBOARD_LEASE_MS": "1000", "SWITCHBOARD_LEASE_MSS": "1000", "SWITCHBOARD_ELASTICSEARCH_TIMEOUT_": "5",
            "SWITCHBOARD_FROBNICATE": "1", "PATH": "/bin", "REDIS_URL": "redis://x", "SWITCHBOARD_SQLITE_STATS": "1",
        ]
        let unknown = Settings.unknownVariables(in: env)
        #expect(unknown.map(\.name) == ["SWITCHBOARD_ELASTICSEARCH_TIMEOUT_", "SWITCHBOARD_FROBNICATE", "SWITCHBOARD_LEASE_MSS"])
        #expect(unknown.map(\.suggestion) == ["SWITCHBOARD_ELASTICSEARCH_TIMEOUT_MS", nil, "SWITCHBOARD_LEASE_MS"])
        #expect(Settings.unknownVariables(in: ["SWITCHBOARD_LOG_LEVEL": "info", "HOME": "/"]).isEmpty)
    }

    @Test("the warning at start names the unknown variable and where the settings are listed")
    func warning() {
        let lines = LogLineHandlerTests.Lines()
        let logger = Logger(label: "switchboard.test") { LogLineHandler(label: $0, level: .info, write: { lines.append($0) }) }
        Settings.warnAboutUnknownVariables(in: ["SWITCHBOARD_LEASE_MSS": "1", "SWITCHBOARD_LEASE_MS": "1"], logger: logger)
        #expect(lines.all.count == 1)
        #expect(lines.all.first?.contains("warning") == true)
        #expect(lines.all.first?.contains("SWITCHBOARD_LEASE_MSS") == true)
        #expect(lines.all.first?.contains("did you mean SWITCHBOARD_LEASE_MS?") == true)
        #expect(lines.all.first?.contains("switchboard help config") == true)
    }

    @Test("SWITCHBOARD_SQLITE_STATS is a setting: set, the writer's statistics are logged every second")
    func sqliteStats() throws {
        #expect(try Settings.fromEnvironment([:]).sqliteStatsInterval == nil)
        #expect(try Settings.fromEnvironment(["SWITCHBOARD_SQLITE_STATS": "1"]).sqliteStatsInterval == .seconds(1))
    }

    @Test("the settings page prints every name whole, on a line of its own, under its group, in lines of at most 78 columns")
    func page() {
        let page = Settings.configurationHelp()
        let lines = page.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let names = Settings.variables.map(\.name)
        #expect(Set(names).count == names.count, "a name is listed twice")
        for name in names {
            #expect(lines.contains("  " + name), "\(name) is not printed whole on a line of its own")
        }
        #expect(lines.allSatisfy { $0.count <= 78 }, "\(lines.filter { $0.count > 78 })")
        for title in ["HTTP", "SQLite", "Redis", "MongoDB", "Elasticsearch", "email", "SMS", "WhatsApp", "Pipeline", "Retention", "Logging"] {
            #expect(Settings.variableGroups.contains { $0.title.contains(title) }, "no group for \(title)")
        }
    }

    @Test("every variable the settings read is in the list: the SWITCHBOARD_* names in the composition root's sources, and the per-channel names")
    func noDrift() throws {
        let known = Set(Settings.variables.map(\.name))
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let pattern = try Regex(#""(SWITCHBOARD_[A-Z0-9_]*[A-Z0-9])""#)
        var read: Set<String> = []
        for folder in ["Sources/SwitchboardServer", "Sources/switchboard"] {
            let dir = root.appendingPathComponent(folder)
            for file in try FileManager.default.contentsOfDirectory(atPath: dir.path) where file.hasSuffix(".swift") {
                let text = try String(contentsOf: dir.appendingPathComponent(file), encoding: .utf8)
                for match in text.matches(of: pattern) { read.insert(String(match.output[1].substring ?? "")) }
            }
        }
        #expect(read.contains("SWITCHBOARD_SQLITE_STATS") && read.count > 40, "\(read.count) names found in the sources")
        for channel in MessageChannel.allCases { read.insert("SWITCHBOARD_\(channel.rawValue.uppercased())_PROVIDERS") }
        read.formUnion(["SWITCHBOARD_SMTP_RATE", "SWITCHBOARD_TWILIO_RATE", "SWITCHBOARD_WHATSAPP_RATE"])
        #expect(read.subtracting(known).isEmpty, "read but not listed: \(read.subtracting(known).sorted())")
    }

    @Test("`switchboard help config` prints the page; `switchboard --help` points at it")
    func helpCommand() async throws {
        let binary = try ServiceProcess.binary().path
        let (status, help) = try await runProgram(binary, ["help", "config"])
        #expect(status == 0)
        let lines = Set(help.split(separator: "\n").map(String.init))
        for name in Settings.variables.map(\.name) {
            #expect(lines.contains("  " + name), "\(name) is not printed whole")
        }
        let (_, root) = try await runProgram(binary, ["--help"])
        #expect(root.contains("switchboard help config"))
        #expect(!root.contains("SWITCHBOARD_ELASTICSEARCH_TIMEOUT_"))
    }
}
