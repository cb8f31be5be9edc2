import Foundation
import Logging
import Testing
import SwitchboardApp
import SwitchboardCore
import SwitchboardRedisStreams
import SwitchboardServer
import SwitchboardTestSupport
import SwitchboardTestSystem

@Suite("Rate limits of API keys: settings and the limiter each deployment gets")
struct RateLimitCompositionTests {
    @Test("SWITCHBOARD_KEY_RATE and SWITCHBOARD_KEY_BURST: defaults 100/s and 200, read and checked; a key's own limits win")
    func settings() throws {
        let d = try Settings.fromEnvironment([:])
        #expect(d.defaultKeyRateLimit == RateLimit(rate: 100, burst: 200))
        let s = try Settings.fromEnvironment(["SWITCHBOARD_KEY_RATE": "2.5", "SWITCHBOARD_KEY_BURST": "7"])
        #expect(s.defaultKeyRateLimit == RateLimit(rate: 2.5, burst: 7))
        let key = APIKeyRecord(id: "k", name: "n", scopes: [.send], rate: 1, secretHash: "", createdAt: Timestamp(milliseconds: 0))
        #expect(s.rateLimit(of: key) == RateLimit(rate: 1, burst: 7))
        for bad in [["SWITCHBOARD_KEY_RATE": "0"], ["SWITCHBOARD_KEY_RATE": "-1"], ["SWITCHBOARD_KEY_RATE": "nan"], ["SWITCHBOARD_KEY_RATE": "fast"], ["SWITCHBOARD_KEY_BURST": "0"], ["SWITCHBOARD_KEY_BURST": "1.5"]] {
            #expect(throws: SettingsError.self, "\(bad)") { _ = try Settings.fromEnvironment(bad) }
        }
        #expect(Settings.unknownVariables(in: ["SWITCHBOARD_KEY_RATE": "1", "SWITCHBOARD_KEY_BURST": "1"]).isEmpty)
    }

    @Test("without REDIS_URL each process limits on its own")
    func local() async throws {
        let system = try SwitchboardSystem(settings: fastSettings(name: "rl-local", lease: .seconds(5)), logger: Logger(label: "test"))
        #expect(system.rateLimiterName == "local")
        #expect(system.rateLimiter is LocalRateLimiter)
        await system.close()
    }

    @Test("with REDIS_URL two routers share one allowance per key")
    func sharedByRouters() async throws {
        try await withRedisServer { redis in
            var base = Settings()
            base.redisURL = redis.url
            let a = try SwitchboardSystem(settings: fastSettings(base, name: "rl-a", lease: .seconds(5)), logger: Logger(label: "test"))
            let b = try SwitchboardSystem(settings: fastSettings(base, name: "rl-b", lease: .seconds(5)), logger: Logger(label: "test"))
            #expect(a.rateLimiterName == "redis" && b.rateLimiterName == "redis")
            #expect(a.rateLimiter is RedisRateLimiter)
            let limit = RateLimit(rate: 0.01, burst: 6)
            var allowed = 0
            for i in 0..<20 {
                if try await (i % 2 == 0 ? a : b).rateLimiter.take("key_shared", limit: limit).allowed { allowed += 1 }
            }
            #expect(allowed == 6)
            await a.close()
            await b.close()
        }
    }
}
