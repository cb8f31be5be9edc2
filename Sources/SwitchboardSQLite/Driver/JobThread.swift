import CSQLite
import Foundation

/// What both kinds of connection thread share: the queue of submitted jobs and the stop handshake, under one
/// condition that each subclass's loop also waits on.
class JobThread: @unchecked Sendable {
    let condition = NSCondition()
    /// Submitted, not yet run.
    var queue: [Job] = []
    var stopping = false
    var stopped = false
    var connection: Connection?
    private var stopWaiters: [CheckedContinuation<Void, Never>] = []

    init(connection: Connection) {
        self.connection = connection
    }

    /// Starts `loop` on a new thread called `name` (what `top -H` and profilers show; at most 15 bytes).
    func start(_ name: String, _ loop: @escaping @Sendable () -> Void) {
        let thread = Thread {
            switchboard_name_current_thread(name)
            loop()
        }
        thread.name = name
        thread.start()
    }

    /// Queues `body`; `durable` matters to the writer only (`SQLiteDatabase.write(durable:_:)`).
    func submit<T: Sendable>(durable: Bool = true, _ body: @escaping @Sendable (Connection) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let job = Job.make(durable: durable, body, resuming: continuation)
            condition.lock()
            if stopping {
                condition.unlock()
                continuation.resume(throwing: DatabaseClosed())
                return
            }
            queue.append(job)
            condition.broadcast()
            condition.unlock()
        }
    }

    /// Queues `body` without waiting for it; what it throws is dropped.
    func send(_ body: @escaping (Connection) throws -> Void) {
        condition.lock()
        defer { condition.unlock() }
        guard !stopping else { return }
        queue.append(Job(run: { c in (try? body(c)) != nil }, finish: { _ in }))
        condition.broadcast()
    }

    /// Runs what was submitted, then closes the connection.
    func stop() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            condition.lock()
            if stopped {
                condition.unlock()
                c.resume()
                return
            }
            stopping = true
            stopWaiters.append(c)
            condition.broadcast()
            condition.unlock()
        }
    }

    /// Closes the connection and resumes `stop`'s callers; called by the loop, holding the lock.
    func closeAndResumeStoppers() {
        connection = nil  // closes it
        stopped = true
        let waiters = stopWaiters
        stopWaiters = []
        condition.unlock()
        for w in waiters { w.resume() }
    }
}
