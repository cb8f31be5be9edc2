import Logging
import NIOCore
import NIOPosix
import NIOSSL

/// One connection to a Redis server.
///
/// A connection supports pipelining: any number of tasks may send commands at the
/// same time; they are written in call order and the replies are matched in FIFO
/// order. A command that blocks on the server (`XREADGROUP … BLOCK`) holds up every
/// command sent after it on the same connection — use ``RedisClient`` or a
/// dedicated connection for those.
///
/// A connection does not reconnect by itself: once closed it stays closed
/// (``isConnected`` turns `false`) and every command fails with
/// ``RedisError/connectionClosed``. ``RedisConnectionPool`` and ``RedisClient``
/// replace closed connections.
///
/// Cancelling the task that awaits a reply closes the connection (the reply
/// stream would otherwise be out of step) and throws ``RedisError/cancelled``.
public final class RedisConnection: RedisCommandExecutor, Sendable {
    /// The configuration the connection was opened with.
    public let configuration: RedisConfiguration
    /// The protocol negotiated during the handshake.
    public let protocolVersion: RESPProtocolVersion
    /// The server's version as reported by `HELLO`, when RESP3 was negotiated.
    public let serverVersion: String?

    let channel: any Channel
    private let logger: Logger

    private init(
        channel: any Channel,
        configuration: RedisConfiguration,
        protocolVersion: RESPProtocolVersion,
        serverVersion: String?,
        logger: Logger
    ) {
        self.channel = channel
        self.configuration = configuration
        self.protocolVersion = protocolVersion
        self.serverVersion = serverVersion
        self.logger = logger
    }

