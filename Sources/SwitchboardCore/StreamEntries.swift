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
    var members: [(key: String, value: String)] { members(dataText: request.data.canonicalText) }

    /// `members` with the request's data already encoded (`request.data.canonicalText`).
    func members(dataText: String) -> [(key: String, value: String)] {
        var m: [(key: String, value: String)] = [
            ("_id", communicationId), ("data", dataText), ("from", request.from), ("msg", request.msg),
            ("seq", String(dispatchSeq)), ("status", CommunicationStatus.queued.rawValue), ("to", request.to),
        ]
        if let traceParent { m.append(("traceparent", traceParent.text)) }
        m.append(("type", request.channel.rawValue))
        return m
    }

    /// Stream fields.
    public var fields: [String: String] { Dictionary(uniqueKeysWithValues: members) }

    /// `fields` as canonical JSON text (equal to `JSONValue.canonicalText(stringFields: fields)`), built directly.
    public var fieldsText: String { fieldsText(dataText: request.data.canonicalText) }

    /// `fieldsText` with the request's data already encoded (`request.data.canonicalText`), which the store's row
    /// holds too: it is encoded once.
    public func fieldsText(dataText: String) -> String {
        SortedStringFieldsWriter.text(of: members(dataText: dataText), capacity: 256 + dataText.utf8.count + request.msg.utf8.count)
    }

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
    /// Visits the `log_stream` fields in key order (the seed's names: service, status, from, to, msg, error,
    /// timestamp, communicationId, plus ours): the one list `members` and the texts are all made from.
    func forEachMember(_ visit: (String, String) -> Void) {
        visit("attempt", String(attempt))
        visit("communicationId", communicationId)
        if let error { visit("error", error) }
        visit("from", from)
        if let keyID { visit("keyId", keyID) }
        if !metadata.isEmpty { visit("metadata", Metadata.json(metadata).canonicalText) }
        visit("msg", msg)
        if let provider { visit("provider", provider) }
        visit("service", service)
        if let status { visit("status", status.rawValue) }
        if test { visit("test", "true") }
        visit("timestamp", timestamp.iso8601)
        visit("to", to)
        if let traceParent { visit("traceparent", traceParent.text) }
        if let type { visit("type", type.rawValue) }
    }

    /// The `log_stream` fields in key order.
    var members: [(key: String, value: String)] {
        var m: [(key: String, value: String)] = []
        m.reserveCapacity(14)
        forEachMember { m.append(($0, $1)) }
        return m
    }

    /// Stream fields for `log_stream`.
    public var fields: [String: String] { Dictionary(uniqueKeysWithValues: members) }

    /// The fields of the status feed's entry (`status_stream`): the log record's without the body (`msg`), which
    /// events never show and the feed, kept for a while, would otherwise copy.
    public var statusFields: [String: String] { Dictionary(uniqueKeysWithValues: members.filter { $0.key != "msg" }) }

    /// `fields` as canonical JSON text (equal to `JSONValue.canonicalText(stringFields: fields)`), built directly.
    public var fieldsText: String {
        var w = SortedStringFieldsWriter(capacity: 224 + msg.utf8.count)
        forEachMember { w.add($0, $1) }
        return w.text()
    }

    /// `statusFields` as canonical JSON text, built directly.
    public var statusFieldsText: String {
        var w = SortedStringFieldsWriter(capacity: 224)
        forEachMember { if $0 != "msg" { w.add($0, $1) } }
        return w.text()
    }

    /// Appends `fieldsText` to `log` and the status feed's text to `status`, each after a comma when its buffer
    /// holds more than its opening bracket: the records of a batch written straight into the two texts
    /// `SQLiteQueue.batchText` would make of them (`[record,record,…`), without a string per record. Returns
    /// each record's range in its buffer.
    public func appendLogAndStatus(log: inout [UInt8], status: inout [UInt8]) -> (log: Range<Int>, status: Range<Int>) {
        if log.count > 1 { log.append(UInt8(ascii: ",")) }
        if status.count > 1 { status.append(UInt8(ascii: ",")) }
        let start = log.count
        var w = SortedStringFieldsWriter(appendingTo: &log)
        var cut = 0..<0
        forEachMember { key, value in
            let before = w.count
            w.add(key, value)
            if key == "msg" { cut = before..<w.count }
        }
        log = w.finished()
        let statusStart = status.count
        status.append(contentsOf: log[start..<cut.lowerBound])
        status.append(contentsOf: log[cut.upperBound...])
        return (start..<log.count, statusStart..<status.count)
    }

    /// `fieldsText` and the status feed's text (`statusFields` as canonical JSON), in one pass: the status text is
    /// the log text without its `msg` member (every accept and status change makes both, on the hot path).
    public var logAndStatusTexts: (log: String, status: String) {
        var log: [UInt8] = [], status: [UInt8] = []
        log.reserveCapacity(224 + msg.utf8.count)
        status.reserveCapacity(224)
        _ = appendLogAndStatus(log: &log, status: &status)
        return (String(decoding: log, as: UTF8.self), String(decoding: status, as: UTF8.self))
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
