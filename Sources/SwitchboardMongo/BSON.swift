#if MongoDB
/// One BSON value (the types this adapter writes, and every type a server may return in a document we read).
public enum BSON: Sendable, Hashable {
    case double(Double)
    case string(String)
    case document(BSONDocument)
    case array([BSON])
    case binary(subtype: UInt8, bytes: [UInt8])
    case objectID([UInt8])
    case bool(Bool)
    /// UTC milliseconds since the epoch.
    case datetime(Int64)
    case null
    case int32(Int32)
    /// The internal replication timestamp type.
    case timestamp(UInt64)
    case int64(Int64)
    /// Kept as its 16 raw bytes.
    case decimal128([UInt8])
    case minKey
    case maxKey

    /// The string, if this is one.
    public var stringValue: String? { if case .string(let s) = self { s } else { nil } }
    /// The document, if this is one.
    public var documentValue: BSONDocument? { if case .document(let d) = self { d } else { nil } }
    /// An integer of any width, or an integral double.
    public var intValue: Int64? {
        switch self {
        case .int32(let v): Int64(v)
        case .int64(let v): v
        case .double(let v) where v.rounded() == v && abs(v) < 9.0e15: Int64(v)
        default: nil
        }
    }
}

/// A BSON document: keys in order (BSON is ordered, and commands depend on it).
public struct BSONDocument: Sendable, Hashable, ExpressibleByDictionaryLiteral, Sequence {
    public struct Element: Sendable, Hashable {
        public var key: String
        public var value: BSON
    }

    public private(set) var elements: [Element]

    public init() { elements = [] }

    public init(dictionaryLiteral pairs: (String, BSON)...) {
        elements = pairs.map { Element(key: $0.0, value: $0.1) }
    }

    /// The first value under `key`, or nil. Setting replaces it in place, appends, or (nil) removes it.
    public subscript(key: String) -> BSON? {
        get { elements.first { $0.key == key }?.value }
        set {
            if let i = elements.firstIndex(where: { $0.key == key }) {
                if let newValue { elements[i].value = newValue } else { elements.remove(at: i) }
            } else if let newValue {
                elements.append(Element(key: key, value: newValue))
            }
        }
    }

    public var keys: [String] { elements.map(\.key) }
    public var isEmpty: Bool { elements.isEmpty }
    public func makeIterator() -> IndexingIterator<[Element]> { elements.makeIterator() }
}

/// Why bytes could not be read as BSON.
public struct BSONDecodingError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public var offset: Int
    public var description: String { "invalid BSON at byte \(offset): \(message)" }
}

// MARK: - Encoding

extension BSONDocument {
    /// The document's BSON bytes.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        Self.write(self, into: &out)
        return out
    }

    static func write(_ doc: BSONDocument, into out: inout [UInt8]) {
        writeElements(doc.elements.lazy.map { ($0.key, $0.value) }, into: &out)
    }

    static func writeElements<S: Sequence>(_ elements: S, into out: inout [UInt8]) where S.Element == (String, BSON) {
        let start = out.count
        out.append(contentsOf: [0, 0, 0, 0])
        for (key, value) in elements {
            out.append(value.typeByte)
            // A key is a C string: an embedded NUL would end it early, so it is cut there.
            out.append(contentsOf: key.utf8.prefix { $0 != 0 })
            out.append(0)
            value.writePayload(into: &out)
        }
        out.append(0)
        patchLength(&out, at: start)
    }

    static func patchLength(_ out: inout [UInt8], at start: Int) {
        let length = UInt32(out.count - start)
        withUnsafeBytes(of: length.littleEndian) { out.replaceSubrange(start..<start + 4, with: $0) }
    }
}

extension BSON {
    var typeByte: UInt8 {
        switch self {
        case .double: 0x01
        case .string: 0x02
        case .document: 0x03
        case .array: 0x04
        case .binary: 0x05
        case .objectID: 0x07
        case .bool: 0x08
        case .datetime: 0x09
        case .null: 0x0A
        case .int32: 0x10
        case .timestamp: 0x11
        case .int64: 0x12
        case .decimal128: 0x13
        case .minKey: 0xFF
        case .maxKey: 0x7F
        }
    }

    func writePayload(into out: inout [UInt8]) {
        func le<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        switch self {
        case .double(let v): le(v.bitPattern)
        case .string(let s):
            let bytes = Array(s.utf8)
            le(Int32(bytes.count + 1))
            out.append(contentsOf: bytes)
            out.append(0)
        case .document(let d): BSONDocument.write(d, into: &out)
        case .array(let items): BSONDocument.writeElements(items.enumerated().lazy.map { (String($0.offset), $0.element) }, into: &out)
        case .binary(let subtype, let bytes):
            le(Int32(bytes.count))
            out.append(subtype)
            out.append(contentsOf: bytes)
        case .objectID(let bytes): out.append(contentsOf: bytes.prefix(12) + Array(repeating: 0, count: max(0, 12 - bytes.count)))
        case .bool(let b): out.append(b ? 1 : 0)
        case .datetime(let ms): le(ms)
        case .null, .minKey, .maxKey: break
        case .int32(let v): le(v)
        case .timestamp(let v): le(v)
        case .int64(let v): le(v)
        case .decimal128(let bytes): out.append(contentsOf: bytes.prefix(16) + Array(repeating: 0, count: max(0, 16 - bytes.count)))
        }
    }
}

