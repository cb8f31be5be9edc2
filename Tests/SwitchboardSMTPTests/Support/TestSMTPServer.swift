import Foundation
import NIOCore
import NIOPosix
import SwitchboardTestSupport
import Testing

/// Paths of the package and its test scripts.
enum TestPaths {
    /// The package root, found from this file's location (Tests/SwitchboardSMTPTests/Support/).
    static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .deletingLastPathComponent()
        .deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The folder with the test scripts: `$SWITCHBOARD_SMTP_SCRIPTS`, or `<package root>/scripts`.
    static let scripts: URL = ProcessInfo.processInfo.environment["SWITCHBOARD_SMTP_SCRIPTS"].map {
        URL(fileURLWithPath: $0)
    } ?? packageRoot.appendingPathComponent("scripts")

    static let serverScript = scripts.appendingPathComponent("smtp_test_server.py").path
    static let parseScript = scripts.appendingPathComponent("parse_email.py").path
    static let installScript = "scripts/install-test-deps.sh"

    /// `$PYTHON`, or `python3` from `PATH`.
    static let python: String = ProcessInfo.processInfo.environment["PYTHON"] ?? "python3"
}

/// A test precondition that is not met, with advice on how to fix it.
struct TestDependencyError: Error, CustomStringConvertible {
    let description: String
}

/// Runs a command to completion and returns (exit status, stdout, stderr). It waits on a thread of its own
/// (`offCooperativePool`), not on one of the few threads every test of the run shares.
@discardableResult
func runCommand(_ arguments: [String], timeout: TimeInterval = 60) async throws -> (status: Int32, stdout: String, stderr: String) {
    try await offCooperativePool { try runCommandBlocking(arguments, timeout: timeout) }
}

private func runCommandBlocking(_ arguments: [String], timeout: TimeInterval) throws -> (status: Int32, stdout: String, stderr: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("sb-smtp-cmd-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: scratch) }
    let outURL = scratch.appendingPathComponent("stdout")
    let errURL = scratch.appendingPathComponent("stderr")
    _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
    _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
    let out = try FileHandle(forWritingTo: outURL)
    let err = try FileHandle(forWritingTo: errURL)
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline {
        Thread.sleep(forTimeInterval: 0.02)
    }
    if process.isRunning {
        kill(process.processIdentifier, SIGKILL)
        while process.isRunning { Thread.sleep(forTimeInterval: 0.02) }
        throw TestDependencyError(description: "command timed out: \(arguments.joined(separator: " "))")
    }
    try out.close()
    try err.close()
    let stdout = String(decoding: try Data(contentsOf: outURL), as: UTF8.self)
    let stderr = String(decoding: try Data(contentsOf: errURL), as: UTF8.self)
    return (process.terminationStatus, stdout, stderr)
}

/// Checks (once per test run) that Python, aiosmtpd and openssl are available.
enum TestDependencies {
    /// The check, started by the first test that needs it; the others wait for it without blocking a thread.
    private static let check = Task<String?, Never> { await findProblem() }

    private static func findProblem() async -> String? {
        do {
            guard FileManager.default.fileExists(atPath: TestPaths.serverScript),
                  FileManager.default.fileExists(atPath: TestPaths.parseScript)
            else {
                return "Test scripts not found in \(TestPaths.scripts.path); set SWITCHBOARD_SMTP_SCRIPTS to the folder "
                    + "holding smtp_test_server.py and parse_email.py."
            }
            let python = try await runCommand([TestPaths.python, "-c", "import aiosmtpd, email; print(aiosmtpd.__version__)"])
            if python.status != 0 {
                return "Python package aiosmtpd is not importable with \(TestPaths.python) "
                    + "(\(python.stderr.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").last ?? "")). "
                    + "Run \(TestPaths.installScript) to install the test dependencies."
            }
            let openssl = try await runCommand(["openssl", "version"])
            if openssl.status != 0 {
                return "The openssl command is missing. Run \(TestPaths.installScript) to install the test dependencies."
            }
            return nil
        } catch {
            return "Cannot run \(TestPaths.python) (\(error)). Install Python 3 and run \(TestPaths.installScript)."
        }
    }

    /// Throws a clear error (and records an issue) when a dependency is missing.
    static func require() async throws {
        if let problem = await check.value {
            Issue.record(Comment(rawValue: problem))
            throw TestDependencyError(description: problem)
        }
    }
}

