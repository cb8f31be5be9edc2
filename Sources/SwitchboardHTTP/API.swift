import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import SwitchboardApp
import SwitchboardCore
import SwitchboardTelemetry
import Synchronization

/// The HTTP API: the seed's `POST /api/v1/communication` contract, read endpoints, sandbox and health.
public struct API: Sendable {
    /// Largest request body accepted (an email's: `maxEmailBodySize`).
    public static let maxBodySize = 1 << 20
    /// Largest body of an email message (`"type": "email"`): 15 MiB, so that 10 MiB of attachments in base64
    /// (13.4 MiB) fit beside the 1 MiB of text and HTML. Every other body keeps `maxBodySize`.
    public static let maxEmailBodySize = 15 << 20
    /// `Retry-After` of a 503 `store_unavailable` (a store error that passes: full disk, lock, unreachable).
    public static let storeRetryAfterSeconds = 5

    let adapters: Adapters
    let dispatcher: Dispatcher
    let logger: Logger
    let webhooks: Webhooks
    /// Who may call `/api/*`: API keys and their cache, or open.
    let access: AccessControl
    /// The last time the store refused a POST for a reason that passes, until a POST is stored again.
    let writes = StoreWriteHealth()
    /// The browser origins allowed to call the API (none by default).
    let cors: CORSPolicy
    /// Warnings that repeat per request (refusals, malformed requests), one line per kind and interval.
    public let refusals: AggregatedLog
    /// `GET /metrics` and the HTTP metrics (`HTTPMetricsMiddleware`), or nil for neither.
    let metrics: MetricsEndpoint?
    /// Live status (`EventHub`): SSE and WebSocket; nil: those endpoints answer 503 `events_unavailable`.
    let events: EventHub?
    /// Status callbacks to clients (`/api/v1/webhooks`); nil: those endpoints answer 404 `callbacks_disabled`.
    let callbacks: CallbackDirectory?
    /// Message templates (`/api/v1/templates`, `data.templateId`); nil: those answer 404 `templates_disabled`.
    let templates: TemplateLibrary?

    /// - Parameters:
    ///   - webhooks: the provider status webhooks to serve (none by default).
    ///   - access: API keys (`KeyCache`) and whether they are enforced; `.open` (the default) asks no key.
    ///   - cors: the browser origins allowed (none by default).
    ///   - warningInterval: how long repeated warnings of one kind are counted before their count is logged.
    ///   - metrics: serves `GET /metrics` and records the HTTP metrics (none by default).
    public init(adapters: Adapters, dispatcher: Dispatcher, logger: Logger, webhooks: Webhooks = Webhooks(), access: AccessControl = .open, cors: CORSPolicy = .none, warningInterval: Duration = .seconds(10), metrics: MetricsEndpoint? = nil, events: EventHub? = nil, callbacks: CallbackDirectory? = nil, templates: TemplateLibrary? = nil) {
        self.callbacks = callbacks
        self.templates = templates
        self.metrics = metrics
        self.events = events
        self.adapters = adapters
        self.dispatcher = dispatcher
        self.logger = logger
        self.webhooks = webhooks
        self.access = access
        self.cors = cors
        self.refusals = AggregatedLog(logger: logger, interval: warningInterval)
    }

    /// One endpoint: its method, its path (Hummingbird's syntax, `:name` for a parameter), the API key scope it
    /// requires (nil: open to all, as health and the provider webhooks are) and what answers it.
    struct Route: Sendable {
        let method: HTTPRequest.Method
        let path: String
        let scope: APIKeyScope?
        let handler: @Sendable (Request, APIRequestContext) async throws -> Response

        init(_ method: HTTPRequest.Method, _ path: String, scope: APIKeyScope? = nil, _ handler: @escaping @Sendable (Request, APIRequestContext) async throws -> Response) {
            self.method = method
            self.path = path
            self.scope = scope
            self.handler = handler
        }

        /// The path's segments, a parameter as `*`.
        var segments: [String] { path.split(separator: "/").map { $0.hasPrefix(":") ? "*" : String($0) } }
    }

