import Foundation
import NIOConcurrencyHelpers

/// A throwaway SecantusDB server (`secantusd-py`, a MongoDB wire-protocol peer for one node — not MongoDB) on
/// 127.0.0.1, with its storage in its own temporary directory, stopped (and the directory removed) by ``stop()``.
///
/// The executable is `$SECANTUSD` if set, else `secantusd-py` on `PATH` (`scripts/install-test-deps.sh`
/// installs it). When it is missing, ``start()`` throws: tests that need it fail, they are never skipped.
public final class SecantusServer: ThrowawayServer {
    public let port: Int
    public let directory: String
    private let server: ServerProcess

    /// The server's output (for failure messages).
    public var logFile: String { server.logFile }

    private init(executable: String, port: Int, directory: String) {
        self.port = port
        self.directory = directory
        server = ServerProcess(
            name: "secantusd-py", executable: executable,
            arguments: ["--host", "127.0.0.1", "--port", String(port), "--storage-path", "\(directory)/data", "--standalone", "--log-level", "INFO"],
            logFile: "\(directory)/secantusd.log")
    }

    /// Starts a server on a free loopback port and waits until it listens.
    public static func start() async throws -> SecantusServer {
        let executable: String
        if let configured = ProcessInfo.processInfo.environment["SECANTUSD"], !configured.isEmpty {
            executable = configured
        } else if let found = findExecutable("secantusd-py") {
            executable = found
        } else {
            throw TestEnvironmentError(
                description: "secantusd-py was not found on PATH (nor $SECANTUSD set); the MongoDB tests need it: "
                    + "install it with scripts/install-test-deps.sh (pip install SecantusDB==0.7.0b3)")
        }
        return try await ServerProcess.startOnFreePort("secantus", attempts: 5, make: { port, directory in
            SecantusServer(executable: executable, port: port, directory: directory)
        }, launch: { server in
            try await server.server.launch(timeout: .seconds(60)) { $0.contains("listening on 127.0.0.1:\(server.port)") }
        }, stop: { await $0.stop() })
    }

    /// Kills the server (SIGKILL, as for `RedisServer`: a test runner's child may have SIGTERM blocked) and
    /// waits for it to exit.
    public func terminate() async {
        await server.terminate()
    }

    /// Stops the server and deletes its directory.
    public func stop() async {
        await terminate()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A `mongodb://` URL of the server, naming `database` when given.
    public func url(database: String? = nil, options: String? = nil) -> String {
        "mongodb://127.0.0.1:\(port)/\(database ?? "")" + (options.map { "?\($0)" } ?? "")
    }
}

/// Runs `body` with a fresh server and stops the server afterwards, even on failure.
@discardableResult
public func withSecantusServer<T>(_ body: (SecantusServer) async throws -> T) async throws -> T {
    try await withServer({ try await SecantusServer.start() }, body)
}
