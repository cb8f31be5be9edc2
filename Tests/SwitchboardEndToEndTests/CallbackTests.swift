import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import SwitchboardApp
import SwitchboardCore
import SwitchboardHTTP
import SwitchboardProviders
import SwitchboardServer
#if MongoDB
import SwitchboardMongo
#endif
import SwitchboardTestHTTP
import SwitchboardTestSupport
import SwitchboardTestSystem
import Testing

/// Status callbacks (Standard Webhooks) on the embedded system: real SQLite file, the real dispatcher and sender,
/// and a real local HTTP receiver (`MockHTTPServer`) on loopback.
@Suite("Status callbacks: every status change POSTed, signed, retried, to registered endpoints", .serialized)
struct CallbackTests {
    func settings(allowPrivate: Bool = true) -> Settings {
        var s = testSettings()
        s.callbacks.allowPrivate = allowPrivate
        s.callbacks.baseDelay = .milliseconds(50)
        s.callbacks.maxDelay = .milliseconds(300)
        s.callbacks.horizon = .seconds(60)
        s.callbacks.pollInterval = .milliseconds(20)
        s.callbacks.refreshInterval = .milliseconds(200)
        return s
    }

    /// A system with an admin key (keys are then required); returns the key's `Authorization` header too.
    func system(_ s: Settings) async throws -> (SwitchboardSystem, HTTPFields, String) {
        let system = try SwitchboardSystem(settings: s, logger: quietLogger(), metrics: PrometheusExposition())
        let (secret, record) = try await KeyIssuer(store: system.keyCache.store).create(APIKeySpec(name: "admin", scopes: [.admin]))
        _ = try await system.keyCache.refresh()
        return (system, [.authorization: "Bearer \(secret)", .contentType: "application/json"], record.id)
    }

