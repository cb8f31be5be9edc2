import Logging
import NIOCore
import NIOPosix
import SwitchboardTelemetry

/// Something that can run Redis commands: a ``RedisConnection``, a
/// ``RedisConnectionPool`` or a ``RedisClient``.
///
/// The typed commands (`xadd`, `xreadgroup`, `xautoclaim`, `xpending`, …)
/// are provided for every executor by an extension of this protocol.
public protocol RedisCommandExecutor: Sendable {
    /// Sends one command and waits for its reply.
    /// - Parameters:
    ///   - command: The command name followed by its arguments, for example `["XLEN", "events"]`.
    ///   - options: Timeout and blocking hints.
    /// - Returns: The reply.
    /// - Throws: ``RedisError``; an error reply is thrown as its server error case.
    func send(command: [String], options: RedisCommandOptions) async throws(RedisError) -> RESPValue

    /// Sends many commands in one write and flush, on one connection, and waits for all replies.
    ///
    /// Error replies do not throw: they are returned in place as ``RESPValue/error(_:)``.
    /// - Parameters:
    ///   - commands: The commands, each a command name followed by its arguments.
    ///   - options: Timeout for the whole batch.
    /// - Returns: One reply per command, in order.
    /// - Throws: ``RedisError`` if the connection fails or the batch times out.
    func pipeline(_ commands: [[String]], options: RedisCommandOptions) async throws(RedisError) -> [RESPValue]
}

extension RedisCommandExecutor {
    /// Sends one command with the default options and waits for its reply.
    /// - Parameter command: The command name followed by its arguments.
    /// - Returns: The reply.
    /// - Throws: ``RedisError``; an error reply is thrown as its server error case.
    public func send(command: [String]) async throws(RedisError) -> RESPValue {
        try await self.send(command: command, options: .default)
    }

    /// Sends one command, given as separate arguments, for example `send("SET", "k", "v")`.
    /// - Parameter command: The command name followed by its arguments.
    /// - Returns: The reply.
    /// - Throws: ``RedisError``; an error reply is thrown as its server error case.
    @discardableResult
    public func send(_ command: String...) async throws(RedisError) -> RESPValue {
        try await self.send(command: command, options: .default)
    }

    /// Sends many commands in one write with the default options; error replies are returned in place.
    /// - Parameter commands: The commands.
    /// - Returns: One reply per command, in order.
    /// - Throws: ``RedisError`` if the connection fails or the batch times out.
    public func pipeline(_ commands: [[String]]) async throws(RedisError) -> [RESPValue] {
        try await self.pipeline(commands, options: .default)
    }
}

/// The client to use in applications: a pool for ordinary commands plus a separate
/// pool for blocking commands.
///
/// Commands whose ``RedisCommandOptions/isBlocking`` is set (the typed
/// ``RedisCommandExecutor/xreadgroup(group:consumer:stream:id:count:block:noAck:)`` with a `block`
/// duration sets it) run on connections from the blocking pool, one connection per
/// blocking call for its duration, so a consumer waiting in `XREADGROUP … BLOCK`
/// never delays other callers nor takes their connections. Up to
/// ``Options/maximumBlockingConnections`` blocking calls run at once; further ones wait.
///
/// Both pools reconnect with exponential backoff (see ``RedisReconnectPolicy``), so the
/// client keeps working across server restarts.
///
/// ```swift
/// let redis = try RedisClient(url: "redis://127.0.0.1:6379")
/// let id = try await redis.xadd("events", fields: [("type", "message")])
/// await redis.shutdown()
/// ```
public final class RedisClient: RedisCommandExecutor, Sendable {
    /// Client settings.
    public struct Options: Sendable, Hashable {
        /// The most connections for ordinary commands.
        public var maximumConnections: Int
        /// The most connections for blocking commands (each blocking call uses one).
        public var maximumBlockingConnections: Int
        /// How long a caller waits for a free connection when all are in use.
        public var leaseTimeout: Duration
        /// Retry policy for opening connections.
        public var reconnect: RedisReconnectPolicy

        /// Creates options.
        /// - Parameters:
        ///   - maximumConnections: The most connections for ordinary commands.
        ///   - maximumBlockingConnections: The most connections for blocking commands.
        ///   - leaseTimeout: How long a caller waits for a free connection.
        ///   - reconnect: Retry policy for opening connections.
        public init(
            maximumConnections: Int = 8,
            maximumBlockingConnections: Int = 32,
            leaseTimeout: Duration = .seconds(10),
            reconnect: RedisReconnectPolicy = RedisReconnectPolicy()
        ) {
            self.maximumConnections = maximumConnections
            self.maximumBlockingConnections = maximumBlockingConnections
            self.leaseTimeout = leaseTimeout
            self.reconnect = reconnect
        }
    }

