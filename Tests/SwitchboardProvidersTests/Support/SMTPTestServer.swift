import Foundation
import SwitchboardTestSupport
import Testing

/// `scripts/smtp_test_server.py` (aiosmtpd, installed by `scripts/install-test-deps.sh`) on a free loopback
/// port, for the SMTP provider's end-to-end tests.
final class SMTPTestServer: ThrowawayServer {
    enum Mode: String { case plain, starttls, tls }

    static let scripts = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("scripts")
    static let python = ProcessInfo.processInfo.environment["PYTHON"] ?? "python3"

    let port: Int
    let directory: URL
    private let server: ServerProcess

    var maildir: URL { directory.appendingPathComponent("mail") }
    var caFile: String { directory.appendingPathComponent("tls/ca.pem").path }

    private init(port: Int, directory: URL, arguments: [String]) {
        self.port = port
        self.directory = directory
        server = ServerProcess(name: "smtp_test_server.py (run scripts/install-test-deps.sh)", executable: "/usr/bin/env", arguments: arguments, logFile: directory.appendingPathComponent("server.log").path)
    }

    static func start(mode: Mode = .plain, auth: (user: String, password: String)? = nil) async throws -> SMTPTestServer {
        try await ServerProcess.startOnFreePort("smtp-e2e", attempts: 1, make: { port, path in
            let directory = URL(fileURLWithPath: path)
            var arguments = [python, scripts.appendingPathComponent("smtp_test_server.py").path, "--port", "\(port)", "--mode", mode.rawValue,
                             "--maildir", directory.appendingPathComponent("mail").path, "--tls-dir", directory.appendingPathComponent("tls").path]
            if let auth { arguments += ["--auth", "--user", auth.user, "--password", auth.password] }
            return SMTPTestServer(port: port, directory: directory, arguments: arguments)
        }, launch: { server in
            let port = server.port
            try await server.server.launch(timeout: .seconds(20)) { _ in await acceptsConnections(port: port) }
        }, stop: { await $0.stop() })
    }

    /// Envelopes and raw messages saved so far, oldest first.
    func messages() throws -> [(envelope: [String: Any], raw: String)] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: maildir.path)) ?? []).filter { $0.hasPrefix("msg-") && $0.hasSuffix(".json") }.sorted()
        return try names.map { name in
            let json = maildir.appendingPathComponent(name)
            let envelope = try JSONSerialization.jsonObject(with: Data(contentsOf: json)) as? [String: Any] ?? [:]
            let raw = try String(contentsOf: json.deletingPathExtension().appendingPathExtension("eml"), encoding: .utf8)
            return (envelope, raw)
        }
    }

    /// Parses a saved message with Python's `email` package (`scripts/parse_email.py`).
    func parsed(_ index: Int) async throws -> [String: Any] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: maildir.path)) ?? []).filter { $0.hasPrefix("msg-") && $0.hasSuffix(".eml") }.sorted()
        let arguments = [Self.python, Self.scripts.appendingPathComponent("parse_email.py").path, maildir.appendingPathComponent(names[index]).path]
        let (_, output) = try await runProgram("/usr/bin/env", arguments, standardError: false)
        return try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any] ?? [:]
    }

    /// Stops the server (SIGTERM, then SIGKILL after 5 s) and removes its files.
    func stop() async {
        await server.terminate(signals: [SIGTERM, SIGKILL], wait: .seconds(5))
        try? FileManager.default.removeItem(at: directory)
    }
}
