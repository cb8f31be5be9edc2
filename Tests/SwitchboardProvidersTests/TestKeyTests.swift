import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
import SwitchboardCore
import SwitchboardHTTP
import SwitchboardServer
import SwitchboardTestHTTP

@Suite("Test keys: their messages reach only the sandbox")
struct TestKeyTests {
    @Test("with Twilio configured, a test key's SMS is delivered by the sandbox and marked test in its record and logs; a live key's goes to Twilio")
    func testKeyGoesToSandbox() async throws {
        let api = try await MockHTTPServer.start()
        defer { Task { await api.stop() } }
        let settings = try e2eSettings(["ACCOUNTSID": "AC0123456789abcdef0123456789abcdef", "AUTHTOKEN": "t", "SWITCHBOARD_TWILIO_BASE_URL": api.baseURL])
        api.enqueue(twilioCreated(sid: "SMlive0000000000000000000000000001"))
        try await withSystem(settings) { system, client in
            let issuer = KeyIssuer(store: system.keyCache.store)
            let (testKey, testRecord) = try await issuer.create(APIKeySpec(name: "ci", scopes: [.send, .read], test: true))
            let (liveKey, liveRecord) = try await issuer.create(APIKeySpec(name: "production", scopes: [.send]))
            func post(_ key: String, _ msg: String) async throws -> String {
                let body = #"{"type":"sms","data":{"from":"+14155550100","to":"+14155550101","msg":"\#(msg)"}}"#
                let r = try await client.execute(uri: "/api/v1/communication", method: .post, headers: [.contentType: "application/json", .authorization: "Bearer \(key)"], body: ByteBuffer(string: body))
                #expect(r.status == .ok, "\(String(buffer: r.body))")
                return try #require(try json(r)["id"]?.stringValue)
            }
            let testID = try await post(testKey, "a test")
            let sentTest = try await waitFor(system, testID, .sent)
            #expect(sentTest.provider == "sandbox" && sentTest.test && sentTest.keyID == testRecord.id)
            #expect(try await system.adapters.mailbox!.messages(channel: .sms, to: nil, limit: 10).map(\.communicationId) == [testID])
            #expect(api.requests.isEmpty, "a test message reached Twilio")

            let liveID = try await post(liveKey, "for real")
            let sentLive = try await waitFor(system, liveID, .sent)
            #expect(sentLive.provider == "twilio" && !sentLive.test && sentLive.keyID == liveRecord.id)
            #expect(api.requests.count == 1)

            // The log records of the test message are marked test (the logging service indexes them shortly).
            let deadline = ContinuousClock.now + .seconds(60)
            var records: [JSONValue] = []
            while ContinuousClock.now < deadline {
                let r = try await client.execute(uri: "/api/v1/logs?communicationId=\(testID)", method: .get, headers: [.authorization: "Bearer \(testKey)"])
                #expect(r.status == .ok)
                if case .array(let items)? = try json(r)["items"], items.count >= 4 { records = items; break }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(records.count >= 4 && records.allSatisfy { $0["test"] == .bool(true) }, "\(records)")
            let shown = try json(try await client.execute(uri: "/api/v1/communication/\(testID)", method: .get, headers: [.authorization: "Bearer \(testKey)"]))
            #expect(shown["test"] == .bool(true) && shown["keyId"] == .string(testRecord.id))
            // Search over the store's rows filters by key.
            let listed = try json(try await client.execute(uri: "/api/v1/communications?key=\(testRecord.id)", method: .get, headers: [.authorization: "Bearer \(testKey)"]))
            guard case .array(let items)? = listed["items"] else { Issue.record("no items"); return }
            #expect(items.map { $0["id"]?.stringValue } == [testID] && items.first?["keyId"] == .string(testRecord.id))
        }
    }
}
