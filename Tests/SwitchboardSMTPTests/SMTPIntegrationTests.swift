import Foundation
import Logging
import SwitchboardTestSupport
import Testing
@testable import SwitchboardSMTP

/// End-to-end tests against a real SMTP server (aiosmtpd, `scripts/smtp_test_server.py`),
/// checking the received messages with Python's `email` package (`scripts/parse_email.py`).
///
/// Requires Python 3 with aiosmtpd and the openssl command: `scripts/install-test-deps.sh`.
@Suite("SMTP against a real server", .serialized, .timeLimit(.minutes(2)))
struct SMTPIntegrationTests {
    static let sender = EmailAddress("sender@switchboard.test", name: "Switchboard Sender")

    /// Set `SMTP_TEST_TRACE=1` to print the SMTP dialogue (credentials redacted) to stderr.
    static let logger: Logger = {
        var logger = Logger(label: "switchboard.smtp.tests", factory: { StreamLogHandler.standardError(label: $0) })
        logger.logLevel = ProcessInfo.processInfo.environment["SMTP_TEST_TRACE"] != nil ? .trace : .critical
        return logger
    }()

    func configuration(
        _ server: SMTPTestServer,
        tlsMode: SMTPTLSMode = .none,
        username: String? = nil,
        password: String? = nil,
        caPath: String? = nil
    ) -> SMTPConfiguration {
        SMTPConfiguration(
            host: "127.0.0.1",
            port: server.port,
            tlsMode: tlsMode,
            username: username,
            password: password,
            caCertificatePath: caPath,
            heloName: "client.switchboard.test",
            timeouts: SMTPTimeouts(connect: .seconds(5), greeting: .seconds(10), command: .seconds(10), data: .seconds(20)),
            defaultFrom: Self.sender
        )
    }

    func simpleMessage(to recipient: String = "rcpt@example.com", subject: String = "Test") -> EmailMessage {
        EmailMessage(to: [EmailAddress(recipient)], subject: subject, textBody: "Hello.\n")
    }

    /// Runs `body` with a client and always shuts the client down.
    func withClient<T>(_ configuration: SMTPConfiguration, _ body: (SMTPClient) async throws -> T) async throws -> T {
        let client = try SMTPClient(configuration: configuration, logger: Self.logger)
        do {
            let result = try await body(client)
            await client.shutdown()
            return result
        } catch {
            await client.shutdown()
            throw error
        }
    }

    func onlyMessage(_ server: SMTPTestServer) throws -> ReceivedMessage {
        let messages = try server.messages()
        try #require(messages.count == 1, "expected exactly one received message, got \(messages.count)")
        return messages[0]
    }

    // MARK: Content

    @Test("a plaintext message arrives with the right headers and a text/plain part")
    func plainHeaders() async throws {
        try await withSMTPTestServer { server in
            let receipt = try await withClient(configuration(server)) { client in
                try await client.send(EmailMessage(
                    to: [EmailAddress("bob@example.com", name: "Bob Example")], subject: "Plain hello", textBody: "Hi Bob.\nBye.\n"
                ))
            }
            #expect(receipt.reply.code == 250)
            #expect(receipt.reply.text.hasPrefix("OK queued as"))
            let received = try onlyMessage(server)
            #expect(received.envelope.mail_from == "sender@switchboard.test")
            #expect(received.envelope.rcpt_tos == ["bob@example.com"])
            let parsed = try await received.parsed()
            #expect(parsed.defects.isEmpty, "\(parsed.defects)")
            #expect(parsed.header("Message-ID") == receipt.messageID)
            #expect(parsed.header("MIME-Version") == "1.0")
            #expect(parsed.header("From") == "Switchboard Sender <sender@switchboard.test>")
            #expect(parsed.header("To") == "Bob Example <bob@example.com>")
            #expect(parsed.header("Subject") == "Plain hello")
            let date = try #require(parsed.header("Date"))
            #expect(date.hasSuffix("+0000"))
            #expect(!parsed.is_multipart)
            #expect(parsed.content_type == "text/plain")
            #expect(parsed.parts.count == 1)
            #expect(parsed.parts.first?.charset == "utf-8")
            #expect(parsed.parts.first?.content == "Hi Bob.\nBye.\n")
            #expect(!parsed.raw_bare_lf && !parsed.raw_bare_cr)
        }
    }

