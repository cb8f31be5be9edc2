#if MongoDB
import SwitchboardCore

/// The layout of a communication document:
///
/// ```
/// { _id: "<id>", type: "sms", data: { from, to, msg, … the request's data as sent },
///   status: "queued", history: [ { status, at, attempt, service, provider?, detail? } ],
///   attempts, dispatchSeq, dispatchAt: Date | null, provider, providerMessageId, lastError: { code, message } | null,
///   idempotencyKey (only when given), keyId (the API key that created it, when one did), test: true (only for
///   a test key's message), traceparent (the message's W3C trace context, `00-<trace id>-<span id>-<flags>`),
///   createdAt: Date, updatedAt: Date, revision }
/// ```
enum MongoDocuments {
    static func document(_ item: NewCommunication) -> BSONDocument {
        let c = item.communication
        var d: BSONDocument = ["_id": .string(c.id), "type": .string(c.channel.rawValue), "data": bson(c.request.data)]
        for e in mutableFields(c) { d[e.key] = e.value }
        d["history"] = .array(c.history.map { .document(document($0)) })
        if let key = c.idempotencyKey { d["idempotencyKey"] = .string(key) }
        if let keyID = c.keyID { d["keyId"] = .string(keyID) }
        if c.test { d["test"] = .bool(true) }
        if let trace = c.traceParent { d["traceparent"] = .string(trace.text) }
        d["createdAt"] = .datetime(c.createdAt.milliseconds)
        d["revision"] = .int64(1)
        return d
    }

    /// The fields a status change may rewrite.
    static func mutableFields(_ c: Communication) -> BSONDocument {
        [
            "status": .string(c.status.rawValue),
            "attempts": .int64(Int64(c.attempts)),
            "dispatchSeq": .int64(Int64(c.dispatchSeq)),
            "dispatchAt": c.dispatchAt.map { .datetime($0.milliseconds) } ?? .null,
            "provider": c.provider.map(BSON.string) ?? .null,
            "providerMessageId": c.providerMessageID.map(BSON.string) ?? .null,
            "lastError": c.lastError.map { e in .document(["code": e.code.map(BSON.string) ?? .null, "message": .string(e.message)]) } ?? .null,
            "updatedAt": .datetime(c.updatedAt.milliseconds),
        ]
    }

    static func document(_ h: StatusChange) -> BSONDocument {
        var d: BSONDocument = ["status": .string(h.status.rawValue), "at": .datetime(h.at.milliseconds), "attempt": .int64(Int64(h.attempt)), "service": .string(h.service)]
        if let p = h.provider { d["provider"] = .string(p) }
        if let detail = h.detail { d["detail"] = .string(detail) }
        return d
    }

    static func communication(_ d: BSONDocument) throws(MongoError) -> Communication {
        let id = d["_id"]?.stringValue ?? "?"
        func bad(_ what: String) -> MongoError { .malformedDocument("communication \(id): \(what)") }
        guard d["_id"]?.stringValue != nil else { throw bad("_id is not a string") }
        guard let channel = d["type"]?.stringValue.flatMap(MessageChannel.init(rawValue:)) else { throw bad("unknown type") }
        guard let status = d["status"]?.stringValue.flatMap(CommunicationStatus.init(rawValue:)) else { throw bad("unknown status") }
        guard case .datetime(let created)? = d["createdAt"], case .datetime(let updated)? = d["updatedAt"] else { throw bad("createdAt or updatedAt is not a date") }
        let data = d["data"].map(json) ?? .object([:])
        let request = CommunicationRequest(stored: channel, data: data)
        var dispatchAt: Timestamp?
        if case .datetime(let ms)? = d["dispatchAt"] { dispatchAt = Timestamp(milliseconds: ms) }
        var lastError: ProviderError?
        if let e = d["lastError"]?.documentValue, let message = e["message"]?.stringValue {
            lastError = ProviderError(code: e["code"]?.stringValue, message: message)
        }
        var history: [StatusChange] = []
        if case .array(let entries)? = d["history"] {
            for case .document(let h) in entries {
                guard let s = h["status"]?.stringValue.flatMap(CommunicationStatus.init(rawValue:)), case .datetime(let at)? = h["at"] else { throw bad("history entry without status or time") }
                history.append(StatusChange(status: s, at: Timestamp(milliseconds: at), attempt: Int(h["attempt"]?.intValue ?? 0), service: h["service"]?.stringValue ?? "", provider: h["provider"]?.stringValue, detail: h["detail"]?.stringValue))
            }
        }
        return Communication(
            id: id, request: request, status: status, attempts: Int(d["attempts"]?.intValue ?? 0), dispatchSeq: Int(d["dispatchSeq"]?.intValue ?? 1),
            dispatchAt: dispatchAt, provider: d["provider"]?.stringValue, providerMessageID: d["providerMessageId"]?.stringValue, lastError: lastError,
            idempotencyKey: d["idempotencyKey"]?.stringValue, createdAt: Timestamp(milliseconds: created), updatedAt: Timestamp(milliseconds: updated), history: history,
            keyID: d["keyId"]?.stringValue, test: d["test"] == .bool(true), traceParent: d["traceparent"]?.stringValue.flatMap { TraceParent(parsing: $0) })
    }

    /// JSON as BSON: numbers as doubles (JSON has one number type), objects with their keys sorted.
    static func bson(_ v: JSONValue) -> BSON {
        switch v {
        case .null: .null
        case .bool(let b): .bool(b)
        case .number(let n): .double(n)
        case .string(let s): .string(s)
        case .array(let a): .array(a.map(bson))
        case .object(let o):
            .document(o.keys.sorted().reduce(into: BSONDocument()) { d, k in d.append(k, bson(o[k]!)) })
        }
    }

    /// BSON as JSON; values JSON cannot hold (binary, ids, dates) become their closest JSON form.
    static func json(_ v: BSON) -> JSONValue {
        switch v {
        case .null, .minKey, .maxKey: .null
        case .bool(let b): .bool(b)
        case .double(let n): .number(n)
        case .int32(let n): .number(Double(n))
        case .int64(let n): .number(Double(n))
        case .datetime(let ms): .string(Timestamp(milliseconds: ms).iso8601)
        case .timestamp(let t): .number(Double(t >> 32))
        case .string(let s): .string(s)
        case .array(let a): .array(a.map(json))
        case .document(let d): .object(Dictionary(d.elements.map { ($0.key, json($0.value)) }, uniquingKeysWith: { $1 }))
        case .objectID(let bytes), .binary(_, let bytes), .decimal128(let bytes): .string(bytes.map(hex).joined())
        }
    }

    static func hex(_ byte: UInt8) -> String {
        let digits = String(byte, radix: 16)
        return byte < 16 ? "0" + digits : digits
    }
}
#endif
