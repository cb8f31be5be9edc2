import Foundation
import NIOCore
import NIOPosix
import Testing

/// `scripts/smtp_test_server.py` (aiosmtpd, installed by `scripts/install-test-deps.sh`) on a free loopback
/// port, for the SMTP provider's end-to-end tests.
final class SMTPTestServer: @unchecked Sendable {
    enum Mode: String { case plain, starttls, tls }

    static let scripts = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("scripts")
    static let python = ProcessInfo.processInfo.environment["PYTHON"] ?? "python3"

    let port: Int
    let directory: URL
    private let process: Process

    var maildir: URL { directory.appendingPathComponent("mail") }
    var caFile: String { directory.appendingPathComponent("tls/ca.pem").path }

    private init(port: Int, directory: URL, process: Process) {
        self.port = port
        self.directory = directory
        self.process = process
    }

    static func start(mode: Mode = .plain, auth: (user: String, password: String)? = nil) async throws -> SMTPTestServer {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sb-smtp-e2e-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let probe = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let port = probe.localAddress?.port ?? 0
        try await probe.close()
        var arguments = [python, scripts.appendingPathComponent("smtp_test_server.py").path, "--port", "\(port)", "--mode", mode.rawValue,
                         "--maildir", directory.appendingPathComponent("mail").path, "--tls-dir", directory.appendingPathComponent("tls").path]
        if let auth { arguments += ["--auth", "--user", auth.user, "--password", auth.password] }
        let log = directory.appendingPathComponent("server.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let server = SMTPTestServer(port: port, directory: directory, process: process)
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            guard process.isRunning else {
                let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
                server.stop()
                throw SMTPTestServerError(description: "smtp_test_server.py exited (\(text)); run scripts/install-test-deps.sh")
            }
            if let c = try? await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port).get() {
                try? await c.close()
                return server
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        server.stop()
        throw SMTPTestServerError(description: "smtp_test_server.py did not start within 20 s")
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
    func parsed(_ index: Int) throws -> [String: Any] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: maildir.path)) ?? []).filter { $0.hasPrefix("msg-") && $0.hasSuffix(".eml") }.sorted()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [Self.python, Self.scripts.appendingPathComponent("parse_email.py").path, maildir.appendingPathComponent(names[index]).path]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        while p.isRunning { Thread.sleep(forTimeInterval: 0.01) }
        return try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
    }

    func stop() {
        if process.isRunning {
            process.terminate()
            let deadline = Date().addingTimeInterval(5)
            while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        try? FileManager.default.removeItem(at: directory)
    }
}

struct SMTPTestServerError: Error, CustomStringConvertible {
    let description: String
}
