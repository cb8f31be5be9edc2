import Crypto
import Foundation
import SwitchboardCore

/// How documents look in the two indices, and their ids.
enum Documents {
    /// `_source` of a communication document (`_id` = communicationId).
    static func source(_ d: CommunicationDocument) -> JSONValue {
        var o: [String: JSONValue] = [
            "communicationId": .string(d.communicationId), "type": .string(d.type.rawValue), "stream": .string(d.stream),
            "from": .string(d.from), "to": .string(d.to), "msg": .string(d.msg), "status": .string(d.status.rawValue),
            "createdAt": .string(d.createdAt.iso8601), "timestamp": .string(d.timestamp.iso8601),
        ]
        if let key = d.keyID { o["keyId"] = .string(key) }
        if !d.metadata.isEmpty { o["metadata"] = .array(metadataPairs(d.metadata).map(JSONValue.string)) }
        return .object(o)
    }

    /// `data.metadata` as the `metadata` keyword field holds it: one `key=value` string per pair, sorted. A key
    /// holds no `=` (`Metadata.isValidKey`), so a term query on `key=value` is an exact match of that key and value,
    /// on every dialect, and the index's mapping does not grow with the clients' keys.
    static func metadataPairs(_ m: [String: String]) -> [String] {
        m.map { "\($0.key)=\($0.value)" }.sorted()
    }

    /// The pairs back from the `metadata` field.
    static func metadata(_ pairs: [String]?) -> [String: String] {
        var out: [String: String] = [:]
        for p in pairs ?? [] {
            guard let eq = p.firstIndex(of: "=") else { continue }
            out[String(p[..<eq])] = String(p[p.index(after: eq)...])
        }
        return out
    }

    static func communication(_ s: CommunicationSource) -> CommunicationDocument? {
        guard let id = s.communicationId, let type = s.type.flatMap(MessageChannel.init(rawValue:)), let status = s.status.flatMap(CommunicationStatus.init(rawValue:)),
            let created = s.createdAt, let timestamp = s.timestamp
        else { return nil }
        return CommunicationDocument(communicationId: id, type: type, from: s.from ?? "", to: s.to ?? "", msg: s.msg ?? "", status: status, createdAt: created, timestamp: timestamp, keyID: s.keyId, metadata: metadata(s.metadata))
    }

    /// The deterministic id of a log record: a redelivered `log_stream` entry overwrites its own document.
    /// An audit record (no status) also hashes its event, details and parties: two of them about one subject in
    /// one millisecond are two documents.
    static func logId(_ l: LogRecord) -> String {
        var parts = [l.communicationId, l.service, l.status?.rawValue ?? "", String(l.attempt), String(l.timestamp.milliseconds)]
        if l.status == nil { parts += [l.msg, l.error ?? "", l.from, l.to] }
        let key = parts.joined(separator: "\u{1F}")
        return SHA256.hash(data: Data(key.utf8)).prefix(16).map { String(format: "%02x", $0) }.joined()
    }

    /// `_source` of a log record.
    static func source(_ l: LogRecord, id: String) -> JSONValue {
        var o: [String: JSONValue] = [
            "logId": .string(id), "communicationId": .string(l.communicationId), "service": .string(l.service),
            "from": .string(l.from), "to": .string(l.to), "msg": .string(l.msg),
            "attempt": .number(Double(l.attempt)), "timestamp": .string(l.timestamp.iso8601),
        ]
        // An audit record has neither: the fields are left out.
        if let s = l.status { o["status"] = .string(s.rawValue) }
        if let t = l.type { o["type"] = .string(t.rawValue) }
        if let e = l.error { o["error"] = .string(e) }
        if let p = l.provider { o["provider"] = .string(p) }
        if l.test { o["test"] = .bool(true) }
        if let trace = l.traceParent {
            o["traceId"] = .string(trace.traceID)
            o["traceparent"] = .string(trace.text)
        }
        return .object(o)
    }

    static func log(_ s: LogSource) -> LogRecord? {
        // A missing status or type is an audit record's; one that is present must be ours.
        let status = s.status.flatMap(CommunicationStatus.init(rawValue:)), type = s.type.flatMap(MessageChannel.init(rawValue:))
        guard let id = s.communicationId, let service = s.service, (status != nil) == (s.status != nil), (type != nil) == (s.type != nil), let timestamp = s.timestamp
        else { return nil }
        return LogRecord(communicationId: id, service: service, status: status, type: type, from: s.from ?? "", to: s.to ?? "", msg: s.msg ?? "", error: s.error, attempt: s.attempt.map { Int($0) } ?? 0, provider: s.provider, timestamp: timestamp, test: s.test ?? false, traceParent: s.traceparent.flatMap { TraceParent(parsing: $0) })
    }
}

/// The opaque page cursor: the sort values of the last hit (`[millis, id]`), as `e1.<millis>.<base64url(id)>`.
enum SearchCursor {
    static func encode(millis: Int64, id: String) -> String {
        let b = Data(id.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        return "e1.\(millis).\(b)"
    }

    /// The sort values of a cursor we issued; `InvalidCursor` for anything else.
    static func decode(_ text: String) throws -> (millis: Int64, id: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "e1", let millis = Int64(parts[1]), !parts[2].isEmpty else { throw InvalidCursor() }
        var b = parts[2].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while b.count % 4 != 0 { b += "=" }
        guard let data = Data(base64Encoded: b), let id = String(data: data, encoding: .utf8), !id.isEmpty else { throw InvalidCursor() }
        return (millis, id)
    }
}
