/// A small strict JSON parser (RFC 8259) producing `JSONValue`, so the core and the embedded engine need no
/// Foundation to read back what they wrote.
public enum JSONParser {
    /// A parse failure with the byte offset where it happened.
    public struct Failure: Error, Sendable, Hashable {
        public var offset: Int
        public var reason: String
    }

    /// Parses `text` as one JSON value.
    public static func parse(_ text: String) throws(Failure) -> JSONValue {
        try parse(Array(text.utf8))
    }

    /// Parses UTF-8 `bytes` as one JSON value (with optional surrounding white space).
    public static func parse(_ bytes: [UInt8]) throws(Failure) -> JSONValue {
        var p = Parser(bytes: bytes)
        p.skipSpace()
        let v = try p.value(depth: 0)
        p.skipSpace()
        guard p.i == bytes.count else { throw Failure(offset: p.i, reason: "unexpected data after the JSON value") }
        return v
    }

    /// Parses a JSON object and keeps its string members (others are skipped), without building a
    /// `JSONValue` tree. Nil when `text` is not one JSON object.
    public static func parseStringFields(_ text: String) -> [String: String]? {
        var p = Parser(bytes: Array(text.utf8))
        do throws(Failure) {
            p.skipSpace()
            guard p.i < p.bytes.count, p.bytes[p.i] == UInt8(ascii: "{") else { return nil }
            let fields = try p.stringFields()
            p.skipSpace()
            return p.i == p.bytes.count ? fields : nil
        } catch {
            return nil
        }
    }

    /// Parses either one JSON object or an array of JSON objects, keeping each object's string members as
    /// `parseStringFields` does. Nil when `text` is neither, or an element of the array is not an object.
    public static func parseStringFieldsList(_ text: String) -> [[String: String]]? {
        var p = Parser(bytes: Array(text.utf8))
        do throws(Failure) {
            p.skipSpace()
            guard p.i < p.bytes.count else { return nil }
            var list: [[String: String]] = []
            switch p.bytes[p.i] {
            case UInt8(ascii: "{"):
                list.append(try p.stringFields())
            case UInt8(ascii: "["):
                p.i += 1
                p.skipSpace()
                if p.i < p.bytes.count, p.bytes[p.i] == UInt8(ascii: "]") {
                    p.i += 1
                } else {
                    while true {
                        p.skipSpace()
                        guard p.i < p.bytes.count, p.bytes[p.i] == UInt8(ascii: "{") else { return nil }
                        list.append(try p.stringFields())
                        p.skipSpace()
                        guard p.i < p.bytes.count else { return nil }
                        if p.bytes[p.i] == UInt8(ascii: ",") { p.i += 1; continue }
                        guard p.bytes[p.i] == UInt8(ascii: "]") else { return nil }
                        p.i += 1
                        break
                    }
                }
            default:
                return nil
            }
            p.skipSpace()
            return p.i == p.bytes.count ? list : nil
        } catch {
            return nil
        }
    }

    struct Parser {
        let bytes: [UInt8]
        var i = 0

        mutating func skipSpace() {
            while i < bytes.count, bytes[i] == 32 || bytes[i] == 9 || bytes[i] == 10 || bytes[i] == 13 { i += 1 }
        }

        func fail(_ reason: String) -> Failure { Failure(offset: i, reason: reason) }

        mutating func literal(_ word: String, _ v: JSONValue) throws(Failure) -> JSONValue {
            for b in word.utf8 {
                guard i < bytes.count, bytes[i] == b else { throw fail("invalid literal") }
                i += 1
            }
            return v
        }

