import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A throwaway search cluster emulator on a free loopback port: noida-db (Elasticsearch 8 dialect) or
/// osmem-server (OpenSearch dialect), with its own data directory. Neither is Elasticsearch or OpenSearch;
/// they speak the REST subset the adapter uses. A missing binary is an error, never a skip.
public final class SearchServer: ThrowawayServer {
    public enum Kind: String, Sendable, CaseIterable, CustomStringConvertible {
        case noida
        case osmem
        public var description: String { self == .noida ? "noida-db (Elasticsearch 8)" : "osmem-server (OpenSearch)" }
    }

    public let kind: Kind
    public let port: Int
    public let directory: String
    private let server: ServerProcess

    /// `http://127.0.0.1:<port>`.
    public var url: String { "http://127.0.0.1:\(port)" }
    public var logFile: String { server.logFile }

    private init(kind: Kind, executable: String, port: Int, directory: String) {
        self.kind = kind
        self.port = port
        self.directory = directory
        let arguments: [String] =
            switch kind {
            case .noida: ["start", "--data-dir", "\(directory)/data", "--host", "127.0.0.1", "--only", "elasticsearch", "--elasticsearch-port", String(port)]
            case .osmem: ["-addr", "127.0.0.1:\(port)", "-no-stdin-watch"]
            }
        server = ServerProcess(name: kind.description, executable: executable, arguments: arguments, logFile: "\(directory)/server.log")
    }

    /// The emulator's binary: `SWITCHBOARD_NOIDA_DB` / `SWITCHBOARD_OSMEM_SERVER`, else found through the pip package.
    static func executable(_ kind: Kind) async throws -> String {
        let (variable, module, relative) = kind == .noida ? ("SWITCHBOARD_NOIDA_DB", "noida_db", "noida-db") : ("SWITCHBOARD_OSMEM_SERVER", "osmem_server", "bin/osmem-server")
        if let path = ProcessInfo.processInfo.environment[variable], access(path, X_OK) == 0 { return path }
        let hint = "install it with scripts/install-test-deps.sh (pip install noida-db==0.2.3 osmem-server==0.1.6) or set \(variable)"
        guard let python = findExecutable("python3") else { throw TestEnvironmentError(description: "python3 not found on PATH, so \(kind) cannot be located; \(hint)") }
        let (status, output) = try await runProgram(python, ["-c", "import \(module), os; print(os.path.dirname(\(module).__file__))"])
        let path = output.trimmingCharacters(in: .whitespacesAndNewlines) + "/" + relative
        guard status == 0, access(path, X_OK) == 0 else { throw TestEnvironmentError(description: "\(kind) not found (\(module) is not importable or has no \(relative)); \(hint)") }
        return path
    }

    /// Starts an emulator on a free port.
    public static func start(_ kind: Kind) async throws -> SearchServer {
        let executable = try await executable(kind)
        return try await ServerProcess.startOnFreePort(kind.rawValue, attempts: 3, make: { port, directory in
            SearchServer(kind: kind, executable: executable, port: port, directory: directory)
        }, launch: { try await $0.launch() }, stop: { await $0.stop() })
    }

    /// Starts the process (again, with the same port and data directory) and waits until it accepts connections.
    public func launch() async throws {
        let port = port
        try await server.launch(timeout: .seconds(60)) { _ in await acceptsConnections(port: port) }
    }

    /// Stops the process: SIGTERM (the emulators save their data then), SIGKILL if it is still there after 5 s;
    /// then waits until the port is free.
    public func terminate() async {
        await server.terminate(signals: [SIGTERM, SIGKILL], wait: .seconds(5))
        let deadline = ContinuousClock.now + .seconds(5)
        while await acceptsConnections(port: port), ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
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
    try await withServer({ try await SearchServer.start(kind) }, body)
}
