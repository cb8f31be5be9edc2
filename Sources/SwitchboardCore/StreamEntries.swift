/// The fields of a channel stream entry: the seed's (`from`, `to`, `msg`, `_id`, `status`) plus ours.
public struct DispatchEntry: Sendable, Hashable {
    public var communicationId: String
    public var dispatchSeq: Int
    public var request: CommunicationRequest

    public init(communicationId: String, dispatchSeq: Int, request: CommunicationRequest) {
        self.communicationId = communicationId
        self.dispatchSeq = dispatchSeq
        self.request = request
    }

    public init(_ c: Communication) {
        self.init(communicationId: c.id, dispatchSeq: c.dispatchSeq, request: c.request)
    }

    /// Stream fields.
    public var fields: [String: String] {
        [
            "_id": communicationId, "from": request.from, "to": request.to, "msg": request.msg, "status": CommunicationStatus.queued.rawValue,
            "type": request.channel.rawValue, "seq": String(dispatchSeq), "data": request.data.canonicalText,
        ]
    }

    /// `fields` as canonical JSON text (equal to `JSONValue.canonicalText(stringFields: fields)`), built directly.
    public var fieldsText: String {
        var w = SortedStringFieldsWriter(capacity: 256 + request.msg.utf8.count * 2)
        w.add("_id", communicationId)
        w.add("data", request.data.canonicalText)
        w.add("from", request.from)
        w.add("msg", request.msg)
        w.add("seq", String(dispatchSeq))
        w.add("status", CommunicationStatus.queued.rawValue)
        w.add("to", request.to)
        w.add("type", request.channel.rawValue)
        return w.text()
    }

    /// Reads stream fields back; nil when they are not a dispatch entry of ours.
    public init?(fields: [String: String]) {
        guard let id = fields["_id"], let type = fields["type"], let seqText = fields["seq"], let seq = Int(seqText),
            let dataText = fields["data"], let data = try? JSONParser.parse(dataText),
            case .success(let request) = RequestValidator.validate(.object(["type": .string(type), "data": data]))
        else { return nil }
        self.init(communicationId: id, dispatchSeq: seq, request: request)
    }
}

extension LogRecord {
    /// Stream fields for `log_stream` (the seed's names: service, status, from, to, msg, error, timestamp, communicationId).
    public var fields: [String: String] {
        var f = [
            "communicationId": communicationId, "service": service, "status": status.rawValue, "type": type.rawValue,
            "from": from, "to": to, "msg": msg, "attempt": String(attempt), "timestamp": timestamp.iso8601,
        ]
        if let error { f["error"] = error }
        if let provider { f["provider"] = provider }
        return f
    }

    /// `fields` as canonical JSON text (equal to `JSONValue.canonicalText(stringFields: fields)`), built directly.
    public var fieldsText: String {
        var w = SortedStringFieldsWriter(capacity: 192 + msg.utf8.count)
        w.add("attempt", String(attempt))
        w.add("communicationId", communicationId)
        if let error { w.add("error", error) }
        w.add("from", from)
        w.add("msg", msg)
        if let provider { w.add("provider", provider) }
        w.add("service", service)
        w.add("status", status.rawValue)
        w.add("timestamp", timestamp.iso8601)
        w.add("to", to)
        w.add("type", type.rawValue)
        return w.text()
    }

    /// Reads `log_stream` fields back; nil when required fields are missing.
    public init?(fields f: [String: String]) {
        guard let id = f["communicationId"], let service = f["service"], let status = f["status"].flatMap(CommunicationStatus.init(rawValue:)),
            let type = f["type"].flatMap(Channel.init(rawValue:)), let ts = f["timestamp"].flatMap(Timestamp.init(parsing:))
        else { return nil }
        self.init(communicationId: id, service: service, status: status, type: type, from: f["from"] ?? "", to: f["to"] ?? "", msg: f["msg"] ?? "", error: f["error"], attempt: f["attempt"].flatMap(Int.init) ?? 0, provider: f["provider"], timestamp: ts)
    }

    /// The log record of a status change of `c`.
    public init(_ c: Communication, change: StatusChange) {
        self.init(communicationId: c.id, service: change.service, status: change.status, type: c.channel, from: c.request.from, to: c.request.to, msg: c.request.msg, error: change.detail, attempt: change.attempt, provider: change.provider, timestamp: change.at)
    }
}