    /// The pool used for ordinary commands.
    public let pool: RedisConnectionPool
    /// The pool used for blocking commands.
    public let blockingPool: RedisConnectionPool

    /// The configuration used to open connections.
    public var configuration: RedisConfiguration { self.pool.configuration }

    /// Creates a client. No connection is opened until the first command.
    /// - Parameters:
    ///   - configuration: Where and how to connect.
    ///   - options: Pool sizes, lease timeout and reconnect policy.
    ///   - eventLoopGroup: The event loops to run on; NIO's shared singleton by default.
    ///   - logger: Where to log; passwords are never logged.
    ///   - metrics: Where the two pools record (by default the process's backend, labels `commands` and `blocking`).
    /// - Throws: ``RedisError/tlsConfiguration(_:)`` if the TLS settings are unusable.
    public init(
        configuration: RedisConfiguration,
        options: Options = Options(),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "switchboard.redis"),
        metrics: (commands: RedisPoolMetrics, blocking: RedisPoolMetrics)? = nil
    ) throws(RedisError) {
        let metrics = metrics ?? (RedisPoolMetrics(pool: "commands"), RedisPoolMetrics(pool: "blocking"))
        self.pool = try RedisConnectionPool(
            configuration: configuration,
            options: .init(
                maximumConnections: options.maximumConnections,
                leaseTimeout: options.leaseTimeout,
                reconnect: options.reconnect
            ),
            eventLoopGroup: eventLoopGroup,
            logger: logger,
            metrics: metrics.commands
        )
        self.blockingPool = try RedisConnectionPool(
            configuration: configuration,
            options: .init(
                maximumConnections: options.maximumBlockingConnections,
                leaseTimeout: options.leaseTimeout,
                reconnect: options.reconnect
            ),
            eventLoopGroup: eventLoopGroup,
            logger: logger,
            metrics: metrics.blocking
        )
    }

    /// Creates a client from a `redis://` or `rediss://` URL (see ``RedisConfiguration/init(url:)``).
    /// - Parameters:
    ///   - url: The server URL.
    ///   - options: Pool sizes, lease timeout and reconnect policy.
    ///   - eventLoopGroup: The event loops to run on.
    ///   - logger: Where to log.
    /// - Throws: ``RedisError/invalidURL(_:)`` or ``RedisError/tlsConfiguration(_:)``.
    public convenience init(
        url: String,
        options: Options = Options(),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "switchboard.redis"),
        metrics: (commands: RedisPoolMetrics, blocking: RedisPoolMetrics)? = nil
    ) throws(RedisError) {
        try self.init(
            configuration: RedisConfiguration(url: url),
            options: options,
            eventLoopGroup: eventLoopGroup,
            logger: logger,
            metrics: metrics
        )
    }

    /// Sends one command; blocking commands run on the blocking pool.
    /// - Parameters:
    ///   - command: The command name followed by its arguments.
    ///   - options: Timeout and blocking hints.
    /// - Returns: The reply.
    /// - Throws: ``RedisError``; an error reply is thrown as its server error case.
    public func send(command: [String], options: RedisCommandOptions) async throws(RedisError) -> RESPValue {
        let pool = options.isBlocking ? self.blockingPool : self.pool
        return try await pool.send(command: command, options: options)
    }

    /// Sends many commands in one write on one connection; error replies are returned in place.
    /// - Parameters:
    ///   - commands: The commands.
    ///   - options: Timeout for the whole batch; if blocking, the batch runs on the blocking pool.
    /// - Returns: One reply per command, in order.
    /// - Throws: ``RedisError`` if the connection fails or the batch times out.
    public func pipeline(_ commands: [[String]], options: RedisCommandOptions) async throws(RedisError) -> [RESPValue] {
        let pool = options.isBlocking ? self.blockingPool : self.pool
        return try await pool.pipeline(commands, options: options)
    }

    /// Leases a connection from the ordinary pool for a sequence of commands that must
    /// share one connection, and returns it afterwards.
    /// - Parameters:
    ///   - isolation: The caller's actor isolation (filled in automatically).
    ///   - body: The work to do with the connection.
    /// - Returns: What `body` returns.
    /// - Throws: What leasing or `body` throws.
    public func withConnection<Result>(
        isolation: isolated (any Actor)? = #isolation,
        _ body: (RedisConnection) async throws -> sending Result
    ) async throws -> sending Result {
        try await self.pool.withConnection(isolation: isolation, body)
    }

    /// Shuts both pools down. Further commands fail with ``RedisError/shutdown``.
    public func shutdown() async {
        await self.pool.shutdown()
        await self.blockingPool.shutdown()
    }
}
