import Foundation
import Testing
@testable import SwitchboardSMTP

@Suite("Message rendering")
struct MessageRendererTests {
    let fixedDate = Date(timeIntervalSince1970: 1_700_000_000)

    func headerBlock(_ rendered: RenderedEmail) -> String {
        let text = rendered.string
        return String(text[..<text.range(of: "\r\n\r\n")!.lowerBound])
    }

    /// Unfolded header fields of the top-level header block.
    func headers(_ rendered: RenderedEmail) -> [(name: String, value: String)] {
        let unfolded = headerBlock(rendered).replacingOccurrences(of: "\r\n ", with: " ")
        return unfolded.components(separatedBy: "\r\n").map { line in
            let colon = line.firstIndex(of: ":")!
            return (String(line[..<colon]), String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces))
        }
    }

    func value(_ name: String, in rendered: RenderedEmail) -> String? {
        headers(rendered).first { $0.name.lowercased() == name.lowercased() }?.value
    }

    @Test("a text-only message has the required headers and one text/plain part")
    func textOnly() throws {
        let message = EmailMessage(
            from: EmailAddress("alice@example.com", name: "Alice"),
            to: ["bob@example.org"],
            subject: "Hello",
            textBody: "Hi Bob\n"
        )
        let rendered = try message.render(now: fixedDate)
        #expect(value("Date", in: rendered) == "Tue, 14 Nov 2023 22:13:20 +0000")
        #expect(value("MIME-Version", in: rendered) == "1.0")
        #expect(value("From", in: rendered) == "Alice <alice@example.com>")
        #expect(value("To", in: rendered) == "bob@example.org")
        #expect(value("Subject", in: rendered) == "Hello")
        #expect(value("Content-Type", in: rendered) == "text/plain; charset=utf-8")
        #expect(value("Content-Transfer-Encoding", in: rendered) == "quoted-printable")
        let messageID = try #require(value("Message-ID", in: rendered))
        #expect(messageID == rendered.messageID)
        #expect(messageID.hasPrefix("<") && messageID.hasSuffix("@example.com>"))
        #expect(messageID.count > 30)
        #expect(rendered.string.hasSuffix("\r\n\r\nHi Bob\r\n"))
        #expect(rendered.envelopeFrom == "alice@example.com")
        #expect(rendered.recipients == ["bob@example.org"])
        #expect(!rendered.requiresSMTPUTF8)
    }

    @Test("message ids are unique")
    func uniqueMessageIDs() throws {
        let message = EmailMessage(from: "a@example.com", to: ["b@example.com"], subject: "x", textBody: "y")
        let ids = try (0..<100).map { _ in try message.render().messageID }
        #expect(Set(ids).count == 100)
    }

    @Test("an html body gives multipart/alternative with text first, then html")
    func multipart() throws {
        let message = EmailMessage(
            from: "alice@example.com", to: ["bob@example.org"], subject: "Hi",
            textBody: "plain", htmlBody: "<p>html</p>"
        )
        let rendered = try message.render()
        let contentType = try #require(value("Content-Type", in: rendered))
        #expect(contentType.hasPrefix("multipart/alternative; boundary=\"=_"))
        let boundary = String(contentType.split(separator: "\"")[1])
        let body = rendered.string
        let textIndex = try #require(body.range(of: "Content-Type: text/plain; charset=utf-8"))
        let htmlIndex = try #require(body.range(of: "Content-Type: text/html; charset=utf-8"))
        #expect(textIndex.lowerBound < htmlIndex.lowerBound)
        #expect(body.components(separatedBy: "\r\n--\(boundary)\r\n").count == 3)
        #expect(body.hasSuffix("\r\n--\(boundary)--\r\n"))
    }

    @Test("non-ASCII subject and display names become encoded-words within 76 columns")
    func nonASCIIHeaders() throws {
        let subject = "Grüße — 你好 ✓ " + String(repeating: "Ünïcödé ", count: 20)
        let message = EmailMessage(
            from: EmailAddress("alice@example.com", name: "Jürgen Müller"),
            to: [EmailAddress("bob@example.org", name: "李小龍"), EmailAddress("carol@example.net", name: "Carol \"CJ\" Jones")],
            subject: subject,
            textBody: "x"
        )
        let rendered = try message.render()
        let block = headerBlock(rendered)
        #expect(block.utf8.allSatisfy { $0 < 0x80 })
        for line in block.components(separatedBy: "\r\n") {
            #expect(line.utf8.count <= 76, "\(line)")
        }
        let encodedSubject = try #require(value("Subject", in: rendered))
        #expect(TestDecoders.encodedWords(encodedSubject) == subject)
        let to = try #require(value("To", in: rendered))
        #expect(to.contains("\"Carol \\\"CJ\\\" Jones\" <carol@example.net>"))
        #expect(to.contains("<bob@example.org>,"))
    }

    @Test("a long ASCII subject is folded at whitespace and unfolds to the original")
    func foldedSubject() throws {
        let subject = (0..<40).map { "word\($0)" }.joined(separator: " ") + "  double  spaces"
        let rendered = try EmailMessage(from: "a@example.com", to: ["b@example.com"], subject: subject, textBody: "").render()
        let raw = headerBlock(rendered).components(separatedBy: "\r\n").filter { $0.hasPrefix("Subject:") || $0.hasPrefix(" ") }
        #expect(raw.count > 1)
        #expect(raw.allSatisfy { $0.utf8.count <= 76 })
        let unfolded = raw.joined(separator: "")
        #expect(unfolded == "Subject: " + subject)
    }

    @Test("a 2,000-character line (body and subject) never produces a line over 998 octets")
    func longLines() throws {
        let long = String(repeating: "z", count: 2000)
        let message = EmailMessage(
            from: "a@example.com", to: ["b@example.com"], subject: long,
            textBody: long + "\n" + String(repeating: "ü", count: 2000), htmlBody: "<p>\(long)</p>",
            headers: [EmailHeader(name: "X-Long", value: long)]
        )
        let rendered = try message.render()
        for line in TestDecoders.lines(rendered.bytes) {
            #expect(line.count <= 78)
        }
        try MessageRenderer.verifyLineStructure(rendered.bytes)
    }

    @Test("header injection through line breaks is rejected", arguments: [
        EmailMessage(from: "a@example.com", to: ["b@example.com"], subject: "x\r\nBcc: evil@example.com", textBody: ""),
        EmailMessage(from: "a@example.com", to: ["b@example.com"], subject: "x\nBcc: evil@example.com", textBody: ""),
        EmailMessage(from: EmailAddress("a@example.com", name: "A\r\nBcc: x@y"), to: ["b@example.com"], subject: "x", textBody: ""),
        EmailMessage(from: "a@example.com", to: ["b@example.com\r\nRCPT TO:<c@d>"], subject: "x", textBody: ""),
        EmailMessage(from: "a@example.com", to: ["b@example.com"], subject: "x", textBody: "",
                     headers: [EmailHeader(name: "X-Test", value: "1\r\nBcc: evil@example.com")]),
        EmailMessage(from: "a@example.com", to: ["b@example.com"], subject: "x", textBody: "",
                     headers: [EmailHeader(name: "X Test", value: "1")]),
    ])
    func headerInjection(_ message: EmailMessage) {
        #expect(throws: SMTPError.self) { try message.render() }
    }

    @Test("invalid messages are rejected with invalidMessage")
    func invalidMessages() {
        let noRecipient = EmailMessage(from: "a@example.com", to: [], subject: "x", textBody: "")
        #expect { try noRecipient.render() } throws: { error in
            guard case .invalidMessage = error as? SMTPError else { return false }
            return !(error as! SMTPError).isRetryable
        }
        let noSender = EmailMessage(to: ["b@example.com"], subject: "x", textBody: "")
        #expect(throws: SMTPError.self) { try noSender.render() }
        #expect(throws: Never.self) { try noSender.render(defaultFrom: "default@example.com") }
        for bad in ["no-at-sign", "two@@example.com", "@example.com", "a@", "a b@example.com", "<a@example.com>"] {
            let message = EmailMessage(from: "a@example.com", to: [EmailAddress(bad)], subject: "x", textBody: "")
            #expect(throws: SMTPError.self, "\(bad)") { try message.render() }
        }
        let reserved = EmailMessage(from: "a@example.com", to: ["b@example.com"], subject: "x", textBody: "",
                                    headers: [EmailHeader(name: "Message-ID", value: "<x@y>")])
        #expect(throws: SMTPError.self) { try reserved.render() }
    }

    @Test("bcc recipients are in the envelope but not in the headers; duplicates are removed")
    func bcc() throws {
        let message = EmailMessage(
            from: "a@example.com", to: ["b@example.com"], cc: ["c@example.com", "B@example.com"], bcc: ["secret@example.com"],
            subject: "x", textBody: "y"
        )
        let rendered = try message.render()
        #expect(rendered.recipients == ["b@example.com", "c@example.com", "secret@example.com"])
        #expect(!headerBlock(rendered).contains("secret"))
        #expect(value("Cc", in: rendered) == "c@example.com, B@example.com")
    }

    @Test("a custom Message-ID and extra headers are used")
    func customHeaders() throws {
        var message = EmailMessage(
            from: "a@example.com", to: ["b@example.com"], subject: "x", textBody: "y",
            headers: [EmailHeader(name: "X-Campaign", value: "spring"), EmailHeader(name: "X-Unicode", value: "naïve")]
        )
        message.messageID = "abc123@switchboard.example"
        let rendered = try message.render()
        #expect(rendered.messageID == "<abc123@switchboard.example>")
        #expect(value("X-Campaign", in: rendered) == "spring")
        #expect(TestDecoders.encodedWords(try #require(value("X-Unicode", in: rendered))) == "naïve")
    }

    @Test("non-ASCII addresses require SMTPUTF8")
    func smtputf8() throws {
        let rendered = try EmailMessage(from: "a@example.com", to: ["用户@例子.广告"], subject: "x", textBody: "y").render()
        #expect(rendered.requiresSMTPUTF8)
    }

    @Test("the rendered message uses CRLF only and is 7-bit for ASCII addresses")
    func crlfOnly() throws {
        let message = EmailMessage(
            from: EmailAddress("a@example.com", name: "Ünï"), to: ["b@example.com"], subject: "Grüße",
            textBody: "line1\rline2\nline3\r\n\u{0}nul", htmlBody: "<b>ü</b>\n"
        )
        let rendered = try message.render()
        try MessageRenderer.verifyLineStructure(rendered.bytes)
        #expect(rendered.bytes.allSatisfy { $0 < 0x80 })
    }
}
