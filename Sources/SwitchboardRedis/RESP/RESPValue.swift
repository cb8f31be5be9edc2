import NIOCore

/// One key/value entry of a RESP3 map or attribute.
///
/// Maps keep the order in which the server sent their entries, so they are
/// modelled as an ordered list of pairs rather than as a dictionary.
public struct RESPMapEntry: Sendable, Hashable {
    /// The entry's key.
    public var key: RESPValue
    /// The entry's value.
    public var value: RESPValue

    /// Creates a map entry.
    /// - Parameters:
    ///   - key: The entry's key.
    ///   - value: The entry's value.
    public init(key: RESPValue, value: RESPValue) {
        self.key = key
        self.value = value
    }
}

/// A value of the Redis serialization protocol, covering both RESP2 and RESP3.
///
/// RESP2 null bulk strings (`$-1`) and null arrays (`*-1`) are both decoded as
/// ``null``, the same as the RESP3 null (`_`). Simple errors (`-`) and blob
/// errors (`!`) are both decoded as ``error(_:)``.
public enum RESPValue: Sendable, Hashable {
    /// A simple string (`+OK`).
    case simpleString(String)
    /// An error reply (`-ERR …` or the RESP3 blob error `!`). The payload is the
    /// full error line, including its prefix (for example `"NOGROUP No such key"`).
    case error(String)
    /// A signed 64-bit integer (`:`).
    case integer(Int64)
    /// A binary-safe bulk string (`$`). The bytes are kept as a `ByteBuffer`.
    case bulkString(ByteBuffer)
    /// Null: RESP3 `_`, RESP2 `$-1` or `*-1`.
    case null
    /// An array (`*`).
    case array([RESPValue])
    /// A RESP3 map (`%`), in the order sent by the server.
    case map([RESPMapEntry])
    /// A RESP3 set (`~`), in the order sent by the server.
    case set([RESPValue])
    /// A RESP3 double (`,`), including `inf`, `-inf` and `nan`.
    case double(Double)
    /// A RESP3 boolean (`#t` / `#f`).
    case boolean(Bool)
    /// A RESP3 big number (`(`), kept as its decimal text.
    case bigNumber(String)
    /// A RESP3 verbatim string (`=`): a three-letter format such as `txt` or `mkd` and the text.
    case verbatimString(format: String, text: String)
    /// A RESP3 out-of-band push message (`>`).
    case push([RESPValue])
    /// A RESP3 attribute (`|`) together with the reply it annotates.
    indirect case attribute(attributes: [RESPMapEntry], value: RESPValue)
}

extension RESPValue {
    /// Creates a bulk string holding the UTF-8 bytes of `string`.
    /// - Parameter string: The text to store.
    /// - Returns: A ``bulkString(_:)`` value.
    public static func bulkString(_ string: String) -> RESPValue {
        .bulkString(ByteBuffer(string: string))
    }

    /// The value with any RESP3 attribute wrapper removed.
    public var withoutAttributes: RESPValue {
        var value = self
        while case .attribute(_, let inner) = value {
            value = inner
        }
        return value
    }

    /// Whether the value is ``null``.
    public var isNull: Bool {
        if case .null = self.withoutAttributes { return true }
        return false
    }

    /// The value as text: simple strings, bulk strings (decoded as UTF-8, with
    /// invalid sequences repaired), verbatim strings, big numbers, integers and doubles.
    /// `nil` for other kinds.
    public var string: String? {
        switch self {
        case .simpleString(let s): return s
        case .bulkString(let b): return String(buffer: b)
        case .verbatimString(_, let text): return text
        case .bigNumber(let s): return s
        case .integer(let i): return String(i)
        case .double(let d): return String(d)
        case .attribute(_, let v): return v.string
        default: return nil
        }
    }

    /// The value as an integer: integers, and strings holding a decimal integer. `nil` otherwise.
    public var int64: Int64? {
        switch self {
        case .integer(let i): return i
        case .simpleString(let s): return Int64(s)
        case .bulkString(let b): return Int64(String(buffer: b))
        case .bigNumber(let s): return Int64(s)
        case .attribute(_, let v): return v.int64
        default: return nil
        }
    }

