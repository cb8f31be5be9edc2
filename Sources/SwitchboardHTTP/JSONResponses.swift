import HTTPTypes
import Hummingbird
import NIOCore
import SwitchboardCore

/// JSON renderings of the domain types for the API.
enum Render {
    static func optional(_ s: String?) -> JSONValue { s.map { .string($0) } ?? .null }

    static func error(_ e: ProviderError?) -> JSONValue {
        guard let e else { return .null }
        return .object(["code": optional(e.code), "message": .string(e.message)])
    }

    static func communication(_ c: Communication) -> JSONValue {
        var o: [String: JSONValue] = [
            "id": .string(c.id), "type": .string(c.channel.rawValue), "stream": .string(c.channel.stream),
            "from": .string(c.request.from), "to": .string(c.request.to), "msg": .string(c.request.msg), "data": c.request.data,
            "status": .string(c.status.rawValue), "attempts": .number(Double(c.attempts)),
            "provider": optional(c.provider), "providerMessageId": optional(c.providerMessageID), "lastError": error(c.lastError),
            "idempotencyKey": optional(c.idempotencyKey), "keyId": optional(c.keyID), "test": .bool(c.test), "traceId": optional(c.traceParent?.traceID),
            "createdAt": .string(c.createdAt.iso8601), "updatedAt": .string(c.updatedAt.iso8601),
            "nextAttemptAt": c.status == .retrying ? optional(c.dispatchAt?.iso8601) : .null,
            "history": .array(c.history.map(change)),
        ]
        if let s = c.request.subject { o["subject"] = .string(s) }
        o["metadata"] = Metadata.json(c.request.metadata)
        return .object(o)
    }

    static func change(_ h: StatusChange) -> JSONValue {
        .object([
            "status": .string(h.status.rawValue), "at": .string(h.at.iso8601), "attempt": .number(Double(h.attempt)),
            "service": .string(h.service), "provider": optional(h.provider), "detail": optional(h.detail),
        ])
    }

    static func document(_ d: CommunicationDocument) -> JSONValue {
        .object([
            "communicationId": .string(d.communicationId), "id": .string(d.communicationId), "type": .string(d.type.rawValue), "stream": .string(d.stream),
            "from": .string(d.from), "to": .string(d.to), "msg": .string(d.msg), "status": .string(d.status.rawValue),
            "createdAt": .string(d.createdAt.iso8601), "timestamp": .string(d.timestamp.iso8601), "keyId": optional(d.keyID),
            "metadata": Metadata.json(d.metadata),
        ])
    }

    static func log(_ l: LogRecord) -> JSONValue {
        .object([
            "communicationId": .string(l.communicationId), "service": .string(l.service), "status": optional(l.status?.rawValue), "type": optional(l.type?.rawValue),
            "from": .string(l.from), "to": .string(l.to), "msg": .string(l.msg), "error": optional(l.error),
            "attempt": .number(Double(l.attempt)), "provider": optional(l.provider), "timestamp": .string(l.timestamp.iso8601), "test": .bool(l.test), "traceId": optional(l.traceParent?.traceID),
        ])
    }

    static func sandbox(_ m: SandboxMessage) -> JSONValue {
        .object([
            "communicationId": .string(m.communicationId), "type": .string(m.channel.rawValue), "from": .string(m.from), "to": .string(m.to),
            "msg": .string(m.msg), "subject": optional(m.subject), "attempt": .number(Double(m.attempt)),
            "providerMessageId": .string(m.providerMessageID), "deliveredAt": .string(m.at.iso8601),
        ])
    }

    static func page<T>(_ p: Page<T>, _ render: (T) -> JSONValue) -> JSONValue {
        .object(["items": .array(p.items.map(render)), "count": .number(Double(p.items.count)), "nextCursor": optional(p.nextCursor)])
    }
}

extension Response {
    /// A JSON response.
    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok, headers extra: HTTPFields = [:]) -> Response {
        var text = value.canonicalText
        text.append("\n")
        var headers: HTTPFields = [.contentType: "application/json; charset=utf-8"]
        headers.append(contentsOf: extra)
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}

/// An API error rendered as `{"error":{"code","message","field"}}`.
struct APIError: Error, HTTPResponseError {
    var status: HTTPResponse.Status
    var code: String
    var message: String
    var field: String?
    var headers: HTTPFields = [:]

    init(_ status: HTTPResponse.Status, code: String, message: String, field: String? = nil, headers: HTTPFields = [:]) {
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers
    }

    init(_ e: RequestError) {
        self.init(.badRequest, code: e.code, message: e.message, field: e.field)
    }

    var body: JSONValue {
        var o: [String: JSONValue] = ["code": .string(code), "message": .string(message)]
        if let field { o["field"] = .string(field) }
        return .object(["error": .object(o)])
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        .json(body, status: status, headers: headers)
    }
}
