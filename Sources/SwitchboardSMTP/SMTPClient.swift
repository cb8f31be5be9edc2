import Logging
import NIOCore
import NIOPosix
import NIOSSL

/// The outcome of a successfully sent message.
public struct SMTPSendReceipt: Sendable, Hashable {
    /// The `Message-ID` header of the sent message, with angle brackets
    /// (e.g. `"<9f2c…@example.com>"`): keep it as the provider message id.
    public var messageID: String
    /// The server's final reply after the message content (e.g. `250 2.0.0 Ok: queued as 4Zx…`).
    public var reply: SMTPReply
    /// The envelope recipients the server accepted.
    public var recipients: [String]
}

/// An SMTP client that renders ``EmailMessage`` values and delivers them to one
/// submission server or relay.
///
/// ## Connections
/// The client keeps a small pool of up to ``SMTPConfiguration/maxConnections``
/// connections (default 2). A message is sent over an idle connection when there
/// is one (after an `RSET` that also proves the session is still alive), otherwise
/// over a new connection while fewer than the maximum exist, otherwise it waits
/// for one to become free. With `maxConnections: 1` all sends are serialised over
/// a single connection.
///
/// If the server has closed an idle connection (or the `RSET` fails), the client
/// transparently opens a new one. A connection is retired (with `QUIT`) after
/// ``SMTPConfiguration/maxMessagesPerConnection`` messages or when it has been idle
/// longer than ``SMTPConfiguration/maxIdleTime``. A connection is never retried
/// once the transaction has started, so a message is never sent twice by the client
/// itself; retry on ``SMTPError/isRetryable`` errors at a higher level.
///
/// Call ``shutdown()`` when done: it waits for sends in flight, then says `QUIT`
/// on every connection.
///
/// ## Cancellation
/// Cancelling a task that waits for a free connection throws `CancellationError`.
/// Once a transaction has started it runs to completion or to its timeout, so that
/// the outcome (sent or not) is always known.
public final class SMTPClient: Sendable {
    /// The configuration the client was created with.
    public let configuration: SMTPConfiguration
    private let eventLoopGroup: any EventLoopGroup
    private let logger: Logger
    private let sslContext: NIOSSLContext?
    private let pool: SMTPConnectionPool

