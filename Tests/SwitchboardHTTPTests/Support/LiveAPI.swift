import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOSSL
import ServiceLifecycle
import Synchronization
import SwitchboardApp
import SwitchboardCore
import SwitchboardTestSupport
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
