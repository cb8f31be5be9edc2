import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing
import SwitchboardTestSupport
import SwitchboardApp
import SwitchboardCore
import SwitchboardSMTP
@testable import SwitchboardProviders
import SwitchboardServer

@Suite("Richer email end to end: cc, bcc, reply-to, HTML and attachments over SMTP", .serialized)
struct RichEmailEndToEndTests {
    /// Every byte value, several times, and a run of CR LF and NUL: what a text-minded encoder would damage.
    static let binary: [UInt8] = (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 151 &+ 7) } + [13, 10, 0, 13, 13, 10, 46, 13, 10]
    static let csv = Array("name,amount\r\nAda,12.50\r\n.dot line\r\n".utf8)
    static let pdfName = "Grüße — 報告 2026.pdf"

    @Test("through the API, the store, the worker and SMTP: Python's email package reads the files byte for byte; bcc is an envelope recipient only; no base64 in the logs")
    func richEmail() async throws {
        try await withSMTPTestServer(.init(mode: .plain)) { smtp in
            let settings = try e2eSettings([
                "SWITCHBOARD_SMTP_HOST": "127.0.0.1", "SWITCHBOARD_SMTP_PORT": "\(smtp.port)", "SWITCHBOARD_SMTP_TLS": "none",
            ])
            try await withSystem(settings) { system, client in
                let data: JSONValue = .object([
                    "from": .string("ada@example.com"), "to": .string("bob@example.org"), "subject": .string("Quarterly report"),
                    "msg": .string("Hello Bob,\nthe report is attached."), "html": .string("<p>Hello Bob,<br>the report is attached.</p>"),
                    "cc": .array([.string("carol@example.org"), .string("dan@example.net")]), "bcc": .array([.string("eve@example.com")]),
                    "replyTo": .string("replies@example.com"),
                    "attachments": .array([
                        .object(["filename": .string(Self.pdfName), "contentType": .string("application/pdf"), "content": .string(Data(Self.binary).base64EncodedString())]),
                        .object(["filename": .string("figures.csv"), "contentType": .string("text/csv"), "content": .string(Data(Self.csv).base64EncodedString())]),
                    ]),
                ])
                let id = try await send(client, data, type: "email")
                let sent = try await waitFor(system, id, .sent)
                #expect(sent.provider == "smtp")
                let saved = try smtp.messages()
                try #require(saved.count == 1)
                #expect(saved[0].envelope.rcpt_tos == ["bob@example.org", "carol@example.org", "dan@example.net", "eve@example.com"])
                let raw = String(decoding: try saved[0].raw(), as: UTF8.self)
                #expect(!raw.contains("eve@example.com"))
                let parsed = try await saved[0].parsed()
                #expect(parsed.defects.isEmpty, "\(parsed.defects)")
                #expect(parsed.header("To") == "bob@example.org")
                #expect(parsed.header("Cc") == "carol@example.org, dan@example.net")
                #expect(parsed.header("Bcc") == nil)
                #expect(parsed.header("Reply-To") == "replies@example.com")
                #expect(parsed.header("From") == "ada@example.com")
                #expect(parsed.content_type == "multipart/mixed")
                #expect(parsed.parts.map(\.content_type) == ["text/plain", "text/html", "application/pdf", "text/csv"])
                #expect(parsed.parts.map(\.disposition) == [nil, nil, "attachment", "attachment"])
                #expect(parsed.parts.map(\.filename) == [nil, nil, Self.pdfName, "figures.csv"])
                #expect(parsed.parts[0].content.hasPrefix("Hello Bob,\nthe report is attached."))
                #expect(parsed.parts[2].content_base64.flatMap { Data(base64Encoded: $0) }.map { Array($0) } == Self.binary)
                #expect(parsed.parts[3].content_base64.flatMap { Data(base64Encoded: $0) }.map { Array($0) } == Self.csv)
                #expect(parsed.raw_max_line_octets <= 998 && !parsed.raw_bare_lf && !parsed.raw_bare_cr && !parsed.raw_8bit)

                // The base64 is nowhere in what the system keeps: not in the log records nor the search documents.
                let needle = String(Data(Self.binary).base64EncodedString().dropFirst(1000).prefix(60))
                let logs = try await logItems(client, "/api/v1/logs?communicationId=\(id)&status=sent")
                #expect(!logs.isEmpty)
                #expect(!logs.contains { $0.canonicalText.contains(needle) })
                let listed = try await client.execute(uri: "/api/v1/communications?type=email", method: .get)
                #expect(!String(buffer: listed.body).contains(needle))
                #expect(String(buffer: listed.body).contains(id))
                // The message as read keeps the stored form: names, sizes and digests, no content.
                let shown = String(buffer: try await client.execute(uri: "/api/v1/communication/\(id)", method: .get).body)
                #expect(shown.contains("figures.csv") && shown.contains("\"sha256\"") && !shown.contains(needle))
                for stream in ["email_stream", StreamNames.log] {
                    for e in try await system.adapters.queue.entries(stream: stream, limit: 100) {
                        #expect(!e.fields.values.contains { $0.contains(needle) }, "\(stream)")
                    }
                }
            }
        }
    }

    /// An attachment store that has nothing, or fails.
    struct Store: AttachmentStore {
        var fails = false
        func put(sha256: String, bytes: [UInt8]) async throws {}
        func get(sha256: String) async throws -> [UInt8]? {
            if fails { throw CancellationError() }
            return nil
        }
    }

    @Test("a stored message whose attachment is missing fails for good with attachment_missing; a store that does not answer is retried")
    func missingAttachment() async throws {
        var request = CommunicationRequest(channel: .email, from: "ada@example.com", to: "bob@example.org", msg: "hi")
        request.attachments = [EmailAttachment(filename: "a.pdf", contentType: "application/pdf", size: 3, sha256: String(repeating: "ab", count: 32))]
        let message = OutboundMessage(id: "691ff0a2c1d7e64b0a000001", request: request, attempt: 1)
        // Port 9 (discard) on loopback: the provider must decide before connecting.
        let configuration = SMTPConfiguration(host: "127.0.0.1", port: 9, tlsMode: .none)
        let missing = try SMTPProvider(configuration: configuration, logger: Logger(label: "test"), attachments: Store())
        guard case .permanent(let e) = await missing.deliver(message) else {
            Issue.record("not a permanent failure")
            return
        }
        #expect(e.code == "attachment_missing")
        #expect(e.message.contains("a.pdf") && e.message.contains(String(repeating: "ab", count: 32)))
        let failing = try SMTPProvider(configuration: configuration, logger: Logger(label: "test"), attachments: Store(fails: true))
        guard case .retryable(let r) = await failing.deliver(message) else {
            Issue.record("not a retryable failure")
            return
        }
        #expect(r.code == "attachment_store_unavailable")
        await missing.shutdown()
        await failing.shutdown()
    }
}
