import NIOCore
import NIOEmbedded
import NIOSSL
import NIOTLS
import Testing
@testable import SwitchboardSMTP

/// Captures a future's result on the embedded event loop.
private final class ResultBox<Value> {
    var result: Result<Value, any Error>?
}

private func currentResult<Value>(_ future: EventLoopFuture<Value>) -> Result<Value, any Error>? {
    let box = ResultBox<Value>()
    future.assumeIsolated().whenComplete { box.result = $0 }
    return box.result
}

@Suite("SMTP protocol handling")
struct SMTPProtocolTests {
    func makeChannel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(SMTPChannelHandler())
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 25)).wait()
        return channel
    }

    func send(
        _ channel: EmbeddedChannel, _ line: String?, step: SMTPStep = .ehlo, timeout: TimeAmount = .seconds(30),
        tlsUpgrade: TLSUpgrade? = nil
    ) throws -> EventLoopFuture<SMTPReply> {
        let promise = channel.eventLoop.makePromise(of: SMTPReply.self)
        let request = SMTPRequest(
            bytes: line.map { ByteBuffer(string: $0 + "\r\n") }, step: step, timeout: timeout,
            replyPromise: promise, tlsUpgrade: tlsUpgrade
        )
        try channel.writeOutbound(request)
        return promise.futureResult
    }

    func serverSays(_ channel: EmbeddedChannel, _ text: String) throws {
        try channel.writeInbound(ByteBuffer(string: text))
    }

    func reply(_ future: EventLoopFuture<SMTPReply>) throws -> SMTPReply {
        switch currentResult(future) {
        case .success(let reply): return reply
        case .failure(let error): throw error
        case nil: throw SMTPError.protocolViolation(step: .ehlo, reason: "no reply yet")
        }
    }

    func error(_ future: EventLoopFuture<SMTPReply>) -> SMTPError? {
        if case .failure(let error) = currentResult(future) { return error as? SMTPError }
        return nil
    }

    @Test("a multi-line EHLO reply is one reply and its extensions are parsed")
    func multiLineReply() throws {
        let channel = try makeChannel()
        let future = try send(channel, "EHLO client.example")
        #expect(try channel.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "EHLO client.example\r\n"))
        try serverSays(channel, "250-smtp.example.com at your service\r\n250-SIZE 35882577\r\n250-8BITMIME\r\n")
        #expect(currentResult(future) == nil, "reply must not complete before the last line")
        try serverSays(channel, "250-AUTH LOGIN PLAIN XOAUTH2\r\n250-AUTH=LOGIN\r\n250-STARTTLS\r\n250-SMTPUTF8\r\n250 PIPELINING\r\n")
        let ehlo = try reply(future)
        #expect(ehlo.code == 250)
        #expect(ehlo.lines.count == 8)
        let capabilities = SMTPCapabilities(ehloReply: ehlo)
        #expect(capabilities.serverDomain == "smtp.example.com")
        #expect(capabilities.maximumMessageSize == 35_882_577)
        #expect(capabilities.supports8BitMIME && capabilities.supportsStartTLS)
        #expect(capabilities.supportsSMTPUTF8 && capabilities.supportsPipelining)
        #expect(capabilities.authMechanisms == ["LOGIN", "PLAIN", "XOAUTH2"])
        #expect(!capabilities.supportsEnhancedStatusCodes)
        _ = try channel.finish()
    }

    @Test("a greeting that arrives before anyone asks is delivered to the first request")
    func earlyGreeting() throws {
        let channel = try makeChannel()
        try serverSays(channel, "220 smtp.example.com ESMTP ready\r\n")
        let greeting = try send(channel, nil, step: .greeting)
        #expect(try reply(greeting).code == 220)
        #expect(try reply(greeting).text == "smtp.example.com ESMTP ready")
        _ = try channel.finish()
    }

    @Test("replies split across reads, bare LF and a code-only line are accepted")
    func fragmentedReplies() throws {
        let channel = try makeChannel()
        let first = try send(channel, "NOOP")
        let second = try send(channel, "NOOP")
        try serverSays(channel, "25")
        try serverSays(channel, "0 2.0.0 O")
        try serverSays(channel, "K\r\n250\n")
        #expect(try reply(first).enhancedStatusCode == SMTPEnhancedStatusCode("2.0.0"))
        #expect(try reply(first).text == "OK")
        #expect(try reply(second).lines == [""])
        _ = try channel.finish()
    }

    @Test("pipelined commands get their replies in order")
    func pipelining() throws {
        let channel = try makeChannel()
        let mail = try send(channel, "MAIL FROM:<a@example.com>", step: .mailFrom)
        let rcpt1 = try send(channel, "RCPT TO:<b@example.com>", step: .rcptTo)
        let rcpt2 = try send(channel, "RCPT TO:<c@example.com>", step: .rcptTo)
        try serverSays(channel, "250 2.1.0 Ok\r\n550-5.1.1 no such\r\n550 5.1.1 user\r\n250 2.1.5 Ok\r\n")
        #expect(try reply(mail).code == 250)
        let rejected = try reply(rcpt1)
        #expect(rejected.code == 550)
        #expect(rejected.enhancedStatusCode?.description == "5.1.1")
        #expect(rejected.text == "no such\n5.1.1 user")
        #expect(try reply(rcpt2).code == 250)
        _ = try channel.finish()
    }

    @Test("a malformed reply is a protocol violation and closes the connection")
    func malformedReply() throws {
        let channel = try makeChannel()
        let future = try send(channel, "EHLO x")
        try serverSays(channel, "hello there\r\n")
        guard case .protocolViolation(let step, _) = error(future) else {
            Issue.record("expected a protocol violation, got \(String(describing: currentResult(future)))")
            return
        }
        #expect(step == .ehlo)
        #expect(!channel.isActive)
        let later = try? send(channel, "NOOP")
        if let later { #expect(error(later) != nil) }
    }

    @Test("a code change inside a multi-line reply is a protocol violation")
    func inconsistentMultiline() throws {
        let channel = try makeChannel()
        let future = try send(channel, "EHLO x")
        try serverSays(channel, "250-first\r\n251 second\r\n")
        #expect(error(future)?.isRetryable == false)
    }

    @Test("a command without a reply times out with a retryable error")
    func timeout() throws {
        let channel = try makeChannel()
        let future = try send(channel, "DATA", step: .data, timeout: .seconds(5))
        channel.embeddedEventLoop.advanceTime(by: .seconds(4))
        #expect(currentResult(future) == nil)
        channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        #expect(error(future) == .timeout(step: .data))
        #expect(error(future)?.isRetryable == true)
        #expect(!channel.isActive)
    }

    @Test("the server closing the connection fails pending commands as connection failures")
    func serverCloses() throws {
        let channel = try makeChannel()
        let future = try send(channel, "RSET", step: .rset)
        channel.pipeline.fireChannelInactive()
        guard case .connectionFailed(let step, _) = error(future) else {
            Issue.record("expected connectionFailed")
            return
        }
        #expect(step == .rset)
        #expect(error(future)?.isRetryable == true)
    }

    @Test("plaintext after the STARTTLS 220 is rejected (STARTTLS injection)")
    func startTLSInjection() throws {
        let channel = try makeChannel()
        let context = try NIOSSLContext(configuration: .makeClientConfiguration())
        let future = try send(channel, "STARTTLS", step: .startTLS, tlsUpgrade: TLSUpgrade(context: context, serverHostname: "example.com"))
        try serverSays(channel, "220 go ahead\r\n250 injected\r\n")
        guard case .protocolViolation(let step, _) = error(future) else {
            Issue.record("expected a protocol violation, got \(String(describing: currentResult(future)))")
            return
        }
        #expect(step == .startTLS)
        #expect(!channel.isActive)
    }

    @Test("a clean STARTTLS 220 inserts the TLS handler first in the pipeline; STARTTLS is answered once TLS is up")
    func startTLSUpgrade() throws {
        let channel = try makeChannel()
        let context = try NIOSSLContext(configuration: .makeClientConfiguration())
        let future = try send(channel, "STARTTLS", step: .startTLS, tlsUpgrade: TLSUpgrade(context: context, serverHostname: "example.com"))
        _ = try channel.readOutbound(as: ByteBuffer.self)
        try serverSays(channel, "220 2.0.0 Ready to start TLS\r\n")
        #expect(throws: Never.self) { _ = try channel.pipeline.syncOperations.handler(type: NIOSSLClientHandler.self) }
        // The TLS handler immediately starts its handshake: a ClientHello is queued for the wire.
        let clientHello = try channel.readOutbound(as: ByteBuffer.self)
        #expect(clientHello?.getInteger(at: clientHello!.readerIndex, as: UInt8.self) == 0x16)
        // Nothing may be written after STARTTLS before the handshake ends, so the 220 is held until then.
        #expect(currentResult(future) == nil)
        channel.pipeline.fireUserInboundEventTriggered(TLSUserEvent.handshakeCompleted(negotiatedProtocol: nil))
        #expect(try reply(future).code == 220)
        _ = try? channel.finish()
    }

    @Test("a TLS handshake that fails after STARTTLS fails STARTTLS with the TLS error, not a closed connection")
    func startTLSHandshakeFails() throws {
        let channel = try makeChannel()
        let context = try NIOSSLContext(configuration: .makeClientConfiguration())
        let future = try send(channel, "STARTTLS", step: .startTLS, tlsUpgrade: TLSUpgrade(context: context, serverHostname: "example.com"))
        _ = try channel.readOutbound(as: ByteBuffer.self)
        try serverSays(channel, "220 2.0.0 Ready to start TLS\r\n")
        channel.pipeline.fireErrorCaught(NIOSSLError.handshakeFailed(.sslError([])))
        guard case .tlsFailed(let step, _)? = error(future) else {
            Issue.record("expected tlsFailed, got \(String(describing: currentResult(future)))")
            return
        }
        #expect(step == .tlsHandshake)
        #expect(error(future)?.isRetryable == false)
        #expect(!channel.isActive)
    }
}

