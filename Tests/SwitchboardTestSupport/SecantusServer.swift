import Foundation
import NIOConcurrencyHelpers

/// A throwaway SecantusDB server (`secantusd-py`, a MongoDB wire-protocol peer for one node — not MongoDB) on
/// 127.0.0.1, with its storage in its own temporary directory, stopped (and the directory removed) by ``stop()``.
///
/// The executable is `$SECANTUSD` if set, else `secantusd-py` on `PATH` (`scripts/install-test-deps.sh`
/// installs it). When it is missing, ``start()`` throws: tests that need it fail, they are never skipped.
public final class SecantusServer: Sendable {
    public let port: Int
    public let directory: String
    private let executable: String
    private let process = NIOLockedValueBox<Process?>(nil)

    /// The server's output (for failure messages).
    public var logFile: String { "\(directory)/secantusd.log" }

    private init(executable: String, port: Int, directory: String) {
        self.executable = executable
        self.port = port
        self.directory = directory
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
        var lastError: (any Error)?
        for _ in 0..<5 {
            let port = try await freeLoopbackPort()
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-secantus-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let server = SecantusServer(executable: executable, port: port, directory: directory)
            do {
                try await server.launch()
                return server
            } catch {
                lastError = error
                await server.stop()
            }
        }
        throw lastError ?? TestEnvironmentError(description: "could not start secantusd-py")
    }

    private func launch() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["--host", "127.0.0.1", "--port", String(port), "--storage-path", "\(directory)/data", "--standalone", "--log-level", "INFO"]
        _ = FileManager.default.createFile(atPath: logFile, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logFile))
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
        try? log.close()
        self.process.withLockedValue { $0 = process }

        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            let text = (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? ""
            if text.contains("listening on 127.0.0.1:\(port)") { return }
            if !process.isRunning {
                throw TestEnvironmentError(description: "secantusd-py exited early (status \(process.terminationStatus)):\n\(text)")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestEnvironmentError(description: "secantusd-py did not listen on port \(port) within 60 s; log:\n\((try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "")")
    }

    /// Kills the server (SIGKILL, as for `RedisServer`: a test runner's child may have SIGTERM blocked) and
    /// waits for it to exit.
    public func terminate() async {
        guard let process = process.withLockedValue({ $0 }) else { return }
        let pid = process.processIdentifier
        if process.isRunning || (pid > 0 && kill(pid, 0) == 0) { kill(pid, SIGKILL) }
        let deadline = ContinuousClock.now + .seconds(10)
        while process.isRunning, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        self.process.withLockedValue { $0 = nil }
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
    let server = try await SecantusServer.start()
    do {
        let result = try await body(server)
        await server.stop()
        return result
    } catch {
        await server.stop()
        throw error
    }
}
