import Foundation

/// A connection owned by one thread that runs submitted jobs one at a time (the readers, the checkpointer).
final class ConnectionThread: JobThread, @unchecked Sendable {
    /// True while a job runs. Read and written holding the lock.
    private var running = false

    init(name: String, connection: Connection) {
        super.init(connection: connection)
        start(name) { [self] in loop() }
    }

    /// Jobs submitted and not yet finished running. Read by other threads.
    var backlog: Int {
        condition.lock()
        defer { condition.unlock() }
        return queue.count + (running ? 1 : 0)
    }

    private func loop() {
        while true {
            condition.lock()
            while queue.isEmpty && !stopping { condition.wait() }
            if queue.isEmpty && stopping {
                closeAndResumeStoppers()
                return
            }
            let job = queue.removeFirst()
            running = true
            condition.unlock()
            if let connection {
                _ = job.run(connection)
                job.finish(nil)
            }
            condition.lock()
            running = false
            condition.unlock()
        }
    }
}
