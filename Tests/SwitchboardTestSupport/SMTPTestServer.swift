import Foundation
import Testing

/// `scripts/smtp_test_server.py` (aiosmtpd, installed by `scripts/install-test-deps.sh`) on a free loopback port,
/// with its mail and TLS files in its own temporary directory: the one wrapper of the SMTP client's and the SMTP
/// provider's tests. ``stop()`` ends it and removes the directory.
public final class SMTPTestServer: ThrowawayServer {
    /// The server's command-line options.
    public struct Options: Sendable {
        public enum Mode: String, Sendable {
            case plain, starttls, tls, silent
        }

        public var mode: Mode
        public var auth: Bool
        public var authMechanisms: String
        public var authRequireTLS: Bool
        public var idleTimeout: Double?
        public var pipelining: Bool
        public var refuseEHLO: Bool
        /// Serve a self-signed certificate instead of one signed by the test CA.
        public var selfSigned: Bool
        public var user: String
        public var password: String

        public init(
            mode: Mode = .plain, auth: Bool = false, authMechanisms: String = "PLAIN,LOGIN", authRequireTLS: Bool = true,
            idleTimeout: Double? = nil, pipelining: Bool = false, refuseEHLO: Bool = false, selfSigned: Bool = false,
            user: String = "switchboard", password: String = "s3cret!"
        ) {
            self.mode = mode
            self.auth = auth
            self.authMechanisms = authMechanisms
            self.authRequireTLS = authRequireTLS
            self.idleTimeout = idleTimeout
            self.pipelining = pipelining
            self.refuseEHLO = refuseEHLO
            self.selfSigned = selfSigned
            self.user = user
            self.password = password
        }

        var arguments: [String] {
            var arguments = [
                "--mode", mode.rawValue, "--user", user, "--password", password, "--auth-mechanisms", authMechanisms,
                authRequireTLS ? "--auth-require-tls" : "--no-auth-require-tls",
            ]
            if auth { arguments.append("--auth") }
            if pipelining { arguments.append("--pipelining") }
            if refuseEHLO { arguments.append("--no-ehlo") }
            if selfSigned { arguments.append("--self-signed") }
            if let idleTimeout { arguments += ["--idle-timeout", "\(idleTimeout)"] }
            return arguments
        }
    }

    public let port: Int
    public let options: Options
    public let directory: URL
    private let server: ServerProcess

    public var maildir: URL { directory.appendingPathComponent("mail") }
    public var tlsDirectory: URL { directory.appendingPathComponent("tls") }
    /// The PEM file to trust: the test CA, or the self-signed certificate itself.
    public var caPath: String { tlsDirectory.appendingPathComponent(options.selfSigned ? "selfsigned.pem" : "ca.pem").path }

    private init(port: Int, options: Options, directory: URL) {
        self.port = port
        self.options = options
        self.directory = directory
        server = ServerProcess(
            name: "smtp_test_server.py", executable: "/usr/bin/env",
            arguments: [SMTPTestPaths.python, SMTPTestPaths.serverScript, "--port", "\(port)", "--maildir", directory.appendingPathComponent("mail").path,
                        "--tls-dir", directory.appendingPathComponent("tls").path] + options.arguments,
            logFile: directory.appendingPathComponent("server.log").path)
    }

    /// Starts a server (after checking, once per run, that Python, aiosmtpd and openssl are there) and waits until
    /// it accepts connections.
    public static func start(_ options: Options = Options()) async throws -> SMTPTestServer {
        try await SMTPTestDependencies.require()
        return try await ServerProcess.startOnFreePort("smtp", attempts: 3, make: { port, path in
            SMTPTestServer(port: port, options: options, directory: URL(fileURLWithPath: path))
        }, launch: { server in
            // Generous: what ends the wait is the server accepting (or exiting); Python starts slowly on a busy machine.
            let port = server.port
            try await server.server.launch(timeout: .seconds(60)) { _ in await acceptsConnections(port: port) }
        }, stop: { await $0.stop() })
    }

