import Logging
import SwitchboardBackoff
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SwitchboardTelemetry

/// How a pool retries when it cannot open a connection.
///
/// Failed attempts are spaced by an exponentially growing delay (``Backoff``, with jitter), shared
/// by all callers of the pool so that a down server is not hammered. A caller that
/// needs a new connection keeps trying for at most ``maximumWait`` and then fails
/// with ``RedisError/connectionFailed(_:)``.
public struct RedisReconnectPolicy: Sendable, Hashable {
    /// The delay after the first failed attempt.
    public var initialDelay: Duration
    /// The largest delay between two attempts.
    public var maximumDelay: Duration
    /// The factor by which the delay grows after each further failure.
    public var multiplier: Double
    /// The fraction (0…1) of each delay that is randomised, so that clients spread out.
    public var jitter: Double
    /// How long one caller keeps trying before giving up. `.zero` means one attempt
    /// (or none, while the pool is backing off after a recent failure).
    public var maximumWait: Duration

    /// Creates a policy.
    /// - Parameters:
    ///   - initialDelay: The delay after the first failed attempt.
    ///   - maximumDelay: The largest delay between two attempts.
    ///   - multiplier: The growth factor of the delay.
    ///   - jitter: The randomised fraction of each delay.
    ///   - maximumWait: How long one caller keeps trying.
    public init(
        initialDelay: Duration = .milliseconds(50),
        maximumDelay: Duration = .seconds(2),
        multiplier: Double = 2,
        jitter: Double = 0.2,
        maximumWait: Duration = .seconds(5)
    ) {
        self.initialDelay = initialDelay
        self.maximumDelay = maximumDelay
        self.multiplier = multiplier
        self.jitter = jitter
        self.maximumWait = maximumWait
    }

    /// The backoff between attempts (jitter included).
    public var backoff: Backoff { Backoff(initial: initialDelay, maximum: maximumDelay, multiplier: multiplier, jitter: jitter) }

    /// The delay before the next attempt after `failures` consecutive failures (1 or more).
    /// - Parameter failures: The number of consecutive failures so far.
    /// - Returns: The delay, jitter excluded.
    public func delay(afterFailures failures: Int) -> Duration {
        backoff.delay(afterFailures: failures)
    }
}

/// A fixed-size pool of ``RedisConnection``s to one server.
///
/// Connections are opened on demand, up to ``Options/maximumConnections``. A caller
/// leases a connection for its exclusive use and returns it afterwards; when all are
/// leased, callers wait in FIFO order for at most ``Options/leaseTimeout``. Closed or
/// broken connections are discarded when returned or found idle, and replaced on
/// demand, with exponential backoff while the server is unreachable (see
/// ``RedisReconnectPolicy``). So the pool keeps working across server restarts:
/// commands issued while the server is down fail with ``RedisError/connectionFailed(_:)``
/// after at most ``RedisReconnectPolicy/maximumWait`` (or succeed, if it comes back in
/// time), and later commands succeed.
///
/// The pool is itself a ``RedisCommandExecutor``: each command leases a connection for
/// its duration. A command that could not even be written because its connection had
/// just closed is retried once on a new connection; commands that may have reached
/// the server are never retried.
public final class RedisConnectionPool: RedisCommandExecutor, Sendable {
    /// Pool settings.
    public struct Options: Sendable, Hashable {
        /// The most connections open at once (idle, leased and being opened). At least 1.
        public var maximumConnections: Int
        /// How long a caller waits for a connection when all are leased.
        public var leaseTimeout: Duration
        /// Retry policy for opening connections.
        public var reconnect: RedisReconnectPolicy

        /// Creates options.
        /// - Parameters:
        ///   - maximumConnections: The most connections open at once.
        ///   - leaseTimeout: How long a caller waits for a free connection.
        ///   - reconnect: Retry policy for opening connections.
        public init(
            maximumConnections: Int = 8,
            leaseTimeout: Duration = .seconds(10),
            reconnect: RedisReconnectPolicy = RedisReconnectPolicy()
        ) {
            self.maximumConnections = max(1, maximumConnections)
            self.leaseTimeout = leaseTimeout
            self.reconnect = reconnect
        }
    }

    /// A snapshot of the pool's counters.
    public struct Statistics: Sendable, Hashable {
        /// Open connections not leased.
        public var idle: Int
        /// Connections currently leased.
        public var leased: Int
        /// Connections being opened.
        public var connecting: Int
        /// Callers waiting for a connection.
        public var waiting: Int
    }

    private enum Grant: Sendable {
        case connection(RedisConnection)
        case create
    }

    private struct Waiter {
        var id: UInt64
        var continuation: CheckedContinuation<Grant, any Error>
        var timeoutTask: Scheduled<Void>?
    }

