import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import SwitchboardCore
import SwitchboardServer
import SwitchboardTestSystem
import Testing

/// The samples of a Prometheus text exposition: `name{labels}` → value (comments skipped).
func samples(_ text: String) -> [String: Double] {
    var out: [String: Double] = [:]
    for line in text.split(separator: "\n") where !line.hasPrefix("#") {
        guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
        out[String(line[..<space])] = value
    }
    return out
}

/// The value of `name` with exactly `labels` (in any order), or nil.
func sample(_ all: [String: Double], _ name: String, _ labels: [String: String] = [:]) -> Double? {
    for (key, value) in all {
        let open = key.firstIndex(of: "{")
        guard (open.map { String(key[..<$0]) } ?? key) == name else { continue }
        var found: [String: String] = [:]
        if let open {
            let inner = key[key.index(after: open)..<key.index(before: key.endIndex)]
            for pair in inner.split(separator: ",") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                if parts.count == 2 { found[String(parts[0])] = String(parts[1].dropFirst().dropLast()) }
            }
        }
        if found == labels { return value }
    }
    return nil
}

@Suite("Metrics: GET /metrics counts exactly what happened", .serialized)
struct MetricsTests {
    @Test("N accepted, M failing through the sandbox: the counters say N and M, by channel and status, provider and outcome", arguments: [true, false])
    func exactCounters(atomic: Bool) async throws {
        let exposition = PrometheusExposition()
        // A publication confirmed late (a loaded machine, the port-by-port pipeline) would be republished by the
        // outbox after its grace: a real second `pending` (a new dispatch), counted as such. The grace is made
        // long here so that the counts below are the scenario's alone.
        var settings = testSettings(maxAttempts: 2)
        settings.pipeline.outboxGrace = .seconds(120)
        var configured = try SwitchboardSystem(settings: settings, logger: quietLogger(), metrics: exposition)
        if !atomic { configured.usePortByPortPipeline() }
        let system = configured
        let running = Running(system)
        try await system.application().test(.router) { client in
            // 20 SMS (5 failing at once, 3 flaky ones that give up after 2 attempts), 7 emails, 1 rejected request.
            for i in 0..<12 { _ = try await post(client, .sms, to: recipient(.sms, i), msg: "ok \(i)") }
            for i in 0..<5 { _ = try await post(client, .sms, to: "+15005550001", msg: "fails \(i)") }
            for i in 0..<3 { _ = try await post(client, .sms, to: "+15005550002", msg: "gives up \(i)") }
            for i in 0..<7 { _ = try await post(client, .email, to: recipient(.email, i), msg: "mail \(i)") }
            let bad = try await client.execute(uri: "/api/v1/communication", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: #"{"type":"fax","data":{}}"#))
            #expect(bad.status == .badRequest)
            // A replay of the same idempotency key is not a second message.
            var headers: HTTPFields = [.contentType: "application/json"]
            headers[HTTPField.Name("Idempotency-Key")!] = "metrics-once"
            for _ in 0..<2 {
                let r = try await client.execute(uri: "/api/v1/communication", method: .post, headers: headers, body: body(.whatsapp, to: "+15550001111", msg: "once"))
                #expect(r.status == .ok)
            }
            try await eventually("all 28 ended") { try await count(system, .sent) + count(system, .failed) == 28 }
            try await eventually("the last transitions counted") {
                let m = samples(String(decoding: await exposition.scrape(), as: UTF8.self))
                return (sample(m, "switchboard_status_transitions_total", ["channel": "sms", "status": "failed"]) ?? 0) == 8
            }
            let scraped = try await client.execute(uri: "/metrics", method: .get)
            #expect(scraped.status == .ok)
            #expect(scraped.headers[.contentType] == "text/plain; version=0.0.4; charset=utf-8")
            let m = samples(String(buffer: scraped.body))
            func v(_ name: String, _ labels: [String: String] = [:]) -> Double? { sample(m, name, labels) }

            #expect(v("switchboard_messages_accepted_total", ["channel": "sms"]) == 20)
            #expect(v("switchboard_messages_accepted_total", ["channel": "email"]) == 7)
            #expect(v("switchboard_messages_accepted_total", ["channel": "whatsapp"]) == 1)
            #expect(v("switchboard_status_transitions_total", ["channel": "sms", "status": "pending"]) == 20)
            #expect(v("switchboard_status_transitions_total", ["channel": "sms", "status": "sent"]) == 12)
            #expect(v("switchboard_status_transitions_total", ["channel": "sms", "status": "failed"]) == 8)
            #expect(v("switchboard_status_transitions_total", ["channel": "sms", "status": "retrying"]) == 3)
            #expect(v("switchboard_status_transitions_total", ["channel": "email", "status": "sent"]) == 7)
            #expect(v("switchboard_status_transitions_total", ["channel": "whatsapp", "status": "sent"]) == 1)
            // Sandbox calls: 12 + 7 + 1 sent, 5 permanent, 3 × 2 retryable.
            #expect(v("switchboard_provider_calls_total", ["provider": "sandbox", "outcome": "sent"]) == 20)
            #expect(v("switchboard_provider_calls_total", ["provider": "sandbox", "outcome": "permanent"]) == 5)
            #expect(v("switchboard_provider_calls_total", ["provider": "sandbox", "outcome": "retryable"]) == 6)
            #expect(v("switchboard_provider_call_duration_seconds_count", ["provider": "sandbox"]) == 31)
            #expect(v("switchboard_message_delivery_duration_seconds_count", ["channel": "sms", "provider": "sandbox"]) == 12)
            // Attempts: observed once per ended message; the 3 that gave up took 2 each.
            #expect(v("switchboard_message_attempts_count", ["channel": "sms"]) == 20)
            #expect(v("switchboard_message_attempts_sum", ["channel": "sms"]) == 23)  // 12 + 5 + 3 × 2
            #expect(v("switchboard_message_attempts_bucket", ["channel": "sms", "le": "1.0"]) == 17)
            // The sandbox has no circuit: no gauge says it is closed.
            #expect(v("switchboard_provider_circuit_state", ["provider": "sandbox"]) == nil)
            #expect((v("process_resident_memory_bytes") ?? 0) > 1_000_000)
            #expect((v("process_open_fds") ?? 0) > 3)
            #expect((v("process_start_time_seconds") ?? 0) > Date().timeIntervalSince1970 - 86_400 * 7)
        }
        try await running.stop()
        await system.close()
    }

    @Test("HTTP requests by method, route template and status; SWITCHBOARD_METRICS_TOKEN guards /metrics")
    func httpAndToken() async throws {
        var settings = testSettings()
        settings.metricsToken = "scrape-token-for-tests"
        let system = try SwitchboardSystem(settings: settings, logger: quietLogger(), metrics: PrometheusExposition())
        try await system.application().test(.router) { client in
            let refused = try await client.execute(uri: "/metrics", method: .get)
            #expect(refused.status == .unauthorized)
            #expect(String(buffer: refused.body).contains("SWITCHBOARD_METRICS_TOKEN"))
            let wrong = try await client.execute(uri: "/metrics", method: .get, headers: [.authorization: "Bearer nope"])
            #expect(wrong.status == .unauthorized)
            _ = try await client.execute(uri: "/api/v1/communication/abc", method: .get)
            _ = try await client.execute(uri: "/api/v1/communication/def", method: .get)
            let ok = try await client.execute(uri: "/metrics", method: .get, headers: [.authorization: "Bearer scrape-token-for-tests"])
            #expect(ok.status == .ok)
            let m = samples(String(buffer: ok.body))
            #expect(sample(m, "switchboard_http_requests_total", ["method": "GET", "route": "/api/v1/communication/{id}", "status": "404"]) == 2)
            // A 404 is the client's error, not the server's.
            #expect(sample(m, "switchboard_http_request_errors_total", ["method": "GET", "route": "/api/v1/communication/{id}", "error": "404"]) == 0)
            #expect(sample(m, "switchboard_http_requests_total", ["method": "GET", "route": "/metrics", "status": "401"]) == 2)
            #expect(sample(m, "switchboard_http_request_duration_seconds_count", ["method": "GET", "route": "/api/v1/communication/{id}", "status": "404"]) == 2)
            // The scrape in progress is in flight.
            #expect(sample(m, "switchboard_http_active_requests", ["method": "GET"]) == 1)
            #expect(sample(m, "switchboard_http_request_duration_seconds_bucket", ["method": "GET", "route": "/api/v1/communication/{id}", "status": "404", "le": "+Inf"]) != nil)
        }
        await system.close()
    }
}