    /// Opens a connection and performs the handshake (`HELLO 3` or RESP2 fallback,
    /// `AUTH`, `CLIENT SETNAME`, `SELECT`).
    /// - Parameters:
    ///   - configuration: Where and how to connect.
    ///   - eventLoopGroup: The event loops to run on; NIO's shared singleton by default.
    ///   - logger: Where to log; passwords are never logged.
    /// - Returns: The open connection.
    /// - Throws: ``RedisError/connectionFailed(_:)`` if the server cannot be reached
    ///   or the TLS handshake fails, a server error (such as ``RedisError/wrongPass(message:)``)
    ///   if the handshake is rejected, ``RedisError/tlsConfiguration(_:)`` for bad TLS settings.
    public static func connect(
        configuration: RedisConfiguration,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "switchboard.redis")
    ) async throws(RedisError) -> RedisConnection {
        let factory = try RedisConnectionFactory(configuration: configuration, eventLoopGroup: eventLoopGroup, logger: logger)
        return try await factory.makeConnection()
    }

    /// Whether the underlying channel is still open.
    public var isConnected: Bool {
        self.channel.isActive
    }

    /// Closes the connection. Commands still waiting fail with ``RedisError/connectionClosed``.
    public func close() async {
        try? await self.channel.close()
    }

    /// A future that completes when the connection has closed, for whatever reason.
    public var closeFuture: EventLoopFuture<Void> {
        self.channel.closeFuture
    }

    /// Sends one command and waits for its reply.
    /// - Parameters:
    ///   - command: The command name and arguments, for example `["XLEN", "events"]`.
    ///   - options: Timeout and blocking hints.
    /// - Returns: The reply.
    /// - Throws: ``RedisError``; error replies are thrown as their server error case.
    public func send(command: [String], options: RedisCommandOptions) async throws(RedisError) -> RESPValue {
        do {
            return try await self.sendUnmapped(command: command, options: options).throwingIfError()
        } catch let error as RedisError {
            throw error
        } catch {
            throw Self.mapError(error)
        }
    }

    /// Sends many commands in one write and flush, and waits for all their replies.
    ///
    /// Error replies do not throw: they are returned in place as ``RESPValue/error(_:)``,
    /// so that one failing command does not hide the results of the others.
    /// - Parameters:
    ///   - commands: The commands, each a command name followed by its arguments.
    ///   - options: Timeout for the whole batch.
    /// - Returns: One reply per command, in order.
    /// - Throws: ``RedisError`` if the connection fails or the batch times out.
    public func pipeline(_ commands: [[String]], options: RedisCommandOptions) async throws(RedisError) -> [RESPValue] {
        do {
            return try await self.pipelineUnmapped(commands, options: options)
        } catch let error as RedisError {
            throw error
        } catch {
            throw Self.mapError(error)
        }
    }

    /// Switches the connection to another database.
    ///
    /// Do not use this on connections borrowed from a pool: the pool assumes every
    /// connection uses the configured database.
    /// - Parameter database: The database number.
    /// - Throws: ``RedisError``.
    public func select(database: Int) async throws(RedisError) {
        _ = try await self.send(command: ["SELECT", String(database)], options: .default)
    }

    // MARK: Internals

    /// Like `send` but the raw errors are kept, so that a pool can tell
    /// ``RedisRequestNotSentError`` apart. Error replies are returned, not thrown.
    func sendUnmapped(command: [String], options: RedisCommandOptions) async throws -> RESPValue {
        if Task.isCancelled {
            throw RedisError.cancelled
        }
        var buffer = self.channel.allocator.buffer(capacity: RESPEncoder.estimatedSize(of: command))
        RESPEncoder.encodeCommand(command, into: &buffer)
        let promise = self.channel.eventLoop.makePromise(of: RESPValue.self)
        let request = RedisRequest(
            payload: buffer,
            responder: .single(promise),
            timeout: self.timeout(for: options)
        )
        self.channel.writeAndFlush(request).whenFailure { _ in
            // The request never reached the handler (the channel was already closed and
            // its pipeline torn down), or its bytes could not be written.
            promise.fail(RedisRequestNotSentError())
        }
        return try await self.await(promise.futureResult)
    }

    func pipelineUnmapped(_ commands: [[String]], options: RedisCommandOptions) async throws -> [RESPValue] {
        if commands.isEmpty {
            return []
        }
        if Task.isCancelled {
            throw RedisError.cancelled
        }
        var size = 0
        for command in commands {
            size &+= RESPEncoder.estimatedSize(of: command)
        }
        var buffer = self.channel.allocator.buffer(capacity: size)
        for command in commands {
            RESPEncoder.encodeCommand(command, into: &buffer)
        }
        let promise = self.channel.eventLoop.makePromise(of: [RESPValue].self)
        let request = RedisRequest(
            payload: buffer,
            responder: .batch(promise, count: commands.count),
            timeout: self.timeout(for: options)
        )
        self.channel.writeAndFlush(request).whenFailure { _ in
            // The request never reached the handler (the channel was already closed and
            // its pipeline torn down), or its bytes could not be written.
            promise.fail(RedisRequestNotSentError())
        }
        return try await self.await(promise.futureResult)
    }

    private func await<Value: Sendable>(_ future: EventLoopFuture<Value>) async throws -> Value {
        let channel = self.channel
        return try await withTaskCancellationHandler {
            do {
                return try await future.get()
            } catch {
                if Task.isCancelled {
                    throw RedisError.cancelled
                }
                throw error
            }
        } onCancel: {
            channel.close(promise: nil)
        }
    }

    private func timeout(for options: RedisCommandOptions) -> TimeAmount? {
        switch options.timeout {
        case .default:
            return self.configuration.commandTimeout?.timeAmount
        case .none:
            return nil
        case .exactly(let duration):
            return duration.timeAmount
        case .defaultPlus(let extra):
            guard let base = self.configuration.commandTimeout else { return nil }
            return (base + extra).timeAmount
        }
    }

    static func mapError(_ error: any Error) -> RedisError {
        switch error {
        case let error as RedisError:
            return error
        case is RedisRequestNotSentError:
            return .connectionClosed
        case let error as ChannelError:
            switch error {
            case .connectTimeout:
                return .connectionFailed("connect timeout")
            case .ioOnClosedChannel, .alreadyClosed, .eof, .outputClosed, .inputClosed:
                return .connectionClosed
            default:
                return .connectionClosed
            }
        case is CancellationError:
            return .cancelled
        default:
            return .connectionClosed
        }
    }

    // MARK: Handshake

    /// Builds a connection on an already connected channel by running the handshake.
    static func handshake(
        channel: any Channel,
        configuration: RedisConfiguration,
        logger: Logger
    ) async throws(RedisError) -> RedisConnection {
        // A provisional connection object, used only to send the handshake commands.
        let provisional = RedisConnection(
            channel: channel,
            configuration: configuration,
            protocolVersion: .resp2,
            serverVersion: nil,
            logger: logger
        )
        var protocolVersion = RESPProtocolVersion.resp2
        var serverVersion: String?
        var authenticated = false
        var named = false

        func run(_ command: [String]) async throws(RedisError) -> RESPValue {
            do {
                return try await provisional.sendUnmapped(command: command, options: .default)
            } catch {
                let mapped = Self.mapError(error)
                throw mapped == .connectionClosed ? .connectionFailed("connection closed during the handshake") : mapped
            }
        }

        if configuration.protocolVersion == .resp3 {
            var hello = ["HELLO", "3"]
            if let password = configuration.password {
                hello += ["AUTH", configuration.username ?? "default", password]
            }
            if let name = configuration.clientName {
                hello += ["SETNAME", name]
            }
            let reply = try await run(hello)
            if let message = reply.errorMessage {
                let error = RedisError(serverMessage: message)
                let isUnknownCommand: Bool
                if case .server(let prefix, let text) = error {
                    isUnknownCommand = prefix == "NOPROTO" || (prefix == "ERR" && text.lowercased().contains("unknown command"))
                } else {
                    isUnknownCommand = false
                }
                guard isUnknownCommand else {
                    throw error
                }
                logger.debug("Server does not support RESP3; falling back to RESP2")
            } else {
                protocolVersion = .resp3
                serverVersion = reply.stringKeyedMap?["version"]?.string
                authenticated = true
                named = true
            }
        }

        if !authenticated, let password = configuration.password {
            var auth = ["AUTH"]
            if let username = configuration.username {
                auth.append(username)
            }
            auth.append(password)
            _ = try await run(auth).throwingIfError()
        }
        if !named, let name = configuration.clientName {
            _ = try await run(["CLIENT", "SETNAME", name]).throwingIfError()
        }
        if configuration.database != 0 {
            _ = try await run(["SELECT", String(configuration.database)]).throwingIfError()
        }

        logger.debug(
            "Connected to Redis",
            metadata: ["redis.url": "\(configuration)", "redis.protocol": "\(protocolVersion.rawValue)"]
        )
        return RedisConnection(
            channel: channel,
            configuration: configuration,
            protocolVersion: protocolVersion,
            serverVersion: serverVersion,
            logger: logger
        )
    }
}

