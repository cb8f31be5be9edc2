import Foundation
import Logging
import Testing
import SwitchboardTestSupport
import SwitchboardApp
import SwitchboardCore
@testable import SwitchboardSQLite

@Suite("The router's copy of the suppression list")
struct SuppressionCacheTests {
    @Test("reads the store until loaded; then only for keys it holds; its own writes at once, another process's after a reload")
    func freshness() async throws {
        let database = try temporaryDatabase("s")
        let store = SQLiteSuppressionStore(database: database)
        let cache = SuppressionCache(store, logger: Logger(label: "test"))
        let at = Timestamp(milliseconds: 1_000)
        let ada = SuppressionKey(channel: .email, to: "Ada@Example.com"), bob = SuppressionKey(channel: .sms, to: "+15550000001")

        // Not loaded: the store answers (an entry another process wrote is found).
        try await store.add(Suppression(channel: .email, to: "ada@example.com", reason: "bounced", source: .provider, createdAt: at))
        #expect(cache.count == nil)
        #expect(try await cache.lookup([ada, bob]).keys.sorted { $0.to < $1.to } == [ada])

        // Loaded: the same answer from the copy; another process's new entry is unseen until the next reload.
        try await cache.reload()
        #expect(cache.count == 1)
        #expect(try await cache.lookup([ada, bob])[ada]?.reason == "bounced")
        try await store.add(Suppression(channel: .sms, to: "+15550000001", reason: "STOP", source: .provider, createdAt: at))
        #expect(try await cache.lookup([bob]).isEmpty)
        try await cache.reload()
        #expect(try await cache.lookup([bob])[bob]?.reason == "STOP")

        // Through the cache: at once, both ways; an entry removed by another process is confirmed gone by the store.
        #expect(try await cache.remove(channel: .sms, to: "+15550000001"))
        #expect(try await cache.lookup([bob]).isEmpty)
        try await cache.add(Suppression(channel: .sms, to: "+15550000001", reason: "manual", source: .manual, createdAt: at))
        #expect(try await cache.lookup([bob])[bob]?.reason == "manual")
        #expect(try await store.remove(channel: .email, to: "ada@example.com"))
        #expect(try await cache.lookup([ada]).isEmpty)
        try await cache.reload()
        #expect(cache.count == 1)

        // Many entries, over several pages.
        for i in 0..<2_500 { try await store.add(Suppression(channel: .sms, to: "+1555\(String(format: "%07d", 1_000 + i))", reason: "r", source: .manual, createdAt: at)) }
        try await cache.reload()
        #expect(cache.count == 2_501)
        #expect(try await cache.lookup([SuppressionKey(channel: .sms, to: "+15550003499")]).count == 1)
        await database.close()
    }
}