    /// Stops the server (SIGTERM, then SIGKILL after 5 s) and removes its files.
    public func stop() async {
        await server.terminate(signals: [SIGTERM, SIGKILL], wait: .seconds(5))
        try? FileManager.default.removeItem(at: directory)
    }

    /// The server's output so far.
    public func serverLog() -> String { server.log }

    /// The number of SMTP sessions (connections that said EHLO/HELO) so far.
    public func sessionCount() throws -> Int {
        let text = try String(contentsOf: maildir.appendingPathComponent("connections.txt"), encoding: .utf8)
        return Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }

    /// Every saved message, oldest first.
    public func messages() throws -> [ReceivedMessage] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: maildir.path)) ?? []
        return try names.filter { $0.hasPrefix("msg-") && $0.hasSuffix(".json") }.sorted().map { name in
            let json = maildir.appendingPathComponent(name)
            let envelope = try JSONDecoder().decode(ReceivedEnvelope.self, from: Data(contentsOf: json))
            let eml = json.deletingPathExtension().appendingPathExtension("eml").path
            return ReceivedMessage(envelope: envelope, emlPath: eml)
        }
    }

    /// A port nobody listens on (the shared allocator: never one handed out before in this test run).
    public static func freePort() async throws -> Int {
        try await freeLoopbackPort()
    }
}

/// Starts a test SMTP server, runs `body`, and always stops the server (recording its log when `body` fails).
public func withSMTPTestServer<T>(_ options: SMTPTestServer.Options = SMTPTestServer.Options(), _ body: (SMTPTestServer) async throws -> T) async throws -> T {
    let server = try await SMTPTestServer.start(options)
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

/// One envelope saved by the test server (`msg-NNNNNN.json`).
public struct ReceivedEnvelope: Decodable, Sendable {
    public let mail_from: String
    public let rcpt_tos: [String]
    public let mail_options: [String]
    public let smtp_utf8: Bool
    public let connection_id: Int?
    public let tls: Bool
    public let authenticated: Bool
    public let auth_mechanism: String?
    public let size: Int
}

/// The output of `scripts/parse_email.py`.
public struct ParsedEmail: Decodable, Sendable {
    public struct Part: Decodable, Sendable {
        public let content_type: String
        public let charset: String?
        public let transfer_encoding: String?
        public let content: String
        /// `attachment`, `inline` or nil.
        public let disposition: String?
        /// The filename as Python's `email` reads it (RFC 2231 / 2047 decoded).
        public let filename: String?
        /// The part's decoded bytes, in base64.
        public let content_base64: String?
    }

    public let headers: [[String]]
    public let raw_headers: [[String]]
    public let content_type: String
    public let is_multipart: Bool
    public let parts: [Part]
    public let defects: [String]
    public let raw_max_line_octets: Int
    public let raw_bare_lf: Bool
    public let raw_bare_cr: Bool
    public let raw_8bit: Bool

    /// All decoded values of a header (case-insensitive name).
    public func values(_ name: String) -> [String] {
        headers.filter { $0.first?.lowercased() == name.lowercased() }.compactMap { $0.count > 1 ? $0[1] : nil }
    }

    /// The first decoded value of a header.
    public func header(_ name: String) -> String? { values(name).first }

    /// The first raw (undecoded, unfolded) value of a header.
    public func rawHeader(_ name: String) -> String? {
        raw_headers.first { $0.first?.lowercased() == name.lowercased() }.flatMap { $0.count > 1 ? $0[1] : nil }
    }
}

/// A message the test server saved.
public struct ReceivedMessage: Sendable {
    public let envelope: ReceivedEnvelope
    public let emlPath: String

    /// The raw bytes as received.
    public func raw() throws -> [UInt8] {
        Array(try Data(contentsOf: URL(fileURLWithPath: emlPath)))
    }

    /// The message as parsed by Python's `email` package.
    public func parsed() async throws -> ParsedEmail {
        try await parseWithPython(path: emlPath)
    }
}

/// Runs `scripts/parse_email.py` on a file.
public func parseWithPython(path: String) async throws -> ParsedEmail {
    let result = try await runCommand([SMTPTestPaths.python, SMTPTestPaths.parseScript, path])
    guard result.status == 0 else {
        throw TestEnvironmentError(description: "parse_email.py failed: \(result.stderr)")
    }
    return try JSONDecoder().decode(ParsedEmail.self, from: Data(result.stdout.utf8))
}

/// Paths of the package's SMTP test scripts.
public enum SMTPTestPaths {
    /// The package root, found from this file's location (Tests/SwitchboardTestSupport/).
    static let packageRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The folder with the test scripts: `$SWITCHBOARD_SMTP_SCRIPTS`, or `<package root>/scripts`.
    public static let scripts: URL = ProcessInfo.processInfo.environment["SWITCHBOARD_SMTP_SCRIPTS"].map { URL(fileURLWithPath: $0) }
        ?? packageRoot.appendingPathComponent("scripts")

    public static let serverScript = scripts.appendingPathComponent("smtp_test_server.py").path
    public static let parseScript = scripts.appendingPathComponent("parse_email.py").path
    static let installScript = "scripts/install-test-deps.sh"

    /// `$PYTHON`, or `python3` from `PATH`.
    public static let python: String = ProcessInfo.processInfo.environment["PYTHON"] ?? "python3"
}

/// Runs a command to completion and returns (exit status, stdout, stderr). It waits on a thread of its own
/// (`offCooperativePool`), not on one of the few threads every test of the run shares.
@discardableResult
public func runCommand(_ arguments: [String], timeout: TimeInterval = 60) async throws -> (status: Int32, stdout: String, stderr: String) {
    try await offCooperativePool { try runCommandBlocking(arguments, timeout: timeout) }
}

private func runCommandBlocking(_ arguments: [String], timeout: TimeInterval) throws -> (status: Int32, stdout: String, stderr: String) {
    let process = ChildProcess()
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
        throw TestEnvironmentError(description: "command timed out: \(arguments.joined(separator: " "))")
    }
    try out.close()
    try err.close()
    let stdout = String(decoding: try Data(contentsOf: outURL), as: UTF8.self)
    let stderr = String(decoding: try Data(contentsOf: errURL), as: UTF8.self)
    return (process.terminationStatus, stdout, stderr)
}