    private struct State {
        var idle: [RedisConnection] = []
        var leased = 0
        var connecting = 0
        var waiters = CircularBuffer<Waiter>()
        var nextWaiterID: UInt64 = 0
        var isShutdown = false
        var consecutiveFailures = 0
        var nextAttempt: NIODeadline = .uptimeNanoseconds(0)
        var lastFailure: RedisError?

        var total: Int { self.idle.count + self.leased + self.connecting }
    }

    /// The configuration used to open connections.
    public var configuration: RedisConfiguration { self.factory.configuration }
    /// The pool's settings.
    public let options: Options

    private let factory: RedisConnectionFactory
    private let state = NIOLockedValueBox(State())
    private let logger: Logger
    /// Connections open and lent out, borrowers that waited, failed connections. Recorded outside the lock.
    private let metrics: RedisPoolMetrics

    /// Creates a pool. No connection is opened until one is needed.
    /// - Parameters:
    ///   - configuration: Where and how to connect.
    ///   - options: Size, lease timeout and reconnect policy.
    ///   - eventLoopGroup: The event loops to run on; NIO's shared singleton by default.
    ///   - logger: Where to log; passwords are never logged.
    ///   - metrics: Where the pool records its connections (open, lent out), waits and failed connections.
    /// - Throws: ``RedisError/tlsConfiguration(_:)`` if the TLS settings are unusable.
    public init(
        configuration: RedisConfiguration,
        options: Options = Options(),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "switchboard.redis"),
        metrics: RedisPoolMetrics = RedisPoolMetrics(pool: "commands")
    ) throws(RedisError) {
        self.factory = try RedisConnectionFactory(configuration: configuration, eventLoopGroup: eventLoopGroup, logger: logger)
        self.options = options
        self.logger = logger
        self.metrics = metrics
    }

    /// The pool's current counters.
    public var statistics: Statistics {
        self.state.withLockedValue {
            Statistics(idle: $0.idle.count, leased: $0.leased, connecting: $0.connecting, waiting: $0.waiters.count)
        }
    }

    // MARK: Leasing

    /// Leases a connection for exclusive use. Return it with ``release(_:)``.
    ///
    /// Prefer ``withConnection(isolation:_:)``, which always returns the connection.
    /// - Returns: An open connection.
    /// - Throws: ``RedisError/poolTimeout`` if none became free in time,
    ///   ``RedisError/connectionFailed(_:)`` if a new one could not be opened,
    ///   ``RedisError/shutdown`` after ``shutdown()``, ``RedisError/cancelled``.
    public func lease() async throws(RedisError) -> RedisConnection {
        let grant: Grant
        do {
            grant = try await self.acquire()
        } catch {
            throw RedisConnection.mapError(error)
        }
        switch grant {
        case .connection(let connection):
            return connection
        case .create:
            return try await self.openConnection()
        }
    }

    /// Returns a leased connection to the pool. Closed connections are discarded.
    /// - Parameter connection: A connection obtained from ``lease()``.
    public func release(_ connection: RedisConnection) {
        enum Action {
            case none
            case close
            case hand(CheckedContinuation<Grant, any Error>, Scheduled<Void>?, Grant)
        }
        let action: Action = self.state.withLockedValue { state in
            state.leased -= 1
            if state.isShutdown {
                return .close
            }
            let usable = connection.isConnected
            if let waiter = state.waiters.popFirst() {
                if usable {
                    state.leased += 1
                    return .hand(waiter.continuation, waiter.timeoutTask, .connection(connection))
                }
                state.connecting += 1
                return .hand(waiter.continuation, waiter.timeoutTask, .create)
            }
            if usable {
                state.idle.append(connection)
                return .none
            }
            return .close
        }
        switch action {
        case .none:
            self.metrics.lent(-1)
        case .close:
            self.metrics.lent(-1)
            self.metrics.opened(-1)
            connection.channel.close(promise: nil)
        case .hand(let continuation, let timeoutTask, let grant):
            timeoutTask?.cancel()
            if case .create = grant {
                // Returned broken to a waiter, who opens a new one.
                self.metrics.lent(-1)
                self.metrics.opened(-1)
                connection.channel.close(promise: nil)
            }
            continuation.resume(returning: grant)
        }
    }

    /// Leases a connection, runs `body` with it and returns it to the pool, even if `body` throws.
    ///
    /// Use this for sequences of commands that must run on one connection
    /// (for example `WATCH`/`MULTI`/`EXEC`). Do not keep the connection after `body` returns.
    /// - Parameters:
    ///   - isolation: The caller's actor isolation (filled in automatically).
    ///   - body: The work to do with the connection.
    /// - Returns: What `body` returns.
    /// - Throws: What `lease()` or `body` throws.
    public func withConnection<Result>(
        isolation: isolated (any Actor)? = #isolation,
        _ body: (RedisConnection) async throws -> sending Result
    ) async throws -> sending Result {
        let connection = try await self.lease()
        defer { self.release(connection) }
        return try await body(connection)
    }

    /// Closes every idle connection and fails waiting callers with ``RedisError/shutdown``.
    /// Leased connections are closed when they are returned. Further calls fail with
    /// ``RedisError/shutdown``.
    public func shutdown() async {
        let (idle, waiters) = self.state.withLockedValue { state in
            state.isShutdown = true
            let idle = state.idle
            state.idle.removeAll()
            let waiters = Array(state.waiters)
            state.waiters.removeAll()
            return (idle, waiters)
        }
        for waiter in waiters {
            waiter.timeoutTask?.cancel()
            waiter.continuation.resume(throwing: RedisError.shutdown)
        }
        self.metrics.opened(-idle.count)
        for connection in idle {
            await connection.close()
        }
    }

    private enum Decision {
        case grant(Grant)
        case fail(RedisError)
        case wait
    }

    /// Takes an idle open connection, or a slot to open one, if available. Stale idle
    /// connections are moved to `stale` so that the caller closes them outside the lock.
    private func grantIfPossible(_ state: inout State, stale: inout [RedisConnection]) -> Decision {
        if state.isShutdown {
            return .fail(.shutdown)
        }
        while let connection = state.idle.popLast() {
            if connection.isConnected {
                state.leased += 1
                return .grant(.connection(connection))
            }
            stale.append(connection)
        }
        if state.total < self.options.maximumConnections {
            state.connecting += 1
            return .grant(.create)
        }
        return .wait
    }

    private func acquire() async throws -> Grant {
        // Fast path without suspending.
        var stale: [RedisConnection] = []
        let immediate = self.state.withLockedValue { self.grantIfPossible(&$0, stale: &stale) }
        self.closeStale(stale)
        switch immediate {
        case .grant(let grant):
            if case .connection = grant { self.metrics.lent(1) }
            return grant
        case .fail(let error): throw error
        case .wait: break
        }

        let waiterID = self.state.withLockedValue { state -> UInt64 in
            state.nextWaiterID &+= 1
            return state.nextWaiterID
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Grant, any Error>) in
                var stale: [RedisConnection] = []
                let decision: Decision = self.state.withLockedValue { state in
                    let decision = self.grantIfPossible(&state, stale: &stale)
                    guard case .wait = decision else { return decision }
                    if Task.isCancelled {
                        return .fail(.cancelled)
                    }
                    let timeoutTask = self.factory.eventLoopGroup.any().scheduleTask(
                        in: self.options.leaseTimeout.timeAmount
                    ) { [self] in
                        self.failWaiter(id: waiterID, with: .poolTimeout)
                    }
                    state.waiters.append(Waiter(id: waiterID, continuation: continuation, timeoutTask: timeoutTask))
                    return .wait
                }
                self.closeStale(stale)
                switch decision {
                case .grant(let grant):
                    if case .connection = grant { self.metrics.lent(1) }
                    continuation.resume(returning: grant)
                case .fail(let error): continuation.resume(throwing: error)
                case .wait: self.metrics.waited()
                }
            }
        } onCancel: {
            self.failWaiter(id: waiterID, with: .cancelled)
        }
    }

    /// Closes idle connections found broken (no longer open).
    private func closeStale(_ stale: [RedisConnection]) {
        guard !stale.isEmpty else { return }
        self.metrics.opened(-stale.count)
        for connection in stale {
            connection.channel.close(promise: nil)
        }
    }

    private func failWaiter(id: UInt64, with error: RedisError) {
        let waiter: Waiter? = self.state.withLockedValue { state in
            guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return state.waiters.remove(at: index)
        }
        if let waiter {
            waiter.timeoutTask?.cancel()
            waiter.continuation.resume(throwing: error)
        }
    }

    /// Opens a connection for a caller that holds a `connecting` slot, retrying with backoff.
    private func openConnection() async throws(RedisError) -> RedisConnection {
        let policy = self.options.reconnect
        let giveUpAt = NIODeadline.now() + policy.maximumWait.timeAmount
        var lastError: RedisError?
        while true {
            // Respect the shared backoff after recent failures.
            let nextAttempt = self.state.withLockedValue { $0.nextAttempt }
            let now = NIODeadline.now()
            if nextAttempt > now {
                guard nextAttempt <= giveUpAt else {
                    let failure = lastError ?? self.state.withLockedValue { $0.lastFailure } ?? .connectionFailed("server unreachable")
                    self.connectAttemptsEnded(with: nil)
                    throw failure
                }
                do {
                    try await Task.sleep(nanoseconds: UInt64((nextAttempt - now).nanoseconds))
                } catch {
                    self.connectAttemptsEnded(with: nil)
                    throw .cancelled
                }
            }
            if self.state.withLockedValue({ $0.isShutdown }) {
                self.connectAttemptsEnded(with: nil)
                throw .shutdown
            }
            do {
                let connection = try await self.factory.makeConnection()
                self.connectAttemptsEnded(with: connection)
                return connection
            } catch {
                lastError = error
                self.metrics.failed()
                guard Self.isRetryable(error) else {
                    self.connectAttemptsEnded(with: nil)
                    throw error
                }
                let nextDelay = self.recordFailure(error, policy: policy)
                self.logger.debug(
                    "Redis connection attempt failed",
                    metadata: ["redis.url": "\(self.configuration)", "error": "\(error)", "retry.in": "\(nextDelay)"]
                )
                if NIODeadline.now() + nextDelay.timeAmount > giveUpAt {
                    self.connectAttemptsEnded(with: nil)
                    throw error
                }
            }
        }
    }

    private static func isRetryable(_ error: RedisError) -> Bool {
        switch error {
        case .connectionFailed, .connectionClosed, .timeout, .loading: return true
        default: return false
        }
    }

    private func recordFailure(_ error: RedisError, policy: RedisReconnectPolicy) -> Duration {
        self.state.withLockedValue { state in
            state.consecutiveFailures += 1
            state.lastFailure = error
            let delay = policy.backoff.randomizedDelay(afterFailures: state.consecutiveFailures)
            let candidate = NIODeadline.now() + delay.timeAmount
            if candidate > state.nextAttempt {
                state.nextAttempt = candidate
            }
            return delay
        }
    }

    /// Gives up a `connecting` slot: the new connection becomes leased, or (on failure)
    /// the slot is freed and a waiter, if any, may try to open one.
    private func connectAttemptsEnded(with connection: RedisConnection?) {
        let (waiter, shutdown): (Waiter?, Bool) = self.state.withLockedValue { state in
            state.connecting -= 1
            if connection != nil {
                state.consecutiveFailures = 0
                state.lastFailure = nil
                state.nextAttempt = .uptimeNanoseconds(0)
                state.leased += 1
                return (nil, state.isShutdown)
            }
            if let waiter = state.waiters.popFirst() {
                state.connecting += 1
                return (waiter, false)
            }
            return (nil, false)
        }
        if connection != nil {
            self.metrics.opened(1)
            self.metrics.lent(1)
        }
        if let waiter {
            waiter.timeoutTask?.cancel()
            waiter.continuation.resume(returning: .create)
        }
        if shutdown, let connection {
            // Shut down while connecting: count it as leased so release() closes it.
            self.release(connection)
        }
    }

    // MARK: RedisCommandExecutor

    /// Sends one command on a pooled connection.
    /// - Parameters:
    ///   - command: The command name and arguments.
    ///   - options: Timeout and blocking hints.
    /// - Returns: The reply.
    /// - Throws: ``RedisError``; error replies are thrown as their server error case.
    public func send(command: [String], options: RedisCommandOptions) async throws(RedisError) -> RESPValue {
        try await self.run { connection in
            try await connection.sendUnmapped(command: command, options: options)
        }.throwingIfError()
    }

    /// Sends many commands in one write on one pooled connection; error replies are returned in place.
    /// - Parameters:
    ///   - commands: The commands.
    ///   - options: Timeout for the whole batch.
    /// - Returns: One reply per command, in order.
    /// - Throws: ``RedisError`` if the connection fails or the batch times out.
    public func pipeline(_ commands: [[String]], options: RedisCommandOptions) async throws(RedisError) -> [RESPValue] {
        try await self.run { connection in
            try await connection.pipelineUnmapped(commands, options: options)
        }
    }

    private func run<Value: Sendable>(
        _ operation: (RedisConnection) async throws -> Value
    ) async throws(RedisError) -> Value {
        var attempt = 0
        while true {
            attempt += 1
            let connection = try await self.lease()
            do {
                let value = try await operation(connection)
                self.release(connection)
                return value
            } catch is RedisRequestNotSentError where attempt == 1 {
                // The connection closed before the command was written: safe to retry once.
                self.release(connection)
                continue
            } catch {
                self.release(connection)
                let mapped = RedisConnection.mapError(error)
                switch mapped {
                case .connectionClosed, .connectionFailed, .timeout: self.metrics.failed()  // the connection failed, not the command
                default: break
                }
                throw mapped
            }
        }
    }
}