    func register(_ client: some TestClientProtocol, _ headers: HTTPFields, _ fields: [String: JSONValue]) async throws -> (id: String, secret: String) {
        let r = try await client.execute(uri: "/api/v1/webhooks", method: .post, headers: headers, body: ByteBuffer(string: JSONValue.object(fields).canonicalText))
        #expect(r.status == .created, "\(String(buffer: r.body))")
        let o = try json(r)
        return (try #require(o["id"]?.stringValue), try #require(o["secret"]?.stringValue))
    }

    func send(_ client: some TestClientProtocol, _ headers: HTTPFields, to: String, callbackURL: String? = nil) async throws -> TestResponse {
        var data: [String: JSONValue] = ["from": .string("+15550000000"), "to": .string(to), "msg": .string("hello")]
        if let callbackURL { data["callbackUrl"] = .string(callbackURL) }
        return try await client.execute(uri: "/api/v1/communication", method: .post, headers: headers, body: ByteBuffer(string: JSONValue.object(["type": .string("sms"), "data": .object(data)]).canonicalText))
    }

    /// Every (communication, status) of `ids`' histories, as `communication.<status>`.
    func expected(_ system: SwitchboardSystem, _ ids: [String]) async throws -> Set<String> {
        var out: Set<String> = []
        for id in ids {
            for h in try #require(try await system.adapters.store.communication(id: id)).history { out.insert("\(id) communication.\(h.status.rawValue)") }
        }
        return out
    }

    /// How many status changes the messages' histories hold (each is one event in the feed).
    func changeCount(_ system: SwitchboardSystem, _ ids: [String]) async throws -> Int {
        var n = 0
        for id in ids { n += try #require(try await system.adapters.store.communication(id: id)).history.count }
        return n
    }

    /// The requests that carry a valid Standard Webhooks signature for `secret` (and the other headers), as
    /// "<communication id> <type>", with their webhook-ids; records an issue for any that does not verify.
    func verified(_ requests: [MockHTTPServer.Recorded], secret: String) -> [(event: String, webhookID: String)] {
        requests.compactMap { r -> (String, String)? in
            let h = r.headers
            guard let id = h["webhook-id"], let ts = h["webhook-timestamp"], let sig = h["webhook-signature"],
                StandardWebhooks.verify(secret: secret, id: id, timestamp: ts, signatures: sig, body: r.body, now: Int64(Date().timeIntervalSince1970))
            else {
                Issue.record("a callback without a valid signature: \(r.headers)")
                return nil
            }
            #expect(h["content-type"] == "application/json" && h["user-agent"]?.contains("switchboard") == true)
            guard let body = try? JSONParser.parse(r.body), case .string(let type)? = body["type"], case .string(let cid)? = body["data"]?["id"],
                case .string(let status)? = body["data"]?["status"], body["timestamp"]?.stringValue != nil
            else {
                Issue.record("a callback body not of the documented shape: \(r.text)")
                return nil
            }
            #expect(type == "communication.\(status)")
            return ("\(cid) \(type)", id)
        }
    }

    @Test("an endpoint gets every status change of every message, each signed, each once; deliveries are listed in pages")
    func everyChange() async throws {
        let receiver = try await MockHTTPServer.start(fallback: .init(status: 204, body: ""))
        let (system, headers, _) = try await system(settings())
        try await system.application().test(.router) { client in
            // Accepted before the endpoint exists: only its later changes are for it.
            let early = try #require(try json(try await send(client, headers, to: recipient(.sms, 99)))["id"]?.stringValue)
            try await Task.sleep(for: .milliseconds(5))
            let endpoint = try await register(client, headers, ["url": .string(receiver.baseURL + "/hooks"), "description": .string("e2e")])
            #expect(endpoint.secret.hasPrefix("whsec_"))
            // The secret is never shown again.
            let shown = try await client.execute(uri: "/api/v1/webhooks/\(endpoint.id)", method: .get, headers: headers)
            #expect(shown.status == .ok && !String(buffer: shown.body).contains(endpoint.secret) && !String(buffer: shown.body).contains("secret"))
            let running = Running(system)
            var ids: [String] = []
            for i in 0..<6 {
                let r = try await send(client, headers, to: recipient(.sms, i))
                ids.append(try #require(try json(r)["id"]?.stringValue))
            }
            try await eventually("every message sent") {
                for id in ids where try await system.adapters.store.communication(id: id)?.status != .sent { return false }
                return true
            }
            let want = try await expected(system, ids)
            #expect(want.count == 6 * 4, "\(want)")  // pending, queued, processing, sent
            try await eventually("every change called back") { Set(verified(receiver.requests, secret: endpoint.secret).map(\.event)).isSuperset(of: want) }
            try await eventually("the early message's later changes called back") {
                Set(verified(receiver.requests, secret: endpoint.secret).map(\.event)).isSuperset(of: ["\(early) communication.processing", "\(early) communication.sent"])
            }
            try await Task.sleep(for: .milliseconds(300))
            let got = verified(receiver.requests, secret: endpoint.secret).filter { !$0.event.hasPrefix(early) }
            let before = verified(receiver.requests, secret: endpoint.secret).map(\.event).filter { $0.hasPrefix(early) }
            #expect(Set(before) == ["\(early) communication.processing", "\(early) communication.sent"], "changes before the registration are not sent: \(before)")
            #expect(got.count == want.count, "each change once: \(got.count) callbacks for \(want.count) changes")
            #expect(Set(got.map(\.webhookID)).count == got.count)
            try await eventually("every delivery recorded delivered") {
                try await system.callbacks.store.deliveries(endpointID: endpoint.id, limit: 1000, cursor: nil).items.allSatisfy { $0.state == .delivered }
            }
            let page = try json(try await client.execute(uri: "/api/v1/webhooks/\(endpoint.id)/deliveries?limit=10", method: .get, headers: headers))
            guard case .array(let items)? = page["items"] else { Issue.record("no items: \(page)"); return }
            #expect(items.count == 10 && items.allSatisfy { $0["status"] == .string("delivered") && $0["attempts"] == .number(1) && $0["lastStatusCode"] == .number(204) })
            let next = try #require(page["nextCursor"]?.stringValue)
            let rest = try json(try await client.execute(uri: "/api/v1/webhooks/\(endpoint.id)/deliveries?limit=1000&cursor=\(next)", method: .get, headers: headers))
            #expect(rest["count"] == .number(Double(want.count + 2 - 10)))
            try await running.stop()
        }
        await receiver.stop()
    }

    @Test("two routers on one file: both dispatch and send, yet each change reaches the endpoint once")
    func twoRouters() async throws {
        let receiver = try await MockHTTPServer.start(fallback: .init(status: 200, body: ""))
        let first = settings()
        var second = first
        second.databasePath = first.databasePath
        let (a, headers, _) = try await system(first)
        let b = try SwitchboardSystem(settings: second, logger: quietLogger(), metrics: PrometheusExposition())
        try await a.application().test(.router) { client in
            let endpoint = try await register(client, headers, ["url": .string(receiver.baseURL + "/two")])
            let (ra, rb) = (Running(a), Running(b))
            var ids: [String] = []
            for i in 0..<10 { ids.append(try #require(try json(try await send(client, headers, to: recipient(.sms, 70 + i)))["id"]?.stringValue)) }
            try await eventually("every message sent") {
                for id in ids where try await a.adapters.store.communication(id: id)?.status != .sent { return false }
                return true
            }
            let want = try await expected(a, ids)
            try await eventually("every change called back") { Set(verified(receiver.requests, secret: endpoint.secret).map(\.event)) == want }
            try await Task.sleep(for: .milliseconds(500))
            let got = verified(receiver.requests, secret: endpoint.secret)
            #expect(got.count == want.count, "each change once across two routers: \(got.count) callbacks for \(want.count) changes")
            #expect(try await a.callbacks.store.deliveries(endpointID: endpoint.id, limit: 1000, cursor: nil).items.count == want.count)
            try await ra.stop()
            try await rb.stop()
        }
        await b.close()
        await receiver.stop()
    }

    @Test("a receiver answering 500, 503 and 429 with Retry-After, then 200, gets every change; one answering 400 is failed at once, and retried by hand")
    func retries() async throws {
        let flaky = try await MockHTTPServer.start(fallback: .init(status: 200, body: "ok"))
        flaky.enqueue(.init(status: 500, body: ""), .init(status: 503, body: ""), .init(status: 500, body: ""), .init(status: 429, body: "", headers: ["Retry-After": "1"]), .init(status: 500, body: ""))
        let refusing = try await MockHTTPServer.start(fallback: .init(status: 400, body: "no"))
        let (system, headers, _) = try await system(settings())
        try await system.application().test(.router) { client in
            let a = try await register(client, headers, ["url": .string(flaky.baseURL + "/flaky"), "events": .array([.string("sent")])])
            let b = try await register(client, headers, ["url": .string(refusing.baseURL + "/x"), "events": .array([.string("sent")]), "types": .array([.string("sms")])])
            let running = Running(system)
            var ids: [String] = []
            for i in 0..<4 { ids.append(try #require(try json(try await send(client, headers, to: recipient(.sms, 10 + i)))["id"]?.stringValue)) }
            let want = Set(ids.map { "\($0) communication.sent" })
            try await eventually("every sent change delivered through the failures") {
                let items = try await system.callbacks.store.deliveries(endpointID: a.id, limit: 100, cursor: nil).items
                return Set(verified(flaky.requests, secret: a.secret).map(\.event)).isSuperset(of: want) && items.count == 4 && items.allSatisfy { $0.state == .delivered }
            }
            let delivered = try await system.callbacks.store.deliveries(endpointID: a.id, limit: 100, cursor: nil).items
            #expect(delivered.reduce(0) { $0 + $1.attempts } == 4 + 5, "the five failures were retried: \(delivered.map(\.attempts))")
            // Each attempt is in its delivery's history, with the answer it got.
            #expect(delivered.flatMap(\.history).compactMap(\.statusCode).sorted() == [200, 200, 200, 200, 429, 500, 500, 500, 503])
            // The attempt after the 429 waited for its Retry-After (1 s), not for the 50 ms backoff.
            for d in delivered {
                guard let i = d.history.firstIndex(where: { $0.statusCode == 429 }), i + 1 < d.history.count else { continue }
                #expect(d.history[i + 1].at.milliseconds - d.history[i].at.milliseconds >= 900, "\(d.history)")
            }
            // Every attempt of one delivery carried the same webhook-id.
            let idsSeen = Dictionary(grouping: flaky.requests.compactMap { $0.headers["webhook-id"] }, by: { $0 }).mapValues(\.count)
            #expect(Set(idsSeen.keys) == Set(delivered.map(\.id)) && idsSeen.values.reduce(0, +) == 9)

            try await eventually("the 400s failed") {
                let items = try await system.callbacks.store.deliveries(endpointID: b.id, limit: 100, cursor: nil).items
                return items.count == 4 && items.allSatisfy { $0.state == .failed }
            }
            let failed = try await system.callbacks.store.deliveries(endpointID: b.id, limit: 100, cursor: nil).items
            #expect(failed.allSatisfy { $0.attempts == 1 && $0.lastStatusCode == 400 && $0.lastError?.contains("400") == true })
            #expect(refusing.requests.count == 4)
            // A failed delivery retried by hand is sent again; a delivered one cannot be retried (409).
            refusing.enqueue(.init(status: 200, body: ""))
            let retried = try await client.execute(uri: "/api/v1/webhooks/\(b.id)/deliveries/\(failed[0].id)/retry", method: .post, headers: headers)
            #expect(try retried.status == .accepted && (json(retried)["status"]) == .string("pending"))
            try await eventually("the retried delivery delivered") { try await system.callbacks.store.delivery(endpointID: b.id, id: failed[0].id)?.state == .delivered }
            let again = try await client.execute(uri: "/api/v1/webhooks/\(b.id)/deliveries/\(failed[0].id)/retry", method: .post, headers: headers)
            #expect(again.status == .conflict)
            try await running.stop()
        }
        await flaky.stop()
        await refusing.stop()
    }

    @Test("data.callbackUrl: refused (422 no_default_webhook) without the key's default endpoint; with it, the message's changes go there too, signed with that endpoint's secret")
    func perMessageURL() async throws {
        let hooks = try await MockHTTPServer.start(fallback: .init(status: 200, body: ""))
        let own = try await MockHTTPServer.start(fallback: .init(status: 200, body: ""))
        let (system, headers, keyID) = try await system(settings())
        try await system.application().test(.router) { client in
            let refused = try await send(client, headers, to: recipient(.sms, 30), callbackURL: own.baseURL + "/mine")
            #expect(try refused.status == .unprocessableContent && (json(refused)["error"]?["code"]) == .string("no_default_webhook"))
            let bad = try await send(client, headers, to: recipient(.sms, 30), callbackURL: "ftp://example.com/x")
            #expect(try bad.status == .badRequest && (json(bad)["error"]?["field"]) == .string("data.callbackUrl"))
            let def = try await register(client, headers, ["url": .string(hooks.baseURL + "/hooks"), "keyId": .string(keyID), "default": .bool(true)])
            let second = try await client.execute(uri: "/api/v1/webhooks", method: .post, headers: headers, body: ByteBuffer(string: #"{"url":"\#(hooks.baseURL)/hooks","keyId":"\#(keyID)","default":true}"#))
            #expect(second.status == .conflict)
            let running = Running(system)
            let accepted = try await send(client, headers, to: recipient(.sms, 31), callbackURL: own.baseURL + "/mine")
            #expect(accepted.status == .ok)
            let id = try #require(try json(accepted)["id"]?.stringValue)
            let other = try #require(try json(try await send(client, headers, to: recipient(.sms, 32)))["id"]?.stringValue)
            try await eventually("both messages sent") {
                let a = try await system.adapters.store.communication(id: id)?.status, b = try await system.adapters.store.communication(id: other)?.status
                return a == .sent && b == .sent
            }
            let mine = try await expected(system, [id])
            let both = mine.union(try await expected(system, [other]))
            try await eventually("the message's own URL got its changes") { Set(verified(own.requests, secret: def.secret).map(\.event)) == mine }
            try await eventually("the default endpoint got both messages' changes") { Set(verified(hooks.requests, secret: def.secret).map(\.event)) == both }
            #expect(own.requests.allSatisfy { $0.path == "/mine" })
            try await running.stop()
        }
        await hooks.stop()
        await own.stop()
    }

    @Test("the transport: signed headers, a redirect not followed, a large answer read only in part, a slow one given up after the timeout")
    func transportLimits() async throws {
        let server = try await MockHTTPServer.start(fallback: .init(status: 200, body: ""))
        let client = HTTPCallbackTransport.makeClient()
        let transport = HTTPCallbackTransport(client: client, timeout: .milliseconds(500), allowPrivate: true)
        let secret = StandardWebhooks.newSecret()
        func delivery(_ path: String) -> CallbackDelivery {
            CallbackDelivery(id: "whep_t_\(path)", endpointID: "whep_t", position: .start, url: server.baseURL + "/" + path, payload: #"{"type":"communication.sent"}"#, eventType: "communication.sent", communicationID: "c", nextAttemptAt: Timestamp(milliseconds: 0), createdAt: Timestamp(milliseconds: 0))
        }
        server.enqueue(.init(status: 302, body: "", headers: ["Location": server.baseURL + "/elsewhere"]))
        #expect(await transport.send(delivery("redirect"), secret: secret, at: SystemTime.now()) == .status(302, retryAfter: nil))
        #expect(server.requests.map(\.path) == ["/redirect"], "the redirect was not followed")
        let r = server.requests[0]
        #expect(StandardWebhooks.verify(secret: secret, id: "whep_t_redirect", timestamp: r.headers["webhook-timestamp"] ?? "", signatures: r.headers["webhook-signature"] ?? "", body: r.body, now: Int64(Date().timeIntervalSince1970)))
        server.enqueue(.init(status: 200, body: String(repeating: "x", count: 4 << 20)))
        let started = ContinuousClock.now
        #expect(await transport.send(delivery("large"), secret: secret, at: SystemTime.now()) == .status(200, retryAfter: nil))
        #expect(ContinuousClock.now - started < .seconds(2))
        server.enqueue(.init(status: 503, body: "", headers: ["Retry-After": "7"]))
        #expect(await transport.send(delivery("busy"), secret: secret, at: SystemTime.now()) == .status(503, retryAfter: "7"))
        server.enqueue(.init(status: 200, body: "", delay: .seconds(3)))
        guard case .noAnswer(let why, retryable: true) = await transport.send(delivery("slow"), secret: secret, at: SystemTime.now()) else {
            Issue.record("a slow endpoint was not given up")
            return
        }
        #expect(why.contains("no answer within"))
        try await client.shutdown()
        await server.stop()
    }

    @Test("with private addresses refused: 127.0.0.1, 10.0.0.1, 169.254.169.254, [::1], localhost and a name resolving to loopback are refused at registration; a send to such a name is refused after resolution")
    func privateAddresses() async throws {
        let receiver = try await MockHTTPServer.start(fallback: .init(status: 200, body: ""))
        let (system, headers, _) = try await system(settings(allowPrivate: false))
        let host = ProcessInfo.processInfo.hostName
        try await system.application().test(.router) { client in
            for url in ["http://127.0.0.1:\(receiver.port)/x", "http://10.0.0.1/x", "http://169.254.169.254/latest/meta-data", "http://[::1]:8080/", "https://localhost/x",
                        "http://metadata.google.internal/x", "http://[fd00:ec2::254]/", "http://[::ffff:169.254.169.254]/",
                        // Other spellings of 127.0.0.1 that the resolver accepts: caught by checking what the name resolves to.
                        "http://2130706433/x", "http://127.1/x", "http://0x7f.0.0.1/x"] {
                let r = try await client.execute(uri: "/api/v1/webhooks", method: .post, headers: headers, body: ByteBuffer(string: #"{"url":"\#(url)"}"#))
                #expect(try r.status == .badRequest && (json(r)["error"]?["code"]) == .string("url_not_allowed"), "\(url): \(String(buffer: r.body))")
            }
            let invalid = try await client.execute(uri: "/api/v1/webhooks", method: .post, headers: headers, body: ByteBuffer(string: #"{"url":"hooks.example.com/x"}"#))
            #expect(try invalid.status == .badRequest && (json(invalid)["error"]?["code"]) == .string("invalid_url"))
            let literal = try await send(client, headers, to: recipient(.sms, 40), callbackURL: "http://10.1.2.3/x")
            #expect(try literal.status == .badRequest && (json(literal)["error"]?["code"]) == .string("url_not_allowed"))
            if (try? await HTTPCallbackTransport.resolve(host))?.allSatisfy({ CallbackRules.refusal(address: $0) != nil }) == true {
                let byName = try await client.execute(uri: "/api/v1/webhooks", method: .post, headers: headers, body: ByteBuffer(string: #"{"url":"http://\#(host):\#(receiver.port)/x"}"#))
                #expect(try byName.status == .badRequest && (json(byName)["error"]?["code"]) == .string("url_not_allowed"))
            }
        }
        // At send time (an endpoint registered before its name moved to a private address: DNS rebinding).
        let transport = HTTPCallbackTransport(client: .shared, timeout: .seconds(5), allowPrivate: false)
        for url in ["http://localhost:\(receiver.port)/x", "http://\(host):\(receiver.port)/x", "http://127.0.0.1:\(receiver.port)/x"] {
            let d = CallbackDelivery(id: "whep_x_1", endpointID: "whep_x", position: .start, url: url, payload: "{}", eventType: "communication.sent", communicationID: "c", nextAttemptAt: Timestamp(milliseconds: 0), createdAt: Timestamp(milliseconds: 0))
            guard case .noAnswer(let why, retryable: false) = await transport.send(d, secret: StandardWebhooks.newSecret(), at: SystemTime.now()) else {
                Issue.record("\(url) was not refused")
                continue
            }
            #expect(why.contains("refused"))
        }
        #expect(receiver.requests.isEmpty)
        await receiver.stop()
        await system.close()
    }
}

@Suite("Status callbacks: an endpoint failing too long is disabled, with an audit record", .serialized)
struct CallbackDisableTests {
    @Test("every delivery failing (500) for longer than SWITCHBOARD_CALLBACK_DISABLE_AFTER_SECONDS: the endpoint is disabled, the audit log says so; enabling it again starts afresh")
    func disabledAfterFailing() async throws {
        let failing = try await MockHTTPServer.start(fallback: .init(status: 500, body: ""))
        var s = CallbackTests().settings()
        s.callbacks.disableAfter = .seconds(1)
        let (system, headers, _) = try await CallbackTests().system(s)
        try await system.application().test(.router) { client in
            let e = try await CallbackTests().register(client, headers, ["url": .string(failing.baseURL + "/down")])
            let running = Running(system)
            _ = try await CallbackTests().send(client, headers, to: recipient(.sms, 50))
            try await eventually("the endpoint disabled") { try await system.callbacks.store.endpoint(id: e.id)?.enabled == false }
            let shown = try json(try await client.execute(uri: "/api/v1/webhooks/\(e.id)", method: .get, headers: headers))
            #expect(shown["enabled"] == .bool(false) && shown["disabledReason"]?.stringValue?.contains("failed since") == true && shown["failingSince"]?.stringValue != nil)
            try await eventually("the audit record") {
                guard case .array(let items)? = try json(try await client.execute(uri: "/api/v1/logs?service=auth", method: .get, headers: headers))["items"] else { return false }
                return items.contains { $0["msg"] == .string("callback_endpoint_disabled") && $0["communicationId"] == .string(e.id) }
            }
            // Its pending deliveries are failed, not sent, while it is disabled.
            let before = failing.requests.count
            try await eventually("its deliveries failed") {
                try await system.callbacks.store.deliveries(endpointID: e.id, limit: 100, cursor: nil).items.allSatisfy { $0.state == .failed }
            }
            #expect(failing.requests.count <= before + 4)
            let enabled = try await client.execute(uri: "/api/v1/webhooks/\(e.id)", method: .patch, headers: headers, body: ByteBuffer(string: #"{"enabled":true}"#))
            let after = try json(enabled)
            #expect(enabled.status == .ok && after["enabled"] == .bool(true) && after["failingSince"] == .null && after["disabledReason"] == .null)
            try await running.stop()
        }
        await failing.stop()
    }
}

#if MongoDB
@Suite("Status callbacks on the MongoDB store", .serialized, .timeLimit(.minutes(8)))
struct MongoCallbackTests {
    @Test("endpoints, deliveries and cursor in MongoDB: every change of every message reaches the endpoint, the key's default endpoint and the message's callbackUrl, signed")
    func everyChange() async throws {
        try await withSecantusServer { mongo in
            let hooks = try await MockHTTPServer.start(fallback: .init(status: 200, body: ""))
            var s = CallbackTests().settings()
            s.lease = .seconds(30)
            s.mongoURL = mongo.url(database: "switchboard-callbacks")
            let t = CallbackTests()
            let (system, headers, keyID) = try await t.system(s)
            #expect(system.callbacks.store is MongoCallbackStore)
            try await system.application().test(.router) { client in
                let all = try await t.register(client, headers, ["url": .string(hooks.baseURL + "/all")])
                let def = try await t.register(client, headers, ["url": .string(hooks.baseURL + "/default"), "keyId": .string(keyID), "default": .bool(true)])
                let running = Running(system)
                var ids: [String] = []
                for i in 0..<4 {
                    let r = try await t.send(client, headers, to: recipient(.sms, 60 + i), callbackURL: i == 0 ? hooks.baseURL + "/mine" : nil)
                    ids.append(try #require(try json(r)["id"]?.stringValue))
                }
                try await eventually(timeout: .seconds(150), "every message sent") {
                    for id in ids where try await system.adapters.store.communication(id: id)?.status != .sent { return false }
                    return true
                }
                let want = try await t.expected(system, ids), mine = try await t.expected(system, [ids[0]])
                func events(_ path: String, _ secret: String) -> Set<String> { Set(t.verified(hooks.requests.filter { $0.path == path }, secret: secret).map(\.event)) }
                try await eventually(timeout: .seconds(150), "every change at every endpoint") {
                    events("/all", all.secret) == want && events("/default", def.secret) == want && events("/mine", def.secret) == mine
                }
                // The receiver has them a moment before the sender records the answers.
                // One delivery per change in the feed: a change seen twice under load (a message queued again by the
                // outbox) is two changes, so the count follows the histories, not the set of distinct events.
                let changes = try await t.changeCount(system, ids), mineChanges = try await t.changeCount(system, [ids[0]])
                var listed: [CallbackDelivery] = []
                do {
                    try await eventually(timeout: .seconds(150), "every delivery recorded delivered") {
                        listed = try await system.callbacks.store.deliveries(endpointID: def.id, limit: 1000, cursor: nil).items
                        return listed.count == changes + mineChanges && listed.allSatisfy { $0.state == .delivered }
                    }
                } catch {
                    Issue.record("\(listed.count) deliveries for \(changes) + \(mineChanges) changes: \(listed.filter { $0.state != .delivered }.map { "\($0.id) \($0.eventType) \($0.state) \($0.lastError ?? "")" })")
                    throw error
                }
                try await running.stop()
            }
            await hooks.stop()
            await system.close()
        }
    }
}
#endif