    @Test("multipart/alternative, non-ASCII text, leading dots and a 2,000-character line arrive intact")
    func richContent() async throws {
        try await withSMTPTestServer { server in
            let unicode = "Grüße — 你好 ✓"
            let long = String((0..<2000).map { i in Character(UnicodeScalar(UInt8(33 + i % 90))) })
            let text = """
            \(unicode)
            .a line starting with a dot
            ..two dots
            .
            \(long)
            end
            """
            let html = "<html><body><p>\(unicode)</p>\n.<b>dot</b>\n<p>\(long)</p></body></html>"
            let message = EmailMessage(
                to: [EmailAddress("bob@example.com", name: "Bøb — 你好")],
                subject: "\(unicode) " + String(repeating: "long subject ", count: 8) + unicode,
                textBody: text,
                htmlBody: html
            )
            _ = try await withClient(configuration(server)) { client in try await client.send(message) }

            let received = try onlyMessage(server)
            let raw = try received.raw()
            let rawText = String(decoding: raw, as: UTF8.self)
            // The dot-stuffing must have been undone by the server, so the raw body
            // contains the line-leading dot exactly once.
            #expect(rawText.contains("\r\n.a line starting with a dot"))
            #expect(!rawText.contains("\r\n..a line starting"))
            let parsed = try await received.parsed()
            #expect(parsed.defects.isEmpty, "\(parsed.defects)")
            #expect(parsed.raw_max_line_octets <= 998)
            #expect(parsed.raw_max_line_octets <= 78, "all lines should even respect the 78-column recommendation")
            #expect(!parsed.raw_8bit)
            #expect(parsed.header("Subject") == message.subject)
            #expect(parsed.header("To") == "Bøb — 你好 <bob@example.com>")
            #expect(parsed.content_type == "multipart/alternative")
            #expect(parsed.parts.map(\.content_type) == ["text/plain", "text/html"])
            #expect(parsed.parts.map(\.charset) == ["utf-8", "utf-8"])
            #expect(parsed.parts[0].content.trimmingSuffixNewline() == text)
            #expect(parsed.parts[1].content.trimmingSuffixNewline() == html)
        }
    }

    @Test("SIZE and BODY=8BITMIME are sent when offered; SMTPUTF8 when an address needs it")
    func mailParameters() async throws {
        try await withSMTPTestServer { server in
            try await withClient(configuration(server)) { client in
                let ascii = try await client.send(simpleMessage())
                let unicode = try await client.send(simpleMessage(to: "用户@例子.test"))
                #expect(ascii.messageID != unicode.messageID)
            }
            let messages = try server.messages()
            try #require(messages.count == 2)
            let first = messages[0].envelope
            #expect(first.mail_options.contains("SIZE=\(first.size)"))
            #expect(first.mail_options.contains("BODY=8BITMIME"))
            #expect(!first.mail_options.contains("SMTPUTF8"))
            let second = messages[1].envelope
            #expect(second.mail_options.contains("SMTPUTF8"))
            #expect(second.smtp_utf8)
            #expect(second.rcpt_tos == ["用户@例子.test"])
        }
    }

    @Test("a server that rejects EHLO is greeted with HELO and gets no ESMTP parameters")
    func heloFallback() async throws {
        try await withSMTPTestServer(SMTPTestServer.Options(refuseEHLO: true)) { server in
            try await withClient(configuration(server)) { client in
                let capabilities = try await client.verifyConnection()
                #expect(capabilities.isLegacyHELO)
                #expect(capabilities.extensions.isEmpty)
                _ = try await client.send(simpleMessage(subject: "via HELO"))
            }
            let received = try onlyMessage(server)
            #expect(received.envelope.mail_options.isEmpty)
            #expect(try await received.parsed().header("Subject") == "via HELO")
        }
    }

    // MARK: Authentication and TLS

    @Test("STARTTLS with a custom CA, then AUTH PLAIN (preferred when PLAIN and LOGIN are offered)")
    func startTLSAuthPlain() async throws {
        try await withSMTPTestServer(SMTPTestServer.Options(mode: .starttls, auth: true)) { server in
            let config = configuration(server, tlsMode: .startTLS, username: "switchboard", password: "s3cret!", caPath: server.caPath)
            let capabilities = try await withClient(config) { client in
                let capabilities = try await client.verifyConnection()
                _ = try await client.send(simpleMessage(subject: "over STARTTLS"))
                return capabilities
            }
            #expect(!capabilities.supportsStartTLS, "capabilities are those announced after TLS")
            #expect(capabilities.authMechanisms.contains("PLAIN"))
            let received = try onlyMessage(server).envelope
            #expect(received.tls)
            #expect(received.authenticated)
            #expect(received.auth_mechanism == "PLAIN")
        }
    }

