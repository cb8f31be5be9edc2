import Synchronization

/// Gathers work submitted by concurrent callers and hands it to `flush` in batches, the way group commit
/// gathers transactions: while a batch is being flushed, what arrives waits and goes out in the next one.
/// A lone caller is flushed at once (no timer, no added latency); under load, batches grow by themselves
/// and one round trip to a store or a queue serves many requests.
///
/// Up to `maxConcurrentFlushes` batches are in flight at a time, so the next one does not wait for the
/// previous one's round trip to end. Items are flushed in submission order within a batch.
final class Coalescer<Item: Sendable, Output: Sendable>: Sendable {
    private struct Waiting: Sendable {
        var item: Item
        var continuation: CheckedContinuation<Output, Never>?
    }
    private struct State: Sendable {
        var waiting: [Waiting] = []
        var flushing = 0
    }

    private let state = Mutex(State())
    private let maxBatch: Int
    private let maxConcurrentFlushes: Int
    /// Returns one output per item, in order. It must not throw: errors are outputs.
    private let flush: @Sendable ([Item]) async -> [Output]

    init(maxBatch: Int = 256, maxConcurrentFlushes: Int = 2, flush: @escaping @Sendable ([Item]) async -> [Output]) {
        precondition(maxBatch > 0 && maxConcurrentFlushes > 0)
        self.maxBatch = maxBatch
        self.maxConcurrentFlushes = maxConcurrentFlushes
        self.flush = flush
    }

    /// Items submitted and not yet in a batch.
    var waitingCount: Int { state.withLock { $0.waiting.count } }

    /// Submits `item` and waits for its output.
    func submit(_ item: Item) async -> Output {
        await withCheckedContinuation { continuation in
            enqueue(Waiting(item: item, continuation: continuation))
        }
    }

    /// Submits `item` without waiting for it; its output is dropped.
    func send(_ item: Item) {
        enqueue(Waiting(item: item, continuation: nil))
    }

    private func enqueue(_ w: Waiting) {
        let start = state.withLock { s -> Bool in
            s.waiting.append(w)
            guard s.flushing < maxConcurrentFlushes else { return false }
            s.flushing += 1
            return true
        }
        if start { Task { await self.drain() } }
    }

    /// Flushes batches until nothing waits.
    private func drain() async {
        while true {
            let batch = state.withLock { s -> [Waiting] in
                guard !s.waiting.isEmpty else {
                    s.flushing -= 1
                    return []
                }
                let n = min(maxBatch, s.waiting.count)
                defer { s.waiting.removeFirst(n) }
                return Array(s.waiting.prefix(n))
            }
            guard !batch.isEmpty else { return }
            let outputs = await flush(batch.map(\.item))
            precondition(outputs.count == batch.count, "flush must return one output per item")
            for (w, output) in zip(batch, outputs) { w.continuation?.resume(returning: output) }
        }
    }
}