/// Options for `scripts/smtp_test_server.py`.
struct TestServerOptions: Sendable {
    enum Mode: String, Sendable {
        case plain, starttls, tls, silent
    }

    var mode: Mode = .plain
    var auth = false
    var authMechanisms = "PLAIN,LOGIN"
    var authRequireTLS = true
    var idleTimeout: Double?
    var pipelining = false
    var refuseEHLO = false
    /// Serve a self-signed certificate instead of one signed by the test CA.
    var selfSigned = false
    var user = "switchboard"
    var password = "s3cret!"
}

/// One envelope saved by the test server (`msg-NNNNNN.json`).
struct ReceivedEnvelope: Decodable, Sendable {
    let mail_from: String
    let rcpt_tos: [String]
    let mail_options: [String]
    let smtp_utf8: Bool
    let connection_id: Int?
    let tls: Bool
    let authenticated: Bool
    let auth_mechanism: String?
    let size: Int
}

/// The output of `scripts/parse_email.py`.
struct ParsedEmail: Decodable, Sendable {
    struct Part: Decodable, Sendable {
        let content_type: String
        let charset: String?
        let transfer_encoding: String?
        let content: String
    }

    let headers: [[String]]
    let raw_headers: [[String]]
    let content_type: String
    let is_multipart: Bool
    let parts: [Part]
    let defects: [String]
    let raw_max_line_octets: Int
    let raw_bare_lf: Bool
    let raw_bare_cr: Bool
    let raw_8bit: Bool

    /// All decoded values of a header (case-insensitive name).
    func values(_ name: String) -> [String] {
        headers.filter { $0.first?.lowercased() == name.lowercased() }.compactMap { $0.count > 1 ? $0[1] : nil }
    }

    /// The first decoded value of a header.
    func header(_ name: String) -> String? { values(name).first }

    /// The first raw (undecoded, unfolded) value of a header.
    func rawHeader(_ name: String) -> String? {
        raw_headers.first { $0.first?.lowercased() == name.lowercased() }.flatMap { $0.count > 1 ? $0[1] : nil }
    }
}

/// A message the test server saved.
struct ReceivedMessage: Sendable {
    let envelope: ReceivedEnvelope
    let emlPath: String

    /// The raw bytes as received.
    func raw() throws -> [UInt8] {
        Array(try Data(contentsOf: URL(fileURLWithPath: emlPath)))
    }

    /// The message as parsed by Python's `email` package.
    func parsed() async throws -> ParsedEmail {
        try await parseWithPython(path: emlPath)
    }
}

/// Runs `scripts/parse_email.py` on a file.
func parseWithPython(path: String) async throws -> ParsedEmail {
    let result = try await runCommand([TestPaths.python, TestPaths.parseScript, path])
    guard result.status == 0 else {
        throw TestDependencyError(description: "parse_email.py failed: \(result.stderr)")
    }
    return try JSONDecoder().decode(ParsedEmail.self, from: Data(result.stdout.utf8))
}

/// A running `scripts/smtp_test_server.py` on a free loopback port.
final class TestSMTPServer {
    let port: Int
    let options: TestServerOptions
    let directory: URL
    let maildir: URL
    let tlsDirectory: URL
    private let process: Process
    private let logPath: URL

    /// The PEM file to trust: the test CA, or the self-signed certificate itself.
    var caPath: String {
        tlsDirectory.appendingPathComponent(options.selfSigned ? "selfsigned.pem" : "ca.pem").path
    }

    private init(port: Int, options: TestServerOptions, directory: URL, process: Process, logPath: URL) {
        self.port = port
        self.options = options
        self.directory = directory
        self.maildir = directory.appendingPathComponent("mail")
        self.tlsDirectory = directory.appendingPathComponent("tls")
        self.process = process
        self.logPath = logPath
    }

