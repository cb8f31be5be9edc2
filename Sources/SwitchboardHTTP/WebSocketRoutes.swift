import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket
import SwitchboardApp
import SwitchboardCore
import Synchronization

/// The request context of the WebSocket upgrade router (`GET /api/v1/ws`): apart from the API's, so that ordinary
/// requests do not carry a WebSocket handler reference.
public struct LiveSocketContext: RequestContext, WebSocketRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let webSocket: WebSocketHandlerReference<Self>
    public let remoteAddress: SocketAddress?

    public init(source: Source) {
        coreContext = .init(source: source)
        webSocket = .init()
        remoteAddress = source.channel.remoteAddress
    }
}

/// Live status over a WebSocket (`GET /api/v1/ws`, hummingbird-websocket). The client sends JSON messages:
///
/// - `{"type":"auth","key":"sb_live_…"}`: the key, when it was not in the upgrade's `Authorization` (or `X-API-Key`)
///   header (a browser cannot set one); before anything else, within `authTimeout`.
/// - `{"type":"subscribe","id":"<communication id>"}` or `{"type":"subscribe","filter":{"type":…,"status":…,"key":…}}`
///   (each a value or a list): answered `{"type":"subscribed","subscription":n}` (for an id, with the message's
///   `status` and `history` so far); then `{"type":"event","subscription":n,"event":{…}}` per change, the same JSON
///   as the Server-Sent Events' `data`.
/// - `{"type":"unsubscribe","subscription":n}`, `{"type":"ping"}` (answered `pong`).
///
/// The server pings every heartbeat interval (WebSocket ping frames; a client that does not answer is closed).
/// Close codes: 1008 (policy violation) for a missing, unknown or revoked key or a key without the `read` scope;
/// 1013 (try again later) for a client that fell `SWITCHBOARD_EVENTS_BUFFER` events behind: its buffer is dropped,
/// so a slow client never grows the server's memory; 1001 when the router shuts down.
extension API {
    static let authTimeout: Duration = .seconds(10)
    static let maxSubscriptionsPerSocket = 100
    static let maxClientMessage = 16 * 1024

    /// The router of WebSocket upgrades: only `/api/v1/ws`; every other request goes to the API's router.
    public func webSocketRouter() -> Router<LiveSocketContext> {
        let router = Router(context: LiveSocketContext.self)
        router.ws("/api/v1/ws") { request, context in
            try await self.webSocketUpgrade(request, context)
        } onUpgrade: { inbound, outbound, context in
            await self.liveSocket(inbound, outbound, request: context.request, remote: context.requestContext.remoteAddress)
        }
        return router
    }

    /// Whether to upgrade: a key given in the headers must be valid and have the `read` scope (a 401 / 403 JSON
    /// answer, no upgrade); without one the key is expected as the first message.
    func webSocketUpgrade(_ request: Request, _ context: LiveSocketContext) async throws -> RouterShouldUpgrade {
        _ = try hub()
        if let key = try await presentedSocketKey(request.headers, remote: context.remoteAddress) {
            try Self.requireRead(key)
        }
        return .upgrade([:])
    }

    static func requireRead(_ key: APIKeyRecord) throws {
        guard key.grants(.read) else {
            throw APIError(.forbidden, code: "forbidden", message: "The API key \(key.id) lacks the read scope that live status needs.")
        }
    }

    /// The valid key the headers give, nil when they give none; a 401 for one that is not valid (recorded like
    /// every failed authentication).
    func presentedSocketKey(_ headers: HTTPFields, remote: SocketAddress?) async throws -> APIKeyRecord? {
        guard let presented = try KeyAuthenticator.presentedKey(headers) else { return nil }
        return try await socketKey(presented, remote: remote)
    }

    func socketKey(_ presented: String, remote: SocketAddress?) async throws -> APIKeyRecord? {
        guard access.keys != nil, access.mode == .on else { return nil }
        let authenticator = KeyAuthenticator(access: access, logger: logger)
        do {
            return try await authenticator.key(presented)
        } catch let error as APIError where error.status == .unauthorized {
            let address = remote?.ipAddress ?? "unknown"
            access.failures?.recordFailure(address)
            access.audit?.authFailure(address: address, reason: error.message)
            throw error
        }
    }

    /// Whether a key is needed now (keys exist and auth is on).
    func socketKeysRequired() async throws -> Bool {
        try await KeyAuthenticator(access: access, logger: logger).keysRequired()
    }

