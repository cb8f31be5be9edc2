import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A throwaway search cluster emulator on a free loopback port: noida-db (Elasticsearch 8 dialect) or
/// osmem-server (OpenSearch dialect), with its own data directory. Neither is Elasticsearch or OpenSearch;
/// they speak the REST subset the adapter uses. A missing binary is an error, never a skip.
public final class SearchServer: Sendable {
    public enum Kind: String, Sendable, CaseIterable, CustomStringConvertible {
        case noida
        case osmem
        public var description: String { self == .noida ? "noida-db (Elasticsearch 8)" : "osmem-server (OpenSearch)" }
    }

    public let kind: Kind
    public let port: Int
    public let directory: String
    private let executable: String
    private let process = NIOLockedValueBox<Process?>(nil)

    /// `http://127.0.0.1:<port>`.
    public var url: String { "http://127.0.0.1:\(port)" }
    public var logFile: String { "\(directory)/server.log" }

    private init(kind: Kind, executable: String, port: Int, directory: String) {
        self.kind = kind
        self.executable = executable
        self.port = port
        self.directory = directory
    }

    /// The emulator's binary: `SWITCHBOARD_NOIDA_DB` / `SWITCHBOARD_OSMEM_SERVER`, else found through the pip package.
    static func executable(_ kind: Kind) throws -> String {
        let (variable, module, relative) = kind == .noida ? ("SWITCHBOARD_NOIDA_DB", "noida_db", "noida-db") : ("SWITCHBOARD_OSMEM_SERVER", "osmem_server", "bin/osmem-server")
        if let path = ProcessInfo.processInfo.environment[variable], access(path, X_OK) == 0 { return path }
        let hint = "install it with scripts/install-test-deps.sh (pip install noida-db==0.2.3 osmem-server==0.1.6) or set \(variable)"
        guard let python = findExecutable("python3") else { throw TestEnvironmentError(description: "python3 not found on PATH, so \(kind) cannot be located; \(hint)") }
        let (status, output) = try runProgram(python, ["-c", "import \(module), os; print(os.path.dirname(\(module).__file__))"])
        let path = output.trimmingCharacters(in: .whitespacesAndNewlines) + "/" + relative
        guard status == 0, access(path, X_OK) == 0 else { throw TestEnvironmentError(description: "\(kind) not found (\(module) is not importable or has no \(relative)); \(hint)") }
        return path
    }

    /// Starts an emulator on a free port.
    public static func start(_ kind: Kind) async throws -> SearchServer {
        let executable = try executable(kind)
        var lastError: (any Error)?
        for _ in 0..<3 {
            let port = try await freeLoopbackPort()
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-\(kind.rawValue)-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let server = SearchServer(kind: kind, executable: executable, port: port, directory: directory)
            do {
                try await server.launch()
                return server
            } catch {
                lastError = error
                await server.stop()
            }
        }
        throw lastError ?? TestEnvironmentError(description: "could not start \(kind)")
    }

    var arguments: [String] {
        switch kind {
        case .noida: ["start", "--data-dir", "\(directory)/data", "--host", "127.0.0.1", "--only", "elasticsearch", "--elasticsearch-port", String(port)]
        case .osmem: ["-addr", "127.0.0.1:\(port)", "-no-stdin-watch"]
        }
    }

    /// Starts the process (again, with the same port and data directory) and waits until it accepts connections.
    public func launch() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        _ = FileManager.default.createFile(atPath: logFile, contents: nil)
        let log = FileHandle(forWritingAtPath: logFile)
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
        self.process.withLockedValue { $0 = process }
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            if await Self.accepts(port: port) { return }
            if !process.isRunning {
                throw TestEnvironmentError(description: "\(kind) exited early: \((try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "")")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestEnvironmentError(description: "\(kind) did not accept connections on \(port) in time")
    }

    static func accepts(port: Int) async -> Bool {
        do {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port).get()
            try? await channel.close()
            return true
        } catch {
            return false
        }
    }

    /// Stops the process: SIGTERM (the emulators save their data then), SIGKILL if it is still there after 5 s.
    public func terminate() async {
        guard let process = self.process.withLockedValue({ $0 }) else { return }
        let pid = process.processIdentifier
        func exists() -> Bool { process.isRunning && pid > 0 && kill(pid, 0) == 0 }
        if exists() { kill(pid, SIGTERM) }
        var deadline = ContinuousClock.now + .seconds(5)
        while exists(), ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(10)) }
        if exists() {
            kill(pid, SIGKILL)
            deadline = ContinuousClock.now + .seconds(5)
            while exists(), ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(10)) }
        }
        // The port is free once nothing accepts on it.
        deadline = ContinuousClock.now + .seconds(5)
        while await Self.accepts(port: port), ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        self.process.withLockedValue { $0 = nil }
    }

    /// Stops the process and deletes its directory.
    public func stop() async {
        await terminate()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// Runs `body` with a fresh emulator and stops it afterwards, even on failure.
@discardableResult
public func withSearchServer<T>(_ kind: SearchServer.Kind, _ body: (SearchServer) async throws -> T) async throws -> T {
    let server = try await SearchServer.start(kind)
    do {
        let result = try await body(server)
        await server.stop()
        return result
    } catch {
        await server.stop()
        throw error
    }
}
