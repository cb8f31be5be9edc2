import Logging
import NIOCore
import NIOPosix
import NIOSSL

/// One established, greeted, (optionally) TLS-protected and authenticated SMTP session.
///
/// A connection is used by one task at a time (the pool guarantees it); it holds no
/// mutable state of its own (the channel handler's state lives on the event loop).
final class SMTPConnection: Sendable {
    let channel: any Channel
    let capabilities: SMTPCapabilities
    let isSecure: Bool
    let logger: Logger
    private let timeouts: SMTPTimeouts

    private init(channel: any Channel, capabilities: SMTPCapabilities, isSecure: Bool, timeouts: SMTPTimeouts, logger: Logger) {
        self.channel = channel
        self.capabilities = capabilities
        self.isSecure = isSecure
        self.timeouts = timeouts
        self.logger = logger
    }

    /// Whether the TCP connection is still open.
    var isActive: Bool { channel.isActive }

    // MARK: Opening

    /// Connects, reads the greeting, says EHLO (or HELO), upgrades with STARTTLS when
    /// configured, and authenticates when credentials are configured.
    static func open(
        configuration: SMTPConfiguration,
        sslContext: NIOSSLContext?,
        eventLoopGroup: any EventLoopGroup,
        logger: Logger
    ) async throws -> SMTPConnection {
        guard let bootstrap = ClientBootstrap(validatingGroup: eventLoopGroup) else {
            throw SMTPError.invalidConfiguration("the event loop group is not supported by NIOPosix's ClientBootstrap")
        }
        let serverHostname = tlsServerHostname(for: configuration.host)
        let implicitTLS: NIOSSLContext? = configuration.tlsMode == .implicitTLS ? sslContext : nil
        logger.debug("connecting", metadata: ["smtp.tls": "\(configuration.tlsMode)"])
        let channel: any Channel
        do {
            channel = try await bootstrap
                .connectTimeout(TimeAmount(configuration.timeouts.connect))
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let implicitTLS {
                            let tlsHandler = try NIOSSLClientHandler(context: implicitTLS, serverHostname: serverHostname)
                            try channel.pipeline.syncOperations.addHandler(tlsHandler)
                        }
                        try channel.pipeline.syncOperations.addHandler(SMTPChannelHandler())
                    }
                }
                .connect(host: configuration.host, port: configuration.port)
                .get()
        } catch {
            throw SMTPError.from(error, step: .connect)
        }

        do {
            return try await handshake(
                channel: channel,
                configuration: configuration,
                sslContext: sslContext,
                serverHostname: serverHostname,
                logger: logger
            )
        } catch {
            channel.close(promise: nil)
            throw SMTPError.from(error, step: .greeting)
        }
    }

    private static func handshake(
        channel: any Channel,
        configuration: SMTPConfiguration,
        sslContext: NIOSSLContext?,
        serverHostname: String?,
        logger: Logger
    ) async throws -> SMTPConnection {
        let timeouts = configuration.timeouts
        let greeting = try await exchange(channel: channel, logger: logger, bytes: nil, step: .greeting, timeout: timeouts.greeting)
        guard greeting.code == 220 else {
            throw SMTPError.rejection(greeting, step: .greeting)
        }
        var capabilities = try await hello(channel: channel, configuration: configuration, logger: logger)
        var isSecure = configuration.tlsMode == .implicitTLS

        if configuration.tlsMode == .startTLS {
            guard let sslContext else {
                throw SMTPError.invalidConfiguration("no TLS context for STARTTLS")
            }
            guard capabilities.supportsStartTLS else {
                throw SMTPError.tlsFailed(step: .startTLS, reason: "the server did not offer STARTTLS")
            }
            let reply = try await exchange(
                channel: channel, logger: logger, bytes: command("STARTTLS"), step: .startTLS,
                timeout: timeouts.command, tlsUpgrade: TLSUpgrade(context: sslContext, serverHostname: serverHostname)
            )
            guard reply.code == 220 else {
                throw SMTPError.rejection(reply, step: .startTLS)
            }
            // RFC 3207 §4.2: forget everything learned before TLS and ask again.
            capabilities = try await hello(channel: channel, configuration: configuration, logger: logger)
            isSecure = true
        }

        if let username = configuration.username, let password = configuration.password {
            guard isSecure || configuration.allowInsecureAuthentication else {
                throw SMTPError.invalidConfiguration("refusing to send credentials over an unencrypted connection")
            }
            try await authenticate(
                channel: channel, capabilities: capabilities, username: username, password: password,
                timeout: timeouts.command, logger: logger
            )
        }
        logger.debug("connection ready", metadata: [
            "smtp.extensions": "\(capabilities.extensions.keys.sorted().joined(separator: ","))",
            "smtp.secure": "\(isSecure)",
        ])
        return SMTPConnection(channel: channel, capabilities: capabilities, isSecure: isSecure, timeouts: timeouts, logger: logger)
    }

    /// EHLO, falling back to HELO when the server does not understand EHLO.
    private static func hello(channel: any Channel, configuration: SMTPConfiguration, logger: Logger) async throws -> SMTPCapabilities {
        let timeout = configuration.timeouts.command
        let ehlo = try await exchange(
            channel: channel, logger: logger, bytes: command("EHLO \(configuration.heloName)"), step: .ehlo, timeout: timeout
        )
        if ehlo.code == 250 {
            return SMTPCapabilities(ehloReply: ehlo)
        }
        // 500/502/504 (not recognised/implemented) or 550: an old server. RFC 5321 §3.2.
        guard ehlo.isPermanentFailure else {
            throw SMTPError.rejection(ehlo, step: .ehlo)
        }
        logger.debug("EHLO rejected, falling back to HELO", metadata: ["smtp.reply": "\(ehlo.code)"])
        let helo = try await exchange(
            channel: channel, logger: logger, bytes: command("HELO \(configuration.heloName)"), step: .helo, timeout: timeout
        )
        guard helo.code == 250 else {
            throw SMTPError.rejection(helo, step: .helo)
        }
        return SMTPCapabilities(serverDomain: helo.lines.first ?? "", isLegacyHELO: true)
    }

    /// AUTH PLAIN (preferred) or AUTH LOGIN (RFC 4954).
    private static func authenticate(
        channel: any Channel,
        capabilities: SMTPCapabilities,
        username: String,
        password: String,
        timeout: Duration,
        logger: Logger
    ) async throws {
        let mechanisms = capabilities.authMechanisms
        guard !mechanisms.isEmpty else {
            throw SMTPError.unsupported(step: .auth, reason: "the server does not offer AUTH")
        }
        func send(_ line: String, sensitive: Bool) async throws -> SMTPReply {
            try await exchange(channel: channel, logger: logger, bytes: command(line), step: .auth, timeout: timeout, logAs: sensitive ? redacted(line) : nil)
        }
        func finish(_ reply: SMTPReply) throws {
            if reply.code == 235 { return }
            if reply.isPositiveIntermediate {
                throw SMTPError.protocolViolation(step: .auth, reason: "unexpected challenge \(reply.code) after the final response")
            }
            throw SMTPError.rejection(reply, step: .auth)
        }
        func expectChallenge(_ reply: SMTPReply) throws {
            guard reply.code == 334 else {
                throw reply.code == 235
                    ? SMTPError.protocolViolation(step: .auth, reason: "authentication succeeded before credentials were sent")
                    : SMTPError.rejection(reply, step: .auth)
            }
        }

        if mechanisms.contains("PLAIN") {
            // authzid (empty) NUL authcid NUL passwd (RFC 4616).
            let response = Base64.encodeToString([0] + Array(username.utf8) + [0] + Array(password.utf8))
            let withInitialResponse = "AUTH PLAIN \(response)"
            // RFC 4954 §4: the initial response may not push the command past 512 octets.
            if withInitialResponse.utf8.count + 2 <= 512 {
                try finish(try await send(withInitialResponse, sensitive: true))
            } else {
                try expectChallenge(try await send("AUTH PLAIN", sensitive: false))
                try finish(try await send(response, sensitive: true))
            }
        } else if mechanisms.contains("LOGIN") {
            try expectChallenge(try await send("AUTH LOGIN", sensitive: false))
            try expectChallenge(try await send(Base64.encodeToString(Array(username.utf8)), sensitive: true))
            try finish(try await send(Base64.encodeToString(Array(password.utf8)), sensitive: true))
        } else {
            throw SMTPError.unsupported(
                step: .auth,
                reason: "no supported AUTH mechanism (server offers \(mechanisms.joined(separator: " ")); PLAIN and LOGIN are supported)"
            )
        }
        logger.debug("authenticated")
    }

    // MARK: Transactions

    /// `RSET`: clears any transaction state and checks that the session is alive.
    func reset() async throws {
        let reply = try await send("RSET", step: .rset, timeout: timeouts.command)
        guard reply.code == 250 else {
            throw SMTPError.rejection(reply, step: .rset)
        }
    }

    /// Sends one message: `MAIL FROM`, `RCPT TO` for each recipient (pipelined when
    /// the server offers `PIPELINING`), `DATA` and the dot-stuffed content.
    ///
    /// The transaction is all-or-nothing: if any recipient is rejected, `DATA` is not
    /// sent and the rejection is thrown (the next use of the connection starts with `RSET`).
    ///
    /// - Returns: The server's final reply (usually `250 … queued as …`).
    func send(_ message: RenderedEmail) async throws -> SMTPReply {
        if message.requiresSMTPUTF8 && !capabilities.supportsSMTPUTF8 {
            throw SMTPError.unsupported(step: .mailFrom, reason: "an address is not ASCII and the server does not offer SMTPUTF8")
        }
        if let limit = capabilities.maximumMessageSize, message.bytes.count > limit {
            throw SMTPError.messageTooLarge(size: message.bytes.count, limit: limit)
        }
        var mailFrom = "MAIL FROM:<\(message.envelopeFrom)>"
        if capabilities.supportsSize { mailFrom += " SIZE=\(message.bytes.count)" }
        if capabilities.supports8BitMIME { mailFrom += " BODY=8BITMIME" }
        if message.requiresSMTPUTF8 { mailFrom += " SMTPUTF8" }

        let envelope: [(line: String, step: SMTPStep, recipient: String?)] =
            [(mailFrom, .mailFrom, nil)] + message.recipients.map { ("RCPT TO:<\($0)>", .rcptTo, $0) }

        if capabilities.supportsPipelining {
            // RFC 2920: MAIL and RCPT may be sent together; every reply is read
            // before deciding, so the session stays in step.
            let futures = envelope.map { write($0.line, step: $0.step, timeout: timeouts.command, flush: false) }
            channel.flush()
            var replies: [SMTPReply] = []
            for future in futures {
                replies.append(try await future.get())
            }
            for (entry, reply) in zip(envelope, replies) where !reply.isPositiveCompletion {
                throw SMTPError.rejection(reply, step: entry.step, recipient: entry.recipient)
            }
        } else {
            for entry in envelope {
                let reply = try await send(entry.line, step: entry.step, timeout: timeouts.command)
                guard reply.isPositiveCompletion else {
                    throw SMTPError.rejection(reply, step: entry.step, recipient: entry.recipient)
                }
            }
        }

        let dataReply = try await send("DATA", step: .data, timeout: timeouts.command)
        guard dataReply.code == 354 else {
            throw SMTPError.rejection(dataReply, step: .data)
        }
        let payload = DotStuffing.payload(for: message.bytes)
        var buffer = channel.allocator.buffer(capacity: payload.count)
        buffer.writeBytes(payload)
        let finalReply = try await Self.exchange(
            channel: channel, logger: logger, bytes: buffer, step: .message, timeout: timeouts.data,
            logAs: "<message \(message.bytes.count) octets>"
        )
        guard finalReply.isPositiveCompletion else {
            throw SMTPError.rejection(finalReply, step: .message)
        }
        return finalReply
    }

    /// Politely ends the session (`QUIT`, ignoring the outcome) and closes the connection.
    func quit() async {
        if channel.isActive {
            _ = try? await send("QUIT", step: .quit, timeout: min(timeouts.command, .seconds(5)))
        }
        await close()
    }

    /// Closes the connection without `QUIT`.
    func close() async {
        do {
            try await channel.close().get()
        } catch {
            // Already closed: nothing to do.
        }
    }

    // MARK: Wire helpers

    private func send(_ line: String, step: SMTPStep, timeout: Duration) async throws -> SMTPReply {
        try await Self.exchange(channel: channel, logger: logger, bytes: Self.command(line), step: step, timeout: timeout)
    }

    private func write(_ line: String, step: SMTPStep, timeout: Duration, flush: Bool) -> EventLoopFuture<SMTPReply> {
        Self.write(channel: channel, logger: logger, bytes: Self.command(line), step: step, timeout: timeout, flush: flush, logAs: nil)
    }

    /// Writes a request and waits for its reply.
    private static func exchange(
        channel: any Channel,
        logger: Logger,
        bytes: ByteBuffer?,
        step: SMTPStep,
        timeout: Duration,
        tlsUpgrade: TLSUpgrade? = nil,
        logAs: String? = nil
    ) async throws -> SMTPReply {
        do {
            return try await write(
                channel: channel, logger: logger, bytes: bytes, step: step, timeout: timeout, flush: true,
                logAs: logAs, tlsUpgrade: tlsUpgrade
            ).get()
        } catch {
            throw SMTPError.from(error, step: step)
        }
    }

    private static func write(
        channel: any Channel,
        logger: Logger,
        bytes: ByteBuffer?,
        step: SMTPStep,
        timeout: Duration,
        flush: Bool,
        logAs: String?,
        tlsUpgrade: TLSUpgrade? = nil
    ) -> EventLoopFuture<SMTPReply> {
        let promise = channel.eventLoop.makePromise(of: SMTPReply.self)
        if let bytes {
            logger.trace("C: \(logAs ?? String(buffer: bytes).trimmingCRLF())")
        }
        let request = SMTPRequest(bytes: bytes, step: step, timeout: TimeAmount(timeout), replyPromise: promise, tlsUpgrade: tlsUpgrade)
        let written = flush ? channel.writeAndFlush(request) : channel.write(request)
        // If the handler is gone (channel closed) nobody else will complete the promise. Fail it one
        // event-loop tick later, so that an error the handler is about to report for the same close wins
        // over the generic "connection closed".
        written.whenFailure { error in
            channel.eventLoop.execute { promise.fail(SMTPError.from(error, step: step)) }
        }
        let future = promise.futureResult
        if logger.logLevel <= .trace {
            future.whenSuccess { reply in
                logger.trace("S: \(reply.description.replacingNewlines())")
            }
        }
        return future
    }

    static func command(_ line: String) -> ByteBuffer {
        ByteBuffer(string: line + "\r\n")
    }

    /// `AUTH PLAIN <secret>` → `AUTH PLAIN ********`; a bare SASL response → `********`.
    private static func redacted(_ line: String) -> String {
        if line.hasPrefix("AUTH ") {
            let words = line.split(separator: " ")
            return words.count > 2 ? "\(words[0]) \(words[1]) ********" : line
        }
        return "********"
    }

    /// The name to send in TLS SNI and to verify the certificate against; `nil` for
    /// an IP address literal (the certificate is then checked against the IP).
    static func tlsServerHostname(for host: String) -> String? {
        if (try? SocketAddress(ipAddress: host, port: 0)) != nil { return nil }
        return host
    }
}

extension String {
    func trimmingCRLF() -> String {
        var result = self
        while result.hasSuffix("\n") || result.hasSuffix("\r") || result.hasSuffix("\r\n") { result.removeLast() }
        return result
    }
}
