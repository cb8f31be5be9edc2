import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOSSL
import ServiceLifecycle
import Synchronization
import SwitchboardApp
import SwitchboardCore
@testable import SwitchboardHTTP

/// The API over a fresh embedded engine, served for real on 127.0.0.1 as the router serves it: its server
/// setup (the malformed-request handler, TLS when given) and its connection cap. HummingbirdTesting's live mode
/// rebuilds the configuration without the cap, so this runs the application itself.
struct LiveAPI {
    let fixture: APIFixture
    let api: API
    let port: Int

    static func run<T>(
        cors: CORSPolicy = .none, tls: TLSConfiguration? = nil, maxConnections: Int = 10_000, warningInterval: Duration = .seconds(10),
        logs: LogCapture = LogCapture(), _ body: (LiveAPI) async throws -> T
    ) async throws -> T {
        let fixture = try APIFixture()
        let logger = logs.logger
        let api = API(adapters: fixture.adapters, dispatcher: Dispatcher(adapters: fixture.adapters, options: PipelineOptions()), logger: logger, cors: cors, warningInterval: warningInterval)
        let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let app = Application(
            router: api.router(),
            server: try HTTPServerSetup.server(idleTimeout: nil, tls: tls, log: api.refusals),
            configuration: .init(address: .hostname("127.0.0.1", port: 0), availableConnectionsDelegate: ConnectionCap(maximum: maxConnections, log: api.refusals)),
            onServerRunning: { channel in
                portContinuation.yield(channel.localAddress?.port ?? 0)
                portContinuation.finish()
            },
            logger: logger)
        // Stopped as the process stops it: a graceful shutdown (a cancellation logs errors of its own).
        let group = ServiceGroup(configuration: .init(services: [.init(service: app)], logger: logger))
        let server = Task { try await group.run() }
        func stop() async {
            await group.triggerGracefulShutdown()
            _ = await server.result
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else {
            await stop()
            throw POSIXError(.EADDRNOTAVAIL)
        }
        do {
            let result = try await body(LiveAPI(fixture: fixture, api: api, port: port))
            await stop()
            return result
        } catch {
            await stop()
            throw error
        }
    }
}

/// Every log line of a logger, kept for the test to read.
final class LogCapture: Sendable {
    struct Line: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: Logger.Metadata
    }

    let lines = Mutex<[Line]>([])

    var logger: Logger {
        var logger = Logger(label: "capture") { _ in Handler(capture: self) }
        logger.logLevel = .trace
        return logger
    }

    var all: [Line] { lines.withLock { $0 } }

    func matching(_ text: String) -> [Line] { all.filter { $0.message.contains(text) } }

    struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var m = metadata
            m.merge(event.metadata ?? [:]) { $1 }
            capture.lines.withLock { $0.append(Line(level: event.level, message: "\(event.message)", metadata: m)) }
        }
    }
}

/// A plain TCP connection to 127.0.0.1: bytes in, bytes out, no HTTP client in between (so malformed requests
/// reach the server as they are written).
final class RawSocket: @unchecked Sendable {
    let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EMFILE) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        // No close here: the object is whole, so deinit runs when init throws and closes fd. Closing it here too
        // closed it twice — the second time, a number NIO had meanwhile reused (a crash in getsockname, EBADF).
        guard rc == 0 else { throw POSIXError(.ECONNREFUSED) }
    }

    deinit { close(fd) }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw POSIXError(.EPIPE) }
            sent += n
        }
    }

    /// Half-closes: the server reads the end of the request stream.
    func finishWriting() { shutdown(fd, Int32(SHUT_WR)) }

    /// Everything the server writes until it closes the connection, or what came when `timeout` passed.
    /// Polls without blocking a thread of the cooperative pool.
    func readUntilClosed(timeout: Duration = .seconds(20)) async -> String {
        var received: [UInt8] = []
        let deadline = ContinuousClock.now + timeout
        var buffer = [UInt8](repeating: 0, count: 65536)
        while ContinuousClock.now < deadline {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&poller, 1, 0) > 0 {
                let n = recv(fd, &buffer, buffer.count, 0)
                if n <= 0 { break }
                received += buffer[..<n]
                continue
            }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return String(decoding: received, as: UTF8.self)
    }

    /// What arrives until `predicate` holds for it, or `timeout` passes.
    func read(timeout: Duration = .seconds(20), until predicate: (String) -> Bool) async -> String {
        var received: [UInt8] = []
        let deadline = ContinuousClock.now + timeout
        var buffer = [UInt8](repeating: 0, count: 65536)
        while ContinuousClock.now < deadline, !predicate(String(decoding: received, as: UTF8.self)) {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&poller, 1, 0) > 0 {
                let n = recv(fd, &buffer, buffer.count, 0)
                if n <= 0 { break }
                received += buffer[..<n]
                continue
            }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return String(decoding: received, as: UTF8.self)
    }
}

/// One HTTP/1.1 answer read off a raw connection.
struct RawAnswer {
    var status: Int
    var headers: [(String, String)]
    var body: String

    func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }

    /// The answers in `text`, in order (each with a Content-Length body).
    static func parse(_ text: String) -> [RawAnswer] {
        var answers: [RawAnswer] = []
        var rest = Substring(text)
        while let end = rest.range(of: "\r\n\r\n") {
            let lines = rest[..<end.lowerBound].components(separatedBy: "\r\n")
            guard let statusLine = lines.first, statusLine.hasPrefix("HTTP/1."), let status = Int(statusLine.split(separator: " ").dropFirst().first ?? "") else { break }
            let headers = lines.dropFirst().compactMap { line -> (String, String)? in
                guard let colon = line.firstIndex(of: ":") else { return nil }
                return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
            }
            var answer = RawAnswer(status: status, headers: Array(headers), body: "")
            let length = Int(answer.header("Content-Length") ?? "0") ?? 0
            let bodyStart = end.upperBound
            let bytes = Array(rest[bodyStart...].utf8)
            answer.body = String(decoding: bytes.prefix(length), as: UTF8.self)
            answers.append(answer)
            rest = Substring(String(decoding: bytes.dropFirst(length), as: UTF8.self))
        }
        return answers
    }
}