    @Test("STARTTLS with a self-signed server certificate trusted through caCertificatePath")
    func startTLSSelfSigned() async throws {
        try await withSMTPTestServer(SMTPTestServer.Options(mode: .starttls, auth: true, selfSigned: true)) { server in
            let config = configuration(server, tlsMode: .startTLS, username: "switchboard", password: "s3cret!", caPath: server.caPath)
            _ = try await withClient(config) { client in try await client.send(simpleMessage(subject: "self-signed")) }
            let received = try onlyMessage(server)
            #expect(received.envelope.tls)
            #expect(try await received.parsed().header("Subject") == "self-signed")
        }
    }

    @Test("AUTH LOGIN is used when it is the only mechanism offered")
    func authLogin() async throws {
        try await withSMTPTestServer(SMTPTestServer.Options(mode: .starttls, auth: true, authMechanisms: "LOGIN")) { server in
            let config = configuration(server, tlsMode: .startTLS, username: "switchboard", password: "s3cret!", caPath: server.caPath)
            _ = try await withClient(config) { client in try await client.send(simpleMessage()) }
            let received = try onlyMessage(server).envelope
            #expect(received.auth_mechanism == "LOGIN")
            #expect(received.tls)
        }
    }

    @Test("implicit TLS with AUTH works")
    func implicitTLS() async throws {
        try await withSMTPTestServer(SMTPTestServer.Options(mode: .tls, auth: true)) { server in
            let config = configuration(server, tlsMode: .implicitTLS, username: "switchboard", password: "s3cret!", caPath: server.caPath)
            _ = try await withClient(config) { client in try await client.send(simpleMessage(subject: "implicit")) }
            let received = try onlyMessage(server)
            #expect(received.envelope.authenticated)
            #expect(received.envelope.auth_mechanism == "PLAIN")
            #expect(try await received.parsed().header("Subject") == "implicit")
        }
    }

    @Test("a wrong password is a permanent authentication error (535)")
    func wrongPassword() async throws {
        try await withSMTPTestServer(SMTPTestServer.Options(mode: .starttls, auth: true)) { server in
            let config = configuration(server, tlsMode: .startTLS, username: "switchboard", password: "wrong", caPath: server.caPath)
            try await withClient(config) { client in
                let error = await #expect(throws: SMTPError.self) { try await client.send(simpleMessage()) }
                #expect(error?.isAuthenticationFailure == true)
                #expect(error?.isRetryable == false)
                #expect(error?.code == 535)
                #expect(error?.step == .auth)
                #expect(error?.enhancedStatusCode?.description == "5.7.8")
                #expect(error.map { "\($0)" }?.contains("wrong") == false, "the password must not appear in errors")
            }
            #expect(try server.messages().isEmpty)
        }
    }

    @Test("certificates are verified by default: the test server's private CA is not trusted")
    func certificateVerifiedByDefault() async throws {
        try await withSMTPTestServer(SMTPTestServer.Options(mode: .starttls)) { server in
            try await withClient(configuration(server, tlsMode: .startTLS)) { client in
                let error = await #expect(throws: SMTPError.self) { try await client.send(simpleMessage()) }
                guard case .tlsFailed = error else {
                    Issue.record("expected tlsFailed, got \(String(describing: error))")
                    return
                }
                #expect(error?.isRetryable == false)
            }
            #expect(try server.messages().isEmpty)
        }
    }

    @Test("verification can be disabled for tests")
    func insecureSkipVerification() async throws {
        try await withSMTPTestServer(SMTPTestServer.Options(mode: .tls)) { server in
            var config = configuration(server, tlsMode: .implicitTLS)
            config.insecureSkipCertificateVerification = true
            _ = try await withClient(config) { client in try await client.send(simpleMessage()) }
            #expect(try server.messages().count == 1)
        }
    }