@Suite("SMTP errors and configuration")
struct SMTPErrorAndConfigurationTests {
    @Test("4xx replies are transient, 5xx permanent, with code, enhanced code, text and step")
    func classification() {
        let transient = SMTPError.rejection(SMTPReply(code: 451, lines: ["4.3.0 try again"]), step: .rcptTo, recipient: "x@example.com")
        #expect(transient.isRetryable)
        #expect(transient.code == 451)
        #expect(transient.enhancedStatusCode == SMTPEnhancedStatusCode(statusClass: 4, subject: 3, detail: 0))
        #expect(transient.failure?.text == "try again")
        #expect(transient.failure?.recipient == "x@example.com")
        #expect(transient.step == .rcptTo)
        #expect(transient.description == "SMTP transient failure at rcpt-to <x@example.com>: 451 4.3.0 try again")

        let permanent = SMTPError.rejection(SMTPReply(code: 550, lines: ["5.1.1 no such user"]), step: .rcptTo)
        #expect(!permanent.isRetryable)
        guard case .permanent(let failure) = permanent else {
            Issue.record("expected permanent")
            return
        }
        #expect(failure.code == 550 && failure.enhancedStatusCode?.description == "5.1.1")

        let auth = SMTPError.rejection(SMTPReply(code: 535, lines: ["5.7.8 Authentication credentials invalid"]), step: .auth)
        #expect(auth.isAuthenticationFailure && !auth.isRetryable)

        let odd = SMTPError.rejection(SMTPReply(code: 354, lines: ["go on"]), step: .rcptTo)
        #expect(!odd.isRetryable)
        #expect(SMTPError.timeout(step: .connect).isRetryable)
        #expect(SMTPError.connectionFailed(step: .connect, reason: "refused").isRetryable)
        #expect(!SMTPError.tlsFailed(step: .tlsHandshake, reason: "bad cert").isRetryable)
    }

