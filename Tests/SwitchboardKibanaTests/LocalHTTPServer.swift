import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// A stand-in Kibana: Hummingbird on 127.0.0.1 (a free port) that records every request as received and answers
/// with scripted replies, so the importer runs against it over real TCP.
final class LocalHTTPServer: Sendable {
    /// One request as the server saw it.
    struct Recorded: Sendable {
        var method: String
        var path: String
        var query: String
        /// Header values by lowercased name (the last one wins).
        var headers: [String: String]
        var body: [UInt8]
    }

    /// One scripted answer.
    struct Reply: Sendable {
        var status: Int
        var body: String
    }

    private struct State {
        var requests: [Recorded] = []
        var replies: [Reply] = []
        var fallback: Reply
    }

    private final class Store: Sendable {
        let state: Mutex<State>
        init(fallback: Reply) { state = Mutex(State(fallback: fallback)) }

        func handle(_ request: Request) async throws -> Response {
            let body = try await request.body.collect(upTo: 16 << 20)
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName] = field.value }
            let recorded = Recorded(method: request.method.rawValue, path: request.uri.path, query: request.uri.query ?? "", headers: headers, body: Array(body.readableBytesView))
            let reply = state.withLock { s in
                s.requests.append(recorded)
                return s.replies.isEmpty ? s.fallback : s.replies.removeFirst()
            }
            return Response(status: .init(code: reply.status), headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: reply.body)))
        }
    }

    private let store: Store
    private let task: Mutex<Task<Void, any Error>?> = Mutex(nil)
    let port: Int

    var baseURL: String { "http://127.0.0.1:\(port)" }

    private init(port: Int, store: Store) {
        self.port = port
        self.store = store
    }

    /// Starts a server answering `fallback` to every request not scripted with `enqueue`.
    static func start(fallback: Reply) async throws -> LocalHTTPServer {
        let store = Store(fallback: fallback)
        let router = Router(context: BasicRequestContext.self)
        for method: HTTPRequest.Method in [.get, .post, .put, .delete] {
            router.on("**", method: method) { request, _ in try await store.handle(request) }
        }
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        var logger = Logger(label: "local-kibana")
        logger.logLevel = .critical
        let app = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: 0), serverName: "kibana"),
            onServerRunning: { channel in
                continuation.yield(channel.localAddress?.port ?? 0)
                continuation.finish()
            },
            logger: logger)
        let task = Task { try await app.runService(gracefulShutdownSignals: []) }
        var port = 0
        for await p in ports { port = p }
        let server = LocalHTTPServer(port: port, store: store)
        server.task.withLock { $0 = task }
        return server
    }

    /// Scripts the next answers, in order.
    func enqueue(_ replies: Reply...) { store.state.withLock { $0.replies += replies } }

    /// Every request so far.
    var requests: [Recorded] { store.state.withLock { $0.requests } }

    func stop() async {
        let t = task.withLock { $0 }
        t?.cancel()
        _ = try? await t?.value
    }
}