    /// Every endpoint, in one list: each is registered with the router, and the list answers 405 (a known
    /// path with another method) with its `Allow`. Every `/api/` route names its scope: `send` to create
    /// messages, `read` for every GET, `admin` for the rest (keys); `admin` grants all three.
    func routes() -> [Route] {
        [
            Route(.post, "/api/v1/communication", scope: .send) { request, context in try await self.create(request, context) },
            Route(.get, "/api/v1/communication/:id", scope: .read) { request, context in try await self.show(request, context) },
            Route(.post, "/api/v1/communication/:id/cancel", scope: .send) { request, context in try await self.cancel(request, context) },
            Route(.get, "/api/v1/communication/:id/events", scope: .read) { request, context in try await self.communicationEvents(request, context) },
            Route(.get, "/api/v1/events", scope: .read) { request, context in try await self.allEvents(request, context) },
            // Reached only by a request that is not a WebSocket upgrade (the upgrade router answers those).
            Route(.get, "/api/v1/ws", scope: .read) { _, _ in
                throw APIError(.init(code: 426, reasonPhrase: "Upgrade Required"), code: "upgrade_required", message: "GET /api/v1/ws is a WebSocket: send Connection: Upgrade and Upgrade: websocket.", headers: [.upgrade: "websocket"])
            },
            Route(.get, "/api/v1/communications", scope: .read) { request, _ in try await self.list(request) },
            Route(.post, "/api/v1/communications/batch", scope: .send) { request, context in try await self.batch(request, context) },
            Route(.get, "/api/v1/logs", scope: .read) { request, _ in try await self.logs(request) },
            Route(.get, "/api/v1/sandbox/messages", scope: .read) { request, _ in try await self.sandbox(request) },
            Route(.get, "/api/v1/stats", scope: .read) { _, _ in try await self.stats() },
            Route(.get, "/api/v1/dead-letters", scope: .read) { request, _ in try await self.deadLetters(request) },
            Route(.post, "/api/v1/dead-letters/redrive", scope: .send) { request, context in try await self.redrive(request, context) },
            Route(.get, "/api/v1/health", scope: .read) { _, _ in await self.healthDetails() },
            Route(.get, "/health") { _, _ in API.live() },
            Route(.get, "/health/live") { _, _ in API.live() },
            Route(.get, "/health/ready") { _, _ in await self.ready() },
        ] + keyRoutes() + templateRoutes() + callbackRoutes() + suppressionRoutes() + webhookRoutes() + documentRoutes() + metricsRoutes()
    }

    func metricsRoutes() -> [Route] {
        guard let metrics else { return [] }
        return [Route(.get, "/metrics") { request, _ in try await metrics.respond(request) }]
    }

    /// Builds the router. HEAD is answered wherever GET is.
    public func router() -> Router<APIRequestContext> {
        let router = Router(context: APIRequestContext.self, options: .autoGenerateHeadEndpoints)
        let routes = self.routes()
        let table = RouteTable(routes.map { ($0.method, $0.segments) })
        // Metrics outermost, so every answer is counted, a refused or malformed one too.
        if let metrics { router.add(middleware: HTTPMetricsMiddleware(factory: metrics.factory)) }
        // Tracing (only when a tracer is bootstrapped): a server span per request, child of an incoming
        // `traceparent`; the message's spans descend from it.
        if dispatcher.tracing.enabled { router.add(middleware: TracingMiddleware()) }
        // CORS first: a preflight needs no key.
        router.add(middleware: HTTPConventionsMiddleware(cors: cors, routes: table))
        router.add(middleware: ErrorMiddleware(logger: logger, refusals: refusals, writes: writes, routes: table))
        router.add(middleware: KeyAuthenticator(access: access, logger: logger))
        for route in routes {
            let handler = route.handler
            guard let scope = route.scope else {
                router.on(RouterPath(route.path), method: route.method, use: handler)
                continue
            }
            let what = "\(route.method.rawValue) \(route.path.replacingOccurrences(of: ":id", with: "{id}"))"
            router.on(RouterPath(route.path), method: route.method) { request, context in
                try Self.authorize(scope, context, what)
                return try await handler(request, context)
            }
        }
        return router
    }

