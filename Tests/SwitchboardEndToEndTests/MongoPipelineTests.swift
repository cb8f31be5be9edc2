import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import SwitchboardTestSystem
import Testing
import SwitchboardApp
import SwitchboardCore
import SwitchboardSandbox
import SwitchboardServer
import SwitchboardTestSupport

@Suite("MONGODB_URL settings")
struct MongoSettingsTests {
    @Test("MONGODB_URL selects the MongoDB store when built with the trait, and is refused with a clear error otherwise")
    func settings() throws {
        let env = ["MONGODB_URL": "mongodb://app:s3cr3t@db1.internal:27017,db2.internal:27017/comms?replicaSet=rs0&authSource=admin"]
        if Settings.mongoDBAvailable {
            let s = try Settings.fromEnvironment(env)
            #expect(s.mongoURL == env["MONGODB_URL"])
            let store = try #require(s.summary.first { $0.0 == "store" }?.1)
            #expect(store == "mongodb mongodb://app:****@db1.internal:27017,db2.internal:27017/comms?replicaSet=rs0&authSource=admin")
            #expect(!s.summary.contains { $0.1.contains("s3cr3t") })
            do {
                _ = try Settings.fromEnvironment(["MONGODB_URL": "mongodb://app:s3cr3t@host:notaport/"])
                Issue.record("a bad port was accepted")
            } catch {
                #expect(!"\(error)".contains("s3cr3t") && "\(error)".contains("MONGODB_URL"))
            }
        } else {
            do {
                _ = try Settings.fromEnvironment(env)
                Issue.record("MONGODB_URL accepted by a build without the MongoDB store")
            } catch {
                #expect("\(error)".contains("--traits MongoDB") && !"\(error)".contains("s3cr3t"))
            }
        }
        #expect(try Settings.fromEnvironment([:]).mongoURL == nil)
        #expect(Settings.variables.contains { $0.name == "MONGODB_URL" })
    }
}

#if MongoDB
@Suite("On the MongoDB store, in one process", .serialized, .timeLimit(.minutes(3)))
struct MongoPipelineTests {
    @Test("150 messages over the three channels reach sent, with their history; a magic failure recipient ends failed")
    func pipeline() async throws {
        try await withSecantusServer { mongo in
            // The default lease (30 s), not the 4 s of the other end-to-end tests: this test asserts one attempt
            // per message, and a batch's store round trips to the Python peer under a loaded CI run have taken
            // over 4 s (the entries were then rightly delivered again, attempt 2).
            var settings = fastSettings(name: "e2e-mongo", lease: .seconds(30))
            settings.mongoURL = mongo.url(database: "switchboard-e2e")
            let system = try SwitchboardSystem(settings: settings, logger: quietLogger())
            #expect(system.adapters.names.store == "mongodb" && system.adapters.names.queue == "sqlite")
            #expect(system.adapters.writePath is PortByPortPipeline)
            #expect(system.mongoStore != nil)
            let running = Running(system)
            try await system.application().test(.router) { client in
                var ids: [String] = []
                try await withThrowingTaskGroup(of: String.self) { group in
                    for type in MessageChannel.allCases {
                        for i in 0..<50 {
                            group.addTask { try await post(client, type, to: recipient(type, i), msg: "mongo \(type.rawValue) number \(i)") }
                        }
                    }
                    for try await id in group { ids.append(id) }
                }
                let doomed = try await post(client, .sms, to: SandboxProvider.MagicRecipient.permanentPhone, msg: "never arrives")
                try await eventually("150 sent") { try await count(system, .sent) == 150 }
                try await eventually("the magic recipient failed") { try await system.adapters.store.communication(id: doomed)?.status == .failed }
                #expect(try await total(system) == 151)
                #expect(Set(try await system.adapters.mailbox!.messages(channel: nil, to: nil, limit: 1000).map(\.communicationId)) == Set(ids))

                let shown = try json(try await client.execute(uri: "/api/v1/communication/\(ids[0])", method: .get))
                #expect(shown["status"] == .string("sent") && shown["provider"] == .string("sandbox") && shown["attempts"] == .number(1), "history: \(shown["history"].map { "\($0)" } ?? "none")")
                guard case .array(let history)? = shown["history"] else { Issue.record("no history"); return }
                let statuses = history.compactMap { $0["status"]?.stringValue }
                #expect(statuses.first == "pending" && statuses.last == "sent" && statuses.contains("processing"))

                let failed = try json(try await client.execute(uri: "/api/v1/communication/\(doomed)", method: .get))
                #expect(failed["status"] == .string("failed"))
                #expect(failed["lastError"] != nil && failed["lastError"] != .null)

                let ready = try await client.execute(uri: "/api/v1/health", method: .get)
                #expect(ready.status == .ok)
                #expect(try json(ready)["dependencies"]?["store"] == .object(["engine": .string("mongodb"), "status": .string("up"), "error": .null]))
            }
            try await running.stop()
            await system.close()
        }
    }
}
#endif