    @Test("enhanced status codes are parsed only when well-formed and of the reply's class")
    func enhancedCodes() {
        #expect(SMTPReply(code: 550, lines: ["5.1.1 no"]).enhancedStatusCode?.description == "5.1.1")
        #expect(SMTPReply(code: 550, lines: ["5.7.100 long"]).enhancedStatusCode?.description == "5.7.100")
        #expect(SMTPReply(code: 550, lines: ["4.1.1 wrong class"]).enhancedStatusCode == nil)
        #expect(SMTPReply(code: 550, lines: ["no code"]).enhancedStatusCode == nil)
        #expect(SMTPReply(code: 250, lines: ["2.0.0"]).text == "")
        #expect(SMTPReply(code: 550, lines: ["5.01.1  padded text", "second"]).text == "padded text\nsecond")
        #expect(SMTPEnhancedStatusCode("3.1.1") == nil)
        #expect(SMTPEnhancedStatusCode("5.1") == nil)
        #expect(SMTPEnhancedStatusCode("5.1.1000") == nil)
    }

    @Test("the configuration description never shows the password")
    func maskedPassword() {
        let configuration = SMTPConfiguration(host: "smtp.example.com", username: "user", password: "hunter2-secret")
        #expect(!configuration.description.contains("hunter2"))
        #expect(configuration.description.contains("********"))
        #expect(!"\(configuration)".contains("hunter2"))
        #expect(!String(reflecting: configuration).contains("hunter2"))
        var dumped = ""
        dump(configuration, to: &dumped)
        #expect(!dumped.contains("hunter2"))
        #expect(dumped.contains("smtp.example.com"))
        let client = try? SMTPClient(configuration: configuration)
        #expect(client.map { String(reflecting: $0.configuration) }?.contains("hunter2") == false)
        #expect(configuration.port == 587)
        #expect(SMTPConfiguration(host: "h", tlsMode: .implicitTLS).port == 465)
    }

