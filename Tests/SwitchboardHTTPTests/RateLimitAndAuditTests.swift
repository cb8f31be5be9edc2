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

/// What the auth middleware does with the components, reduced to the rate-limit steps: the failed-authentication
/// gate per address, then the key's bucket, the fields on every keyed answer, 429 over the limit.
struct LimitingMiddleware: RouterMiddleware {
    typealias Context = APIRequestContext
    let limiter: any RateLimiter
    let failures: AuthFailureLimiter
    let limit: RateLimit

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let address = request.headers[HTTPField.Name("X-Test-Address")!] ?? "127.0.0.1"
        let gate = failures.allowFailure(address)
        guard gate.allowed else { throw RateLimitHeaders.tooManyFailuresError(gate) }
        guard let key = request.headers[HTTPField.Name("X-API-Key")!], key.hasPrefix("good") else {
            failures.recordFailure(address)
            return Response(status: .unauthorized)
        }
        let decision = try await limiter.take(key, limit: limit)
        guard decision.allowed else { return RateLimitHeaders.rateLimited(decision) }
        return try await RateLimitHeaders.answering(decision) { try await next(request, context) }
    }
}

@Suite("Rate-limit answers: RateLimit-* fields on keyed answers, 429 rate_limited with Retry-After")
struct RateLimitHeadersTests {
    /// A clock that stands still: the answers do not depend on how fast a loaded machine runs the test.
    static let stopped: @Sendable () -> Duration = { .seconds(100) }

    func app(limit: RateLimit, failures: AuthFailureLimiter = AuthFailureLimiter(now: stopped)) -> some ApplicationProtocol {
        let router = Router(context: APIRequestContext.self)
        router.add(middleware: ErrorMiddleware(logger: Logger(label: "test"), refusals: AggregatedLog(logger: Logger(label: "test")), writes: StoreWriteHealth(), routes: RouteTable([])))
        router.add(middleware: LimitingMiddleware(limiter: LocalRateLimiter(now: Self.stopped), failures: failures, limit: limit))
        router.get("/api/v1/stats") { _, _ in Response.json(.object(["ok": .bool(true)])) }
        router.get("/api/v1/logs") { _, _ -> Response in throw APIError(.badRequest, code: "invalid_query", message: "bad") }
        return Application(router: router)
    }

    @Test("every allowed answer carries Limit / Remaining / Reset; over the limit 429 with Retry-After and the JSON error")
    func keyed() async throws {
        try await app(limit: RateLimit(rate: 0.5, burst: 3)).test(.router) { client in
            for expected in [2, 1, 0] {
                let r = try await client.execute(uri: "/api/v1/stats", method: .get, headers: [HTTPField.Name("X-API-Key")!: "good-1"])
                #expect(r.status == .ok)
                #expect(r.headers[RateLimitHeaders.limit] == "3")
                #expect(r.headers[RateLimitHeaders.remaining] == "\(expected)")
                #expect(r.headers[RateLimitHeaders.reset] == "\(2 * (3 - expected))")
                #expect(r.headers[.retryAfter] == nil)
            }
            let refused = try await client.execute(uri: "/api/v1/stats", method: .get, headers: [HTTPField.Name("X-API-Key")!: "good-1"])
            #expect(refused.status == .tooManyRequests)
            #expect(refused.headers[.retryAfter] == "2")
            #expect(refused.headers[RateLimitHeaders.remaining] == "0")
            #expect(refused.headers[RateLimitHeaders.limit] == "3")
            #expect(refused.headers[.contentType]?.hasPrefix("application/json") == true)
            let body = try json(refused)
            #expect(body["error"]?["code"] == .string("rate_limited"))
            #expect(body["error"]?["message"]?.stringValue?.contains("retry after 2 seconds") == true)
            // Another key is not affected.
            let other = try await client.execute(uri: "/api/v1/stats", method: .get, headers: [HTTPField.Name("X-API-Key")!: "good-2"])
            #expect(other.status == .ok && other.headers[RateLimitHeaders.remaining] == "2")
            // An error answer of a keyed request carries them too (thrown by the route, rendered by the error middleware).
            let failed = try await client.execute(uri: "/api/v1/logs", method: .get, headers: [HTTPField.Name("X-API-Key")!: "good-2"])
            #expect(failed.status == .badRequest && failed.headers[RateLimitHeaders.remaining] == "1" && failed.headers[RateLimitHeaders.limit] == "3")
            #expect(try json(failed)["error"]?["code"] == .string("invalid_query"))
        }
    }

