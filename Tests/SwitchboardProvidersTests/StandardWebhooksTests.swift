import Foundation
import Testing
import SwitchboardCore
@testable import SwitchboardProviders

/// The Standard Webhooks signature, checked against the specification's published test vector (the reference
/// libraries' own test: secret, id, timestamp, payload and the signature they expect).
@Suite("Standard Webhooks signatures")
struct StandardWebhooksTests {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    let id = "msg_p5jXN8AQM9LWM0D4loKWxJek"
    let timestamp: Int64 = 1_614_265_330
    let payload = Array(#"{"test": 2432232314}"#.utf8)

    @Test("the specification's test vector")
    func vector() {
        #expect(StandardWebhooks.sign(secret: secret, id: id, timestamp: timestamp, body: payload) == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        // The key is the base64-decoded part: the same without the prefix.
        #expect(StandardWebhooks.sign(secret: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", id: id, timestamp: timestamp, body: payload) == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
    }

    @Test("verification: the right signature among several passes; a changed body, id, timestamp or secret, or an old timestamp, fails")
    func verification() {
        let sig = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        #expect(StandardWebhooks.verify(secret: secret, id: id, timestamp: "1614265330", signatures: sig, body: payload, now: timestamp + 10))
        #expect(StandardWebhooks.verify(secret: secret, id: id, timestamp: "1614265330", signatures: "v1,bm90LWl0 " + sig, body: payload, now: timestamp))
        #expect(!StandardWebhooks.verify(secret: secret, id: id, timestamp: "1614265330", signatures: sig, body: payload + [0x20], now: timestamp))
        #expect(!StandardWebhooks.verify(secret: secret, id: id + "x", timestamp: "1614265330", signatures: sig, body: payload, now: timestamp))
        #expect(!StandardWebhooks.verify(secret: secret, id: id, timestamp: "1614265331", signatures: sig, body: payload, now: timestamp))
        #expect(!StandardWebhooks.verify(secret: StandardWebhooks.newSecret(), id: id, timestamp: "1614265330", signatures: sig, body: payload, now: timestamp))
        #expect(!StandardWebhooks.verify(secret: secret, id: id, timestamp: "1614265330", signatures: sig, body: payload, now: timestamp + 301))
    }

    @Test("a new secret is whsec_ and the base64 of 32 random bytes, different each time")
    func secrets() throws {
        let a = StandardWebhooks.newSecret(), b = StandardWebhooks.newSecret()
        #expect(a.hasPrefix("whsec_") && a != b)
        #expect(Data(base64Encoded: String(a.dropFirst(6)))?.count == 32)
    }

    @Test("a plain-http callback connects to the address checked: the host is replaced, the port written out")
    func pinnedAddress() {
        #expect(HTTPCallbackTransport.replacingHost(of: "http://hooks.example.com/a/b?c=1", with: .v4([93, 184, 216, 34]), port: 80) == "http://93.184.216.34:80/a/b?c=1")
        #expect(HTTPCallbackTransport.replacingHost(of: "http://u@hooks.example.com:8080", with: .v6([0x26, 6] + Array(repeating: 0, count: 13) + [1]), port: 8080) == "http://[2606:0:0:0:0:0:0:1]:8080")
    }
}