    /// Checks that the request's key grants `scope` (`KeyAuthenticator` has let through only valid keys, or
    /// requests without one while the API is open): a 403 `forbidden` naming the scope otherwise.
    static func authorize(_ scope: APIKeyScope, _ context: APIRequestContext, _ what: String) throws {
        if let key = context.identity {
            guard key.grants(scope) else {
                throw APIError(.forbidden, code: "forbidden", message: "The API key \(key.id) lacks the \(scope.rawValue) scope that \(what) requires (it has \(key.scopes.sorted().map(\.rawValue).joined(separator: ", "))).")
            }
        } else if !context.openAccess {
            throw KeyAuthenticator.unauthorized("An API key is required: send it as Authorization: Bearer <key> or X-API-Key: <key>.")
        }
    }

    // MARK: POST /api/v1/communication

    static let idempotencyKey = HTTPField.Name("Idempotency-Key")!
    static let replayed = HTTPField.Name("Idempotent-Replayed")!
    /// W3C Trace Context: read on `POST /api/v1/communication`, and answered with the message's trace context.
    static let traceparent = HTTPField.Name("traceparent")!

    /// The media type of a Content-Type value, lowercased, without parameters or surrounding white space.
    static func mediaType(_ contentType: String) -> String {
        let type = contentType.utf8.prefix { $0 != UInt8(ascii: ";") }
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 }
        guard let first = type.firstIndex(where: { !isSpace($0) }), let last = type.lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(decoding: type[first...last], as: UTF8.self).lowercased()
    }

    /// The JSON body of a request other than a message's (keys, webhooks, redrive): `application/json`, at most
    /// `limit` bytes; 415, 413 or 400 `malformed_json` otherwise.
    static func jsonBody(_ request: Request, limit: Int) async throws -> JSONValue {
        guard let contentType = request.headers[.contentType], mediaType(contentType) == "application/json" else {
            throw APIError(.unsupportedMediaType, code: "unsupported_media_type", message: "Content-Type must be application/json.")
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw APIError(.contentTooLarge, code: "body_too_large", message: "The body is larger than \(limit / 1024) KiB.")
        }
        do {
            return try JSONParser.parse(Array(buffer.readableBytesView))
        } catch {
            throw APIError(.badRequest, code: "malformed_json", message: "The body is not valid JSON: \(error.reason) at byte \(error.offset).")
        }
    }

    func create(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        guard let contentType = request.headers[.contentType] else {
            throw APIError(.unsupportedMediaType, code: "unsupported_media_type", message: "Content-Type must be application/json.")
        }
        let mediaType = Self.mediaType(contentType)
        guard mediaType == "application/json" || (mediaType.hasPrefix("application/") && mediaType.hasSuffix("+json")) else {
            throw APIError(.unsupportedMediaType, code: "unsupported_media_type", message: "Content-Type must be application/json, not \(contentType.prefix(100)).")
        }
        if let length = request.headers[.contentLength].flatMap(Int.init), length > Self.maxEmailBodySize {
            throw APIError(.contentTooLarge, code: "body_too_large", message: "The body is \(length) bytes; the limit is \(Self.maxEmailBodySize) bytes (15 MiB) for an email, \(Self.maxBodySize) bytes (1 MiB) for other types.")
        }
        let key = try Self.idempotencyKey(request)
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: Self.maxEmailBodySize)
        } catch is NIOTooManyBytesError {
            throw APIError(.contentTooLarge, code: "body_too_large", message: "The body is larger than \(Self.maxEmailBodySize) bytes (15 MiB).")
        }
        let body: JSONValue
        do {
            body = try JSONParser.parse(Array(buffer.readableBytesView))
        } catch {
            throw APIError(.badRequest, code: "malformed_json", message: "The body is not valid JSON: \(error.reason) at byte \(error.offset).")
        }
        // Only an email (with its attachments) may be larger than 1 MiB.
        if buffer.readableBytes > Self.maxBodySize, body["type"] != JSONValue.string(MessageChannel.email.rawValue) {
            throw APIError(.contentTooLarge, code: "body_too_large", message: "The body is \(buffer.readableBytes) bytes; the limit is \(Self.maxBodySize) bytes (1 MiB) except for an email (15 MiB).")
        }
        let validated: CommunicationRequest
        switch try await admit(body, keyID: context.identity?.id, checkSuppression: key == nil) {
        case .failure(let e): throw e
        case .success(let r): validated = r
        }
        // With an Idempotency-Key, a request stored before is replayed even if its recipient was suppressed since.
        if let key, let hit = try await suppressed([validated]).first ?? nil,
            try await adapters.store.communications(idempotencyKeys: [key])[key] == nil
        {
            throw Self.suppressedError(hit)
        }
        // The trace the message joins: the request's span (tracing on: `TracingMiddleware` honoured an incoming
        // `traceparent`), else the caller's `traceparent`, else a new one (`Dispatcher`).
        let trace = dispatcher.tracing.currentTraceParent() ?? request.headers[Self.traceparent].flatMap { TraceParent(parsing: $0) }
        switch try await dispatcher.accept(validated, idempotencyKey: key, keyID: context.identity?.id, test: context.identity?.test ?? false, trace: trace) {
        case .conflict(let existing):
            throw APIError(.conflict, code: "idempotency_conflict", message: "Idempotency-Key was already used with a different request (communication \(existing)).", field: "Idempotency-Key")
        case .accepted(let id, let stored, let status, let replayed, let traceParent):
            writes.stored()
            let body: JSONValue = .object([
                "status": .string(status.rawValue), "stream": .string(stored.channel.stream), "data": stored.data, "id": .string(id),
            ])
            var headers: HTTPFields = replayed ? [Self.replayed: "true"] : [:]
            if let traceParent { headers[Self.traceparent] = traceParent.text }
            return .json(body, headers: headers)
        }
    }

    // MARK: reads

    func show(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let id = context.parameters.get("id") ?? ""
        guard let c = try await adapters.store.communication(id: id) else {
            throw APIError(.notFound, code: "not_found", message: "No communication has id \"\(id.prefix(64))\".", field: "id")
        }
        return .json(Render.communication(c))
    }

    func list(_ request: Request) async throws -> Response {
        let q = request.uri.queryParameters
        try Query.allow(q, ["type", "status", "to", "q", "since", "until", "key", "limit", "cursor"], prefixes: [Query.metadataPrefix])
        let key = Query.string(q, "key")
        if let key, !APIKeySecret.isWellFormedID(key) {
            throw APIError(.badRequest, code: "invalid_parameter", message: "key must be an API key id (key_ followed by letters and digits), as `GET /api/v1/keys` lists them.", field: "key")
        }
        let query = CommunicationQuery(
            type: try Query.enumeration(q, "type", MessageChannel.self), status: try Query.enumeration(q, "status", CommunicationStatus.self),
            to: Query.string(q, "to"), text: Query.string(q, "q"), since: try Query.time(q, "since"), until: try Query.time(q, "until"),
            key: key, metadata: try Query.metadata(q), limit: try Query.limit(q), cursor: Query.string(q, "cursor"))
        return .json(Render.page(try await searching { try await adapters.search.search(query) }, Render.document))
    }

    /// Runs a search; a search index that does not answer (Elasticsearch down) is a 503 `search_unavailable`,
    /// not a 500: the store and `POST` are unaffected.
    func searching<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as InvalidCursor {
            throw error
        } catch {
            refusals.log("search_unavailable", level: .warning, "search failed: answered 503 search_unavailable", metadata: ["error": "\(error)"])
            throw APIError(.serviceUnavailable, code: "search_unavailable", message: "The search index does not answer; try again shortly.")
        }
    }

    func logs(_ request: Request) async throws -> Response {
        let q = request.uri.queryParameters
        try Query.allow(q, ["communicationId", "service", "status", "q", "limit", "cursor"])
        let query = LogQuery(
            communicationId: Query.string(q, "communicationId"), service: Query.string(q, "service"), status: try Query.enumeration(q, "status", CommunicationStatus.self),
            text: Query.string(q, "q"), limit: try Query.limit(q), cursor: Query.string(q, "cursor"))
        return .json(Render.page(try await searching { try await adapters.search.search(query) }, Render.log))
    }

    func sandbox(_ request: Request) async throws -> Response {
        let q = request.uri.queryParameters
        try Query.allow(q, ["type", "to", "limit"])
        guard let mailbox = adapters.mailbox else {
            throw APIError(.notFound, code: "sandbox_disabled", message: "The sandbox provider is not in use in this process.")
        }
        let items = try await mailbox.messages(channel: try Query.enumeration(q, "type", MessageChannel.self), to: Query.string(q, "to"), limit: try Query.limit(q))
        return .json(.object(["items": .array(items.map(Render.sandbox)), "count": .number(Double(items.count))]))
    }

    func stats() async throws -> Response {
        let counts = try await adapters.store.statusCounts()
        var byChannel: [String: JSONValue] = [:]
        var totals: [String: Int] = [:]
        for channel in MessageChannel.allCases {
            var statuses: [String: JSONValue] = [:]
            for c in counts where c.channel == channel {
                statuses[c.status.rawValue] = .number(Double(c.count))
                totals[c.status.rawValue, default: 0] += c.count
            }
            byChannel[channel.rawValue] = .object(statuses)
        }
        var streams: [JSONValue] = []
        for stream in StreamNames.all {
            let group = stream == StreamNames.log ? StreamNames.loggerGroup : StreamNames.workerGroup
            let info = try await adapters.queue.info(stream: stream, group: group)
            streams.append(.object([
                "stream": .string(stream), "group": .string(group), "length": .number(Double(info.length)),
                "pending": .number(Double(info.pending)), "deadLetters": .number(Double(info.deadLetters)),
            ]))
        }
        return .json(.object([
            "communications": .object(["byType": .object(byChannel), "byStatus": .object(totals.mapValues { .number(Double($0)) }), "total": .number(Double(counts.reduce(0) { $0 + $1.count }))]),
            "streams": .array(streams),
        ]))
    }

    func deadLetters(_ request: Request) async throws -> Response {
        let q = request.uri.queryParameters
        try Query.allow(q, ["stream", "limit"])
        guard let stream = Query.string(q, "stream"), StreamNames.all.contains(stream) else {
            throw APIError(.badRequest, code: "invalid_parameter", message: "stream is required: one of \(StreamNames.all.joined(separator: ", ")).", field: "stream")
        }
        let entries = try await adapters.queue.entries(stream: StreamNames.deadLetter(of: stream), limit: try Query.limit(q))
        return .json(.object([
            "stream": .string(StreamNames.deadLetter(of: stream)),
            "items": .array(entries.map { e -> JSONValue in .object(["id": .string(e.id), "fields": .object(e.fields.mapValues { JSONValue.string($0) })]) }),
            "count": .number(Double(entries.count)),
        ]))
    }
}