        mutating func value(depth: Int) throws(Failure) -> JSONValue {
            guard depth < 512 else { throw fail("nesting too deep") }
            guard i < bytes.count else { throw fail("unexpected end of input") }
            switch bytes[i] {
            case UInt8(ascii: "{"):
                var o: [String: JSONValue] = [:]
                try objectMembers { (p: inout Parser, key: String) throws(Failure) in o[key] = try p.value(depth: depth + 1) }
                return .object(o)
            case UInt8(ascii: "["):
                i += 1
                var a: [JSONValue] = []
                skipSpace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(a) }
                while true {
                    skipSpace()
                    a.append(try value(depth: depth + 1))
                    skipSpace()
                    guard i < bytes.count else { throw fail("unexpected end of input") }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(a) }
                    throw fail("expected ',' or ']'")
                }
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): return try literal("true", .bool(true))
            case UInt8(ascii: "f"): return try literal("false", .bool(false))
            case UInt8(ascii: "n"): return try literal("null", .null)
            default: return try number()
            }
        }

        /// Reads an object whose opening brace is the current byte, keeping its string members.
        mutating func stringFields() throws(Failure) -> [String: String] {
            var fields: [String: String] = [:]
            fields.reserveCapacity(12)  // our stream entries have 8 to 11 members: no rehashing while filling
            try objectMembers { (p: inout Parser, key: String) throws(Failure) in
                if p.i < p.bytes.count, p.bytes[p.i] == UInt8(ascii: "\"") {
                    fields[key] = try p.string()
                } else {
                    _ = try p.value(depth: 1)
                }
            }
            return fields
        }

        /// Reads an object whose opening brace is the current byte, calling `member` with each key while the
        /// parser stands at that member's value (which `member` must consume).
        mutating func objectMembers(_ member: (inout Parser, String) throws(Failure) -> Void) throws(Failure) {
            i += 1
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return }
            while true {
                skipSpace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                let key = try string()
                skipSpace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                i += 1
                skipSpace()
                try member(&self, key)
                skipSpace()
                guard i < bytes.count else { throw fail("unexpected end of input") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "}") { i += 1; return }
                throw fail("expected ',' or '}'")
            }
        }

        mutating func number() throws(Failure) -> JSONValue {
            let start = i
            if i < bytes.count, bytes[i] == UInt8(ascii: "-") { i += 1 }
            func digits(_ p: inout Parser) -> Int {
                let s = p.i
                while p.i < p.bytes.count, p.bytes[p.i] >= 48, p.bytes[p.i] <= 57 { p.i += 1 }
                return p.i - s
            }
            let intStart = i
            let n = digits(&self)
            guard n > 0 else { throw fail("invalid value") }
            if n > 1, bytes[intStart] == 48 { throw fail("leading zero in number") }
            if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
                i += 1
                guard digits(&self) > 0 else { throw fail("digits expected after '.'") }
            }
            if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
                i += 1
                if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
                guard digits(&self) > 0 else { throw fail("digits expected in exponent") }
            }
            guard let d = Double(String(decoding: bytes[start..<i], as: UTF8.self)) else { throw fail("invalid number") }
            return .number(d)
        }

        mutating func hex4() throws(Failure) -> UInt32 {
            guard i + 4 <= bytes.count else { throw fail("short \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let b = bytes[i]
                let d: UInt32
                switch b {
                case 48...57: d = UInt32(b - 48)
                case 65...70: d = UInt32(b - 55)
                case 97...102: d = UInt32(b - 87)
                default: throw fail("invalid \\u escape")
                }
                v = v * 16 + d
                i += 1
            }
            return v
        }

        mutating func string() throws(Failure) -> String {
            i += 1  // opening quote
            // Fast path: no escape before the closing quote, so the string is a slice of the input.
            let start = i
            var high: UInt8 = 0  // OR of the bytes: below 0x80 means ASCII, valid UTF-8 as it is
            while i < bytes.count {
                let b = bytes[i]
                if b == UInt8(ascii: "\"") {
                    let end = i
                    i += 1
                    return try bytes.withUnsafeBufferPointer { all throws(Failure) -> String in
                        let slice = UnsafeBufferPointer(rebasing: all[start..<end])
                        if high < 0x80 { return String(decoding: slice, as: UTF8.self) }
                        guard let s = String(validating: slice, as: UTF8.self) else { throw Failure(offset: start, reason: "invalid UTF-8 in string") }
                        return s
                    }
                }
                if b == UInt8(ascii: "\\") || b < 0x20 { break }
                high |= b
                i += 1
            }
            var out = Array(bytes[start..<i])
            while true {
                guard i < bytes.count else { throw fail("unterminated string") }
                let b = bytes[i]
                if b == UInt8(ascii: "\"") { i += 1; break }
                if b < 0x20 { throw fail("control character in string") }
                if b != UInt8(ascii: "\\") { out.append(b); i += 1; continue }
                i += 1
                guard i < bytes.count else { throw fail("unterminated escape") }
                let e = bytes[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800...0xDBFF).contains(scalar) {
                        guard i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else { throw fail("lone surrogate") }
                        i += 2
                        let low = try hex4()
                        guard (0xDC00...0xDFFF).contains(low) else { throw fail("invalid surrogate pair") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(scalar) {
                        throw fail("lone surrogate")
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw fail("invalid code point") }
                    out.append(contentsOf: Array(String(Character(u)).utf8))
                default: throw fail("invalid escape")
                }
            }
            guard let s = String(validating: out, as: UTF8.self) else { throw fail("invalid UTF-8 in string") }
            return s
        }
    }
}