/// Opens connections for one configuration, sharing the TLS context between them.
struct RedisConnectionFactory: Sendable {
    let configuration: RedisConfiguration
    let eventLoopGroup: any EventLoopGroup
    let logger: Logger
    private let sslContext: NIOSSLContext?
    private let tlsServerName: String?

    init(configuration: RedisConfiguration, eventLoopGroup: any EventLoopGroup, logger: Logger) throws(RedisError) {
        self.configuration = configuration
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
        if let tls = configuration.tls {
            var tlsConfiguration = tls.baseConfiguration ?? TLSConfiguration.makeClientConfiguration()
            if let caFile = tls.caFile {
                tlsConfiguration.trustRoots = .file(caFile)
            }
            if !tls.verifyCertificates {
                tlsConfiguration.certificateVerification = .none
            }
            do {
                self.sslContext = try NIOSSLContext(configuration: tlsConfiguration)
            } catch {
                throw RedisError.tlsConfiguration("\(error)")
            }
            let name = tls.serverName ?? configuration.host
            self.tlsServerName = Self.isIPAddress(name) ? nil : name
        } else {
            self.sslContext = nil
            self.tlsServerName = nil
        }
    }

    func makeConnection() async throws(RedisError) -> RedisConnection {
        let sslContext = self.sslContext
        let serverName = self.tlsServerName
        let logger = self.logger
        let bootstrap = ClientBootstrap(group: self.eventLoopGroup)
            .connectTimeout(self.configuration.connectTimeout.timeAmount)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.socketOption(.so_keepalive), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let sslContext {
                        let tlsHandler = try NIOSSLClientHandler(context: sslContext, serverHostname: serverName)
                        try channel.pipeline.syncOperations.addHandler(tlsHandler)
                    }
                    try channel.pipeline.syncOperations.addHandler(
                        RedisChannelHandler(logger: logger, expectsTLSHandshake: sslContext != nil)
                    )
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: self.configuration.host, port: self.configuration.port).get()
        } catch {
            self.logger.debug(
                "Could not connect to Redis",
                metadata: ["redis.url": "\(self.configuration)", "error": "\(error)"]
            )
            throw RedisError.connectionFailed("\(self.configuration.host):\(self.configuration.port): \(error)")
        }
        do {
            if sslContext != nil {
                try await Self.waitForTLSHandshake(on: channel)
            }
            return try await RedisConnection.handshake(channel: channel, configuration: self.configuration, logger: logger)
        } catch {
            try? await channel.close()
            throw error
        }
    }

    /// Waits for the TLS handshake, so that a failure (such as an untrusted certificate)
    /// is reported with its reason.
    private static func waitForTLSHandshake(on channel: any Channel) async throws(RedisError) {
        let future = channel.eventLoop.flatSubmit {
            do {
                return try channel.pipeline.syncOperations.handler(type: RedisChannelHandler.self).tlsHandshakeFuture
            } catch {
                return channel.eventLoop.makeFailedFuture(RedisError.connectionFailed("connection closed during the TLS handshake"))
            }
        }
        do {
            try await future.get()
        } catch let error as RedisError {
            throw error
        } catch {
            throw .connectionFailed("TLS: \(error)")
        }
    }

    private static func isIPAddress(_ text: String) -> Bool {
        (try? SocketAddress(ipAddress: text, port: 0)) != nil
    }
}
