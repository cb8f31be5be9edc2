import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A server process a test starts and stops: the part the throwaway servers (`RedisServer`, `SecantusServer`,
/// `SearchServer`, the providers' SMTP server) share. Its output goes to `logFile`; `launch` waits until the
/// server is ready.
public final class ServerProcess: Sendable {
    public let name: String
    public let executable: String
    public let arguments: [String]
    /// Where stdout and stderr go (truncated at each launch); failure messages quote it.
    public let logFile: String
    private let process = NIOLockedValueBox<ChildProcess?>(nil)

    public init(name: String, executable: String, arguments: [String], logFile: String) {
        self.name = name
        self.executable = executable
        self.arguments = arguments
        self.logFile = logFile
    }

    /// The log so far.
    public var log: String { (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "" }

    /// Starts the process and waits up to `timeout` for `ready` (given the log); throws with the log if the
    /// process exits first or the time runs out.
    public func launch(timeout: Duration, ready: @Sendable (String) async -> Bool) async throws {
        let process = ChildProcess()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        _ = FileManager.default.createFile(atPath: logFile, contents: nil)
        let output = FileHandle(forWritingAtPath: logFile)
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        try? output?.close()
        self.process.withLockedValue { $0 = process }

        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if await ready(log) { return }
            if !process.isRunning {
                throw TestEnvironmentError(description: "\(name) exited early (status \(process.terminationStatus)):\n\(log)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestEnvironmentError(description: "\(name) did not become ready within \(timeout); log:\n\(log)")
    }

    /// Sends each of `signals` in turn while the process is still there, waiting up to `wait` after each.
    public func terminate(signals: [Int32] = [SIGKILL], wait: Duration = .seconds(10)) async {
        guard let process = self.process.withLockedValue({ $0 }) else { return }
        let pid = process.processIdentifier
        // Foundation's `isRunning` is not always reliable on Linux when several child processes come and go,
        // so also ask the kernel whether the process still exists.
        func exists() -> Bool { process.isRunning || (pid > 0 && kill(pid, 0) == 0 && !Self.isZombie(pid)) }
        for signal in signals where exists() {
            kill(pid, signal)
            let deadline = ContinuousClock.now + wait
            while exists(), ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(5)) }
        }
        self.process.withLockedValue { $0 = nil }
    }

    private static func isZombie(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return true }
        return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }

    /// Starts a server on a free loopback port with a fresh temporary directory (`switchboard-<prefix>-…`),
    /// trying up to `attempts` ports (another process may take a port between the probe and the bind).
    public static func startOnFreePort<Server>(
        _ prefix: String, attempts: Int,
        make: (_ port: Int, _ directory: String) throws -> Server,
        launch: (Server) async throws -> Void, stop: (Server) async -> Void
    ) async throws -> Server {
        var lastError: (any Error)?
        for _ in 0..<attempts {
            let port = try await freeLoopbackPort()
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-\(prefix)-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let server = try make(port, directory)
            do {
                try await launch(server)
                return server
            } catch {
                lastError = error
                await stop(server)
            }
        }
        throw lastError ?? TestEnvironmentError(description: "could not start \(prefix)")
    }
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
public func acceptsConnections(port: Int) async -> Bool {
    do {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.milliseconds(500))
            .connect(host: "127.0.0.1", port: port).get()
        try? await channel.close()
        return true
    } catch {
        return false
    }
}

/// A throwaway server of the tests: `stop()` ends it and removes its directory.
public protocol ThrowawayServer: Sendable {
    func stop() async
}

/// Runs `body` with a server from `start` and stops the server afterwards, even on failure.
@discardableResult
public func withServer<Server: ThrowawayServer, T>(_ start: () async throws -> Server, _ body: (Server) async throws -> T) async throws -> T {
    let server = try await start()
    do {
        let result = try await body(server)
        await server.stop()
        return result
    } catch {
        await server.stop()
        throw error
    }
}
