/// A connection with the bookkeeping the client needs to decide whether to reuse it.
struct PooledConnection: Sendable {
    let connection: SMTPConnection
    var messagesSent: Int = 0
    var idleSince: ContinuousClock.Instant
}

/// Hands out at most `maxConnections` connection slots at a time.
///
/// The pool does not open connections itself: `acquire()` returns either an idle
/// connection or permission to open a new one (the slot is counted from then on),
/// and `release(_:)` gives the slot back, with the connection if it may be reused.
/// Waiters are served first-in, first-out.
actor SMTPConnectionPool {
    enum Lease: Sendable {
        /// A previously used connection; the caller should check it (RSET) before use.
        case reuse(PooledConnection)
        /// A free slot: the caller opens a new connection.
        case open
    }

    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Lease, any Error>
    }

    private let maxConnections: Int
    private var idle: [PooledConnection] = []
    private var leased = 0
    private var waiters: [Waiter] = []
    private var nextWaiterID: UInt64 = 0
    private var isShutdown = false
    private var shutdownWaiters: [CheckedContinuation<Void, Never>] = []

    init(maxConnections: Int) {
        self.maxConnections = max(1, maxConnections)
    }

    /// Waits for a slot. Throws ``SMTPError/clientShutdown`` after shutdown and
    /// `CancellationError` if the task is cancelled while waiting.
    func acquire() async throws -> Lease {
        if isShutdown { throw SMTPError.clientShutdown }
        try Task.checkCancellation()
        if let connection = idle.popLast() {
            leased += 1
            return .reuse(connection)
        }
        if leased < maxConnections {
            leased += 1
            return .open
        }
        let id = nextWaiterID
        nextWaiterID += 1
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                if Task.isCancelled {
                    continuation.resume(throwing: CancellationError())
                } else {
                    waiters.append(Waiter(id: id, continuation: continuation))
                }
            }
        } onCancel: {
            Task { await self.cancelWaiter(id: id) }
        }
    }

    private func cancelWaiter(id: UInt64) {
        guard let index = waiters.firstIndex(where: { $0.id == id }) else { return }
        waiters.remove(at: index).continuation.resume(throwing: CancellationError())
    }

    /// Returns a slot. Pass the connection if it is healthy and may be reused, or
    /// `nil` if it was closed (or never opened). After shutdown a returned
    /// connection is closed with `QUIT`.
    func release(_ connection: PooledConnection?) async {
        if isShutdown {
            if let connection { await connection.connection.quit() }
            leased -= 1
            if leased == 0 {
                let pendingShutdowns = shutdownWaiters
                shutdownWaiters.removeAll()
                for waiter in pendingShutdowns { waiter.resume() }
            }
            return
        }
        if !waiters.isEmpty {
            // Hand the slot (and connection) straight to the oldest waiter.
            let waiter = waiters.removeFirst()
            waiter.continuation.resume(returning: connection.map { .reuse($0) } ?? .open)
            return
        }
        leased -= 1
        if let connection {
            idle.append(connection)
        }
    }

    /// Stops handing out connections, closes idle ones with `QUIT` and waits until
    /// every leased connection has been released (in-flight sends finish first).
    func shutdown() async {
        if !isShutdown {
            isShutdown = true
            let pendingWaiters = waiters
            waiters.removeAll()
            for waiter in pendingWaiters { waiter.continuation.resume(throwing: SMTPError.clientShutdown) }
            let idleConnections = idle
            idle.removeAll()
            for connection in idleConnections { await connection.connection.quit() }
        }
        if leased > 0 {
            await withCheckedContinuation { continuation in
                shutdownWaiters.append(continuation)
            }
        }
    }
}
