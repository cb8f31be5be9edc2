import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import SwitchboardApp
import SwitchboardCore
import SwitchboardServer
import SwitchboardTestSystem
import Testing

@Suite("Scheduled sends: data.sendAt keeps a message scheduled, off its stream, until the outbox publishes it", .serialized)
struct SchedulingTests {
    static func scheduledBody(_ i: Int, sendAt: String) -> ByteBuffer {
        ByteBuffer(string: JSONValue.object([
            "type": .string("sms"),
            "data": .object(["from": .string("+15550000000"), "to": .string(recipient(.sms, i)), "msg": .string("later \(i)"), "sendAt": .string(sendAt)]),
        ]).canonicalText)
    }

    @Test("scheduled, on no stream, sent within a second of its time; a cancelled one never sent; a past time sends at once", arguments: [true, false])
    func scheduledThenSent(atomic: Bool) async throws {
        var configured = try SwitchboardSystem(settings: testSettings(), logger: quietLogger(), metrics: PrometheusExposition())
        if !atomic { configured.usePortByPortPipeline() }
        let system = configured
        let running = Running(system)
        try await system.application().test(.router) { client in
            // A time already past: sent at once, as without one. It goes first and is timed: on a loaded machine (the
            // suites run in parallel) a POST can take seconds, and the send time below must come after three more.
            let t0 = ContinuousClock.now
            let past = try json(try await client.execute(uri: "/api/v1/communication", method: .post, headers: jsonHeaders, body: Self.scheduledBody(9, sendAt: "2020-01-01T00:00:00Z")))
            let lead = min(20_000, max(3_000, Int64((ContinuousClock.now - t0).components.seconds * 1000) * 10))
            #expect(past["status"] == .string("queued"))
            let pastID = try #require(past["id"]?.stringValue)
            let sendAt = Timestamp(milliseconds: SystemTime.now().milliseconds + lead)
            var ids: [String] = []
            for i in 0..<3 {
                let r = try await client.execute(uri: "/api/v1/communication", method: .post, headers: jsonHeaders, body: Self.scheduledBody(i, sendAt: sendAt.iso8601))
                #expect(r.status == .ok)
                let answer = try json(r)
                #expect(answer["status"] == .string("scheduled"), "\(answer); now - sendAt = \(SystemTime.now().milliseconds - sendAt.milliseconds) ms")
                #expect(answer["data"]?["sendAt"] == .string(sendAt.iso8601))
                ids.append(try #require(answer["id"]?.stringValue))
            }
            try await eventually("the past-time message sent") { try await system.adapters.store.communication(id: pastID)?.status == .sent }

            // Before its time: scheduled, with its history, on no stream, and cancellable.
            let shown = try json(try await client.execute(uri: "/api/v1/communication/\(ids[0])", method: .get))
            #expect(shown["status"] == .string("scheduled"))
            guard case .array(let history)? = shown["history"] else { Issue.record("no history"); return }
            #expect(history.map { $0["status"] } == [.string("pending"), .string("scheduled")])
            let cancel = try await client.execute(uri: "/api/v1/communication/\(ids[2])/cancel", method: .post)
            #expect(cancel.status == .ok)
            #expect(try json(cancel)["status"] == .string("cancelled"))
            let stats = try json(try await client.execute(uri: "/api/v1/stats", method: .get))
            #expect(stats["communications"]?["byStatus"]?["scheduled"] == .number(2), "\(stats)")
            #expect(try await system.adapters.mailbox!.messages(channel: nil, to: nil, limit: 10).map(\.communicationId) == [pastID])
            // Searchable by its status.
            try await eventually("scheduled messages in the search index") {
                guard case .array(let items)? = try json(try await client.execute(uri: "/api/v1/communications?status=scheduled", method: .get))["items"] else { return false }
                return Set(items.compactMap { $0["id"]?.stringValue }) == Set(ids[0..<2])
            }

            // At its time: published by the outbox and sent within a second.
            for id in ids[0..<2] {
                try await eventually(timeout: .seconds(60) + .milliseconds(lead), "\(id) sent") { try await system.adapters.store.communication(id: id)?.status == .sent }
                let c = try #require(try await system.adapters.store.communication(id: id))
                let queued = try #require(c.history.first { $0.status == .queued })
                #expect(queued.at >= sendAt, "published before its time: \(queued.at) < \(sendAt)")
                // Within a second on an idle machine (scripts/bench-scheduled.sh measures it); a loaded test run gets slack.
                #expect(queued.at.milliseconds - sendAt.milliseconds < 3_000, "published \(queued.at.milliseconds - sendAt.milliseconds) ms after its time")
                #expect(c.history.map(\.status) == [.pending, .scheduled, .queued, .processing, .sent])
            }
            #expect(try await system.adapters.store.communication(id: ids[2])?.status == .cancelled)
            let delivered = Set(try await system.adapters.mailbox!.messages(channel: nil, to: nil, limit: 10).map(\.communicationId))
            #expect(delivered == Set([pastID, ids[0], ids[1]]))
        }
        try await running.stop()
        await system.close()
    }

    @Test("bad send times: 400 naming data.sendAt")
    func badSendTimes() async throws {
        let system = try SwitchboardSystem(settings: testSettings(), logger: quietLogger(), metrics: PrometheusExposition())
        try await system.application().test(.router) { client in
            let tooFar = Timestamp(milliseconds: SystemTime.now().milliseconds + 400 * 86_400_000).iso8601
            for (sendAt, code) in [("tomorrow", "invalid_send_at"), ("1767225600000", "invalid_send_at"), ("2026-12-24T09:00:00", "invalid_send_at"), (tooFar, "invalid_send_at")] {
                let r = try await client.execute(uri: "/api/v1/communication", method: .post, headers: jsonHeaders, body: Self.scheduledBody(1, sendAt: sendAt))
                #expect(r.status == .badRequest, "\(sendAt)")
                let error = try json(r)["error"]
                #expect(error?["code"] == .string(code) && error?["field"] == .string("data.sendAt"), "\(sendAt): \(String(describing: error))")
            }
            let number = ByteBuffer(string: #"{"type":"sms","data":{"from":"+15550000000","to":"+15550000001","msg":"x","sendAt":1767225600000}}"#)
            let r = try await client.execute(uri: "/api/v1/communication", method: .post, headers: jsonHeaders, body: number)
            #expect(r.status == .badRequest)
            #expect(try json(r)["error"]?["code"] == .string("invalid_field_type"))
            #expect(try await total(system) == 0)
        }
        await system.close()
    }
}
