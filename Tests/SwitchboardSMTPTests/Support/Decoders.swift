import Foundation
@testable import SwitchboardSMTP

/// Minimal independent decoders used to check the encoders' round trips.
enum TestDecoders {
    /// Decodes quoted-printable (soft breaks removed, `=XX` decoded, CRLF kept).
    static func quotedPrintable(_ encoded: [UInt8]) -> [UInt8] {
        var output: [UInt8] = []
        var index = 0
        func hex(_ byte: UInt8) -> UInt8? {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        while index < encoded.count {
            let byte = encoded[index]
            if byte == UInt8(ascii: "=") {
                if index + 2 < encoded.count && encoded[index + 1] == 0x0D && encoded[index + 2] == 0x0A {
                    index += 3
                    continue
                }
                if index + 2 < encoded.count, let high = hex(encoded[index + 1]), let low = hex(encoded[index + 2]) {
                    output.append(high << 4 | low)
                    index += 3
                    continue
                }
            }
            output.append(byte)
            index += 1
        }
        return output
    }

    /// Decodes a sequence of `=?UTF-8?Q|B?...?=` words separated by whitespace or folds.
    static func encodedWords(_ text: String) -> String? {
        var bytes: [UInt8] = []
        let words = text.split(whereSeparator: { $0.isWhitespace })
        for word in words {
            guard word.hasPrefix("=?UTF-8?"), word.hasSuffix("?="), word.count >= 12 else { return nil }
            let encoding = word[word.index(word.startIndex, offsetBy: 8)]
            let payload = String(word.dropFirst(10).dropLast(2))
            if encoding == "B" {
                guard let decoded = Base64.decode(payload) else { return nil }
                bytes += decoded
            } else if encoding == "Q" {
                bytes += quotedPrintable(Array(payload.replacingOccurrences(of: "_", with: " ").utf8))
            } else {
                return nil
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    /// Splits CRLF-terminated bytes into lines (without CRLF).
    static func lines(_ bytes: [UInt8]) -> [[UInt8]] {
        var lines: [[UInt8]] = []
        var current: [UInt8] = []
        var index = 0
        while index < bytes.count {
            if bytes[index] == 0x0D && index + 1 < bytes.count && bytes[index + 1] == 0x0A {
                lines.append(current)
                current = []
                index += 2
            } else {
                current.append(bytes[index])
                index += 1
            }
        }
        if !current.isEmpty { lines.append(current) }
        return lines
    }
}
