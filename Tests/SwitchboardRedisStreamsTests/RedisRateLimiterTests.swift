import Foundation
import Synchronization
import Testing
import SwitchboardCore
@testable import SwitchboardRedis
import SwitchboardTestSupport
@testable import SwitchboardRedisStreams

/// The fallback of these tests: counts the requests it decided, each allowed with a recognisable limit.
final class CountingFallback: RateLimiter {
    let calls = Mutex(0)
    var count: Int { calls.withLock { $0 } }
    func take(_ bucket: String, limit: RateLimit) async throws -> RateDecision {
        calls.withLock { $0 += 1 }
        return RateDecision(allowed: true, limit: 4242, remaining: 0, resetSeconds: 0)
    }
}

/// A client for `server` that gives up quickly when it is down.
func quickClient(_ server: RedisServer) throws -> RedisClient {
    var reconnect = RedisReconnectPolicy()
    reconnect.maximumWait = .milliseconds(300)
    reconnect.maximumDelay = .milliseconds(100)
    return try RedisClient(configuration: RedisConfiguration(url: server.url), options: .init(maximumConnections: 4, reconnect: reconnect))
}

@Suite("Redis rate limiter: one bucket per key shared by every router", .timeLimit(.minutes(2)))
struct RedisRateLimiterTests {
    @Test("the script's digest is the one Redis computes (SCRIPT LOAD), and SHA-1 matches the standard's vectors")
    func digest() async throws {
        #expect(SHA1.hex(Array("abc".utf8)) == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(SHA1.hex([]) == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        #expect(SHA1.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)) == "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
        #expect(SHA1.hex(Array(repeating: UInt8(ascii: "a"), count: 1_000_000)) == "34aa973cd4c4daa4f61eeb2bdbad27316534016f")
        try await withRedisServer { server in
            let client = try quickClient(server)
            let loaded = try await client.send("SCRIPT", "LOAD", RedisRateLimiter.script.source)
            #expect(loaded.string == RedisRateLimiter.script.sha1)
            await client.shutdown()
        }
    }