/// Checks (once per test run) that Python, aiosmtpd and openssl are available.
enum SMTPTestDependencies {
    /// The check, started by the first test that needs it; the others wait for it without blocking a thread.
    private static let check = Task<String?, Never> { await findProblem() }

    private static func findProblem() async -> String? {
        do {
            guard FileManager.default.fileExists(atPath: SMTPTestPaths.serverScript),
                  FileManager.default.fileExists(atPath: SMTPTestPaths.parseScript)
            else {
                return "Test scripts not found in \(SMTPTestPaths.scripts.path); set SWITCHBOARD_SMTP_SCRIPTS to the folder "
                    + "holding smtp_test_server.py and parse_email.py."
            }
            let python = try await runCommand([SMTPTestPaths.python, "-c", "import aiosmtpd, email; print(aiosmtpd.__version__)"])
            if python.status != 0 {
                return "Python package aiosmtpd is not importable with \(SMTPTestPaths.python) "
                    + "(\(python.stderr.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").last ?? "")). "
                    + "Run \(SMTPTestPaths.installScript) to install the test dependencies."
            }
            let openssl = try await runCommand(["openssl", "version"])
            if openssl.status != 0 {
                return "The openssl command is missing. Run \(SMTPTestPaths.installScript) to install the test dependencies."
            }
            return nil
        } catch {
            return "Cannot run \(SMTPTestPaths.python) (\(error)). Install Python 3 and run \(SMTPTestPaths.installScript)."
        }
    }

    /// Throws a clear error (and records an issue) when a dependency is missing.
    static func require() async throws {
        if let problem = await check.value {
            Issue.record(Comment(rawValue: problem))
            throw TestEnvironmentError(description: problem)
        }
    }
}