    /// The value as an `Int`, under the same rules as ``int64``.
    public var int: Int? {
        self.int64.flatMap { Int(exactly: $0) }
    }

    /// The value as a `Double`: doubles, integers and numeric strings. `nil` otherwise.
    public var double: Double? {
        switch self {
        case .double(let d): return d
        case .integer(let i): return Double(i)
        case .simpleString(let s): return Double(s)
        case .bulkString(let b): return Double(String(buffer: b))
        case .attribute(_, let v): return v.double
        default: return nil
        }
    }

    /// The elements of an array, set or push. `nil` for other kinds (including ``null``).
    public var array: [RESPValue]? {
        switch self {
        case .array(let a), .set(let a), .push(let a): return a
        case .attribute(_, let v): return v.array
        default: return nil
        }
    }

    /// The entries of a map; for an array of even length (the RESP2 form of a
    /// map), its elements taken two by two. `nil` for other kinds.
    public var mapEntries: [RESPMapEntry]? {
        switch self {
        case .map(let entries):
            return entries
        case .array(let elements):
            guard elements.count % 2 == 0 else { return nil }
            var entries: [RESPMapEntry] = []
            entries.reserveCapacity(elements.count / 2)
            var index = elements.startIndex
            while index < elements.endIndex {
                entries.append(RESPMapEntry(key: elements[index], value: elements[index + 1]))
                index += 2
            }
            return entries
        case .attribute(_, let v):
            return v.mapEntries
        default:
            return nil
        }
    }

    /// The entries of a map (or RESP2 flat key/value array) whose keys are text,
    /// keyed by that text. Later duplicates win. `nil` if the value is not map-like.
    public var stringKeyedMap: [String: RESPValue]? {
        guard let entries = self.mapEntries else { return nil }
        var result: [String: RESPValue] = [:]
        result.reserveCapacity(entries.count)
        for entry in entries {
            guard let key = entry.key.string else { return nil }
            result[key] = entry.value
        }
        return result
    }

    /// The error text if the value is an ``error(_:)``, otherwise `nil`.
    public var errorMessage: String? {
        if case .error(let message) = self.withoutAttributes { return message }
        return nil
    }

    /// Returns the value, or throws the matching ``RedisError`` if it is an error reply.
    /// - Returns: `self` when it is not an error reply.
    /// - Throws: ``RedisError`` built from the error text.
    public func throwingIfError() throws(RedisError) -> RESPValue {
        if let message = self.errorMessage {
            throw RedisError(serverMessage: message)
        }
        return self
    }
}

extension RESPValue: CustomStringConvertible {
    /// A human-readable rendering of the value, similar to `redis-cli` output.
    public var description: String {
        switch self {
        case .simpleString(let s): return s
        case .error(let e): return "(error) \(e)"
        case .integer(let i): return "(integer) \(i)"
        case .bulkString(let b): return "\"\(String(buffer: b))\""
        case .null: return "(nil)"
        case .array(let a): return "[" + a.map(\.description).joined(separator: ", ") + "]"
        case .set(let a): return "set[" + a.map(\.description).joined(separator: ", ") + "]"
        case .push(let a): return "push[" + a.map(\.description).joined(separator: ", ") + "]"
        case .map(let m): return "{" + m.map { "\($0.key.description): \($0.value.description)" }.joined(separator: ", ") + "}"
        case .double(let d): return "(double) \(d)"
        case .boolean(let b): return b ? "(true)" : "(false)"
        case .bigNumber(let n): return "(big number) \(n)"
        case .verbatimString(let format, let text): return "(\(format)) \(text)"
        case .attribute(let attributes, let value):
            return "|" + attributes.map { "\($0.key.description): \($0.value.description)" }.joined(separator: ", ")
                + "| " + value.description
        }
    }
}
