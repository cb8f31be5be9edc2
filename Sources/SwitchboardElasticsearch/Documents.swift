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
        return .object(o)
    }

    static func communication(_ s: CommunicationSource) -> CommunicationDocument? {
        guard let id = s.communicationId, let type = s.type.flatMap(MessageChannel.init(rawValue:)), let status = s.status.flatMap(CommunicationStatus.init(rawValue:)),
            let created = s.createdAt, let timestamp = s.timestamp
        else { return nil }
        return CommunicationDocument(communicationId: id, type: type, from: s.from ?? "", to: s.to ?? "", msg: s.msg ?? "", status: status, createdAt: created, timestamp: timestamp, keyID: s.keyId)
    }

    /// The deterministic id of a log record: a redelivered `log_stream` entry overwrites its own document.
    static func logId(_ l: LogRecord) -> String {
        let key = [l.communicationId, l.service, l.status.rawValue, String(l.attempt), String(l.timestamp.milliseconds)].joined(separator: "\u{1F}")
        return SHA256.hash(data: Data(key.utf8)).prefix(16).map { String(format: "%02x", $0) }.joined()
    }

    /// `_source` of a log record.
    static func source(_ l: LogRecord, id: String) -> JSONValue {
        var o: [String: JSONValue] = [
            "logId": .string(id), "communicationId": .string(l.communicationId), "service": .string(l.service), "status": .string(l.status.rawValue),
            "type": .string(l.type.rawValue), "from": .string(l.from), "to": .string(l.to), "msg": .string(l.msg),
            "attempt": .number(Double(l.attempt)), "timestamp": .string(l.timestamp.iso8601),
        ]
        if let e = l.error { o["error"] = .string(e) }
        if let p = l.provider { o["provider"] = .string(p) }
        if l.test { o["test"] = .bool(true) }
        return .object(o)
    }

    static func log(_ s: LogSource) -> LogRecord? {
        guard let id = s.communicationId, let service = s.service, let status = s.status.flatMap(CommunicationStatus.init(rawValue:)),
            let type = s.type.flatMap(MessageChannel.init(rawValue:)), let timestamp = s.timestamp
        else { return nil }
        return LogRecord(communicationId: id, service: service, status: status, type: type, from: s.from ?? "", to: s.to ?? "", msg: s.msg ?? "", error: s.error, attempt: s.attempt.map { Int($0) } ?? 0, provider: s.provider, timestamp: timestamp, test: s.test ?? false)
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
