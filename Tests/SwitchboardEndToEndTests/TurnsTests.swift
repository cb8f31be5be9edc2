import Synchronization
import SwitchboardTestSupport
import Testing

@Suite("Test support: turns", .timeLimit(.minutes(1)))
struct TurnsTests {
    final class Counter: Sendable {
        let value = Mutex(0)
        /// Adds `n`; returns the new value.
        @discardableResult func add(_ n: Int) -> Int { value.withLock { $0 += n; return $0 } }
        func raise(to n: Int) { value.withLock { $0 = max($0, n) } }
        var current: Int { value.withLock { $0 } }
    }

    @Test("never more than `limit` bodies at once; every body runs; a throwing body gives its turn back")
    func limit() async throws {
        let turns = Turns(2)
        let running = Counter(), most = Counter(), ran = Counter()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<10 {
                group.addTask {
                    do {
                        try await turns.withTurn {
                            most.raise(to: running.add(1))
                            try await Task.sleep(for: .milliseconds(10))
                            running.add(-1)
                            ran.add(1)
                            if i % 3 == 0 { throw CancellationError() }
                        }
                    } catch is CancellationError {}
                }
            }
            try await group.waitForAll()
        }
        #expect(most.current <= 2)
        #expect(ran.current == 10)
        // Every turn was given back.
        try await rendezvous(turns)
    }

    @Test("`limit` bodies do run at once")
    func together() async throws {
        try await rendezvous(Turns(2))
    }

    /// Two bodies that each wait (up to 10 s) until both are running: fails unless two turns are free at once.
    func rendezvous(_ turns: Turns) async throws {
        let arrived = Counter()
        let body: @Sendable () async throws -> Bool = {
            try await turns.withTurn {
                arrived.add(1)
                let deadline = ContinuousClock.now + .seconds(10)
                while arrived.current < 2, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(1)) }
                return arrived.current == 2
            }
        }
        async let a = body()
        async let b = body()
        let (metA, metB) = try await (a, b)
        #expect(metA && metB)
    }
}
