import Synchronization
import Testing

@testable import SwitchboardApp

/// Holds flushes until opened, and records every batch.
final class FlushProbe: Sendable {
    let batches = Mutex<[[Int]]>([])
    let gate = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func flush(_ items: [Int]) async -> [Int] {
        batches.withLock { $0.append(items) }
        await withCheckedContinuation { c in
            let open = gate.withLock { g in
                if !g.open { g.waiters.append(c) }
                return g.open
            }
            if open { c.resume() }
        }
        return items.map { $0 * 10 }
    }

    func open() {
        for c in gate.withLock({ g in g.open = true; defer { g.waiters = [] }; return g.waiters }) { c.resume() }
    }

    var recorded: [[Int]] { batches.withLock { $0 } }

    /// Waits until `n` batches have started.
    func waitForBatches(_ n: Int) async throws {
        try await eventually { self.recorded.count >= n }
        #expect(recorded.count >= n)
    }
}

/// Polls `condition` every 5 ms for up to 10 s.
func eventually(_ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(60)  // generous: the condition is what ends the wait
    while try await !condition(), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
}

@Suite("Coalescer")
struct CoalescerTests {
    @Test("a lone item is flushed at once, on its own")
    func lone() async {
        let probe = FlushProbe()
        probe.open()
        let c = Coalescer<Int, Int>(flush: probe.flush)
        #expect(await c.submit(7) == 70)
        #expect(probe.recorded == [[7]])
    }

    @Test("what arrives during a flush goes out in the next batch, in order, each caller getting its own output")
    func gathers() async throws {
        let probe = FlushProbe()
        let c = Coalescer<Int, Int>(maxConcurrentFlushes: 1, flush: probe.flush)
        try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            group.addTask { (0, await c.submit(0)) }
            try await probe.waitForBatches(1)
            for i in 1...50 {
                group.addTask { (i, await c.submit(i)) }
            }
            // Every caller is waiting before the first flush ends.
            try await eventually { c.waitingCount >= 50 }
            #expect(c.waitingCount == 50)
            probe.open()
            for try await (i, output) in group { #expect(output == i * 10) }
        }
        let batches = probe.recorded
        #expect(batches.count == 2)
        #expect(batches.first == [0])
        #expect(batches.last?.sorted() == Array(1...50))
    }

    @Test("batches are capped at maxBatch, and flushes run side by side up to maxConcurrentFlushes")
    func limits() async throws {
        let probe = FlushProbe()
        let c = Coalescer<Int, Int>(maxBatch: 4, maxConcurrentFlushes: 2, flush: probe.flush)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<2 {
                group.addTask { _ = await c.submit(i) }
                try await probe.waitForBatches(i + 1)
            }
            for i in 2..<12 { group.addTask { _ = await c.submit(i) } }
            try await eventually { c.waitingCount >= 10 }
            // Two flushes in flight, none started for the ten waiting.
            #expect(probe.recorded.count == 2)
            probe.open()
            try await group.waitForAll()
        }
        let batches = probe.recorded
        #expect(batches.allSatisfy { $0.count <= 4 })
        #expect(batches.flatMap { $0 }.sorted() == Array(0..<12))
    }

    @Test("items sent without waiting are flushed too")
    func sent() async throws {
        let probe = FlushProbe()
        probe.open()
        let c = Coalescer<Int, Int>(flush: probe.flush)
        for i in 0..<20 { c.send(i) }
        try await eventually { probe.recorded.flatMap { $0 }.count >= 20 }
        #expect(probe.recorded.flatMap { $0 }.sorted() == Array(0..<20))
    }
}
