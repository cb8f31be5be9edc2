import Synchronization

/// Wakes readers blocked on a stream when this process publishes to it. Readers in other processes
/// sharing the file fall back to polling.
final class StreamSignal: Sendable {
    private struct State {
        var generation: [String: UInt64] = [:]
        var waiters: [String: [UInt64: CheckedContinuation<Void, Never>]] = [:]
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())

    /// Calls `attempt` until it finds something (not nil), waking when this process writes to `stream` and polling
    /// every `poll` for other processes' writes; `empty` once `block` has passed (or the task is cancelled). The one
    /// blocking read of the embedded engine: the queue's reads and the status feed's.
    func blocking<T>(_ stream: String, block: Duration, poll: Duration, empty: T, _ attempt: () async throws -> T?) async throws -> T {
        let deadline = ContinuousClock.now + block
        while true {
            let generation = generation(stream)
            if let found = try await attempt() { return found }
            let remaining = deadline - ContinuousClock.now
            if remaining <= .zero || Task.isCancelled { return empty }
            await wait(stream, after: generation, timeout: min(remaining, poll))
            if Task.isCancelled { return empty }
        }
    }

    /// The current generation of `stream`; pass it to `wait` to not miss a publication in between.
    func generation(_ stream: String) -> UInt64 { state.withLock { $0.generation[stream, default: 0] } }

    /// Wakes every reader waiting on `stream`.
    func notify(_ stream: String) {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.generation[stream, default: 0] &+= 1
            let w = s.waiters.removeValue(forKey: stream) ?? [:]
            return Array(w.values)
        }
        for w in waiters { w.resume() }
    }

    /// Waits until `stream` moves past `generation`, `timeout` passes, or the task is cancelled.
    func wait(_ stream: String, after generation: UInt64, timeout: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            let id = state.withLock { s -> UInt64 in
                s.nextID &+= 1
                return s.nextID
            }
            group.addTask {
                await withTaskCancellationHandler {
                    await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                        let resumeNow = self.state.withLock { s -> Bool in
                            if s.generation[stream, default: 0] != generation || Task.isCancelled { return true }
                            s.waiters[stream, default: [:]][id] = c
                            return false
                        }
                        if resumeNow { c.resume() }
                    }
                } onCancel: {
                    let c = self.state.withLock { s in s.waiters[stream]?.removeValue(forKey: id) }
                    c?.resume()
                }
            }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
    }
}
