import Foundation
import NIOConcurrencyHelpers
import Synchronization
import NIOCore
import NIOPosix

/// Raised when the test environment lacks something the integration tests need.
public struct TestEnvironmentError: Error, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
}

/// Finds an executable on `PATH`.
public func findExecutable(_ name: String) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
    for directory in path.split(separator: ":").map(String.init) + ["/usr/sbin", "/usr/local/sbin"] {
        let candidate = "\(directory)/\(name)"
        if access(candidate, X_OK) == 0 {
            return candidate
        }
    }
    return nil
}

/// Runs `body` (blocking work: a child process waited for, a synchronous read) on a thread of its own, never on
/// one of Swift concurrency's cooperative threads. There are only as many of those as cores (two here), and all
/// test suites of the run share them: one blocked stalls every test in the process (wake-up bounds of unrelated
/// tests were missed by 10 s and more in parallel runs while test setups waited for Python and openssl).
public func offCooperativePool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

/// Runs a program to completion (on a thread of its own: `offCooperativePool`) and returns its exit status and
/// output: standard output and standard error together, or standard output alone (standard error discarded)
/// with `standardError: false`.
@discardableResult
public func runProgram(_ executable: String, _ arguments: [String], in directory: String? = nil, standardError: Bool = true) async throws -> (Int32, String) {
    try await offCooperativePool { try runProgramBlocking(executable, arguments, in: directory, standardError: standardError) }
}

private func runProgramBlocking(_ executable: String, _ arguments: [String], in directory: String?, standardError: Bool) throws -> (Int32, String) {
    let process = ChildProcess()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let directory {
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
    }
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = standardError ? pipe : FileHandle.nullDevice
    try process.run()
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: output, as: UTF8.self))
}

/// Ports handed out by this process: Linux readily gives a just-closed port to the next `bind` to port 0, so
/// two servers starting at once in parallel tests could otherwise be told the same port.
private let handedOutPorts = Mutex<Set<Int>>([])

/// Asks the kernel for a free loopback TCP port that this process has not handed out before.
public func freeLoopbackPortNow() throws -> Int {
    for _ in 0..<100 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { break }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        let named = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        guard bound == 0, named == 0 else { break }
        let port = Int(UInt16(bigEndian: addr.sin_port))
        if handedOutPorts.withLock({ $0.insert(port).inserted }) { return port }
    }
    throw TestEnvironmentError(description: "could not find a free port")
}

/// Asks the kernel for a free loopback TCP port that this process has not handed out before.
public func freeLoopbackPort() async throws -> Int {
    try freeLoopbackPortNow()
}

/// A throwaway `redis-server` on 127.0.0.1, with its own temporary directory,
/// no persistence, stopped (and its directory removed) by ``stop()``.
public final class RedisServer: ThrowawayServer {
    public let port: Int
    public let directory: String
    private let server: ServerProcess

    /// Extra information for test failure messages.
    public var logFile: String { server.logFile }

    private init(executable: String, port: Int, directory: String, arguments: [String]) {
        self.port = port
        self.directory = directory
        // redis-server writes its log there itself (`--logfile`); stdout stays empty.
        server = ServerProcess(name: "redis-server", executable: executable, arguments: arguments, logFile: "\(directory)/redis.log")
    }

    /// Starts a server.
    /// - Parameters:
    ///   - extraArguments: Further `redis-server` options, such as `["--requirepass", "x"]`.
    ///   - tls: When set, the server listens with TLS only, on `port`, using these files.
    public static func start(extraArguments: [String] = [], tls: TLSFiles? = nil) async throws -> RedisServer {
        guard let executable = findExecutable("redis-server") else {
            throw TestEnvironmentError(
                description: "redis-server was not found on PATH; install it with scripts/install-test-deps.sh "
                    + "(apt-get install -y redis-server openssl)"
            )
        }
        return try await ServerProcess.startOnFreePort("redis-test", attempts: 5, make: { port, directory in
            var arguments = [
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", directory,
                "--logfile", "\(directory)/redis.log",
                "--daemonize", "no",
                "--protected-mode", "yes",
            ]
            if let tls {
                arguments += [
                    "--port", "0",
                    "--tls-port", String(port),
                    "--tls-cert-file", tls.serverCertificate,
                    "--tls-key-file", tls.serverKey,
                    "--tls-ca-cert-file", tls.caCertificate,
                    "--tls-auth-clients", "no",
                ]
            } else {
                arguments += ["--port", String(port)]
            }
            return RedisServer(executable: executable, port: port, directory: directory, arguments: arguments + extraArguments)
        }, launch: { try await $0.launch() }, stop: { await $0.stop() })
    }

    /// Starts the process and waits until it accepts connections.
    public func launch() async throws {
        try await server.launch(timeout: .seconds(60)) { $0.contains("Ready to accept connections") }
    }

    /// Kills the process and waits for it to exit.
    ///
    /// SIGKILL is used because a child of the test runner may inherit a signal mask in
    /// which SIGTERM is blocked. The server keeps no data (`--save ""`), and the kernel
    /// closes its sockets, so clients see the same as after a crash or a shutdown.
    public func terminate() async {
        await server.terminate()
    }

    /// Stops the server on this port and starts it again with the same options (empty dataset).
    public func restart() async throws {
        await self.terminate()
        try await self.launch()
    }

    /// Stops the server and deletes its directory.
    public func stop() async {
        await self.terminate()
        try? FileManager.default.removeItem(atPath: self.directory)
    }

    /// The `redis://` URL of the server.
    public var url: String { "redis://127.0.0.1:\(self.port)" }
}

/// Runs `body` with a fresh server and stops the server afterwards, even on failure.
@discardableResult
public func withRedisServer<T>(
    extraArguments: [String] = [],
    tls: TLSFiles? = nil,
    _ body: (RedisServer) async throws -> T
) async throws -> T {
    try await withServer({ try await RedisServer.start(extraArguments: extraArguments, tls: tls) }, body)
}

/// A self-signed CA and a server certificate for `localhost` (DNS name only), made with `openssl`.
public struct TLSFiles: Sendable {
    public var directory: String
    public var caCertificate: String { "\(self.directory)/ca.crt" }
    public var serverCertificate: String { "\(self.directory)/server.crt" }
    public var serverKey: String { "\(self.directory)/server.key" }

    public static func generate() async throws -> TLSFiles {
        guard let openssl = findExecutable("openssl") else {
            throw TestEnvironmentError(description: "openssl was not found on PATH; install it with scripts/install-test-deps.sh")
        }
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("switchboard-redis-tls-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
            .write(toFile: "\(directory)/server.ext", atomically: true, encoding: .utf8)
        let steps: [[String]] = [
            [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=Switchboard Test CA",
            ],
            [
                "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost",
            ],
            [
                "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", "server.crt", "-days", "2", "-extfile", "server.ext",
            ],
        ]
        for step in steps {
            let (status, output) = try await runProgram(openssl, step, in: directory)
            guard status == 0 else {
                throw TestEnvironmentError(description: "openssl \(step.joined(separator: " ")) failed:\n\(output)")
            }
        }
        return TLSFiles(directory: directory)
    }

    public func remove() {
        try? FileManager.default.removeItem(atPath: self.directory)
    }
}
