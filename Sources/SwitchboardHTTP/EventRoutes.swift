import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import SwitchboardApp
import SwitchboardCore

/// Live status over Server-Sent Events: one message's changes (`GET /api/v1/communication/{id}/events`) and every
/// change, filtered (`GET /api/v1/events`), both served from the router's `EventHub`.
extension API {
    /// The headers of an event stream: not cached, not buffered by a proxy (`X-Accel-Buffering` for nginx).
    static let eventStreamHeaders: HTTPFields = [
        .contentType: "text/event-stream; charset=utf-8", .cacheControl: "no-cache", HTTPField.Name("X-Accel-Buffering")!: "no",
    ]

    /// The stream's first bytes: a comment, so the client sees the stream open at once (clients ignore comments;
    /// a lone `retry:` field would be an empty event to some).
    static let sseOpening = ByteBuffer(string: ": stream open\n\n")

    /// One SSE event: `id`, `event` (the status) and `data` (the change as one line of JSON).
    static func sseFrame(id: String, event: String, data: String) -> ByteBuffer {
        ByteBuffer(string: "id: \(id)\nevent: \(event)\ndata: \(data)\n\n")
    }

    static let sseHeartbeat = ByteBuffer(string: ": heartbeat\n\n")

    func hub() throws -> EventHub {
        guard let events else {
            throw APIError(.serviceUnavailable, code: "events_unavailable", message: "This process serves no live events.")
        }
        return events
    }

    /// `Last-Event-ID` (the header an EventSource sends when it reconnects) or the `lastEventId` query parameter
    /// (for a first connection that resumes).
    static func lastEventID(_ request: Request) -> String? {
        if let v = request.headers[HTTPField.Name("Last-Event-ID")!], !v.isEmpty { return v }
        return Query.string(request.uri.queryParameters, "lastEventId")
    }

    /// `GET /api/v1/communication/{id}/events`: the message's history so far, then its changes as they are
    /// committed, each an event whose `id` is its place in the history (1, 2, …: `Last-Event-ID: n` resumes after
    /// the n-th). The stream closes after the message is past dispatch (`sent`, `failed`, `cancelled`, …) or, with
    /// `until=final`, after a final status (`read`, `undelivered`, `failed`, `cancelled`: delivery reports
    /// included).
    func communicationEvents(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let q = request.uri.queryParameters
        try Query.allow(q, ["until", "lastEventId"])
        let untilFinal: Bool
        switch Query.string(q, "until") {
        case nil, "dispatched": untilFinal = false
        case "final": untilFinal = true
        default: throw APIError(.badRequest, code: "invalid_parameter", message: "until must be dispatched (the default) or final.", field: "until")
        }
        let skip: Int
        if let last = Self.lastEventID(request) {
            guard let n = Int(last), n >= 0 else {
                throw APIError(.badRequest, code: "invalid_last_event_id", message: "Last-Event-ID must be the id of an event of this stream (a whole number).", field: "Last-Event-ID")
            }
            skip = n
        } else {
            skip = 0
        }
        let hub = try hub()
        let id = context.parameters.get("id") ?? ""
        guard try await adapters.store.communication(id: id) != nil else {
            throw APIError(.notFound, code: "not_found", message: "No communication has id \"\(id.prefix(64))\".", field: "id")
        }
        let store = adapters.store
        let deadline = hub.settings.streamLimit.map { ContinuousClock.now + $0 }
        return Response(status: .ok, headers: Self.eventStreamHeaders, body: ResponseBody { writer in
            try await writer.write(Self.sseOpening)
            var count = 0
            var seen = Set<String>()
            /// Writes the change unless it was written already; false once the stream should close.
            func emit(_ r: LogRecord) async throws -> Bool {
                guard seen.insert(LiveEvent.changeKey(r)).inserted else { return true }
                count += 1
                if count > skip {
                    try await writer.write(Self.sseFrame(id: String(count), event: r.status?.rawValue ?? "", data: LiveEvent.json(r, eventID: String(count))))
                }
                guard let status = r.status else { return true }
                return !(untilFinal ? status.isFinal : status.isPastDispatch)
            }
            _ = try await hub.follow(EventFilter(communicationIDs: [id]), after: nil, prelude: {
                // Subscribed first, then the history: a change committed in between is in both, written once.
                guard let c = try await store.communication(id: id) else { return false }
                for change in c.history {
                    guard try await emit(LogRecord(c, change: change)) else { return false }
                }
                return true
            }) { delivery in
                if let deadline, ContinuousClock.now >= deadline { return false }
                switch delivery {
                case .heartbeat:
                    try await writer.write(Self.sseHeartbeat)
                    return true
                case .event(let e, _):
                    return try await emit(e.record)
                case .note:
                    return true
                }
            }
            try await writer.finish(nil)
        })
    }

