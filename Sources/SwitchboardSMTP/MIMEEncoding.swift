// Content-transfer encodings (RFC 2045) and small byte helpers. Pure functions, no I/O.

let crlf: [UInt8] = [0x0D, 0x0A]

/// The maximum length of a line in a message, excluding CRLF (RFC 5322 §2.1.1).
let maximumLineLength = 998

/// Base64 (RFC 4648 §4), used for bodies (RFC 2045 §6.8), "B" encoded-words (RFC 2047)
/// and SASL responses (RFC 4954).
enum Base64 {
    private static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// The length of the unwrapped encoding of `count` bytes.
    static func encodedLength(_ count: Int) -> Int {
        (count + 2) / 3 * 4
    }

    /// Encodes bytes without line breaks.
    static func encode<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(encodedLength(bytes.count))
        var iterator = bytes.makeIterator()
        while let b0 = iterator.next() {
            let b1 = iterator.next()
            let b2 = iterator.next()
            output.append(alphabet[Int(b0 >> 2)])
            output.append(alphabet[Int((b0 & 0x03) << 4 | (b1 ?? 0) >> 4)])
            if let b1 {
                output.append(alphabet[Int((b1 & 0x0F) << 2 | (b2 ?? 0) >> 6)])
            } else {
                output.append(UInt8(ascii: "="))
            }
            if let b2 {
                output.append(alphabet[Int(b2 & 0x3F)])
            } else {
                output.append(UInt8(ascii: "="))
            }
        }
        return output
    }

    /// Encodes bytes without line breaks, as a `String`.
    static func encodeToString<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> String {
        String(decoding: encode(bytes), as: UTF8.self)
    }

    /// Encodes a body: lines of at most 76 characters, each ending with CRLF (RFC 2045 §6.8).
    static func encodeBody(_ bytes: [UInt8]) -> [UInt8] {
        let flat = encode(bytes)
        var output: [UInt8] = []
        output.reserveCapacity(flat.count + flat.count / 76 * 2 + 2)
        var index = 0
        while index < flat.count {
            let end = min(index + 76, flat.count)
            output.append(contentsOf: flat[index..<end])
            output.append(contentsOf: crlf)
            index = end
        }
        return output
    }

    /// The length of ``encodeBody(_:)``'s output for `count` input bytes.
    static func bodyLength(_ count: Int) -> Int {
        let flat = encodedLength(count)
        return flat + (flat + 75) / 76 * 2
    }

    /// Decodes standard base64, ignoring whitespace. Returns `nil` on invalid input.
    static func decode(_ string: String) -> [UInt8]? {
        var values: [UInt8] = []
        var padding = 0
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): values.append(byte - UInt8(ascii: "A"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): values.append(byte - UInt8(ascii: "a") + 26)
            case UInt8(ascii: "0")...UInt8(ascii: "9"): values.append(byte - UInt8(ascii: "0") + 52)
            case UInt8(ascii: "+"): values.append(62)
            case UInt8(ascii: "/"): values.append(63)
            case UInt8(ascii: "="): padding += 1
            case UInt8(ascii: " "), UInt8(ascii: "\t"), 0x0D, 0x0A: continue
            default: return nil
            }
            if padding > 0 && byte != UInt8(ascii: "=") { return nil }
        }
        guard padding <= 2, (values.count + padding) % 4 == 0 else { return nil }
        var output: [UInt8] = []
        output.reserveCapacity(values.count * 3 / 4)
        var index = 0
        while index + 1 < values.count {
            let v0 = values[index], v1 = values[index + 1]
            output.append(v0 << 2 | v1 >> 4)
            if index + 2 < values.count {
                let v2 = values[index + 2]
                output.append((v1 & 0x0F) << 4 | v2 >> 2)
                if index + 3 < values.count {
                    output.append((v2 & 0x03) << 6 | values[index + 3])
                }
            }
            index += 4
        }
        return output
    }
}

/// Quoted-printable body encoding (RFC 2045 §6.7).
enum QuotedPrintable {
    private static let hexDigits: [UInt8] = Array("0123456789ABCDEF".utf8)

