#if MongoDB
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import SwitchboardTestSystem
import Testing
import SwitchboardApp
import SwitchboardCore
@testable import SwitchboardMongo
import SwitchboardServer
import SwitchboardTestSupport

@Suite("Email attachments on the MongoDB store", .serialized, .timeLimit(.minutes(3)))
struct MongoAttachmentsTests {
    @Test("the files go to MongoDB's attachments collection once (a replay too), the message holds their digests, and the SMTP worker sends them")
    func attachments() async throws {
        try await withSecantusServer { mongo in
            try await withSMTPTestServer(.init(mode: .plain)) { smtp in
                var settings = fastSettings(
                    try Settings.fromEnvironment(["SWITCHBOARD_SMTP_HOST": "127.0.0.1", "SWITCHBOARD_SMTP_PORT": "\(smtp.port)", "SWITCHBOARD_SMTP_TLS": "none"]),
                    name: "e2e-mongo-attachments", lease: .seconds(30))
                settings.mongoURL = mongo.url(database: "switchboard-attachments")
                let system = try SwitchboardSystem(settings: settings, logger: quietLogger())
                #expect(system.adapters.names.store == "mongodb")
                let store = try #require(system.adapters.attachments as? MongoAttachmentStore)
                let file: [UInt8] = (0..<20_000).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ $0 >> 8) }
                let body = JSONValue.object(["type": .string("email"), "data": .object([
                    "from": .string("ada@example.com"), "to": .string("bob@example.org"), "msg": .string("attached"), "bcc": .array([.string("audit@example.com")]),
                    "attachments": .array([.object(["filename": .string("données.bin"), "contentType": .string("application/octet-stream"), "content": .string(Data(file).base64EncodedString())])]),
                ])]).canonicalText
                let running = Running(system)
                try await system.application().test(.router) { client in
                    var headers = jsonHeaders
                    headers[HTTPField.Name("Idempotency-Key")!] = "mongo-files"
                    var ids: [String] = []
                    for _ in 0..<2 {
                        let r = try await client.execute(uri: "/api/v1/communication", method: .post, headers: headers, body: ByteBuffer(string: body))
                        #expect(r.status == .ok)
                        ids.append(try #require(try json(r)["id"]?.stringValue))
                    }
                    #expect(ids[0] == ids[1])
                    try await eventually("sent") { try await system.adapters.store.communication(id: ids[0])?.status == .sent }
                    let stored = try #require(try await system.adapters.store.communication(id: ids[0]))
                    let sha = try #require(stored.request.attachments.first?.sha256)
                    #expect(!stored.request.data.canonicalText.contains(String(Data(file).base64EncodedString().prefix(200))))
                    #expect(try await store.get(sha256: sha) == file)
                    #expect(try await store.withCollection { c throws(MongoError) in try c.find([:]).count } == 1)
                    let saved = try smtp.messages()
                    try #require(saved.count == 1)
                    #expect(saved[0].envelope.rcpt_tos == ["bob@example.org", "audit@example.com"])
                    let parsed = try await saved[0].parsed()
                    #expect(parsed.parts.last?.filename == "données.bin")
                    #expect(parsed.parts.last?.content_base64.flatMap { Data(base64Encoded: $0) }.map { Array($0) } == file)
                }
                try await running.stop()
                await system.shutdownProviders()
                await system.close()
            }
        }
    }
}
#endif