/// Query-string parsing with 400s that name the parameter.
typealias Queries = Hummingbird.Parameters

enum Query {
    /// `GET /api/v1/communications?metadata.<key>=<value>`: exact match on a `data.metadata` key.
    static let metadataPrefix = "metadata."

    /// - Parameter prefixes: families of names also allowed (`metadata.`), checked by their own parser.
    static func allow(_ q: Queries, _ names: Set<String>, prefixes: [String] = []) throws {
        for (key, value) in q {
            guard names.contains(String(key)) || prefixes.contains(where: { key.hasPrefix($0) }) else {
                let families = prefixes.map { "\($0)<key>" }
                throw APIError(.badRequest, code: "unknown_parameter", message: "Unknown query parameter \"\(key)\"; allowed: \((names.sorted() + families).joined(separator: ", ")).", field: String(key))
            }
            // A control character is no text anyone searches for, and the engines refuse it: a 400, not a 503.
            if value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
                throw APIError(.badRequest, code: "invalid_parameter", message: "\(key) holds a control character (U+0000 to U+001F or U+007F).", field: String(key))
            }
        }
    }

    static func string(_ q: Queries, _ name: String) -> String? {
        guard let v = q[name[...]], !v.isEmpty else { return nil }
        return String(v)
    }

    static func enumeration<T: RawRepresentable & CaseIterable>(_ q: Queries, _ name: String, _: T.Type) throws -> T? where T.RawValue == String {
        guard let v = string(q, name) else { return nil }
        guard let t = T(rawValue: v) else {
            throw APIError(.badRequest, code: "invalid_parameter", message: "\(name) must be one of \(T.allCases.map(\.rawValue).joined(separator: ", ")).", field: name)
        }
        return t
    }

    static func time(_ q: Queries, _ name: String) throws -> Timestamp? {
        guard let v = string(q, name) else { return nil }
        guard let t = Timestamp(parsing: v) else {
            throw APIError(.badRequest, code: "invalid_parameter", message: "\(name) must be an RFC 3339 time (2026-01-31T12:00:00Z) or epoch milliseconds.", field: name)
        }
        return t
    }

    /// The `metadata.<key>=<value>` filters (ANDed): a key as `data.metadata` allows it (`Metadata.isValidKey`), at
    /// most `Metadata.maxKeys` of them; the value is matched exactly.
    static func metadata(_ q: Queries) throws -> [String: String] {
        var out: [String: String] = [:]
        for (name, value) in q where name.hasPrefix(metadataPrefix) {
            let key = String(name.dropFirst(metadataPrefix.count))
            guard Metadata.isValidKey(key) else {
                throw APIError(.badRequest, code: "invalid_parameter", message: "\(name.prefix(64)): a metadata key is 1 to \(Metadata.maxKeyLength) characters of letters, digits, \"_\", \".\" and \"-\".", field: String(name.prefix(64)))
            }
            guard value.unicodeScalars.count <= Metadata.maxValueLength else {
                throw APIError(.badRequest, code: "invalid_parameter", message: "\(name): a metadata value has at most \(Metadata.maxValueLength) characters.", field: String(name))
            }
            out[key] = String(value)
        }
        guard out.count <= Metadata.maxKeys else {
            throw APIError(.badRequest, code: "invalid_parameter", message: "At most \(Metadata.maxKeys) metadata.<key> filters.", field: metadataPrefix)
        }
        return out
    }

    static func limit(_ q: Queries) throws -> Int {
        guard let v = string(q, "limit") else { return 50 }
        guard let n = Int(v), (1...1000).contains(n) else {
            throw APIError(.badRequest, code: "invalid_parameter", message: "limit must be a whole number from 1 to 1000.", field: "limit")
        }
        return n
    }
}