    /// Encodes CRLF-normalised text. Every CRLF in the input is a hard line break
    /// and stays a CRLF; encoded lines are at most 76 characters long (soft breaks
    /// `=` CRLF are inserted as needed, never inside an `=XX` triplet); `=`,
    /// control characters, non-ASCII bytes and whitespace at the end of a line are
    /// escaped; a line that would start with `From ` gets its `F` escaped so that
    /// mbox-style gateways cannot mangle it.
    static func encode(_ text: [UInt8]) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(text.count + text.count / 8)
        var lineStart = 0
        var index = 0
        while index <= text.count {
            let atEnd = index == text.count
            if atEnd || (text[index] == 0x0D && index + 1 < text.count && text[index + 1] == 0x0A) {
                encodeLine(text[lineStart..<index], into: &output)
                if atEnd { break }
                output.append(contentsOf: crlf)
                index += 2
                lineStart = index
            } else {
                index += 1
            }
        }
        return output
    }

    /// An estimate (exact unless soft breaks fall differently) of the encoded size,
    /// used to choose between quoted-printable and base64 without encoding twice.
    static func estimatedLength(_ text: [UInt8]) -> Int {
        var length = 0
        for byte in text {
            length += isLiteral(byte) || byte == 0x0D || byte == 0x0A || byte == 0x20 || byte == 0x09 ? 1 : 3
        }
        return length + length / 75 * 3
    }

    private static func isLiteral(_ byte: UInt8) -> Bool {
        (33...126).contains(byte) && byte != UInt8(ascii: "=")
    }

    private static func encodeLine(_ line: ArraySlice<UInt8>, into output: inout [UInt8]) {
        var column = 0
        var index = line.startIndex
        while index < line.endIndex {
            let byte = line[index]
            let isLast = index == line.index(before: line.endIndex)
            var literal: Bool
            if byte == 0x20 || byte == 0x09 {
                literal = !isLast
            } else {
                literal = isLiteral(byte)
            }
            if literal && column == 0 && byte == UInt8(ascii: "F") && line[index...].starts(with: "From ".utf8) {
                literal = false
            }
            let width = literal ? 1 : 3
            // A soft line break "=" takes one column, so a line that continues may
            // hold 75 characters of content; the last chunk of a line may use all 76.
            let limit = isLast ? 76 : 75
            if column + width > limit {
                output.append(UInt8(ascii: "="))
                output.append(contentsOf: crlf)
                column = 0
                if literal && byte == UInt8(ascii: "F") && line[index...].starts(with: "From ".utf8) {
                    literal = false
                }
            }
            if literal {
                output.append(byte)
                column += 1
            } else {
                output.append(UInt8(ascii: "="))
                output.append(hexDigits[Int(byte >> 4)])
                output.append(hexDigits[Int(byte & 0x0F)])
                column += 3
            }
            index = line.index(after: index)
        }
    }
}

/// Converts every line ending (CRLF, lone CR, lone LF) to CRLF and returns UTF-8 bytes.
func normalizedLineEndings(_ text: String) -> [UInt8] {
    let input = Array(text.utf8)
    var output: [UInt8] = []
    output.reserveCapacity(input.count + input.count / 32)
    var index = 0
    while index < input.count {
        let byte = input[index]
        if byte == 0x0D {
            output.append(contentsOf: crlf)
            if index + 1 < input.count && input[index + 1] == 0x0A { index += 1 }
        } else if byte == 0x0A {
            output.append(contentsOf: crlf)
        } else {
            output.append(byte)
        }
        index += 1
    }
    return output
}

/// The body content-transfer-encodings this library produces. Both are 7-bit safe,
/// so messages can be relayed through any server regardless of `8BITMIME`.
enum TransferEncoding: String {
    case quotedPrintable = "quoted-printable"
    case base64

    /// Chooses the smaller of quoted-printable and base64 for CRLF-normalised text
    /// and returns the encoding with the encoded bytes (lines ≤ 76 characters).
    static func encode(text: [UInt8]) -> (TransferEncoding, [UInt8]) {
        if QuotedPrintable.estimatedLength(text) <= Base64.bodyLength(text.count) {
            return (.quotedPrintable, QuotedPrintable.encode(text))
        }
        return (.base64, Base64.encodeBody(text))
    }
}

/// SMTP "dot-stuffing" (RFC 5321 §4.5.2) and the end-of-data marker.
enum DotStuffing {
    /// Returns the DATA payload for a CRLF-normalised message: every line that
    /// starts with `.` gets one more `.`, the content is made to end with CRLF,
    /// and the terminating `.` CRLF is appended (so the wire ends with CRLF.CRLF).
    static func payload(for message: [UInt8]) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(message.count + message.count / 64 + 5)
        var atLineStart = true
        for byte in message {
            if atLineStart && byte == UInt8(ascii: ".") {
                output.append(UInt8(ascii: "."))
            }
            output.append(byte)
            atLineStart = byte == 0x0A
        }
        if !output.isEmpty && !(output.count >= 2 && output[output.count - 2] == 0x0D && output[output.count - 1] == 0x0A) {
            output.append(contentsOf: crlf)
        }
        output.append(contentsOf: [UInt8(ascii: "."), 0x0D, 0x0A])
        return output
    }
}
