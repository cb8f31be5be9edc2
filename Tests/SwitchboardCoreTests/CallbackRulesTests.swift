import Testing
@testable import SwitchboardCore

/// The I/O-free rules of status callbacks: URLs, forbidden addresses, what an answer means, Retry-After.
@Suite("Callback rules")
struct CallbackRulesTests {
    @Test("URLs: absolute http(s) with a host, at most 2048 characters")
    func urls() throws {
        let t = try CallbackRules.target("https://User:pw@Example.COM:8443/hook?x=1").get()
        #expect(t == CallbackRules.Target(scheme: "https", host: "example.com", port: 8443))
        #expect(try CallbackRules.target("http://[::1]/x").get() == CallbackRules.Target(scheme: "http", host: "::1", port: 80))
        #expect(try CallbackRules.target("http://10.0.0.1").get().host == "10.0.0.1")
        for bad in ["", "ftp://example.com/x", "example.com/hook", "https:///nohost", "https://exa mple.com/", "http://host:99999/", "http://[::1/x", "https://" + String(repeating: "a", count: 2050)] {
            guard case .failure(let e) = CallbackRules.target(bad, field: "url") else { Issue.record("accepted \(bad)"); continue }
            #expect(e.code == "invalid_url" && e.field == "url")
        }
    }

    @Test("loopback, private, link-local and metadata addresses are refused; public ones are not")
    func addresses() {
        for host in ["127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "169.254.1.1", "0.0.0.0", "100.64.0.1", "::1", "::", "fc00::1", "fd00:ec2::254",
                     "fe80::1", "::ffff:127.0.0.1", "::ffff:10.1.2.3", "localhost", "api.localhost", "metadata.google.internal", "224.0.0.1"] {
            #expect(CallbackRules.refusal(host: host) != nil, "\(host) should be refused")
        }
        for host in ["93.184.216.34", "8.8.8.8", "172.32.0.1", "2606:4700::1111", "example.com", "::ffff:8.8.8.8"] {
            #expect(CallbackRules.refusal(host: host) == nil, "\(host) should be allowed")
        }
        #expect(IPAddress(parsing: "fd00:ec2::254") == .v6([0xFD, 0, 0x0E, 0xC2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0x54]))
        #expect(IPAddress(parsing: "1.2.3") == nil && IPAddress(parsing: "1:2:3") == nil && IPAddress(parsing: "256.1.1.1") == nil)
    }

    struct Fixed: RandomNumberGenerator {
        mutating func next() -> UInt64 { 0 }
    }

    func decide(_ attempt: Int, _ answer: CallbackRules.Answer, now: Int64 = 10_000, horizon: Duration = .seconds(3600)) -> (CallbackDeliveryState, Timestamp, String?) {
        var g = Fixed()
        let r = CallbackRules.decide(attempt: attempt, answer: answer, since: Timestamp(milliseconds: 0), now: Timestamp(milliseconds: now), horizon: horizon, backoff: RetryPolicy(maxAttempts: 100, baseDelay: .seconds(1), maxDelay: .seconds(60), jitter: 0).backoff, using: &g)
        return (r.state, r.next, r.error)
    }

    @Test("2xx delivered; 408, 429, 5xx and no answer retried with backoff; other 4xx and 3xx failed at once")
    func outcomes() {
        #expect(decide(1, .status(204, retryAfter: nil)).0 == .delivered)
        #expect(decide(1, .status(500, retryAfter: nil)) == (.pending, Timestamp(milliseconds: 11_000), "answered 500"))
        #expect(decide(3, .status(502, retryAfter: nil)).1 == Timestamp(milliseconds: 14_000))
        #expect(decide(1, .status(408, retryAfter: nil)).0 == .pending)
        #expect(decide(1, .noAnswer("no answer within 10s", retryable: true)).0 == .pending)
        #expect(decide(1, .noAnswer("refused: 127.0.0.1 is a loopback address", retryable: false)).0 == .failed)
        for code in [400, 401, 404, 410, 301, 302, 307] {
            #expect(decide(1, .status(code, retryAfter: "5")).0 == .failed, "\(code)")
        }
        #expect(decide(1, .status(302, retryAfter: nil)).2?.contains("redirects are not followed") == true)
    }

    @Test("Retry-After (seconds or HTTP date) on 429 and 503 when longer than the backoff; past the horizon: failed")
    func retryAfter() {
        #expect(decide(1, .status(429, retryAfter: "30")).1 == Timestamp(milliseconds: 40_000))
        #expect(decide(1, .status(503, retryAfter: "0")).1 == Timestamp(milliseconds: 11_000))
        #expect(decide(1, .status(500, retryAfter: "30")).1 == Timestamp(milliseconds: 11_000))
        // Thu, 01 Jan 1970 00:01:40 GMT = 100 s.
        #expect(decide(1, .status(429, retryAfter: "Thu, 01 Jan 1970 00:01:40 GMT")).1 == Timestamp(milliseconds: 100_000))
        #expect(CallbackRules.retryAfter("Sun, 06 Nov 1994 08:49:37 GMT", now: Timestamp(milliseconds: 784_111_777_000 - 5000)) == .seconds(5))
        #expect(CallbackRules.retryAfter("soon", now: Timestamp(milliseconds: 0)) == nil)
        let late = decide(1, .status(503, retryAfter: nil), now: 3_599_500)
        #expect(late.0 == .failed && late.2?.contains("retries stopped") == true)
    }
}