/// Renders every error as JSON: ours, Hummingbird's (404 → 405 where the path exists with another method),
/// and unexpected ones (500, logged, no internals exposed).
struct ErrorMiddleware: RouterMiddleware {
    typealias Context = APIRequestContext
    let logger: Logger
    /// Per-request warnings, aggregated per kind and interval.
    let refusals: AggregatedLog
    let writes: StoreWriteHealth
    /// The registered routes, for 405 answers.
    let routes: RouteTable

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            return .json(error.body, status: error.status, headers: error.headers)
        } catch is InvalidCursor {
            return APIError(.badRequest, code: "invalid_cursor", message: "cursor is not one this API returned.", field: "cursor").json
        } catch let error as HTTPError {
            if error.status == .notFound {
                let allowed = routes.methods(for: request.uri.path)
                if !allowed.isEmpty {
                    let allow = allowed.map(\.rawValue).joined(separator: ", ")
                    return APIError(.methodNotAllowed, code: "method_not_allowed", message: "\(request.method.rawValue) is not allowed on \(request.uri.path); use \(allow).", headers: [.allow: allow]).json
                }
                return APIError(.notFound, code: "not_found", message: "No route \(request.method.rawValue) \(request.uri.path).").json
            }
            return APIError(error.status, code: "http_error", message: error.body ?? error.status.reasonPhrase).json
        } catch let error as NIOTooManyBytesError {
            _ = error
            return APIError(.contentTooLarge, code: "body_too_large", message: "The body is larger than \(API.maxBodySize) bytes.").json
        } catch let error as MalformedRequest {
            // The decoder could not read the body (malformed chunked framing, a body shorter than its Content-Length).
            return malformed(error, request)
        } catch let error as HTTPParserError {
            return malformed(MalformedRequest(error), request)
        } catch let error as any TemporaryFailure where error.temporaryReason != nil {
            let reason = error.temporaryReason ?? ""
            refusals.log("store_unavailable", level: .warning, "request refused: the store cannot take work now", metadata: ["method": "\(request.method)", "path": "\(request.uri.path)", "error": "\(error)"])
            if request.method == .post { writes.refused(reason) }
            return APIError(
                .serviceUnavailable, code: "store_unavailable",
                message: "The store cannot take the request now: \(reason). Retry after a few seconds; a POST retried with the same Idempotency-Key never creates a second message.",
                headers: [.retryAfter: "\(API.storeRetryAfterSeconds)"]
            ).json
        } catch {
            refusals.log("internal_error", level: .error, "request failed", metadata: ["method": "\(request.method)", "path": "\(request.uri.path)", "error": "\(error)"])
            return APIError(.internalServerError, code: "internal_error", message: "The server could not complete the request. A POST answered with this error was not stored: retry it (with the same Idempotency-Key to be safe).").json
        }
    }

    /// A request the decoder could not read: the client's fault, answered 4xx and logged below error level.
    func malformed(_ error: MalformedRequest, _ request: Request) -> Response {
        refusals.log("malformed_request", level: .notice, "malformed request answered \(error.status.code) \(error.code)", metadata: [
            "method": "\(request.method)", "path": "\(request.uri.path)", "error": "\(error.parserError)",
        ])
        var headers: HTTPFields = [:]
        headers[.connection] = "close"  // the decoder reads nothing more on this connection
        return APIError(error.status, code: error.code, message: error.message, headers: headers).json
    }
}

