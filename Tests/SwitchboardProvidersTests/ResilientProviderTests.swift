import Logging
import Testing
import SwitchboardTestHTTP
import SwitchboardTestSupport
import SwitchboardApp
import SwitchboardCore
@testable import SwitchboardProviders
import SwitchboardSMTP
import SwitchboardServer

@Suite("Circuit breaker and rate limit around a real provider client")
struct ResilientProviderTests {
    func twilio(_ server: MockHTTPServer) -> TwilioProvider {
        TwilioProvider(configuration: TwilioConfiguration(accountSID: "AC1", authToken: "t", baseURL: server.baseURL))
    }

    @Test("after N retryable failures the circuit opens: circuit_open without calling the API; after the cool-down one probe closes it")
    func breaker() async throws {
        let server = try await MockHTTPServer.start(fallback: twilioError(status: 503, code: 20503, message: "Service Unavailable"))
        defer { Task { await server.stop() } }
        let metrics = PrometheusExposition()
        let p = ResilientProvider(MeteredProvider(twilio(server), factory: metrics.factory), breaker: .init(failureThreshold: 2, coolDown: .milliseconds(300)), rateLimit: nil, logger: Logger(label: "test"), metricsFactory: metrics.factory)
        func scraped() async -> String { String(decoding: await metrics.scrape(), as: UTF8.self) }
        #expect(await scraped().contains(#"switchboard_provider_circuit_state{provider="twilio"} 0"#))
        for _ in 0..<2 {
            guard case .retryable(let e) = await p.deliver(sms()) else { Issue.record("expected retryable"); return }
            #expect(e.code == "20503")
        }
        guard case .retryable(let open) = await p.deliver(sms()) else { Issue.record("expected circuit_open"); return }
        #expect(open.code == "circuit_open")
        #expect(server.requests.count == 2)
        var text = await scraped()
        #expect(text.contains(#"switchboard_provider_circuit_state{provider="twilio"} 2"#))
        #expect(text.contains(#"switchboard_provider_circuit_rejected_total{provider="twilio"} 1"#))
        #expect(text.contains(#"switchboard_provider_calls_total{provider="twilio",outcome="retryable"} 2"#))
        try await Task.sleep(for: .milliseconds(350))
        server.enqueue(twilioCreated(sid: "SMprobe"))
        #expect(await p.deliver(sms()) == .sent(providerMessageID: "SMprobe"))
        #expect(p.circuitState == .closed(failures: 0))
        #expect(server.requests.count == 3)
        text = await scraped()
        #expect(text.contains(#"switchboard_provider_circuit_state{provider="twilio"} 0"#))
        #expect(text.contains(#"switchboard_provider_calls_total{provider="twilio",outcome="sent"} 1"#))
        #expect(text.contains(#"switchboard_provider_call_duration_seconds_count{provider="twilio"} 3"#))
    }

    @Test("a failed probe re-opens the circuit for another cool-down")
    func failedProbe() async throws {
        let server = try await MockHTTPServer.start(fallback: twilioError(status: 500, code: 20500, message: "Internal Server Error"))
        defer { Task { await server.stop() } }
        let p = ResilientProvider(twilio(server), breaker: .init(failureThreshold: 1, coolDown: .milliseconds(200)), rateLimit: nil, logger: Logger(label: "test"))
        _ = await p.deliver(sms())
        try await Task.sleep(for: .milliseconds(250))
        guard case .retryable(let e) = await p.deliver(sms()) else { Issue.record("expected retryable"); return }
        #expect(e.code == "20500")
        guard case .retryable(let open) = await p.deliver(sms()) else { Issue.record("expected circuit_open"); return }
        #expect(open.code == "circuit_open")
        #expect(server.requests.count == 2)
    }

    @Test("the token bucket paces calls and refuses a wait beyond maxWait as rate_limited (retryable), without calling")
    func rateLimit() async throws {
        let server = try await MockHTTPServer.start(fallback: twilioCreated(sid: "SMok"))
        defer { Task { await server.stop() } }
        let metrics = PrometheusExposition()
        let p = ResilientProvider(twilio(server), breaker: .init(), rateLimit: .init(ratePerSecond: 10, burst: 1, maxWait: .milliseconds(150)), logger: Logger(label: "test"), metricsFactory: metrics.factory)
        let start = ContinuousClock.now
        #expect(await p.deliver(sms()) == .sent(providerMessageID: "SMok"))
        #expect(await p.deliver(sms()) == .sent(providerMessageID: "SMok"))   // waited ~100 ms for a token
        #expect(ContinuousClock.now - start >= .milliseconds(90))
        async let a = p.deliver(sms())
        async let b = p.deliver(sms())
        async let c = p.deliver(sms())
        let results = await [a, b, c]
        let limited = results.filter { if case .retryable(let e) = $0 { e.code == "rate_limited" } else { false } }
        #expect(limited.count >= 1)
        #expect(server.requests.count == 2 + results.count - limited.count)
        #expect(String(decoding: await metrics.scrape(), as: UTF8.self).contains(#"switchboard_provider_rate_limited_total{provider="twilio"} \#(limited.count)"#))
    }

    @Test("an SMTP 4xx for one recipient does not open the circuit; a dead server does")
    func smtpRecipientDeferral() async throws {
        let server = try await SMTPTestServer.start()
        let smtp = try SMTPProvider(configuration: SMTPConfiguration(host: "127.0.0.1", port: server.port, tlsMode: .none), logger: Logger(label: "test"))
        let p = ResilientProvider(smtp, breaker: .init(failureThreshold: 2, coolDown: .seconds(60)), rateLimit: nil, logger: Logger(label: "test"), countsAgainstCircuit: SMTPProvider.countsAgainstCircuit)
        func email(_ to: String) -> OutboundMessage {
            OutboundMessage(id: "e1", request: CommunicationRequest(channel: .email, from: "ada@example.com", to: to, msg: "x"), attempt: 1)
        }
        for _ in 0..<3 {
            guard case .retryable(let e) = await p.deliver(email("tempfail@example.org")) else { Issue.record("expected retryable"); break }
            #expect(e.code == "451 4.3.0")
        }
        #expect(p.circuitState == .closed(failures: 0))
        guard case .sent = await p.deliver(email("bob@example.org")) else { Issue.record("expected sent"); return }
        await server.stop()
        for _ in 0..<2 {
            guard case .retryable(let e) = await p.deliver(email("bob@example.org")) else { Issue.record("expected retryable"); break }
            #expect(e.code == "connection_failed")
        }
        guard case .retryable(let open) = await p.deliver(email("bob@example.org")) else { Issue.record("expected circuit_open"); return }
        #expect(open.code == "circuit_open")
        await smtp.shutdown()
    }
}
