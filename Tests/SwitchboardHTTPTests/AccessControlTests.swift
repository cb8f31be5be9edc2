import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing
import SwitchboardApp
import SwitchboardCore
@testable import SwitchboardHTTP

/// The router's own middleware (`KeyAuthenticator`) with the parts `SwitchboardSystem` gives it: the per-key
/// rate limiter, the failed-authentication limit per address and the audit trail.
@Suite("Access control: rate limits per key, failed authentication, audit records, through the API's middleware")
struct AccessControlTests {
    static let stopped: @Sendable () -> Duration = { .seconds(100) }
    let statsPath = "/api/v1/stats"

    @Test("a keyed answer carries RateLimit-*; over its key's own limit 429 rate_limited with Retry-After; another key keeps its allowance; the default limit applies to keys without one")
    func perKeyLimit() async throws {
        let f = try APIFixture(auth: true, limiter: LocalRateLimiter(now: Self.stopped), defaultLimit: RateLimit(rate: 1, burst: 5))
        try await f.app.test(.router) { client in
            let (_, admin) = try await createKey(client, #"{"name":"admin","scopes":["admin"]}"#)
            let (_, limited) = try await createKey(client, admin: admin, #"{"name":"slow","scopes":["read"],"rate":0.5,"burst":2}"#)
            for remaining in [1, 0] {
                let r = try await client.execute(uri: statsPath, method: .get, headers: bearer(limited))
                #expect(r.status == .ok)
                #expect(r.headers[RateLimitHeaders.limit] == "2" && r.headers[RateLimitHeaders.remaining] == "\(remaining)")
                #expect(r.headers[RateLimitHeaders.reset] != nil)
            }
            let refused = try await client.execute(uri: statsPath, method: .get, headers: bearer(limited))
            #expect(refused.status == .tooManyRequests)
            #expect(try errorCode(refused) == "rate_limited")
            #expect(refused.headers[.retryAfter] == "2")
            // The admin key has no limit of its own: the default (burst 5), one token used by the creation above.
            let other = try await client.execute(uri: statsPath, method: .get, headers: bearer(admin))
            #expect(other.status == .ok && other.headers[RateLimitHeaders.limit] == "5" && other.headers[RateLimitHeaders.remaining] == "3")
            // Health endpoints are not keyed: no fields.
            let health = try await client.execute(uri: "/health/live", method: .get)
            #expect(health.status == .ok && health.headers[RateLimitHeaders.limit] == nil)
        }
    }

    @Test("repeated failed authentication from one address: 401 for the burst, then 429 before the key is looked at")
    func failedAuthentication() async throws {
        let failures = AuthFailureLimiter(limit: RateLimit(rate: 0.1, burst: 3), now: Self.stopped)
        let f = try APIFixture(auth: true, failures: failures)
        try await f.app.test(.router) { client in
            let (_, admin) = try await createKey(client, #"{"name":"admin","scopes":["admin"]}"#)
            let wrong = "sb_live_" + String(repeating: "A", count: 43)
            for _ in 0..<3 { try expectUnauthorized(try await client.execute(uri: statsPath, method: .get, headers: bearer(wrong))) }
            let refused = try await client.execute(uri: statsPath, method: .get, headers: bearer(wrong))
            #expect(refused.status == .tooManyRequests)
            #expect(refused.headers[.retryAfter] != nil)
            // Refused before the key is looked at: the right key from that address waits too.
            #expect(try await client.execute(uri: statsPath, method: .get, headers: bearer(admin)).status == .tooManyRequests)
        }
    }

    @Test("audit: key created, first used, admin actions, revoked, authentication failures, in GET /api/v1/logs?service=auth; no secret in them")
    func audit() async throws {
        let f = try APIFixture(auth: true, audit: { AuditLog(index: $0, logger: Logger(label: "audit")) })
        let audit = try #require(f.auditLog)
        try await f.app.test(.router) { client in
            let (adminID, admin) = try await createKey(client, #"{"name":"admin","scopes":["admin"]}"#)
            let (readerID, reader) = try await createKey(client, admin: admin, #"{"name":"reader","scopes":["read"]}"#)
            #expect(try await client.execute(uri: statsPath, method: .get, headers: bearer(reader)).status == .ok)
            #expect(try await client.execute(uri: "/api/v1/keys/\(readerID)", method: .delete, headers: bearer(admin)).status == .ok)
            try expectUnauthorized(try await client.execute(uri: statsPath, method: .get, headers: bearer(reader)))
            await audit.flush(all: true)
            let r = try await client.execute(uri: "/api/v1/logs?service=auth&limit=100", method: .get, headers: bearer(admin))
            #expect(r.status == .ok)
            let body = String(buffer: r.body)
            #expect(!body.contains(admin) && !body.contains(reader), "a secret in the audit records")
            guard case .array(let items)? = try json(r)["items"] else { Issue.record("no items in \(body)"); return }
            let events = items.compactMap { $0["msg"]?.stringValue }
            for event in ["key_created", "key_first_used", "admin_action", "key_revoked", "auth_failures"] {
                #expect(events.contains(event), "\(event) missing from \(events)")
            }
            let revoked = items.first { $0["msg"]?.stringValue == "key_revoked" }
            #expect(revoked?["communicationId"]?.stringValue == readerID)
            #expect(revoked?["from"]?.stringValue == adminID)
        }
    }
}