    @Test("credentials over plaintext are refused unless explicitly allowed")
    func insecureAuth() throws {
        let insecure = SMTPConfiguration(host: "127.0.0.1", port: 2525, tlsMode: .none, username: "u", password: "p")
        #expect(throws: SMTPError.self) { try SMTPClient(configuration: insecure) }
        var allowed = insecure
        allowed.allowInsecureAuthentication = true
        #expect(throws: Never.self) { try SMTPClient(configuration: allowed) }
    }

    @Test("an unreadable CA file is a configuration error")
    func badCAFile() {
        let configuration = SMTPConfiguration(host: "localhost", caCertificatePath: "/nonexistent/ca.pem")
        #expect { try SMTPClient(configuration: configuration) } throws: { error in
            guard case .invalidConfiguration = error as? SMTPError else { return false }
            return true
        }
    }

    @Test("other invalid configurations are rejected")
    func invalidConfigurations() {
        #expect(throws: SMTPError.self) { try SMTPClient(configuration: SMTPConfiguration(host: "")) }
        #expect(throws: SMTPError.self) { try SMTPClient(configuration: SMTPConfiguration(host: "h", port: 70000)) }
        #expect(throws: SMTPError.self) { try SMTPClient(configuration: SMTPConfiguration(host: "h", username: "only-user")) }
        #expect(throws: SMTPError.self) { try SMTPClient(configuration: SMTPConfiguration(host: "h", maxConnections: 0)) }
        #expect(throws: SMTPError.self) { try SMTPClient(configuration: SMTPConfiguration(host: "h", heloName: "bad name")) }
    }
}
