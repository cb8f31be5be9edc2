import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import ServiceLifecycle
import Testing
import SwitchboardApp
import SwitchboardCore
import SwitchboardServer
import SwitchboardTestSystem


/// Settings for fast end-to-end runs. The lease is long enough that a batch slowed down by a loaded machine (the
/// whole suite runs in parallel) is not taken over and delivered twice; tests of takeover set a short one.
func testSettings(path: String? = nil, maxAttempts: Int = 3) -> Settings {
    fastSettings(name: "e2e", path: path, maxAttempts: maxAttempts, lease: .seconds(4))
}

func quietLogger() -> Logger {
    var l = Logger(label: "e2e")
    l.logLevel = .error
    return l
}

func count(_ system: SwitchboardSystem, _ status: CommunicationStatus) async throws -> Int {
    try await system.adapters.store.statusCounts().filter { $0.status == status }.reduce(0) { $0 + $1.count }
}

func total(_ system: SwitchboardSystem) async throws -> Int {
    try await system.adapters.store.statusCounts().reduce(0) { $0 + $1.count }
}

let jsonHeaders: HTTPFields = [.contentType: "application/json"]

func body(_ type: MessageChannel, to: String, msg: String, from: String? = nil) -> ByteBuffer {
    let sender = from ?? (type == .email ? "noreply@example.com" : "+15550000000")
    return ByteBuffer(string: JSONValue.object(["type": .string(type.rawValue), "data": .object(["from": .string(sender), "to": .string(to), "msg": .string(msg)])]).canonicalText)
}

func recipient(_ type: MessageChannel, _ i: Int) -> String {
    type == .email ? "user\(i)@example.com" : "+1555\(String(format: "%07d", i))"
}

func json(_ r: TestResponse) throws -> JSONValue { try JSONParser.parse(Array(r.body.readableBytesView)) }

/// Sends one message through the API and returns its id.
@discardableResult
func post(_ client: some TestClientProtocol, _ type: MessageChannel, to: String, msg: String, headers: HTTPFields = jsonHeaders) async throws -> String {
    let r = try await client.execute(uri: "/api/v1/communication", method: .post, headers: headers, body: body(type, to: to, msg: msg))
    #expect(r.status == .ok)
    return try #require(try json(r)["id"]?.stringValue)
}