    /// `GET /api/v1/events`: every status change as it is committed, filtered by `type`, `status` (each one value
    /// or several, comma-separated) and `key` (an API key id). Each event's `id` is its place in the status feed;
    /// `Last-Event-ID` (or `lastEventId`) resumes right after it, without a gap or a duplicate, as long as the feed
    /// still holds it (`SWITCHBOARD_EVENTS_RETENTION_SECONDS`). A client too slow to keep up is disconnected and
    /// resumes the same way.
    func allEvents(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let q = request.uri.queryParameters
        try Query.allow(q, ["type", "status", "key", "lastEventId"])
        let filter = try Self.eventFilter(q)
        let after = try Self.lastEventID(request).map { last -> FeedPosition in
            guard let p = FeedPosition(parsing: last) else {
                throw APIError(.badRequest, code: "invalid_last_event_id", message: "Last-Event-ID must be the id of an event of this stream (two numbers, 12-0).", field: "Last-Event-ID")
            }
            return p
        }
        let hub = try hub()
        let deadline = hub.settings.streamLimit.map { ContinuousClock.now + $0 }
        return Response(status: .ok, headers: Self.eventStreamHeaders, body: ResponseBody { writer in
            try await writer.write(Self.sseOpening)
            _ = try await hub.follow(filter, after: after) { delivery in
                if let deadline, ContinuousClock.now >= deadline { return false }
                switch delivery {
                case .heartbeat:
                    try await writer.write(Self.sseHeartbeat)
                case .event(let e, _):
                    try await writer.write(Self.sseFrame(id: e.position.description, event: e.record.status?.rawValue ?? "", data: e.json))
                case .note:
                    break
                }
                return true
            }
            try await writer.finish(nil)
        })
    }

    /// The filter of `/api/v1/events` (and of a WebSocket subscription): `type`, `status`, `key`.
    static func eventFilter(_ q: Queries) throws -> EventFilter {
        func list<T: RawRepresentable & CaseIterable>(_ name: String, _: T.Type) throws -> Set<T> where T.RawValue == String, T: Hashable {
            guard let v = Query.string(q, name) else { return [] }
            return try Self.values(v.split(separator: ",").map(String.init), name, T.self)
        }
        let key = Query.string(q, "key")
        if let key, !APIKeySecret.isWellFormedID(key) {
            throw APIError(.badRequest, code: "invalid_parameter", message: "key must be an API key id (key_ followed by letters and digits), as `GET /api/v1/keys` lists them.", field: "key")
        }
        return EventFilter(types: try list("type", MessageChannel.self), statuses: try list("status", CommunicationStatus.self), keyID: key)
    }

    /// Parses enumeration values, naming `field` and the allowed values on a 400.
    static func values<T: RawRepresentable & CaseIterable & Hashable>(_ raw: [String], _ field: String, _: T.Type) throws -> Set<T> where T.RawValue == String {
        var out = Set<T>()
        for v in raw {
            guard let t = T(rawValue: v.trimmingCharacters(in: .whitespaces)) else {
                throw APIError(.badRequest, code: "invalid_parameter", message: "\(field) must be one or more of \(T.allCases.map(\.rawValue).joined(separator: ", ")), comma-separated.", field: field)
            }
            out.insert(t)
        }
        return out
    }
}