    @Test("STARTTLS mode fails when the server does not offer STARTTLS")
    func startTLSNotOffered() async throws {
        try await withSMTPTestServer { server in
            try await withClient(configuration(server, tlsMode: .startTLS)) { client in
                let error = await #expect(throws: SMTPError.self) { try await client.send(simpleMessage()) }
                #expect(error?.step == .startTLS)
                #expect(error?.isRetryable == false)
            }
        }
    }

    // MARK: Rejections

    @Test("a 5xx at RCPT is a permanent error with code 550 and enhanced code 5.1.1")
    func permanentRecipientFailure() async throws {
        try await withSMTPTestServer { server in
            try await withClient(configuration(server)) { client in
                let error = await #expect(throws: SMTPError.self) {
                    try await client.send(simpleMessage(to: "nosuchuser@example.com"))
                }
                guard case .permanent(let failure) = error else {
                    Issue.record("expected permanent, got \(String(describing: error))")
                    return
                }
                #expect(failure.code == 550)
                #expect(failure.enhancedStatusCode == SMTPEnhancedStatusCode(statusClass: 5, subject: 1, detail: 1))
                #expect(failure.text == "no such user")
                #expect(failure.step == .rcptTo)
                #expect(failure.recipient == "nosuchuser@example.com")
                #expect(error?.isRetryable == false)

                // The session stays usable after a rejection: the next message goes out on the same connection.
                _ = try await client.send(simpleMessage())
            }
            #expect(try server.messages().count == 1)
            #expect(try server.sessionCount() == 1)
        }
    }

    @Test("a 4xx at RCPT is a transient error; a retry succeeds")
    func transientRecipientFailure() async throws {
        try await withSMTPTestServer { server in
            try await withClient(configuration(server)) { client in
                let always = await #expect(throws: SMTPError.self) { try await client.send(simpleMessage(to: "tempfail@example.com")) }
                guard case .transient(let failure) = always else {
                    Issue.record("expected transient, got \(String(describing: always))")
                    return
                }
                #expect(failure.code == 451)
                #expect(failure.enhancedStatusCode?.description == "4.3.0")
                #expect(failure.step == .rcptTo)
                #expect(always?.isRetryable == true)

                let message = simpleMessage(to: "tempfail-once@example.com")
                let first = await #expect(throws: SMTPError.self) { try await client.send(message) }
                #expect(first?.isRetryable == true)
                let retry = try await client.send(message)
                #expect(retry.reply.code == 250)
            }
            #expect(try server.messages().count == 1)
        }
    }

    @Test("one rejected recipient among several aborts the whole transaction")
    func partialRecipientFailure() async throws {
        try await withSMTPTestServer { server in
            try await withClient(configuration(server)) { client in
                let message = EmailMessage(
                    to: ["ok@example.com", "nosuchuser@example.com"], cc: ["cc@example.com"], subject: "x", textBody: "y"
                )
                let error = await #expect(throws: SMTPError.self) { try await client.send(message) }
                #expect(error?.code == 550)
            }
            #expect(try server.messages().isEmpty)
        }
    }

    @Test("with PIPELINING, MAIL and all RCPTs are sent together and every reply is checked")
    func pipelining() async throws {
        try await withSMTPTestServer(SMTPTestServer.Options(pipelining: true)) { server in
            try await withClient(configuration(server)) { client in
                let capabilities = try await client.verifyConnection()
                #expect(capabilities.supportsPipelining)
                let many = EmailMessage(
                    to: ["one@example.com", "two@example.com"], cc: ["three@example.com"], bcc: ["four@example.com"],
                    subject: "pipelined", textBody: "x"
                )
                _ = try await client.send(many)
                let rejected = EmailMessage(to: ["one@example.com", "nosuchuser@example.com", "two@example.com"], subject: "x", textBody: "y")
                let error = await #expect(throws: SMTPError.self) { try await client.send(rejected) }
                #expect(error?.failure?.recipient == "nosuchuser@example.com")
                #expect(error?.code == 550)
                _ = try await client.send(simpleMessage(subject: "after rejection"))
            }
            let messages = try server.messages()
            try #require(messages.count == 2)
            #expect(messages[0].envelope.rcpt_tos == ["one@example.com", "two@example.com", "three@example.com", "four@example.com"])
            #expect(try await messages[1].parsed().header("Subject") == "after rejection")
            #expect(try server.sessionCount() == 1)
        }
    }

    // MARK: Connections

    @Test("three messages are sent over one connection (RSET between them)")
    func connectionReuse() async throws {
        try await withSMTPTestServer { server in
            try await withClient(configuration(server)) { client in
                for index in 1...3 {
                    _ = try await client.send(simpleMessage(subject: "reuse \(index)"))
                }
            }
            let messages = try server.messages()
            #expect(messages.count == 3)
            #expect(Set(messages.map(\.envelope.connection_id)).count == 1)
            #expect(try server.sessionCount() == 1)
            var subjects: [String?] = []
            for m in messages { subjects.append(try await m.parsed().header("Subject")) }
            #expect(subjects == ["reuse 1", "reuse 2", "reuse 3"])
        }
    }

    @Test("a connection closed by the server while idle is replaced transparently")
    func reconnectAfterServerClose() async throws {
        try await withSMTPTestServer(SMTPTestServer.Options(idleTimeout: 0.5)) { server in
            try await withClient(configuration(server)) { client in
                _ = try await client.send(simpleMessage(subject: "before"))
                try await Task.sleep(for: .milliseconds(1500))
                _ = try await client.send(simpleMessage(subject: "after"))
            }
            #expect(try server.messages().count == 2)
            #expect(try server.sessionCount() == 2)
        }
    }

    @Test("concurrent sends use at most maxConnections connections")
    func pool() async throws {
        try await withSMTPTestServer { server in
            var config = configuration(server)
            config.maxConnections = 2
            try await withClient(config) { client in
                try await withThrowingTaskGroup(of: SMTPSendReceipt.self) { group in
                    for index in 0..<6 {
                        group.addTask { try await client.send(simpleMessage(subject: "parallel \(index)")) }
                    }
                    var ids = Set<String>()
                    for try await receipt in group { ids.insert(receipt.messageID) }
                    #expect(ids.count == 6)
                }
            }
            #expect(try server.messages().count == 6)
            #expect(try server.sessionCount() <= 2)
        }
    }

    @Test("messages per connection are capped")
    func maxMessagesPerConnection() async throws {
        try await withSMTPTestServer { server in
            var config = configuration(server)
            config.maxMessagesPerConnection = 2
            try await withClient(config) { client in
                for _ in 0..<5 { _ = try await client.send(simpleMessage()) }
            }
            #expect(try server.messages().count == 5)
            #expect(try server.sessionCount() == 3)
        }
    }

    @Test("a server that never greets causes a retryable greeting timeout")
    func greetingTimeout() async throws {
        try await withSMTPTestServer(SMTPTestServer.Options(mode: .silent)) { server in
            var config = configuration(server)
            config.timeouts.greeting = .milliseconds(500)
            try await withClient(config) { client in
                let start = ContinuousClock.now
                let error = await #expect(throws: SMTPError.self) { try await client.send(simpleMessage()) }
                #expect(error == .timeout(step: .greeting))
                #expect(error?.isRetryable == true)
                #expect(ContinuousClock.now - start < .seconds(5))
            }
        }
    }

    @Test("a refused connection is a retryable connection failure")
    func connectionRefused() async throws {
        let port = try await SMTPTestServer.freePort()
        let config = SMTPConfiguration(host: "127.0.0.1", port: port, tlsMode: .none, defaultFrom: Self.sender)
        try await withClient(config) { client in
            let error = await #expect(throws: SMTPError.self) { try await client.send(simpleMessage()) }
            guard case .connectionFailed(let step, _) = error else {
                Issue.record("expected connectionFailed, got \(String(describing: error))")
                return
            }
            #expect(step == .connect)
            #expect(error?.isRetryable == true)
        }
    }

    @Test("after shutdown, sends fail with clientShutdown")
    func shutdown() async throws {
        try await withSMTPTestServer { server in
            let client = try SMTPClient(configuration: configuration(server))
            _ = try await client.send(simpleMessage())
            await client.shutdown()
            await client.shutdown()
            let error = await #expect(throws: SMTPError.self) { try await client.send(simpleMessage()) }
            #expect(error == .clientShutdown)
        }
    }
}

extension String {
    /// Drops one trailing newline (the decoded body of a part ends with the CRLF that closes it).
    func trimmingSuffixNewline() -> String {
        hasSuffix("\n") ? String(dropLast()) : self
    }
}
