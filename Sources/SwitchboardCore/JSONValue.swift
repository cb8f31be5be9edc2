/// A JSON document, kept exactly as a client sent it (object key order is not significant).
///
/// The router echoes `data` "as sent", stores it, and compares it for idempotency, so the core keeps the
/// whole tree rather than a fixed struct.
public enum JSONValue: Sendable, Hashable, Codable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let n = try? c.decode(Double.self) { self = .number(n) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .number(let n): try c.encode(n)
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }

    /// The member `key` of an object, or nil.
    public subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    /// The string, when this is a string.
    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// A short name of the JSON type, for error messages.
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .number: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }

    /// Canonical JSON text: object keys sorted, no insignificant white space. Equal values give equal text.
    public var canonicalText: String {
        String(decoding: canonicalBytes, as: UTF8.self)
    }

    /// `canonicalText` as UTF-8 bytes (what goes on the wire or into a column, without a String detour).
    public var canonicalBytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(128)
        write(to: &out)
        return out
    }

    private func write(to out: inout [UInt8]) {
        switch self {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .number(let n):
            if n.isFinite, n == n.rounded(), abs(n) < 9.0e15 {
                out.append(contentsOf: String(Int64(n)).utf8)
            } else if n.isFinite {
                out.append(contentsOf: "\(n)".utf8)
            } else {
                out.append(contentsOf: "null".utf8)
            }
        case .string(let s): JSONValue.writeString(s, to: &out)
        case .array(let a):
            out.append(UInt8(ascii: "["))
            for (i, v) in a.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                v.write(to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let o):
            out.append(UInt8(ascii: "{"))
            for (i, member) in o.sorted(by: { $0.key < $1.key }).enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                JSONValue.writeString(member.key, to: &out)
                out.append(UInt8(ascii: ":"))
                member.value.write(to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// Appends `s` as a JSON string literal, in UTF-8. Runs of bytes that need no escape are copied whole.
    public static func writeString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { utf8 in
            var runStart = 0
            for (i, b) in utf8.enumerated() where b < 0x20 || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") {
                out.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<i]))
                runStart = i + 1
                out.append(UInt8(ascii: "\\"))
                switch b {
                case UInt8(ascii: "\""): out.append(UInt8(ascii: "\""))
                case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\"))
                case 0x0A: out.append(UInt8(ascii: "n"))
                case 0x0D: out.append(UInt8(ascii: "r"))
                case 0x09: out.append(UInt8(ascii: "t"))
                default:
                    let hex: (UInt8) -> UInt8 = { $0 < 10 ? 48 + $0 : 87 + $0 }  // 0-9, a-f
                    out.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex(b >> 4), hex(b & 0xF)])
                }
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<utf8.count]))
        }
        out.append(UInt8(ascii: "\""))
    }
}

extension JSONValue {
    /// Canonical JSON text of an object whose members are all strings: the same text as
    /// `JSONValue.object(fields.mapValues(JSONValue.string)).canonicalText`, without building the tree
    /// (stream entries are encoded this way on every hop, so it is on the hot path).
    public static func canonicalText(stringFields fields: [String: String]) -> String {
        SortedStringFieldsWriter.text(of: fields.sorted(by: { $0.key < $1.key }), capacity: 64 + fields.count * 24)
    }
}

/// Builds the canonical JSON text of an object of string members, given in sorted key order, without a
/// dictionary (the stream entries written for every message on the hot path use it).
struct SortedStringFieldsWriter {
    private var out: [UInt8] = []
    #if DEBUG
    private var last: String?
    #endif

    /// Member separators are written after `first`: 1 for a writer of its own, past the `{` of the object
    /// started at the end of a buffer it appends to.
    private var first = 1

    init(capacity: Int) {
        out.reserveCapacity(capacity)
        out.append(UInt8(ascii: "{"))
    }

    /// A writer that appends an object to `buffer`, which it takes (left empty, so that appending copies
    /// nothing); give it back with `finished()`.
    init(appendingTo buffer: inout [UInt8]) {
        swap(&out, &buffer)
        out.append(UInt8(ascii: "{"))
        first = out.count
    }

    /// The buffer with the object closed.
    mutating func finished() -> [UInt8] {
        out.append(UInt8(ascii: "}"))
        defer { out = [] }
        return out
    }

    /// Appends one member; keys must come in ascending order.
    mutating func add(_ key: String, _ value: String) {
        #if DEBUG
        assert(last.map { $0 < key } ?? true, "keys out of order")
        last = key
        #endif
        if out.count > first { out.append(UInt8(ascii: ",")) }
        JSONValue.writeString(key, to: &out)
        out.append(UInt8(ascii: ":"))

        JSONValue.writeString(value, to: &out)
    }

    /// The text of `members`, which must be in ascending key order.
    static func text(of members: [(key: String, value: String)], capacity: Int) -> String {
        var w = SortedStringFieldsWriter(capacity: capacity)
        for m in members { w.add(m.key, m.value) }
        return w.text()
    }

    mutating func text() -> String {
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }

    /// Bytes written so far (a member's range, from before its `add` to after it, includes its leading comma).
    var count: Int { out.count }
}
