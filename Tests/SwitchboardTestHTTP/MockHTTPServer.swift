import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// A local HTTP server (Hummingbird on 127.0.0.1, a free port) standing in for a provider's API or Kibana: it
/// records every request exactly as received and answers with scripted replies, so the real client runs
/// against it over real TCP.
public final class MockHTTPServer: Sendable {
    /// One request as the server saw it.
    public struct Recorded: Sendable {
        public var method: String
        public var path: String
        public var query: String
        /// Header values by lowercased name (the last one wins).
        public var headers: [String: String]
        public var body: [UInt8]

        public var text: String { String(decoding: body, as: UTF8.self) }
        /// The body as form fields, in order (percent-decoding done by Foundation, independently of ours).
        public var form: [(String, String)] {
            var c = URLComponents()
            c.percentEncodedQuery = text.replacingOccurrences(of: "+", with: "%20")
            return (c.queryItems ?? []).map { ($0.name, $0.value ?? "") }
        }
        /// The body as a JSON object (Foundation's parser).
        public var json: NSDictionary? { try? JSONSerialization.jsonObject(with: Data(body)) as? NSDictionary }
    }

    /// One scripted answer.
    public struct Reply: Sendable {
        public var status: Int
        public var body: String
        public var delay: Duration?
        public var contentType: String
        /// More answer headers (`Retry-After`).
        public var headers: [String: String]

        public init(status: Int, body: String, delay: Duration? = nil, contentType: String = "application/json", headers: [String: String] = [:]) {
            self.status = status
            self.body = body
            self.delay = delay
            self.contentType = contentType
            self.headers = headers
        }
    }

    private struct State {
        var requests: [Recorded] = []
        var replies: [Reply] = []
        var fallback: Reply
    }

    /// The shared state, reachable from the route closures.
    private final class Store: Sendable {
        let state: Mutex<State>
        init(fallback: Reply) { state = Mutex(State(fallback: fallback)) }

        func handle(_ request: Request) async throws -> Response {
            let body = try await request.body.collect(upTo: 16 << 20)
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName] = field.value }
            if let authority = request.head.authority { headers["host"] = authority }
            let recorded = Recorded(method: request.method.rawValue, path: request.uri.path, query: request.uri.query ?? "", headers: headers, body: Array(body.readableBytesView))
            let reply = state.withLock { s in
                s.requests.append(recorded)
                return s.replies.isEmpty ? s.fallback : s.replies.removeFirst()
            }
            if let delay = reply.delay { try? await Task.sleep(for: delay) }
            var fields: HTTPFields = [.contentType: reply.contentType]
            for (name, value) in reply.headers { if let n = HTTPField.Name(name) { fields[n] = value } }
            return Response(status: .init(code: reply.status), headers: fields, body: .init(byteBuffer: ByteBuffer(string: reply.body)))
        }
    }

    private let store: Store
    private let task: Mutex<Task<Void, any Error>?> = Mutex(nil)
    public let port: Int

    public var baseURL: String { "http://127.0.0.1:\(port)" }

    private init(port: Int, store: Store) {
        self.port = port
        self.store = store
    }

    /// Starts a server answering `fallback` to every request not scripted with `enqueue`.
    public static func start(fallback: Reply = Reply(status: 500, body: #"{"error":"no reply scripted"}"#)) async throws -> MockHTTPServer {
        let store = Store(fallback: fallback)
        let router = Router(context: BasicRequestContext.self)
        for method: HTTPRequest.Method in [.get, .post, .put, .delete] {
            router.on("**", method: method) { request, _ in try await store.handle(request) }
        }
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        var logger = Logger(label: "mock-provider")
        logger.logLevel = .critical
        let app = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: 0), serverName: "mock"),
            onServerRunning: { channel in
                continuation.yield(channel.localAddress?.port ?? 0)
                continuation.finish()
            },
            logger: logger)
        let task = Task { try await app.runService(gracefulShutdownSignals: []) }
        var port = 0
        for await p in ports { port = p }
        let server = MockHTTPServer(port: port, store: store)
        server.task.withLock { $0 = task }
        return server
    }

    /// Scripts the next answers, in order.
    public func enqueue(_ replies: Reply...) { store.state.withLock { $0.replies += replies } }

    /// Every request so far.
    public var requests: [Recorded] { store.state.withLock { $0.requests } }

    public func stop() async {
        let t = task.withLock { $0 }
        t?.cancel()
        _ = try? await t?.value
    }
}