    /// Starts the server and waits until it accepts TCP connections.
    static func start(_ options: TestServerOptions = TestServerOptions()) async throws -> TestSMTPServer {
        try await TestDependencies.require()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sb-smtp-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let port = try await freePort()
        var arguments = [
            TestPaths.python, TestPaths.serverScript,
            "--port", "\(port)",
            "--mode", options.mode.rawValue,
            "--maildir", directory.appendingPathComponent("mail").path,
            "--tls-dir", directory.appendingPathComponent("tls").path,
            "--user", options.user,
            "--password", options.password,
            "--auth-mechanisms", options.authMechanisms,
            options.authRequireTLS ? "--auth-require-tls" : "--no-auth-require-tls",
        ]
        if options.auth { arguments.append("--auth") }
        if options.pipelining { arguments.append("--pipelining") }
        if options.refuseEHLO { arguments.append("--no-ehlo") }
        if options.selfSigned { arguments.append("--self-signed") }
        if let idle = options.idleTimeout { arguments += ["--idle-timeout", "\(idle)"] }

        let logPath = directory.appendingPathComponent("server.log")
        _ = FileManager.default.createFile(atPath: logPath.path, contents: nil)
        let log = try FileHandle(forWritingTo: logPath)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let server = TestSMTPServer(port: port, options: options, directory: directory, process: process, logPath: logPath)
        do {
            try await server.waitUntilAccepting()
        } catch {
            await server.stop()
            throw error
        }
        return server
    }

    /// Polls a TCP connection to the port until it succeeds (at most 20 s).
    private func waitUntilAccepting() async throws {
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            if !process.isRunning {
                throw TestDependencyError(description: "smtp_test_server.py exited with status \(process.terminationStatus): \(serverLog())")
            }
            do {
                let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .connectTimeout(.milliseconds(500))
                    .connect(host: "127.0.0.1", port: port)
                    .get()
                try await channel.close()
                return
            } catch {
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        throw TestDependencyError(description: "smtp_test_server.py did not accept connections within 20 s: \(serverLog())")
    }

    /// Stops the server process and removes its files.
    func stop() async {
        if process.isRunning {
            process.terminate()
            // Poll instead of waitUntilExit(), which spins a run loop on Linux; sleep without holding a thread.
            let deadline = ContinuousClock.now + .seconds(5)
            while process.isRunning && ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(20))
            }
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                while process.isRunning { try? await Task.sleep(for: .milliseconds(20)) }
            }
        }
        try? FileManager.default.removeItem(at: directory)
    }

    /// The server's stdout/stderr so far.
    func serverLog() -> String {
        (try? String(contentsOf: logPath, encoding: .utf8)) ?? "<no log>"
    }

    /// The number of SMTP sessions (connections that said EHLO/HELO) so far.
    func sessionCount() throws -> Int {
        let text = try String(contentsOf: maildir.appendingPathComponent("connections.txt"), encoding: .utf8)
        return Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }

    /// Every saved message, oldest first.
    func messages() throws -> [ReceivedMessage] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: maildir.path)) ?? []
        return try names.filter { $0.hasPrefix("msg-") && $0.hasSuffix(".json") }.sorted().map { name in
            let json = maildir.appendingPathComponent(name)
            let envelope = try JSONDecoder().decode(ReceivedEnvelope.self, from: Data(contentsOf: json))
            let eml = json.deletingPathExtension().appendingPathExtension("eml").path
            return ReceivedMessage(envelope: envelope, emlPath: eml)
        }
    }

    /// A port nobody listens on (the shared allocator: never one handed out before in this test run).
    static func freePort() async throws -> Int {
        try await freeLoopbackPort()
    }
}

/// Starts a test server, runs `body`, and always stops the server.
func withTestServer<T>(
    _ options: TestServerOptions = TestServerOptions(),
    _ body: (TestSMTPServer) async throws -> T
) async throws -> T {
    let server = try await TestSMTPServer.start(options)
    do {
        let result = try await body(server)
        await server.stop()
        return result
    } catch {
        Issue.record(Comment(rawValue: "server log:\n\(server.serverLog())"))
        await server.stop()
        throw error
    }
}
