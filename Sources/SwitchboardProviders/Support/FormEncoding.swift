/// `application/x-www-form-urlencoded` encoding and decoding (WHATWG URL standard, UTF-8).
public enum FormEncoding {
    /// Encodes `pairs` in order: every byte but ASCII letters, digits and `-._*` is percent-encoded,
    /// a space becomes `+`.
    public static func encode(_ pairs: [(String, String)]) -> String {
        pairs.map { escape($0.0) + "=" + escape($0.1) }.joined(separator: "&")
    }

    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "*"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            case UInt8(ascii: " "):
                out.append("+")
            default:
                let hex = Array("0123456789ABCDEF".utf8)
                out.unicodeScalars.append("%")
                out.unicodeScalars.append(Unicode.Scalar(hex[Int(b >> 4)]))
                out.unicodeScalars.append(Unicode.Scalar(hex[Int(b & 0xF)]))
            }
        }
        return out
    }

    /// Decodes a form body into (name, value) pairs in order; `+` is a space, `%XX` a byte. Malformed
    /// percent escapes are kept literally; invalid UTF-8 is repaired.
    public static func decode<Bytes: Collection>(_ body: Bytes) -> [(String, String)] where Bytes.Element == UInt8 {
        var pairs: [(String, String)] = []
        for part in body.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            let eq = part.firstIndex(of: UInt8(ascii: "="))
            let name = unescape(eq.map { part[part.startIndex..<$0] } ?? part[...])
            let value = eq.map { unescape(part[part.index(after: $0)...]) } ?? ""
            pairs.append((name, value))
        }
        return pairs
    }

    static func unescape<Bytes: Collection>(_ s: Bytes) -> String where Bytes.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(s.count)
        var i = s.startIndex
        func hexValue(_ b: UInt8) -> UInt8? {
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): b - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): b - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): b - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        while i != s.endIndex {
            let b = s[i]
            if b == UInt8(ascii: "+") {
                out.append(UInt8(ascii: " "))
            } else if b == UInt8(ascii: "%"), let h1 = s.index(i, offsetBy: 1, limitedBy: s.endIndex), h1 != s.endIndex,
                      let h2 = s.index(h1, offsetBy: 1, limitedBy: s.endIndex), h2 != s.endIndex,
                      let hi = hexValue(s[h1]), let lo = hexValue(s[h2]) {
                out.append(hi << 4 | lo)
                i = h2
            } else {
                out.append(b)
            }
            i = s.index(after: i)
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Compares two byte strings in time that depends only on their lengths (for signatures).
public func constantTimeEquals<A: Collection, B: Collection>(_ a: A, _ b: B) -> Bool where A.Element == UInt8, B.Element == UInt8 {
    guard a.count == b.count else { return false }
    var diff: UInt8 = 0
    for (x, y) in zip(a, b) { diff |= x ^ y }
    return diff == 0
}
