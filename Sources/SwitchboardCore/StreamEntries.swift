/// The fields of a channel stream entry: the seed's (`from`, `to`, `msg`, `_id`, `status`) plus ours.
public struct DispatchEntry: Sendable, Hashable {
    public var communicationId: String
    public var dispatchSeq: Int
    public var request: CommunicationRequest
    /// The trace context the dispatch belongs to (field `traceparent`, W3C format): the worker's delivery span is
    /// its child. The one field added to the seed's; absent on entries of records without one.
    public var traceParent: TraceParent?

    public init(communicationId: String, dispatchSeq: Int, request: CommunicationRequest, traceParent: TraceParent? = nil) {
        self.communicationId = communicationId
        self.dispatchSeq = dispatchSeq
        self.request = request
        self.traceParent = traceParent
    }

    /// The entry of `c`'s current dispatch, carrying its trace context (`traceParent` replaces the record's, e.g.
    /// with the outbox's republication span).
    public init(_ c: Communication, traceParent: TraceParent? = nil) {
        self.init(communicationId: c.id, dispatchSeq: c.dispatchSeq, request: c.request, traceParent: traceParent ?? c.traceParent)
    }

    /// The stream fields in key order: the one list both `fields` and `fieldsText` are made from.
    var members: [(key: String, value: String)] {
        var m: [(key: String, value: String)] = [
            ("_id", communicationId), ("data", request.data.canonicalText), ("from", request.from), ("msg", request.msg),
            ("seq", String(dispatchSeq)), ("status", CommunicationStatus.queued.rawValue), ("to", request.to),
        ]
        if let traceParent { m.append(("traceparent", traceParent.text)) }
        m.append(("type", request.channel.rawValue))
        return m
    }

    /// Stream fields.
    public var fields: [String: String] { Dictionary(uniqueKeysWithValues: members) }

    /// `fields` as canonical JSON text (equal to `JSONValue.canonicalText(stringFields: fields)`), built directly.
    public var fieldsText: String { SortedStringFieldsWriter.text(of: members, capacity: 256 + request.msg.utf8.count * 2) }

    /// What a worker needs of a channel stream entry: which communication and which dispatch of it. The message
    /// itself is read from the store (the source of truth) when `processing` is recorded, so the entry's copy of
    /// the request is not parsed again. Nil without an `_id` or a dispatch number.
    public struct Reference: Sendable, Hashable {
        public var communicationId: String
        public var dispatchSeq: Int
        /// The entry's `traceparent`; nil when absent or not a valid one (the entry is still delivered).
        public var traceParent: TraceParent?

        public init?(fields: [String: String]) {
            guard let id = fields["_id"], !id.isEmpty, let seq = fields["seq"].flatMap({ Int($0) }), seq >= 1 else { return nil }
            communicationId = id
            dispatchSeq = seq
            traceParent = fields["traceparent"].flatMap { TraceParent(parsing: $0) }
        }
    }

    /// Reads stream fields back, the request included; nil when they are not a dispatch entry of ours.
    public init?(fields: [String: String]) {
        guard let reference = Reference(fields: fields), let type = fields["type"],
            let dataText = fields["data"], let data = try? JSONParser.parse(dataText),
            case .success(let request) = RequestValidator.validate(.object(["type": .string(type), "data": data]), stored: true)
        else { return nil }
        self.init(communicationId: reference.communicationId, dispatchSeq: reference.dispatchSeq, request: request, traceParent: reference.traceParent)
    }
}

extension LogRecord {
    /// The `log_stream` fields in key order (the seed's names: service, status, from, to, msg, error, timestamp,
    /// communicationId, plus ours): the one list both `fields` and `fieldsText` are made from.
    var members: [(key: String, value: String)] {
        var m: [(key: String, value: String)] = [("attempt", String(attempt)), ("communicationId", communicationId)]
        if let error { m.append(("error", error)) }
        m.append(("from", from))
        if let keyID { m.append(("keyId", keyID)) }
        if !metadata.isEmpty { m.append(("metadata", Metadata.json(metadata).canonicalText)) }
        m.append(("msg", msg))
        if let provider { m.append(("provider", provider)) }
        m.append(("service", service))
        if let status { m.append(("status", status.rawValue)) }
        if test { m.append(("test", "true")) }
        m += [("timestamp", timestamp.iso8601), ("to", to)]
        if let traceParent { m.append(("traceparent", traceParent.text)) }
        if let type { m.append(("type", type.rawValue)) }
        return m
    }

    /// Stream fields for `log_stream`.
    public var fields: [String: String] { Dictionary(uniqueKeysWithValues: members) }

    /// The fields of the status feed's entry (`status_stream`): the log record's without the body (`msg`), which
    /// events never show and the feed, kept for a while, would otherwise copy.
    public var statusFields: [String: String] { Dictionary(uniqueKeysWithValues: members.filter { $0.key != "msg" }) }

    /// `fields` as canonical JSON text (equal to `JSONValue.canonicalText(stringFields: fields)`), built directly.
    public var fieldsText: String { SortedStringFieldsWriter.text(of: members, capacity: 192 + msg.utf8.count) }

    /// `statusFields` as canonical JSON text, built directly.
    public var statusFieldsText: String { SortedStringFieldsWriter.text(of: members.filter { $0.key != "msg" }, capacity: 256) }

    /// `fieldsText` and the status feed's text (`statusFields` as canonical JSON), from one list of fields.
    public var logAndStatusTexts: (log: String, status: String) {
        let m = members
        return (SortedStringFieldsWriter.text(of: m, capacity: 192 + msg.utf8.count), SortedStringFieldsWriter.text(of: m.filter { $0.key != "msg" }, capacity: 256))
    }

    /// Reads `log_stream` fields back; nil when required fields are missing.
    public init?(fields f: [String: String]) {
        guard let id = f["communicationId"], let service = f["service"], let status = f["status"].flatMap(CommunicationStatus.init(rawValue:)),
            let type = f["type"].flatMap(MessageChannel.init(rawValue:)), let ts = f["timestamp"].flatMap(Timestamp.init(parsing:))
        else { return nil }
        self.init(communicationId: id, service: service, status: status, type: type, from: f["from"] ?? "", to: f["to"] ?? "", msg: f["msg"] ?? "", error: f["error"], attempt: f["attempt"].flatMap(Int.init) ?? 0, provider: f["provider"], timestamp: ts, test: f["test"] == "true", traceParent: f["traceparent"].flatMap { TraceParent(parsing: $0) }, keyID: f["keyId"],
                  metadata: f["metadata"].flatMap { try? JSONParser.parse($0) }.map { Metadata.pairs(.object(["metadata": $0])) } ?? [:])
    }

    /// The log record of a status change of `c`.
    public init(_ c: Communication, change: StatusChange) {
        self.init(communicationId: c.id, service: change.service, status: change.status, type: c.channel, from: c.request.from, to: c.request.to, msg: c.request.msg, error: change.detail, attempt: change.attempt, provider: change.provider, timestamp: change.at, test: c.test, traceParent: c.traceParent, keyID: c.keyID, metadata: c.request.metadata)
    }
}