    @Test("failed authentication from one address: after the burst 429 with Retry-After (thrown, rendered by the API's error middleware); other addresses unaffected")
    func failedAuthentication() async throws {
        let failures = AuthFailureLimiter(limit: RateLimit(rate: 0.1, burst: 3), now: Self.stopped)
        try await app(limit: RateLimit(rate: 100, burst: 100), failures: failures).test(.router) { client in
            let bad: HTTPFields = [HTTPField.Name("X-API-Key")!: "bad", HTTPField.Name("X-Test-Address")!: "203.0.113.5"]
            for _ in 0..<3 { #expect(try await client.execute(uri: "/api/v1/stats", method: .get, headers: bad).status == .unauthorized) }
            let limited = try await client.execute(uri: "/api/v1/stats", method: .get, headers: bad)
            #expect(limited.status == .tooManyRequests)
            #expect(limited.headers[.retryAfter] == "10")
            #expect(limited.headers[RateLimitHeaders.limit] == nil)
            #expect(try json(limited)["error"]?["code"] == .string("rate_limited"))
            // Even a good key from that address waits: the gate comes before the key is looked at.
            var good = bad
            good[HTTPField.Name("X-API-Key")!] = "good-1"
            #expect(try await client.execute(uri: "/api/v1/stats", method: .get, headers: good).status == .tooManyRequests)
            good[HTTPField.Name("X-Test-Address")!] = "198.51.100.1"
            #expect(try await client.execute(uri: "/api/v1/stats", method: .get, headers: good).status == .ok)
        }
    }

    @Test("the fields of a decision, clamped at 0; Retry-After at least 1")
    func fields() {
        let f = RateLimitHeaders.fields(RateDecision(allowed: true, limit: 200, remaining: 17, resetSeconds: 2))
        #expect(f[RateLimitHeaders.limit] == "200" && f[RateLimitHeaders.remaining] == "17" && f[RateLimitHeaders.reset] == "2")
        let odd = RateLimitHeaders.rateLimited(RateDecision(allowed: false, limit: 1, remaining: -3, resetSeconds: -1, retryAfterSeconds: 0))
        #expect(odd.status == .tooManyRequests)
        #expect(odd.headers[.retryAfter] == "1" && odd.headers[RateLimitHeaders.remaining] == "0" && odd.headers[RateLimitHeaders.reset] == "0")
    }
}

@Suite("Audit records through GET /api/v1/logs?service=auth (embedded engine)")
struct AuditLogsEndpointTests {
    @Test("key events, admin actions and aggregated failures are listed under service=auth, without status or channel")
    func auditRecords() async throws {
        let f = try APIFixture()
        let audit = AuditLog(index: f.adapters.search, logger: Logger(label: "test"))
        audit.keyCreated(id: "key_a", name: "deploy", scopes: [.admin], by: "bootstrap")
        audit.adminAction(key: "key_a", method: "POST", path: "/api/v1/keys", status: 201)
        for _ in 0..<7 { audit.authFailure(address: "192.0.2.44", reason: "unknown key") }
        await audit.flush(all: true)
        try await f.app.test(.router) { client in
            let r = try await client.execute(uri: "/api/v1/logs?service=auth", method: .get)
            #expect(r.status == .ok)
            guard case .array(let items)? = try json(r)["items"] else { Issue.record("no items"); return }
            #expect(items.map { $0["msg"]?.stringValue } == ["auth_failures", "admin_action", "key_created"])
            for item in items {
                #expect(item["service"] == .string("auth"))
                #expect(item["status"] == .null && item["type"] == .null)
            }
            #expect(items[0]["communicationId"] == .string("192.0.2.44") && items[0]["attempt"] == .number(7))
            #expect(items[2]["error"]?.stringValue?.contains("scopes=admin") == true)
            // Communication logs are not mixed in, and auth records do not appear under another service.
            let sms = try json(try await client.execute(uri: "/api/v1/logs?service=sms", method: .get))
            #expect(sms["count"] == .number(0))
            let text = try json(try await client.execute(uri: "/api/v1/logs?service=auth&q=unknown", method: .get))
            #expect(text["count"] == .number(1))
        }
        await f.database.close()
    }
}
