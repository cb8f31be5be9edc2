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

    /// A `mongodb://` URL of the server, naming `database` when given; `options` default to ``patientOptions``.
    public func url(database: String? = nil, options: String? = SecantusServer.patientOptions) -> String {
        "mongodb://127.0.0.1:\(port)/\(database ?? "")" + (options.map { "?\($0)" } ?? "")
    }
}

extension SecantusServer {
    /// The client's waits on a server of the tests, whose start has been waited for: as long as a test may last
    /// (two minutes). libmongoc's defaults (10 s to connect and do the handshake, 30 s to select a server) assume a
    /// quiet machine: the emulator, a Python process sharing two cores with the rest of a parallel test run,
    /// was seen to miss them (`idempotencyRace`'s eight new connections at once).
    public static let patientOptions = "connectTimeoutMS=60000&serverSelectionTimeoutMS=100000"
}

/// Runs `body` with a fresh server and stops the server afterwards, even on failure.
///
/// At most `SecantusServer.concurrentServers` run at once in a test run; further callers wait their turn. Each
/// server is a Python process that takes about a second of CPU to start and most of a core while busy: the ~20
/// MongoDB tests starting theirs together kept both cores of a 2-core machine saturated (load average 12) for the
/// first 15 s of a run, and timing bounds of unrelated tests failed.
@discardableResult
public func withSecantusServer<T>(_ body: (SecantusServer) async throws -> T) async throws -> T {
    try await SecantusServer.turns.withTurn {
        try await withServer({ try await SecantusServer.start() }, body)
    }
}

extension SecantusServer {
    /// Servers running at once (`SWITCHBOARD_TEST_SECANTUS_SERVERS`, default 2).
    public static let concurrentServers = ProcessInfo.processInfo.environment["SWITCHBOARD_TEST_SECANTUS_SERVERS"].flatMap(Int.init).map { max(1, $0) } ?? 2
    static let turns = Turns(concurrentServers)
}

/// A counting semaphore for async code: `withTurn` runs its body once fewer than `limit` bodies are running,
/// callers waiting in arrival order; it never blocks a thread.
public final class Turns: Sendable {
    private struct State {
        var running = 0
        var waiting: [CheckedContinuation<Void, Never>] = []
    }
    private let limit: Int
    private let state = NIOLockedValueBox(State())

    public init(_ limit: Int) { self.limit = max(1, limit) }

    public func withTurn<T>(_ body: () async throws -> T) async throws -> T {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLockedValue { s -> Bool in
                if s.running < limit {
                    s.running += 1
                    return true
                }
                s.waiting.append(c)
                return false
            }
            if now { c.resume() }
        }
        defer {
            // Hands the turn to the next caller, if any (the count stays the same), else gives it back.
            let next = state.withLockedValue { s -> CheckedContinuation<Void, Never>? in
                if s.waiting.isEmpty {
                    s.running -= 1
                    return nil
                }
                return s.waiting.removeFirst()
            }
            next?.resume()
        }
        return try await body()
    }
}