    /// Creates a client. No connection is opened until the first send.
    ///
    /// - Parameters:
    ///   - configuration: The server, credentials and behaviour.
    ///   - eventLoopGroup: The NIO event loops to run connections on. Defaults to
    ///     the shared `MultiThreadedEventLoopGroup.singleton`.
    ///   - logger: A logger for connection events (debug) and the SMTP dialogue
    ///     (trace, with credentials redacted and message content omitted).
    /// - Throws: ``SMTPError/invalidConfiguration(_:)`` when the configuration is
    ///   inconsistent or the CA certificate file cannot be loaded.
    public init(
        configuration: SMTPConfiguration,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "switchboard.smtp")
    ) throws {
        try configuration.validate()
        self.configuration = configuration
        self.eventLoopGroup = eventLoopGroup
        var logger = logger
        logger[metadataKey: "smtp.server"] = "\(configuration.host):\(configuration.port)"
        self.logger = logger
        self.sslContext = try Self.makeSSLContext(configuration)
        self.pool = SMTPConnectionPool(maxConnections: configuration.maxConnections)
    }

    /// Renders and sends a message.
    ///
    /// - Parameter message: The message. When its `from` is `nil` the
    ///   configuration's ``SMTPConfiguration/defaultFrom`` is used.
    /// - Returns: The message id and the server's final reply.
    /// - Throws: ``SMTPError`` (check ``SMTPError/isRetryable``), or
    ///   `CancellationError` if cancelled while waiting for a connection.
    public func send(_ message: EmailMessage) async throws -> SMTPSendReceipt {
        let rendered = try message.render(defaultFrom: configuration.defaultFrom)
        return try await send(rendered)
    }

    /// Sends an already rendered message (see ``EmailMessage/render(defaultFrom:now:)``).
    ///
    /// - Parameter message: The rendered message and its envelope.
    /// - Returns: The message id and the server's final reply.
    /// - Throws: ``SMTPError``, or `CancellationError` while waiting for a connection.
    public func send(_ message: RenderedEmail) async throws -> SMTPSendReceipt {
        let reply = try await withConnection { connection in
            try await connection.send(message)
        }
        logger.debug("message accepted", metadata: [
            "smtp.message_id": "\(message.messageID)",
            "smtp.reply": "\(reply.description.replacingNewlines())",
        ])
        return SMTPSendReceipt(messageID: message.messageID, reply: reply, recipients: message.recipients)
    }

    /// Opens (or reuses) a connection, completing the greeting, TLS and
    /// authentication, to check the configuration without sending anything.
    ///
    /// - Returns: The extensions the server announced (after TLS, if any).
    /// - Throws: ``SMTPError``.
    @discardableResult
    public func verifyConnection() async throws -> SMTPCapabilities {
        try await withConnection(countsAsMessage: false) { $0.capabilities }
    }

    /// Stops the client: new sends fail with ``SMTPError/clientShutdown``, sends in
    /// flight complete, then every connection is closed with `QUIT`. Idempotent.
    public func shutdown() async {
        await pool.shutdown()
        logger.debug("client shut down")
    }

    // MARK: Connection handling

    private func withConnection<Result: Sendable>(
        countsAsMessage: Bool = true,
        _ body: (SMTPConnection) async throws -> Result
    ) async throws -> Result {
        let lease = try await pool.acquire()
        var pooled: PooledConnection?
        do {
            var ready = try await prepare(lease)
            pooled = ready
            let result = try await body(ready.connection)
            if countsAsMessage { ready.messagesSent += 1 }
            ready.idleSince = .now
            await pool.release(ready)
            return result
        } catch {
            let smtpError = error as? SMTPError
            if var pooled, let smtpError, smtpError.leavesSessionUsable, pooled.connection.isActive {
                // A rejected command leaves the session in step: keep it (RSET comes before reuse).
                pooled.idleSince = .now
                await pool.release(pooled)
            } else {
                if let pooled { await pooled.connection.close() }
                await pool.release(nil)
            }
            throw error
        }
    }

    /// Turns a lease into a ready connection: reuses an idle one after `RSET`,
    /// or opens a new one if there was none or it is stale, closed or broken.
    private func prepare(_ lease: SMTPConnectionPool.Lease) async throws -> PooledConnection {
        guard case .reuse(let pooled) = lease else {
            return try await openConnection()
        }
        let connection = pooled.connection
        let idleFor = ContinuousClock.now - pooled.idleSince
        if !connection.isActive {
            logger.debug("idle connection was closed by the server; reconnecting")
            await connection.close()
            return try await openConnection()
        }
        if pooled.messagesSent >= configuration.maxMessagesPerConnection || idleFor > configuration.maxIdleTime {
            logger.debug("retiring connection", metadata: ["smtp.messages": "\(pooled.messagesSent)", "smtp.idle": "\(idleFor)"])
            await connection.quit()
            return try await openConnection()
        }
        do {
            try await connection.reset()
            return pooled
        } catch {
            logger.debug("reused connection failed RSET; reconnecting", metadata: ["smtp.error": "\(error)"])
            await connection.close()
            return try await openConnection()
        }
    }

    private func openConnection() async throws -> PooledConnection {
        let connection = try await SMTPConnection.open(
            configuration: configuration,
            sslContext: sslContext,
            eventLoopGroup: eventLoopGroup,
            logger: logger
        )
        return PooledConnection(connection: connection, idleSince: .now)
    }

    private static func makeSSLContext(_ configuration: SMTPConfiguration) throws(SMTPError) -> NIOSSLContext? {
        guard configuration.tlsMode != .none else { return nil }
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        if let path = configuration.caCertificatePath {
            do {
                let certificates = try NIOSSLCertificate.fromPEMFile(path)
                guard !certificates.isEmpty else {
                    throw SMTPError.invalidConfiguration("no certificate in CA file \(path)")
                }
                tls.trustRoots = .certificates(certificates)
            } catch let error as SMTPError {
                throw error
            } catch {
                throw SMTPError.invalidConfiguration("cannot load CA certificates from \(path): \(error)")
            }
        }
        if configuration.insecureSkipCertificateVerification {
            tls.certificateVerification = .none
        }
        do {
            return try NIOSSLContext(configuration: tls)
        } catch {
            throw SMTPError.invalidConfiguration("cannot create the TLS context: \(error)")
        }
    }
}

extension SMTPError {
    /// Whether the SMTP session is still in a known state after this error, so the
    /// connection may be reused (after `RSET`). True for rejections of transaction
    /// commands (except `421`, which announces that the server is closing) and for
    /// checks made before anything was sent.
    var leavesSessionUsable: Bool {
        switch self {
        case .transient(let failure), .permanent(let failure):
            guard failure.code != 421 else { return false }
            return [.mailFrom, .rcptTo, .data, .message, .rset].contains(failure.step)
        case .unsupported(let step, _):
            return step == .mailFrom
        case .messageTooLarge:
            return true
        default:
            return false
        }
    }
}