    /// One WebSocket session: reads the client's messages, writes the events of its subscriptions.
    func liveSocket(_ inbound: WebSocketInboundStream, _ outbound: WebSocketOutboundWriter, request: Request, remote: SocketAddress?) async {
        guard let hub = events else { return }
        let session = LiveSocketSession(hub: hub)
        defer { session.end() }
        do {
            // Keys required and none in the headers: the first message must give one.
            let headerKey = try? await presentedSocketKey(request.headers, remote: remote)
            let required = (try? await socketKeysRequired()) ?? true
            if required && headerKey == nil { session.authorized.store(false, ordering: .releasing) }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    // Events out, until the hub stops or drops the session's buffer.
                    for await delivery in session.sink.deliveries {
                        if session.sink.overflowed { break }
                        guard case .event(let e, let subscription) = delivery else { continue }
                        try await outbound.writeTextMessage("{\"type\":\"event\",\"subscription\":\(subscription),\"event\":\(e.json)}")
                    }
                    if session.sink.overflowed {
                        try await outbound.close(.unknown(1013), reason: "too slow: fell \(hub.settings.buffer) events behind")
                    } else {
                        try await outbound.close(.goingAway, reason: "server shutting down")
                    }
                }
                group.addTask {
                    // Unauthenticated too long: closed.
                    try await Task.sleep(for: Self.authTimeout)
                    if !session.authorized.load(ordering: .acquiring) {
                        try await outbound.close(.policyViolation, reason: "no API key: send {\"type\":\"auth\",\"key\":…} first")
                    }
                    try await Task.sleep(for: .seconds(1_000_000_000))
                }
                group.addTask {
                    for try await message in inbound.messages(maxSize: Self.maxClientMessage) {
                        guard case .text(let text) = message else {
                            try await outbound.writeTextMessage(Self.socketError("invalid_message", "Messages are JSON text."))
                            continue
                        }
                        guard try await self.handleSocketMessage(text, session: session, outbound: outbound, remote: remote) else { return }
                    }
                }
                // The first to end (the client left, the session closed) ends the others.
                try await group.next()
                group.cancelAll()
            }
        } catch {
            logger.debug("websocket session ended", metadata: ["error": "\(error)"])
        }
    }

    static func socketError(_ code: String, _ message: String) -> String {
        JSONValue.object(["type": .string("error"), "code": .string(code), "message": .string(message)]).canonicalText
    }

    /// Handles one client message; false when the session must end (it was closed).
    func handleSocketMessage(_ text: String, session: LiveSocketSession, outbound: WebSocketOutboundWriter, remote: SocketAddress?) async throws -> Bool {
        guard let message = try? JSONParser.parse(text), case .object(let o) = message, let type = o["type"]?.stringValue else {
            try await outbound.writeTextMessage(Self.socketError("invalid_message", "Each message is a JSON object with a \"type\": auth, subscribe, unsubscribe or ping."))
            return true
        }
        if type == "auth" {
            guard let presented = o["key"]?.stringValue else {
                try await outbound.writeTextMessage(Self.socketError("invalid_message", "auth needs \"key\": the API key."))
                return true
            }
            do {
                if let key = try await socketKey(presented, remote: remote) {
                    try Self.requireRead(key)
                    try await outbound.writeTextMessage(JSONValue.object(["type": .string("authenticated"), "keyId": .string(key.id)]).canonicalText)
                } else {
                    try await outbound.writeTextMessage(JSONValue.object(["type": .string("authenticated")]).canonicalText)
                }
                session.authorized.store(true, ordering: .releasing)
                return true
            } catch let error as APIError {
                try await outbound.close(.policyViolation, reason: String(error.message.prefix(120)))
                return false
            }
        }
        guard session.authorized.load(ordering: .acquiring) else {
            try await outbound.close(.policyViolation, reason: "no API key: send {\"type\":\"auth\",\"key\":…} first")
            return false
        }
        switch type {
        case "ping":
            try await outbound.writeTextMessage("{\"type\":\"pong\"}")
        case "subscribe":
            guard session.count < Self.maxSubscriptionsPerSocket else {
                try await outbound.writeTextMessage(Self.socketError("too_many_subscriptions", "At most \(Self.maxSubscriptionsPerSocket) subscriptions per connection."))
                return true
            }
            let filter: EventFilter
            var snapshot: Communication?
            if let id = o["id"]?.stringValue {
                guard let c = try await adapters.store.communication(id: id) else {
                    try await outbound.writeTextMessage(Self.socketError("not_found", "No communication has id \"\(id.prefix(64))\"."))
                    return true
                }
                filter = EventFilter(communicationIDs: [id])
                snapshot = c
            } else {
                do {
                    filter = try Self.socketFilter(o["filter"])
                } catch let error as APIError {
                    try await outbound.writeTextMessage(Self.socketError(error.code, error.message))
                    return true
                }
            }
            guard let sub = try await session.subscribe(filter) else { return false }
            var reply: [String: JSONValue] = ["type": .string("subscribed"), "subscription": .number(Double(sub.id))]
            if let c = snapshot {
                // Read again once subscribed: a change committed meanwhile is in the history or comes as an event.
                let now = try await adapters.store.communication(id: c.id) ?? c
                reply["status"] = .string(now.status.rawValue)
                reply["history"] = .array(now.history.enumerated().map { i, change in
                    (try? JSONParser.parse(LiveEvent.json(LogRecord(now, change: change), eventID: String(i + 1)))) ?? .null
                })
            }
            try await outbound.writeTextMessage(JSONValue.object(reply).canonicalText)
        case "unsubscribe":
            guard let n = o["subscription"].flatMap({ v -> Int? in if case .number(let d) = v { return Int(exactly: d) } else { return nil } }), session.unsubscribe(n) else {
                try await outbound.writeTextMessage(Self.socketError("unknown_subscription", "unsubscribe needs \"subscription\": the number a subscribe was answered with."))
                return true
            }
            try await outbound.writeTextMessage("{\"type\":\"unsubscribed\",\"subscription\":\(n)}")
        default:
            try await outbound.writeTextMessage(Self.socketError("invalid_message", "Unknown type \"\(type.prefix(32))\": use auth, subscribe, unsubscribe or ping."))
        }
        return true
    }

    /// A subscription's filter: `type`, `status` (a value or a list), `key`; absent: every change.
    static func socketFilter(_ value: JSONValue?) throws -> EventFilter {
        guard let value else { return EventFilter() }
        guard case .object(let o) = value else {
            throw APIError(.badRequest, code: "invalid_filter", message: "filter must be an object with type, status and key.", field: "filter")
        }
        func strings(_ name: String) throws -> [String] {
            switch o[name] {
            case nil, .null?: return []
            case .string(let s)?: return [s]
            case .array(let a)?: return try a.map { v in
                    guard let s = v.stringValue else { throw APIError(.badRequest, code: "invalid_filter", message: "filter.\(name) must be a string or a list of strings.", field: "filter.\(name)") }
                    return s
                }
            default: throw APIError(.badRequest, code: "invalid_filter", message: "filter.\(name) must be a string or a list of strings.", field: "filter.\(name)")
            }
        }
        for k in o.keys where !["type", "status", "key"].contains(k) {
            throw APIError(.badRequest, code: "invalid_filter", message: "Unknown filter field \"\(k.prefix(32))\"; allowed: type, status, key.", field: "filter.\(k.prefix(32))")
        }
        let key = try strings("key").first
        if let key, !APIKeySecret.isWellFormedID(key) {
            throw APIError(.badRequest, code: "invalid_filter", message: "filter.key must be an API key id.", field: "filter.key")
        }
        return EventFilter(types: try values(try strings("type"), "filter.type", MessageChannel.self), statuses: try values(try strings("status"), "filter.status", CommunicationStatus.self), keyID: key)
    }
}

/// A WebSocket session's subscriptions, all delivering into one bounded sink.
final class LiveSocketSession: Sendable {
    let hub: EventHub
    let sink: EventHub.Sink
    let authorized = Atomic<Bool>(true)
    private let subscriptions = Mutex<[Int: EventHub.Subscription]>([:])

    init(hub: EventHub) {
        self.hub = hub
        sink = hub.makeSink()
    }

    var count: Int { subscriptions.withLock { $0.count } }

    func subscribe(_ filter: EventFilter) async throws -> EventHub.Subscription? {
        let start = try await hub.now()
        guard let sub = hub.subscribe(filter, start: start, sink: sink) else { return nil }
        subscriptions.withLock { $0[sub.id] = sub }
        return sub
    }

    func unsubscribe(_ id: Int) -> Bool {
        guard let sub = subscriptions.withLock({ $0.removeValue(forKey: id) }) else { return false }
        hub.unsubscribe(sub)
        return true
    }

    func end() {
        let all = subscriptions.withLock { s -> [EventHub.Subscription] in
            defer { s = [:] }
            return Array(s.values)
        }
        for sub in all { hub.unsubscribe(sub) }
        sink.finish()
    }
}
