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

    /// Whether to upgrade: always, while live status is served. A key in the headers that is not valid, or lacks
    /// the `read` scope, gets the session closed with 1008 and a reason (a browser sees no answer to a refused
    /// upgrade, and hummingbird-websocket answers a refusal with an empty 400).
    func webSocketUpgrade(_ request: Request, _ context: LiveSocketContext) async throws -> RouterShouldUpgrade {
        _ = try hub()
        return .upgrade([:])
    }

    static func requireRead(_ key: APIKeyRecord) throws {
        guard key.grants(.read) else {
            throw APIError(.forbidden, code: "forbidden", message: "The API key \(key.id) lacks the read scope that live status needs.")
        }
    }

    /// The valid key `presented` is, nil when keys are not in use; a 401 for one that is not valid (recorded like
    /// every failed authentication).
    func socketKey(_ presented: String, remote: SocketAddress?) async throws -> APIKeyRecord? {
        guard access.keys != nil, access.mode == .on else { return nil }
        do {
            return try await KeyAuthenticator(access: access, logger: logger).key(presented)
        } catch let error as APIError where error.status == .unauthorized {
            let address = remote?.ipAddress ?? "unknown"
            access.failures?.recordFailure(address)
            access.audit?.authFailure(address: address, reason: error.message)
            throw error
        }
    }

    /// One WebSocket session: reads the client's messages, writes the events of its subscriptions and the replies,
    /// in one order (every write goes through the session's sink).
    func liveSocket(_ inbound: WebSocketInboundStream, _ outbound: WebSocketOutboundWriter, request: Request, remote: SocketAddress?) async {
        guard let hub = events else { return }
        let session = LiveSocketSession(hub: hub)
        defer { session.end() }
        // A key in the headers is checked now; without one, when keys are required, the first message gives it.
        do {
            if let presented = try KeyAuthenticator.presentedKey(request.headers) {
                if let key = try await socketKey(presented, remote: remote) { try Self.requireRead(key) }
            } else if try await KeyAuthenticator(access: access, logger: logger).keysRequired() {
                session.authorized.store(false, ordering: .releasing)
            }
        } catch let error as APIError {
            try? await outbound.close(.policyViolation, reason: String(error.message.prefix(120)))
            return
        } catch {
            try? await outbound.close(.unexpectedServerError, reason: "the API keys cannot be read now")
            return
        }
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    // Unauthenticated too long: closed.
                    try await Task.sleep(for: Self.authTimeout)
                    if !session.authorized.load(ordering: .acquiring) {
                        session.close(.policyViolation, "no API key: send {\"type\":\"auth\",\"key\":…} first")
                    }
                }
                group.addTask {
                    do {
                        for try await message in inbound.messages(maxSize: Self.maxClientMessage) {
                            guard case .text(let text) = message else {
                                session.sink.post(Self.socketError("invalid_message", "Messages are JSON text."))
                                continue
                            }
                            guard try await self.handleSocketMessage(text, session: session, remote: remote) else { return }
                        }
                        session.close(.normalClosure, "")
                    } catch {
                        session.close(.normalClosure, "")
                        throw error
                    }
                }
                // The writer ends the session: once its sink is finished (a close asked for, the client gone, the
                // client too slow, the hub stopping) and the close is written.
                try await Self.writeSession(session, outbound, buffer: hub.settings.buffer)
                group.cancelAll()
            }
        } catch {
            logger.debug("websocket session ended", metadata: ["error": "\(error)"])
        }
    }

    /// The session's only writer: events (held until their subscription's reply is out), replies, then the close.
    static func writeSession(_ session: LiveSocketSession, _ outbound: WebSocketOutboundWriter, buffer: Int) async throws {
        var open = Set<Int>()
        var held: [Int: [LiveEvent]] = [:]
        var heldCount = 0
        for await delivery in session.sink.deliveries {
            if session.sink.overflowed { break }
            switch delivery {
            case .heartbeat:
                continue
            case .note(let text, let opens, let skip):
                try await outbound.writeTextMessage(text)
                guard let opens else { continue }
                open.insert(opens)
                for e in held.removeValue(forKey: opens) ?? [] where !skip.contains(LiveEvent.changeKey(e.record)) {
                    try await outbound.writeTextMessage(eventMessage(e, opens))
                }
            case .event(let e, let subscription):
                if open.contains(subscription) {
                    try await outbound.writeTextMessage(eventMessage(e, subscription))
                } else {
                    held[subscription, default: []].append(e)
                    heldCount += 1
                    if heldCount > buffer { session.sink.overflowed ? () : session.close(.init(codeNumber: 1013), "too slow") }
                }
            }
        }
        if session.sink.overflowed {
            try await outbound.close(.init(codeNumber: 1013), reason: "too slow: fell \(buffer) events behind")
        } else if let (code, reason) = session.closing {
            try await outbound.close(code, reason: reason)
        } else {
            try await outbound.close(.goingAway, reason: "server shutting down")
        }
    }

    static func eventMessage(_ e: LiveEvent, _ subscription: Int) -> String {
        "{\"type\":\"event\",\"subscription\":\(subscription),\"event\":\(e.json)}"
    }

    static func socketError(_ code: String, _ message: String) -> String {
        JSONValue.object(["type": .string("error"), "code": .string(code), "message": .string(message)]).canonicalText
    }

    /// Handles one client message; false when the session is closing.
    func handleSocketMessage(_ text: String, session: LiveSocketSession, remote: SocketAddress?) async throws -> Bool {
        let sink = session.sink
        guard let message = try? JSONParser.parse(text), case .object(let o) = message, let type = o["type"]?.stringValue else {
            sink.post(Self.socketError("invalid_message", "Each message is a JSON object with a \"type\": auth, subscribe, unsubscribe or ping."))
            return true
        }
        if type == "auth" {
            guard let presented = o["key"]?.stringValue else {
                sink.post(Self.socketError("invalid_message", "auth needs \"key\": the API key."))
                return true
            }
            do {
                var reply: [String: JSONValue] = ["type": .string("authenticated")]
                if let key = try await socketKey(presented, remote: remote) {
                    try Self.requireRead(key)
                    reply["keyId"] = .string(key.id)
                }
                session.authorized.store(true, ordering: .releasing)
                sink.post(JSONValue.object(reply).canonicalText)
                return true
            } catch let error as APIError {
                session.close(.policyViolation, String(error.message.prefix(120)))
                return false
            }
        }
        guard session.authorized.load(ordering: .acquiring) else {
            session.close(.policyViolation, "no API key: send {\"type\":\"auth\",\"key\":…} first")
            return false
        }
        switch type {
        case "ping":
            sink.post("{\"type\":\"pong\"}")
        case "subscribe":
            guard session.count < Self.maxSubscriptionsPerSocket else {
                sink.post(Self.socketError("too_many_subscriptions", "At most \(Self.maxSubscriptionsPerSocket) subscriptions per connection."))
                return true
            }
            let filter: EventFilter
            let id = o["id"]?.stringValue
            if let id {
                filter = EventFilter(communicationIDs: [id])
            } else {
                do {
                    filter = try Self.socketFilter(o["filter"])
                } catch let error as APIError {
                    sink.post(Self.socketError(error.code, error.message))
                    return true
                }
            }
            guard let sub = try await session.subscribe(filter) else { return false }
            var reply: [String: JSONValue] = ["type": .string("subscribed"), "subscription": .number(Double(sub.id))]
            var skip = Set<String>()
            if let id {
                // Read once subscribed: a change committed meanwhile is in the history, and its event is skipped.
                guard let c = try await adapters.store.communication(id: id) else {
                    _ = session.unsubscribe(sub.id)
                    sink.post(Self.socketError("not_found", "No communication has id \"\(id.prefix(64))\"."))
                    return true
                }
                let records = c.history.map { LogRecord(c, change: $0) }
                skip = Set(records.map(LiveEvent.changeKey))
                reply["id"] = .string(c.id)
                reply["status"] = .string(c.status.rawValue)
                reply["history"] = .array(records.enumerated().map { i, r in LiveEvent.object(r, eventID: String(i + 1)) })
            }
            sink.post(JSONValue.object(reply).canonicalText, opens: sub.id, skip: skip)
        case "unsubscribe":
            guard let n = o["subscription"].flatMap({ v -> Int? in if case .number(let d) = v { return Int(exactly: d) } else { return nil } }), session.unsubscribe(n) else {
                sink.post(Self.socketError("unknown_subscription", "unsubscribe needs \"subscription\": the number a subscribe was answered with."))
                return true
            }
            sink.post("{\"type\":\"unsubscribed\",\"subscription\":\(n)}")
        default:
            sink.post(Self.socketError("invalid_message", "Unknown type \"\(type.prefix(32))\": use auth, subscribe, unsubscribe or ping."))
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
    private let closeRequest = Mutex<(WebSocketErrorCode, String)?>(nil)
    private let subscriptions = Mutex<[Int: EventHub.Subscription]>([:])

    init(hub: EventHub) {
        self.hub = hub
        sink = hub.makeSink()
    }

    var count: Int { subscriptions.withLock { $0.count } }

    /// Asks the writer to close with `code` once what is queued is written.
    func close(_ code: WebSocketErrorCode, _ reason: String) {
        closeRequest.withLock { if $0 == nil { $0 = (code, reason) } }
        sink.finish()
    }

    var closing: (WebSocketErrorCode, String)? { closeRequest.withLock { $0 } }

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
