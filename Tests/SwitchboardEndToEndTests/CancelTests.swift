import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import SwitchboardCore
import SwitchboardServer
import SwitchboardTestSystem
import Testing

@Suite("Cancel: a message cancelled before a worker takes it is never delivered", .serialized)
struct CancelTests {
    @Test("queued messages cancelled, then the workers start: their entries are acknowledged without sending; a sent one answers 409; unknown 404", arguments: [true, false])
    func cancelBeforeDelivery(atomic: Bool) async throws {
        var configured = try SwitchboardSystem(settings: testSettings(), logger: quietLogger(), metrics: PrometheusExposition())
        if !atomic { configured.usePortByPortPipeline() }
        let system = configured
        try await system.application().test(.router) { client in
            // Workers not running yet: the messages wait on their stream, queued.
            var cancelled: [String] = []
            for i in 0..<5 { cancelled.append(try await post(client, .sms, to: recipient(.sms, i), msg: "cancel me \(i)")) }
            let kept = try await post(client, .sms, to: recipient(.sms, 99), msg: "deliver me")
            for id in cancelled {
                let r = try await client.execute(uri: "/api/v1/communication/\(id)/cancel", method: .post)
                #expect(r.status == .ok)
                let c = try json(r)
                #expect(c["status"] == .string("cancelled"))
                guard case .array(let history)? = c["history"] else { Issue.record("no history"); return }
                #expect(history.map { $0["status"] } == [.string("pending"), .string("queued"), .string("cancelled")] && history.last?["service"] == .string("router"))
            }
            // Cancelling again answers the message as it is.
            let again = try await client.execute(uri: "/api/v1/communication/\(cancelled[0])/cancel", method: .post)
            let againStatus = try json(again)["status"]
            #expect(again.status == .ok && againStatus == .string("cancelled"))

            let running = Running(system)
            try await eventually("the kept message sent") { try await system.adapters.store.communication(id: kept)?.status == .sent }
            // Every stream entry was consumed (the cancelled ones acknowledged without sending)…
            try await eventually("the sms stream drained") {
                try await system.adapters.queue.info(stream: MessageChannel.sms.stream, group: StreamNames.workerGroup).length == 0
            }
            // …and none of the cancelled messages reached the provider, or changed status.
            let delivered = try await system.adapters.mailbox!.messages(channel: nil, to: nil, limit: 100).map(\.communicationId)
            #expect(delivered == [kept])
            for id in cancelled { #expect(try await system.adapters.store.communication(id: id)?.status == .cancelled) }

            // A message a provider already has cannot be cancelled: 409 naming its status.
            let late = try await client.execute(uri: "/api/v1/communication/\(kept)/cancel", method: .post)
            #expect(late.status == .conflict)
            let error = try json(late)
            #expect(error["error"]?["code"] == .string("not_cancellable") || error["code"] == .string("not_cancellable"), "\(error)")
            #expect(String(buffer: late.body).contains("is sent"))
            let unknown = try await client.execute(uri: "/api/v1/communication/000000000000000000000000/cancel", method: .post)
            #expect(unknown.status == .notFound)

            // The cancellation is in the logs, with the status counted once.
            try await eventually("the cancellation logged") {
                guard case .array(let logs)? = try json(try await client.execute(uri: "/api/v1/logs?communicationId=\(cancelled[1])", method: .get))["items"] else { return false }
                return logs.contains { $0["status"] == .string("cancelled") }
            }
            let stats = try json(try await client.execute(uri: "/api/v1/stats", method: .get))
            #expect(stats["communications"]?["byStatus"]?["cancelled"] == .number(5), "\(stats)")
            try await running.stop()
        }
        await system.close()
    }

    @Test("cancels racing running workers: a message answered cancelled is never delivered; one answered 409 was handed to a provider", arguments: [true, false])
    func racingWorkers(atomic: Bool) async throws {
        var configured = try SwitchboardSystem(settings: testSettings(), logger: quietLogger(), metrics: PrometheusExposition())
        if !atomic { configured.usePortByPortPipeline() }
        let system = configured
        let running = Running(system)
        try await system.application().test(.router) { client in
            // Each message is cancelled as soon as it is accepted, while the workers take the stream's entries.
            let answers = try await withThrowingTaskGroup(of: (String, HTTPResponse.Status).self) { group in
                for i in 0..<150 {
                    group.addTask {
                        let id = try await post(client, .sms, to: recipient(.sms, i), msg: "race \(i)")
                        let r = try await client.execute(uri: "/api/v1/communication/\(id)/cancel", method: .post)
                        return (id, r.status)
                    }
                }
                return try await group.reduce(into: [(String, HTTPResponse.Status)]()) { $0.append($1) }
            }
            let cancelled = Set(answers.filter { $0.1 == .ok }.map(\.0))
            let refused = Set(answers.filter { $0.1 == .conflict }.map(\.0))
            #expect(cancelled.count + refused.count == 150, "other answers: \(answers.filter { $0.1 != .ok && $0.1 != .conflict })")
            try await eventually("all 150 ended") { try await count(system, .sent) + count(system, .cancelled) == 150 }
            let delivered = Set(try await system.adapters.mailbox!.messages(channel: nil, to: nil, limit: 1000).map(\.communicationId))
            #expect(delivered.isDisjoint(with: cancelled), "delivered after being cancelled: \(delivered.intersection(cancelled).sorted())")
            #expect(delivered == refused)
            #expect(try await count(system, .cancelled) == cancelled.count)
            try await eventually("the sms stream drained") {
                try await system.adapters.queue.info(stream: MessageChannel.sms.stream, group: StreamNames.workerGroup).length == 0
            }
        }
        try await running.stop()
        await system.close()
    }
}