extension APIError {
    var json: Response { .json(body, status: status, headers: headers) }
}

/// Whether the store has lately refused to store a request for a reason that passes (`TemporaryFailure`),
/// for `/health/ready`: such a store still answers pings, so only its refusals show it.
final class StoreWriteHealth: Sendable {
    /// How long a refusal is reported when no POST came after it (none may come while clients back off).
    static let memory: Duration = .seconds(60)

    private let last = Mutex<(reason: String, at: ContinuousClock.Instant)?>(nil)
    /// Mirrors `last != nil`, so that the accept path's `stored()` takes no lock while all is well.
    private let refusing = Atomic<Bool>(false)

    func refused(_ reason: String) {
        last.withLock {
            $0 = (reason, .now)
            refusing.store(true, ordering: .releasing)
        }
    }

    func stored() {
        guard refusing.load(ordering: .acquiring) else { return }
        last.withLock {
            $0 = nil
            refusing.store(false, ordering: .releasing)
        }
    }

    /// The last refusal's reason and age, if it is younger than `within` and no request was stored since.
    func recentRefusal(within: Duration) -> (reason: String, age: Duration)? {
        last.withLock { last in
            guard let last else { return nil }
            let age = ContinuousClock.now - last.at
            return age < within ? (last.reason, age) : nil
        }
    }
}

