import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import SwitchboardApp
import SwitchboardCore
import SwitchboardSandbox
import SwitchboardServer
import SwitchboardTestSystem
import Testing

/// The trace context of a message with tracing not exported (the default): the trace id is still kept on the
/// record, carried in the stream entries (the first and the outbox's republication of a retry) and the log
/// records, and answered.
@Suite("Trace context travels with the message", .serialized)
struct TraceContextTests {
    static let traceparent = HTTPField.Name("traceparent")!
    static let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    static let traceID = "4bf92f3577b34da6a3ce929d0e0e4736"

    func send(_ client: some TestClientProtocol, to: String, traceparent: String?) async throws -> (id: String, answered: TraceParent?) {
        var headers = jsonHeaders
        if let traceparent { headers[Self.traceparent] = traceparent }
        let r = try await client.execute(uri: "/api/v1/communication", method: .post, headers: headers, body: body(.sms, to: to, msg: "traced"))
        #expect(r.status == .ok)
        return (try #require(try json(r)["id"]?.stringValue), r.headers[Self.traceparent].flatMap { TraceParent(parsing: $0) })
    }

    @Test("the caller's traceparent is on the record, its stream entry, the answer and the API's JSON; the outbox's republication of a retry carries it; with tracing off, none or an invalid one makes no trace (nothing stored)", arguments: [true, false])
    func travels(atomic: Bool) async throws {
        var configured = try SwitchboardSystem(settings: testSettings(), logger: quietLogger())
        if !atomic { configured.usePortByPortPipeline() }
        let system = configured
        let incoming = try #require(TraceParent(parsing: Self.incoming))
        try await system.application().test(.router) { client in
            // No worker runs: the entries stay in the stream to be read.
            let (id, answered) = try await send(client, to: "+15550000001", traceparent: Self.incoming)
            // Tracing is off: the record keeps the caller's context itself, and the answer gives it back.
            #expect(answered == incoming)
            let c = try #require(try await system.adapters.store.communication(id: id))
            #expect(c.traceParent == incoming)
            let entry = try #require(try await system.adapters.queue.entries(stream: "sms_stream", limit: 100).first { $0.fields["_id"] == id })
            #expect(entry.fields["traceparent"] == Self.incoming)
            #expect(try json(try await client.execute(uri: "/api/v1/communication/\(id)", method: .get))["traceId"] == .string(Self.traceID))

            // A retry, an hour later as far as the outbox can tell: republished with the same trace.
            let now = SystemTime.now()
            try await system.adapters.pipeline.record([
                StatusTransition(id: id, event: .processing(dispatchSeq: 1, redelivery: false), at: now, service: "sms"),
                StatusTransition(id: id, event: .retrying(error: ProviderError(code: "503", message: "unavailable"), provider: "twilio", nextAttemptAt: now), at: now, service: "sms"),
            ], settle: [], group: StreamNames.workerGroup)
            let outbox = OutboxScheduler(adapters: system.adapters, options: system.pipelineOptions, logger: quietLogger(), clock: { now.adding(.seconds(3600)) })
            #expect(try await outbox.runOnce() >= 1)
            let entries = try await system.adapters.queue.entries(stream: "sms_stream", limit: 100).filter { $0.fields["_id"] == id }
            #expect(entries.map { $0.fields["seq"] } == ["1", "2"])
            #expect(entries.allSatisfy { $0.fields["traceparent"] == Self.incoming })

            // No traceparent, or one that is not valid, with tracing off (these settings): no trace is made, nothing
            // is stored or answered, so tracing off costs the hot path nothing. (With tracing on a new trace starts
            // at the router: scripts/trace_test.py.)
            for header in [nil, "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "nonsense"] {
                let (other, answer) = try await send(client, to: "+15550000002", traceparent: header)
                #expect(answer == nil)
                #expect(try await system.adapters.store.communication(id: other)?.traceParent == nil)
                let otherEntry = try await system.adapters.queue.entries(stream: "sms_stream", limit: 100).first { $0.fields["_id"] == other }
                #expect(otherEntry != nil && otherEntry?.fields["traceparent"] == nil)
            }
        }
        await system.database.close()
    }

    @Test("delivered after retries: every log record of the message, in communication-logs, has its trace id", arguments: [true, false])
    func logRecords(atomic: Bool) async throws {
        var configured = try SwitchboardSystem(settings: testSettings(maxAttempts: 3), logger: quietLogger())
        if !atomic { configured.usePortByPortPipeline() }
        let system = configured
        let running = Running(system)
        try await system.application().test(.router) { client in
            let (id, _) = try await send(client, to: SandboxProvider.MagicRecipient.flakyPhone, traceparent: Self.incoming)
            try await eventually("sent") { try await system.adapters.store.communication(id: id)?.status == .sent }
            try await eventually("logs of \(id)") {
                let logs = try json(try await client.execute(uri: "/api/v1/logs?communicationId=\(id)&limit=100", method: .get))
                guard case .array(let items)? = logs["items"] else { return false }
                let statuses = Set(items.compactMap { $0["status"]?.stringValue })
                guard statuses.isSuperset(of: ["pending", "retrying", "sent"]) else { return false }
                #expect(items.allSatisfy { $0["traceId"] == .string(Self.traceID) }, "\(items)")
                return true
            }
        }
        try await running.stop()
        await system.database.close()
    }
}