    @Test("two limiters on two connections share one allowance per key; keys are apart; headers' values")
    func sharedAllowance() async throws {
        try await withRedisServer { server in
            let (c1, c2) = (try quickClient(server), try quickClient(server))
            let fallback = CountingFallback()
            let a = RedisRateLimiter(client: c1, fallback: fallback)
            let b = RedisRateLimiter(client: c2, fallback: fallback)
            let limit = RateLimit(rate: 0.01, burst: 10)  // no refill worth speaking of during the test
            // 40 requests, alternating routers and concurrent: exactly the burst is allowed.
            let started = ContinuousClock.now
            let decisions = try await withThrowingTaskGroup(of: RateDecision.self) { group in
                for i in 0..<40 { group.addTask { try await (i % 2 == 0 ? a : b).take("key_1", limit: limit) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(decisions.filter(\.allowed).count == 10)
            #expect(Set(decisions.filter(\.allowed).map(\.remaining)) == Set(0..<10))
            let refused = try #require(decisions.first { !$0.allowed })
            // One token takes 100 s to come back; less by the time since the bucket ran dry (a loaded machine can
            // take seconds over these 40 requests).
            let elapsed = Int((ContinuousClock.now - started).components.seconds) + 1
            #expect(refused.limit == 10 && refused.remaining == 0)
            #expect(refused.retryAfterSeconds.map { (100 - elapsed)...100 ~= $0 } == true, "Retry-After \(String(describing: refused.retryAfterSeconds)) after \(elapsed) s")
            #expect(refused.resetSeconds >= 999 && refused.resetSeconds <= 1000)
            #expect(fallback.count == 0)
            // Another key has its own bucket.
            #expect(try await b.take("key_2", limit: limit).allowed)
            // The layout: one hash per bucket, named with the bucket as hash tag.
            #expect(try await c1.send("TYPE", "ratelimit:{key_1}").string == "hash")
            await c1.shutdown()
            await c2.shutdown()
        }
    }

    @Test("tokens come back at the rate, by Redis's clock")
    func refill() async throws {
        try await withRedisServer { server in
            let client = try quickClient(server)
            let limiter = RedisRateLimiter(client: client, fallback: CountingFallback())
            let limit = RateLimit(rate: 2, burst: 2)  // one every 500 ms
            // Take until refused (a loaded machine may be slow enough for a token to come back in between).
            var refused: RateDecision?
            for _ in 0..<100 where refused == nil {
                let d = try await limiter.take("k", limit: limit)
                if !d.allowed { refused = d }
            }
            let r = try #require(refused)
            #expect(r.retryAfterSeconds == 1 && r.remaining == 0 && r.limit == 2)
            try await Task.sleep(for: .milliseconds(600))
            #expect(try await limiter.take("k", limit: limit).allowed)
            await client.shutdown()
        }
    }

    @Test("an idle bucket expires when it would be full again (plus a second); a fresh one is full")
    func expiry() async throws {
        try await withRedisServer { server in
            let client = try quickClient(server)
            let limiter = RedisRateLimiter(client: client, fallback: CountingFallback())
            // The expiry follows the tokens missing: 1 missing at 1/s → 2 s; 5 missing → 6 s.
            // A loaded machine can take seconds between a take and the PTTL that follows: the key may then have
            // expired already (PTTL -2), which only that much time excuses.
            let slow = RateLimit(rate: 1, burst: 5)
            var started = ContinuousClock.now
            func elapsed() -> Duration { ContinuousClock.now - started }
            _ = try await limiter.take("slow", limit: slow)
            let ttl = try #require(try await client.send("PTTL", "ratelimit:{slow}").int)
            #expect(ttl <= 2000 && (ttl > 0 || elapsed() >= .milliseconds(1900)), "PTTL \(ttl) after \(elapsed())")
            started = ContinuousClock.now
            for _ in 0..<4 { _ = try await limiter.take("slow", limit: slow) }
            let longer = try #require(try await client.send("PTTL", "ratelimit:{slow}").int)
            #expect(longer <= 6000 && (longer > 2000 || elapsed() >= .milliseconds(3900)), "PTTL \(longer) after \(elapsed())")
            // A fast bucket: full again 100 ms after one take, gone a second later.
            let fast = RateLimit(rate: 10, burst: 5)
            started = ContinuousClock.now
            _ = try await limiter.take("fast", limit: fast)
            let fastTTL = try #require(try await client.send("PTTL", "ratelimit:{fast}").int)
            #expect(fastTTL <= 1100 && (fastTTL > 0 || elapsed() >= .milliseconds(1000)), "PTTL \(fastTTL) after \(elapsed())")
            try await Task.sleep(for: .milliseconds(1500))
            #expect(try await client.send("EXISTS", "ratelimit:{fast}").int == 0)
            let fresh = try await limiter.take("fast", limit: fast)
            #expect(fresh.allowed && fresh.remaining == 4)
            await client.shutdown()
        }
    }

    @Test("after SCRIPT FLUSH (NOSCRIPT) the script is sent again and the bucket kept")
    func noscript() async throws {
        try await withRedisServer { server in
            let client = try quickClient(server)
            let limiter = RedisRateLimiter(client: client, fallback: CountingFallback())
            let limit = RateLimit(rate: 0.01, burst: 3)
            #expect(try await limiter.take("k", limit: limit).remaining == 2)
            try await client.send("SCRIPT", "FLUSH")
            let exists = try await client.send("SCRIPT", "EXISTS", RedisRateLimiter.script.sha1)
            #expect(exists.array?.first?.int == 0)
            #expect(try await limiter.take("k", limit: limit).remaining == 1)
            #expect(try await client.send("SCRIPT", "EXISTS", RedisRateLimiter.script.sha1).array?.first?.int == 1)
            #expect(try await limiter.take("k", limit: limit).remaining == 0)
            // The calls: every take after the first load was an EVALSHA; EVAL ran twice (first use, after the flush).
            let stats = try await client.info("commandstats")
            func calls(_ name: String) -> Int {
                guard let line = stats.split(separator: "\r\n").first(where: { $0.hasPrefix("cmdstat_\(name):") }),
                      let n = line.split(separator: "=").dropFirst().first?.split(separator: ",").first else { return 0 }
                return Int(n) ?? 0
            }
            #expect(calls("eval") == 2)
            #expect(calls("evalsha") == 3)
            await client.shutdown()
        }
    }

    @Test("Redis down: requests are decided by the fallback, Redis is retried after the interval, shared again once it answers")
    func outage() async throws {
        try await withRedisServer { server in
            let client = try quickClient(server)
            let fallback = CountingFallback()
            let limiter = RedisRateLimiter(client: client, fallback: fallback, retryInterval: .milliseconds(300))
            let limit = RateLimit(rate: 0.01, burst: 5)
            #expect(try await limiter.take("k", limit: limit).remaining == 4)
            await server.terminate()
            let start = ContinuousClock.now
            for _ in 0..<20 {
                let d = try await limiter.take("k", limit: limit)
                #expect(d.allowed && d.limit == 4242)
            }
            // Not every request waited for the connection (20 × 300 ms would be 6 s): Redis is probed at most every
            // 300 ms, the others are decided at once.
            #expect(ContinuousClock.now - start < .seconds(4))
            #expect(fallback.count == 20)
            #expect(limiter.isFallingBack)
            try await server.launch()
            try await Task.sleep(for: .milliseconds(400))
            // Redis answers again (its data is gone: no persistence): a fresh shared bucket.
            var back: RateDecision?
            for _ in 0..<50 where back?.limit != 5 {
                back = try await limiter.take("k", limit: limit)
                if back?.limit != 5 { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(back?.limit == 5 && back?.remaining == 4)
            #expect(!limiter.isFallingBack)
            await client.shutdown()
        }
    }
}
