import CoreMetrics
import HTTPTypes
import Hummingbird
import NIOCore
import SwitchboardCore

/// `GET /metrics`: the process's metrics in the Prometheus text format, open or behind a bearer token
/// (`SWITCHBOARD_METRICS_TOKEN`). Not under the API keys: a scraper has no key, and the metrics hold counts and
/// durations, never a message, a recipient or a key.
public struct MetricsEndpoint: Sendable {
    /// The token a scraper must send as `Authorization: Bearer <token>`, or nil for none.
    public let token: String?
    /// Renders the metrics (sampling what is read when scraped first).
    public let render: @Sendable () async -> [UInt8]
    /// Where the HTTP metrics go (the exposition `render` renders).
    public let factory: any MetricsFactory

    public init(token: String?, factory: any MetricsFactory = MetricsSystem.factory, render: @escaping @Sendable () async -> [UInt8]) {
        self.token = token
        self.factory = factory
        self.render = render
    }

    /// The media type of the Prometheus text exposition format.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// Answers one scrape.
    public func respond(_ request: Request) async throws -> Response {
        if let token {
            let given = request.headers[.authorization].flatMap { value -> Substring? in
                let parts = value.split(separator: " ", maxSplits: 1)
                guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
                return parts[1].drop { $0 == " " }
            }
            guard let given, APIKeySecret.constantTimeEquals(String(given), token) else {
                throw APIError(.unauthorized, code: "unauthorized", message: "GET /metrics needs Authorization: Bearer <SWITCHBOARD_METRICS_TOKEN>.", headers: [.wwwAuthenticate: "Bearer realm=\"metrics\""])
            }
        }
        let bytes = await render()
        return Response(status: .ok, headers: [.contentType: Self.contentType], body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// A router serving only `/metrics` and the liveness check: what a worker or the logging service listens
    /// on (`--metrics-port`), since they have no API.
    public func router() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.get("/metrics") { request, _ in try await self.respond(request) }
        router.get("/health") { _, _ in Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: #"{"status":"ok"}"#))) }
        return router
    }
}
