import Foundation
import Testing
@testable import SwitchboardSMTP

@Suite("MIME encodings")
struct MIMEEncodingTests {
    @Test("base64 matches RFC 4648 test vectors and round-trips")
    func base64Vectors() {
        let vectors = ["": "", "f": "Zg==", "fo": "Zm8=", "foo": "Zm9v", "foob": "Zm9vYg==", "fooba": "Zm9vYmE=", "foobar": "Zm9vYmFy"]
        for (plain, encoded) in vectors {
            #expect(Base64.encodeToString(Array(plain.utf8)) == encoded)
            #expect(Base64.decode(encoded) == Array(plain.utf8))
        }
        let bytes = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 37) }
        #expect(Base64.decode(String(decoding: Base64.encodeBody(bytes), as: UTF8.self)) == bytes)
        #expect(Base64.encodeBody(bytes).count == Base64.bodyLength(bytes.count))
    }

    @Test("base64 body lines are at most 76 characters and end with CRLF")
    func base64BodyLines() {
        let encoded = Base64.encodeBody(Array(repeating: 0xAB, count: 500))
        let lines = TestDecoders.lines(encoded)
        #expect(lines.allSatisfy { $0.count <= 76 })
        #expect(encoded.suffix(2) == [0x0D, 0x0A])
    }

    @Test("quoted-printable escapes what it must and keeps hard line breaks")
    func quotedPrintableBasics() {
        let input = normalizedLineEndings("a=b\tc \nGrüße\nend ")
        let encoded = String(decoding: QuotedPrintable.encode(input), as: UTF8.self)
        #expect(encoded == "a=3Db\tc=20\r\nGr=C3=BC=C3=9Fe\r\nend=20")
        #expect(TestDecoders.quotedPrintable(Array(encoded.utf8)) == input)
    }

    @Test("quoted-printable escapes 'From ' at the start of an encoded line")
    func quotedPrintableFrom() {
        let encoded = String(decoding: QuotedPrintable.encode(normalizedLineEndings("From here\nnot From there")), as: UTF8.self)
        #expect(encoded == "=46rom here\r\nnot From there")
    }

    @Test("a 2,000-character line without spaces is soft-wrapped to ≤ 76 and decodes back", arguments: [
        String(repeating: "x", count: 2000),
        String(repeating: "é", count: 2000),
        String(repeating: "a=", count: 1000),
        String((0..<2000).map { i in Character(UnicodeScalar(UInt8(33 + i % 90))) }),
    ])
    func quotedPrintableLongLine(_ line: String) {
        let input = normalizedLineEndings(line + "\n.leading dot\n")
        let encoded = QuotedPrintable.encode(input)
        let lines = TestDecoders.lines(encoded)
        #expect(lines.allSatisfy { $0.count <= 76 })
        #expect(TestDecoders.quotedPrintable(encoded) == input)
    }

    @Test("line endings are normalised to CRLF")
    func lineEndings() {
        #expect(normalizedLineEndings("a\nb\r\nc\rd") == Array("a\r\nb\r\nc\r\nd".utf8))
        #expect(normalizedLineEndings("\r\n\r\n") == Array("\r\n\r\n".utf8))
    }

    @Test("the smaller transfer encoding is chosen")
    func transferEncodingChoice() {
        #expect(TransferEncoding.encode(text: normalizedLineEndings("Hello, world.\n")).0 == .quotedPrintable)
        #expect(TransferEncoding.encode(text: normalizedLineEndings(String(repeating: "你好世界", count: 50))).0 == .base64)
    }

    @Test("dot-stuffing doubles leading dots and terminates with CRLF.CRLF")
    func dotStuffing() {
        let message = Array("Subject: x\r\n\r\n.hidden\r\nok\r\n..two\r\n.".utf8)
        let payload = String(decoding: DotStuffing.payload(for: message), as: UTF8.self)
        #expect(payload == "Subject: x\r\n\r\n..hidden\r\nok\r\n...two\r\n..\r\n.\r\n")
        let noTrailingCRLF = String(decoding: DotStuffing.payload(for: Array("a".utf8)), as: UTF8.self)
        #expect(noTrailingCRLF == "a\r\n.\r\n")
        let trailingCRLF = String(decoding: DotStuffing.payload(for: Array(".\r\n".utf8)), as: UTF8.self)
        #expect(trailingCRLF == "..\r\n.\r\n")
    }

    @Test("encoded-words are ≤ 75 characters, never split a character, and decode back", arguments: [
        "Grüße — 你好 ✓",
        String(repeating: "Grüße — 你好 ✓ ", count: 20),
        String(repeating: "🇩🇪👩‍💻", count: 30),
        "plain ascii but with =? inside",
        String(repeating: "y", count: 2000),
    ])
    func encodedWords(_ text: String) throws {
        let words = EncodedWord.encode(text)
        #expect(words.allSatisfy { $0.count <= 75 })
        #expect(words.allSatisfy { $0.allSatisfy(\.isASCII) })
        #expect(TestDecoders.encodedWords(words.joined(separator: "\r\n ")) == text)
        for word in words {
            #expect(TestDecoders.encodedWords(word) != nil, "each word must hold whole UTF-8 sequences: \(word)")
        }
    }

    @Test("Q encoding in phrases only uses the RFC 2047 §5(3) characters")
    func qWordCharacters() {
        let words = EncodedWord.encode("Ä \"quoted\" (x) <y>, z?_=")
        let allowed = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/=_")
        for word in words {
            let payload = word.dropFirst(10).dropLast(2)
            #expect(payload.allSatisfy { allowed.contains($0) }, "\(word)")
        }
    }

    @Test("RFC 5322 dates are formatted in UTC without locale dependence")
    func dates() {
        #expect(RFC5322Date.format(Date(timeIntervalSince1970: 0)) == "Thu, 1 Jan 1970 00:00:00 +0000")
        #expect(RFC5322Date.format(Date(timeIntervalSince1970: 1_700_000_000)) == "Tue, 14 Nov 2023 22:13:20 +0000")
        #expect(RFC5322Date.format(Date(timeIntervalSince1970: 951_782_400)) == "Tue, 29 Feb 2000 00:00:00 +0000")
        #expect(RFC5322Date.format(Date(timeIntervalSince1970: 4_102_444_799)) == "Thu, 31 Dec 2099 23:59:59 +0000")
        #expect(RFC5322Date.format(Date(timeIntervalSince1970: -1)) == "Wed, 31 Dec 1969 23:59:59 +0000")
    }

    @Test("dates agree with Foundation's formatter over many days")
    func datesAgainstFoundation() {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "EEE, d MMM yyyy HH:mm:ss Z"
        var seconds: TimeInterval = -2_000_000_000
        while seconds < 4_000_000_000 {
            let date = Date(timeIntervalSince1970: seconds)
            #expect(RFC5322Date.format(date) == formatter.string(from: date))
            seconds += 7_777_777
        }
    }
}