// MARK: - Decoding

extension BSONDocument {
    /// Reads one document that fills `bytes` exactly.
    public init(bytes: some Collection<UInt8>) throws(BSONDecodingError) {
        let array = Array(bytes)
        var reader = BSONReader(bytes: array)
        self = try reader.document()
        guard reader.offset == array.count else { throw BSONDecodingError(message: "\(array.count - reader.offset) bytes after the document", offset: reader.offset) }
    }

    /// Reads one document from `length` bytes at `pointer` (as libbson hands them out).
    public init(pointer: UnsafePointer<UInt8>, length: Int) throws(BSONDecodingError) {
        try self.init(bytes: UnsafeBufferPointer(start: pointer, count: length))
    }
}

struct BSONReader {
    let bytes: [UInt8]
    var offset = 0
    /// Nesting depth, bounded so that hostile input cannot exhaust the stack.
    var depth = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    func fail(_ message: String) -> BSONDecodingError { BSONDecodingError(message: message, offset: offset) }

    mutating func take(_ n: Int) throws(BSONDecodingError) -> ArraySlice<UInt8> {
        guard n >= 0, bytes.count - offset >= n else { throw fail("needs \(n) more bytes, has \(bytes.count - offset)") }
        defer { offset += n }
        return bytes[offset..<offset + n]
    }

    mutating func integer<T: FixedWidthInteger>(_: T.Type) throws(BSONDecodingError) -> T {
        let slice = try take(MemoryLayout<T>.size)
        return slice.reversed().reduce(T.zero) { ($0 << 8) | T(truncatingIfNeeded: $1) }
    }

    mutating func cString() throws(BSONDecodingError) -> String {
        guard let end = bytes[offset...].firstIndex(of: 0) else { throw fail("unterminated key") }
        let s = String(decoding: bytes[offset..<end], as: UTF8.self)
        offset = end + 1
        return s
    }

    mutating func document() throws(BSONDecodingError) -> BSONDocument {
        var doc = BSONDocument()
        for (key, value) in try elements() { doc[key] = nil; doc.append(key, value) }
        return doc
    }

    mutating func elements() throws(BSONDecodingError) -> [(String, BSON)] {
        guard depth < 100 else { throw fail("nested more than 100 levels") }
        depth += 1
        defer { depth -= 1 }
        let start = offset
        let length = Int(try integer(Int32.self))
        guard length >= 5, start + length <= bytes.count else { throw BSONDecodingError(message: "document length \(length) does not fit", offset: start) }
        let end = start + length
        var out: [(String, BSON)] = []
        while offset < end - 1 {
            let type = try take(1).first!
            let key = try cString()
            out.append((key, try value(type)))
        }
        guard offset == end - 1, bytes[offset] == 0 else { throw fail("document does not end where its length says") }
        offset += 1
        return out
    }

    mutating func value(_ type: UInt8) throws(BSONDecodingError) -> BSON {
        switch type {
        case 0x01: return .double(Double(bitPattern: try integer(UInt64.self)))
        case 0x02:
            let n = Int(try integer(Int32.self))
            guard n >= 1 else { throw fail("string length \(n)") }
            let body = try take(n)
            guard body.last == 0 else { throw fail("string not NUL-terminated") }
            return .string(String(decoding: body.dropLast(), as: UTF8.self))
        case 0x03: return .document(try document())
        case 0x04: return .array(try elements().map(\.1))
        case 0x05:
            let n = Int(try integer(Int32.self))
            let subtype = try take(1).first!
            return .binary(subtype: subtype, bytes: Array(try take(n)))
        case 0x06: return .null  // undefined (deprecated)
        case 0x07: return .objectID(Array(try take(12)))
        case 0x08:
            let b = try take(1).first!
            guard b <= 1 else { throw fail("boolean byte \(b)") }
            return .bool(b == 1)
        case 0x09: return .datetime(try integer(Int64.self))
        case 0x0A: return .null
        case 0x10: return .int32(try integer(Int32.self))
        case 0x11: return .timestamp(try integer(UInt64.self))
        case 0x12: return .int64(try integer(Int64.self))
        case 0x13: return .decimal128(Array(try take(16)))
        case 0xFF: return .minKey
        case 0x7F: return .maxKey
        default: throw fail("unsupported element type 0x\(String(type, radix: 16))")
        }
    }
}

extension BSONDocument {
    /// Appends `key` even if it is present (BSON allows repeated keys; the decoder keeps the last).
    mutating func append(_ key: String, _ value: BSON) { elements.append(Element(key: key, value: value)) }
}
#endif
