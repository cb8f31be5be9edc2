import Foundation
import SwitchboardTestSupport
import Testing
@testable import SwitchboardSMTP

@Suite("Attachments, copies and reply-to in the rendered message")
struct AttachmentRenderingTests {
    let fixedDate = Date(timeIntervalSince1970: 1_700_000_000)
    static let binary: [UInt8] = (0..<3000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 3) } + [0, 13, 10, 255]
    static let longName = "Quartalsbericht für das Geschäftsjahr 2026 — Übersicht und Anhänge (endgültig, überarbeitet).pdf"

    func message(html: String? = "<p>Hi <b>Bob</b></p>") -> EmailMessage {
        var m = EmailMessage(
            from: "alice@example.com", to: ["bob@example.org"], cc: ["carol@example.org", "dan@example.org"], bcc: ["eve@example.org"],
            replyTo: ["replies@example.com"], subject: "Report", textBody: "Hi Bob\nsee the files", htmlBody: html)
        m.attachments = [
            .init(filename: "notes.txt", contentType: "text/plain", bytes: Array("line one\nline two\n".utf8)),
            .init(filename: Self.longName, contentType: "application/pdf", bytes: Self.binary),
        ]
        return m
    }

    /// The parts between `--boundary` lines of `text` (each: its header block and body), without the preamble.
    func parts(_ text: String, boundary: String) -> [(headers: String, body: String)] {
        let pieces = text.components(separatedBy: "\r\n--" + boundary)
        guard pieces.count > 2, pieces.last?.hasPrefix("--") == true else { return [] }
        return pieces.dropFirst().dropLast().map { piece in
            let part = String(piece.dropFirst())  // the CRLF after the delimiter (one Character)
            guard let split = part.range(of: "\r\n\r\n") else { return (part, "") }
            return (String(part[..<split.lowerBound]), String(part[split.upperBound...]))
        }
    }

    func boundary(in headers: String) -> String? {
        guard let r = headers.range(of: "boundary=\"") else { return nil }
        let rest = headers[r.upperBound...]
        return rest.firstIndex(of: "\"").map { String(rest[..<$0]) }
    }

    @Test("multipart/mixed: the text and HTML alternatives first, then each file as a base64 part; boundaries nest and close")
    func structure() throws {
        let rendered = try message().render(now: fixedDate)
        let text = rendered.string
        let top = String(text[..<text.range(of: "\r\n\r\n")!.lowerBound])
        #expect(top.contains("Content-Type: multipart/mixed; boundary=\""))
        let mixed = try #require(boundary(in: top))
        let outer = parts(text, boundary: mixed)
        try #require(outer.count == 3)
        #expect(outer[0].headers.hasPrefix("Content-Type: multipart/alternative; boundary=\""))
        let alternative = try #require(boundary(in: outer[0].headers))
        #expect(alternative != mixed)
        let inner = parts("\r\n" + outer[0].body, boundary: alternative)
        #expect(inner.map { $0.headers.components(separatedBy: "\r\n")[0] } == ["Content-Type: text/plain; charset=utf-8", "Content-Type: text/html; charset=utf-8"])
        #expect(outer[1].headers == "Content-Type: text/plain;\r\n name=\"notes.txt\"\r\nContent-Disposition: attachment;\r\n filename=\"notes.txt\"\r\nContent-Transfer-Encoding: base64")
        #expect(outer[2].headers.hasPrefix("Content-Type: application/pdf;\r\n name=\"=?UTF-8?B?"))
        #expect(outer[2].headers.contains("Content-Disposition: attachment;\r\n filename*0*=UTF-8''Quartalsbericht%20f%C3%BCr"))
        #expect(outer[2].headers.contains(";\r\n filename*1*="))
        // The files' bytes, base64 in lines of at most 76 characters.
        let lines = outer[2].body.components(separatedBy: "\r\n").filter { !$0.isEmpty }
        #expect(lines.allSatisfy { $0.count <= 76 })
        #expect(Data(base64Encoded: lines.joined()).map { Array($0) } == Self.binary)
        #expect(Data(base64Encoded: outer[1].body.replacingOccurrences(of: "\r\n", with: "")).map { String(decoding: $0, as: UTF8.self) } == "line one\nline two\n")
        try MessageRenderer.verifyLineStructure(rendered.bytes)
    }

    @Test("a text-only message with a file: multipart/mixed with the text part first")
    func textAndFile() throws {
        let text = try message(html: nil).render(now: fixedDate).string
        let top = String(text[..<text.range(of: "\r\n\r\n")!.lowerBound])
        let outer = parts(text, boundary: try #require(boundary(in: top)))
        #expect(outer.map { $0.headers.components(separatedBy: "\r\n")[0] } == [
            "Content-Type: text/plain; charset=utf-8", "Content-Type: text/plain;", "Content-Type: application/pdf;",
        ])
    }

    @Test("Cc and Reply-To in the headers, Bcc only in the envelope")
    func copies() throws {
        let rendered = try message().render(now: fixedDate)
        let top = String(rendered.string[..<rendered.string.range(of: "\r\n\r\n")!.lowerBound]).replacingOccurrences(of: "\r\n ", with: " ")
        #expect(top.contains("\r\nCc: carol@example.org, dan@example.org\r\n"))
        #expect(top.contains("\r\nReply-To: replies@example.com\r\n"))
        #expect(!rendered.string.lowercased().contains("bcc"))
        #expect(!rendered.string.contains("eve@example.org"))
        #expect(rendered.recipients == ["bob@example.org", "carol@example.org", "dan@example.org", "eve@example.org"])
    }

    @Test("a filename's RFC 2231 form never splits a %XX triplet, and each continuation line is short")
    func continuations() {
        let parameter = AttachmentPart.filenameParameter(String(repeating: "é", count: 100) + ".txt")
        let lines = parameter.components(separatedBy: ";\r\n")
        #expect(lines.count > 2)
        for (i, line) in lines.enumerated() {
            #expect(line.hasPrefix(" filename*\(i)*=" + (i == 0 ? "UTF-8''" : "")))
            let value = line.split(separator: "=", maxSplits: 1)[1].replacingOccurrences(of: "UTF-8''", with: "")
            #expect(value.count <= 50)
            #expect(line.utf8.count + 1 <= 76)
            #expect(!value.hasSuffix("%") && !value.dropLast().hasSuffix("%"), "\(value)")
        }
        #expect(AttachmentPart.filenameParameter("a\"b.txt").hasPrefix(" filename*0*=UTF-8''a%22b.txt"))
        #expect(AttachmentPart.nameValue("plain.txt") == "plain.txt")
        #expect(TestDecoders.encodedWords(AttachmentPart.nameValue(Self.longName)) == Self.longName)
    }

    @Test("a filename with a line break or a path, or a content type that is not type/subtype, is refused", arguments: [
        ("a\r\nBcc: x@example.com", "text/plain"), ("dir/a.txt", "text/plain"), ("", "text/plain"), ("a.txt", "text"), ("a.txt", "text/plain; x=y"),
    ])
    func refused(filename: String, contentType: String) {
        var m = message()
        m.attachments = [.init(filename: filename, contentType: contentType, bytes: [1])]
        #expect(throws: SMTPError.self) { try m.render(now: fixedDate) }
    }

    @Test("Python's email package reads the message without defects: the alternatives, both files with their names and bytes")
    func python() async throws {
        let rendered = try message().render(now: fixedDate)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sb-attach-\(UUID().uuidString).eml").path
        try Data(rendered.bytes).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let parsed = try await parseWithPython(path: path)
        #expect(parsed.defects.isEmpty, "\(parsed.defects)")
        #expect(parsed.content_type == "multipart/mixed")
        #expect(parsed.parts.map(\.content_type) == ["text/plain", "text/html", "text/plain", "application/pdf"])
        #expect(parsed.parts.map(\.disposition) == [nil, nil, "attachment", "attachment"])
        #expect(parsed.parts.map(\.filename) == [nil, nil, "notes.txt", Self.longName])
        #expect(parsed.parts[3].content_base64.flatMap { Data(base64Encoded: $0) }.map { Array($0) } == Self.binary)
        #expect(parsed.header("Cc") == "carol@example.org, dan@example.org")
        #expect(parsed.header("Bcc") == nil)
        #expect(parsed.raw_max_line_octets <= 78)
    }
}