// MARK: POST /api/v1/communication/{id}/cancel

extension API {
    /// Cancels a message a worker has not taken yet (`pending`, `queued`, `retrying`): recorded through the write
    /// path like any status change (history, log entry, search document), by the key that asked. A worker that
    /// reads its stream entry afterwards finds it past dispatch and acknowledges the entry without sending.
    func cancel(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let id = context.parameters.get("id") ?? ""
        let transition = StatusTransition(id: id, event: .cancelled(by: context.identity?.id), at: SystemTime.now(), service: "router")
        switch try await adapters.pipeline.record([transition], settle: [], group: StreamNames.workerGroup).first {
        case .applied(let c, let change)?:
            // The store's answer carries the new status, not the history (`CommunicationStore.apply`): the record
            // is read back whole for the answer, else the change is added to what the answer has.
            var shown = try await adapters.store.communication(id: c.id) ?? c
            if shown.history.last != change { shown.history.append(change) }
            return .json(Render.communication(shown))
        case .ignored(let c, _)? where c.status == .cancelled:
            return .json(Render.communication(c))
        case .ignored(let c, _)?:
            let why = c.status == .processing ? "a worker has handed it to a provider" : "it is past dispatch"
            throw APIError(.conflict, code: "not_cancellable", message: "Communication \(c.id) is \(c.status.rawValue): \(why); only a pending, queued or retrying message can be cancelled.", field: "id")
        case .notFound?, nil:
            throw APIError(.notFound, code: "not_found", message: "No communication has id \"\(id.prefix(64))\".", field: "id")
        }
    }
}
