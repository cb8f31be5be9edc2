import Logging
import ServiceLifecycle
import SwitchboardCore
import SwitchboardLifecycle
import SwitchboardTelemetry

/// Consumes one channel's stream and delivers each message through the channel's providers.
///
/// For each batch of entries: `processing` is recorded (compare-and-set: a duplicate entry, or one whose
/// message is already past dispatch, is acknowledged without sending), the messages are delivered
/// concurrently, the outcome (`sent`, `retrying` with a backoff, or `failed`) is recorded, and only then are
/// the entries acknowledged (a `failed` one goes to the dead-letter stream). A crash anywhere before the
/// acknowledgement leaves the entry pending; another consumer takes it over when its lease runs out.
///
/// While a batch is being delivered its leases are renewed every third of the lease (`MessageQueue.renew`),
/// so a slow provider or store does not get the batch's messages delivered a second time by another
/// consumer; a crashed worker renews nothing. Renewal stops after `maxLeaseRenewals` (a delivery stuck for
/// ten leases, five minutes by default): those entries are then taken over like a crashed worker's.
public struct ChannelWorker: Service {
    /// The most renewals of one batch's leases: ten leases' worth at one renewal every third of a lease.
    public static let maxLeaseRenewals = 30

    public let channel: MessageChannel
    let adapters: Adapters
    let providers: [any DeliveryProvider]
    /// Delivers the test messages (made with a test key): the sandbox, whatever `providers` are.
    let testProvider: (any DeliveryProvider)?
    let options: PipelineOptions
    let consumer: String
    let clock: @Sendable () -> Timestamp
    let logger: Logger

    /// - Parameters:
    ///   - providers: tried in order; the next one is used after a retryable failure.
    ///   - consumer: this process's consumer name in the group (unique per process).
    ///   - testProvider: delivers test messages (`Communication.test`, made with a test key) instead of
    ///     `providers`: the sandbox. Without one, a test message fails rather than reach a real provider.
    public init(channel: MessageChannel, adapters: Adapters, providers: [any DeliveryProvider], testProvider: (any DeliveryProvider)? = nil, options: PipelineOptions, consumer: String, logger: Logger, clock: @escaping @Sendable () -> Timestamp = SystemTime.now) {
        precondition(!providers.isEmpty, "a channel needs at least one provider")
        self.channel = channel
        self.adapters = adapters
        self.providers = providers
        self.testProvider = testProvider
        self.options = options
        self.consumer = consumer
        self.clock = clock
        var l = logger
        l[metadataKey: "channel"] = "\(channel.rawValue)"
        self.logger = l
    }

    var stream: String { channel.stream }

    public func run() async throws {
        guard await adapters.queue.createGroupWhenReachable(stream: stream, group: StreamNames.workerGroup, logger: logger) else { return }
        logger.info("worker started", metadata: ["consumer": "\(consumer)", "concurrency": "\(options.concurrency)", "providers": "\(providers.map(\.name).joined(separator: ","))"])
        // Two lanes, so one lane's store round trips overlap with the other's deliveries.
        let lanes = options.concurrency >= 2 ? 2 : 1
        let perLane = max(1, options.concurrency / lanes)
        await withTaskGroup(of: Void.self) { group in
            for lane in 0..<lanes {
                group.addTask { await self.lane(lane, concurrency: perLane) }
            }
        }
        logger.info("worker stopped", metadata: ["consumer": "\(consumer)"])
    }

    func lane(_ index: Int, concurrency: Int) async {
        await ServiceLoop.run("worker pass", logger: logger, metadata: ["lane": "\(index)"]) {
            let entries = try await adapters.queue.read(stream: stream, group: StreamNames.workerGroup, consumer: consumer, count: min(options.batchSize, concurrency * 2), block: options.readBlock)
            if !entries.isEmpty { try await process(entries, concurrency: concurrency) }
            return .zero
        }
    }

    /// Processes one batch of entries end to end. Internal for tests.
    func process(_ entries: [QueueEntry], concurrency: Int) async throws {
        var malformed: [QueueEntry] = []
        var exhausted: [(QueueEntry, DispatchEntry.Reference)] = []
        var work: [(QueueEntry, DispatchEntry.Reference)] = []
        for e in entries {
            guard let d = DispatchEntry.Reference(fields: e.fields) else { malformed.append(e); continue }
            if e.deliveryCount > options.maxDeliveries { exhausted.append((e, d)) } else { work.append((e, d)) }
        }
        if !malformed.isEmpty {
            logger.error("malformed stream entries moved to the dead-letter stream", metadata: ["count": "\(malformed.count)"])
            try await adapters.queue.deadLetter(stream: stream, group: StreamNames.workerGroup, entries: malformed, reason: "malformed entry")
        }
        if !exhausted.isEmpty {
            let reason = "delivered \(options.maxDeliveries) times without being acknowledged"
            let transitions = exhausted.map { StatusTransition(id: $0.1.communicationId, event: .failed(error: ProviderError(code: "max_deliveries", message: reason), provider: nil, dispatchSeq: $0.1.dispatchSeq), at: clock(), service: channel.rawValue) }
            // Failed ones go to the dead-letter stream; an entry whose message was already past dispatch is acknowledged.
            try await adapters.pipeline.record(transitions, settle: exhausted.map(\.0), group: StreamNames.workerGroup)
        }
        guard !work.isEmpty else { return }
        try await adapters.queue.keepingLeases(stream: stream, group: StreamNames.workerGroup, consumer: consumer, ids: work.map(\.0.id), maxRenewals: Self.maxLeaseRenewals, logger: logger) {
            try await deliver(work, concurrency: concurrency)
        }
    }

    /// Records `processing`, delivers, records the outcomes and settles the entries of `work`.
    func deliver(_ work: [(QueueEntry, DispatchEntry.Reference)], concurrency: Int) async throws {
        let now = clock()
        let claimed = try await adapters.pipeline.record(work.map {
            StatusTransition(id: $0.1.communicationId, event: .processing(dispatchSeq: $0.1.dispatchSeq, redelivery: $0.0.deliveryCount > 1), at: now, service: channel.rawValue, watchdog: options.watchdog(from: now))
        }, settle: [], group: StreamNames.workerGroup)
        var skip: [String] = []
        var deliveries: [(QueueEntry, Communication)] = []
        // The trace each delivery joins: its entry's (the router's accept, or the outbox's republication), else
        // its record's.
        var traces: [TraceParent?] = []
        for (outcome, (entry, reference)) in zip(claimed, work) {
            let traceID = reference.traceParent?.traceID ?? ""
            switch outcome {
            case .applied(let c, _):
                deliveries.append((entry, c))
                traces.append(reference.traceParent ?? c.traceParent)
            case .ignored(let c, let reason):
                logger.debug("entry skipped", metadata: ["id": "\(c.id)", "reason": "\(reason)", "trace_id": "\(c.traceParent?.traceID ?? traceID)"])
                skip.append(entry.id)
            case .notFound(let id):
                logger.warning("entry for an unknown communication skipped", metadata: ["id": "\(id)", "trace_id": "\(traceID)"])
                skip.append(entry.id)
            }
        }
        try await adapters.queue.ack(stream: stream, group: StreamNames.workerGroup, ids: skip)
        guard !deliveries.isEmpty else { return }

        let results = await deliverAll(deliveries.map(\.1), traces: traces, concurrency: concurrency)
        var rng = SystemRandomNumberGenerator()
        var transitions: [StatusTransition] = []
        var suppressed: [(communicationID: String, suppression: Suppression)] = []
        for (c, (provider, result)) in zip(deliveries.map(\.1), results) {
            let now = clock()
            let event: StatusEvent
            switch (options.retry.decide(attempt: c.attempts, result: result, using: &rng), result) {
            case (.done, .sent(let pid)):
                event = .sent(provider: provider, providerMessageID: pid)
            case (.fail, .permanent(let e)):
                event = .failed(error: e, provider: provider, dispatchSeq: c.dispatchSeq)
                if adapters.suppressions != nil, let s = Suppressor.suppression(for: c, provider: provider, error: e, at: now) { suppressed.append((c.id, s)) }
            case (.retry(let delay), .retryable(let e)):
                event = .retrying(error: e, provider: provider, nextAttemptAt: now.adding(delay))
            case (.giveUp, .retryable(let e)):
                event = .failed(error: ProviderError(code: e.code, message: "\(e.message) (gave up after \(c.attempts) attempts)"), provider: provider, dispatchSeq: c.dispatchSeq)
            default:
                event = .failed(error: ProviderError(code: "internal", message: "retry policy and result disagree: \(result)"), provider: provider, dispatchSeq: c.dispatchSeq)
            }
            transitions.append(StatusTransition(id: c.id, event: event, at: now, service: channel.rawValue))
        }
        try await adapters.pipeline.record(transitions, settle: deliveries.map(\.0), group: StreamNames.workerGroup)
        // After the outcome is recorded: the list's write never holds up or fails the delivery's record.
        if !suppressed.isEmpty, let store = adapters.suppressions { await Suppressor(store: store, logger: logger).suppress(suppressed) }
    }

    /// Delivers each message, at most `concurrency` at a time; returns (provider name, result) in order. With
    /// tracing on, each delivery is a span child of `traces[i]`, and each provider call a span inside it.
    func deliverAll(_ messages: [Communication], traces: [TraceParent?] = [], concurrency: Int) async -> [(String, DeliveryResult)] {
        var results = [(String, DeliveryResult)?](repeating: nil, count: messages.count)
        await withTaskGroup(of: (Int, String, DeliveryResult).self) { group in
            var next = 0
            func start() {
                let i = next
                let c = messages[i]
                let trace = i < traces.count ? traces[i] : c.traceParent
                next += 1
                group.addTask {
                    let message = OutboundMessage(id: c.id, request: c.request, attempt: c.attempts)
                    let result = await self.options.tracing.withSpan("deliver \(self.channel.rawValue)", parent: trace, kind: .consumer) { span in
                        span?.set("switchboard.communication_id", c.id)
                        span?.set("switchboard.attempt", c.attempts)
                        span?.set("switchboard.dispatch_seq", c.dispatchSeq)
                        let result = c.test ? await self.deliverTest(message, trace: trace) : await self.deliver(message, trace: span?.traceParent ?? trace)
                        span?.set("switchboard.provider", result.0)
                        span?.set("switchboard.outcome", result.1.outcomeName)
                        if case .sent = result.1 {} else { span?.fail(result.1.outcomeName) }
                        return result
                    }
                    return (i, result.0, result.1)
                }
            }
            while next < messages.count && next < concurrency { start() }
            for await (i, p, r) in group {
                results[i] = (p, r)
                if next < messages.count { start() }
            }
        }
        return results.map { $0! }
    }

    /// Delivers a test message through the test provider (the sandbox), never a real one.
    func deliverTest(_ message: OutboundMessage, trace: TraceParent? = nil) async -> (String, DeliveryResult) {
        guard let testProvider else {
            logger.error("test message not delivered: no sandbox for test messages", metadata: ["id": "\(message.id)", "test": "true", "trace_id": "\(trace?.traceID ?? "")"])
            return ("none", .permanent(ProviderError(code: "no_test_provider", message: "a test key's message goes only to the sandbox, which this worker does not have")))
        }
        logger.debug("test message delivered by the sandbox", metadata: ["id": "\(message.id)", "test": "true", "trace_id": "\(trace?.traceID ?? "")"])
        return (testProvider.name, await testProvider.deliver(message))
    }

    /// Tries the providers in order; a retryable failure moves on to the next one.
    /// With tracing on, each provider call is a span (kind client) child of `trace`: the HTTP call to Twilio or
    /// Meta, the SMTP dialogue.
    func deliver(_ message: OutboundMessage, trace: TraceParent? = nil) async -> (String, DeliveryResult) {
        var last: (String, DeliveryResult)?
        for provider in providers {
            let result = await options.tracing.withSpan("provider \(provider.name)", parent: trace, kind: .client) { span in
                span?.set("switchboard.provider", provider.name)
                span?.set("switchboard.communication_id", message.id)
                let result = await provider.deliver(message)
                span?.set("switchboard.outcome", result.outcomeName)
                switch result {
                case .sent: break
                case .retryable(let e), .permanent(let e): span?.fail(e.description)
                }
                return result
            }
            switch result {
            case .sent, .permanent: return (provider.name, result)
            case .retryable(let e):
                logger.info("provider failed, retryable", metadata: ["id": "\(message.id)", "provider": "\(provider.name)", "error": "\(e)", "trace_id": "\(trace?.traceID ?? "")"])
                last = (provider.name, result)
            }
        }
        return last!
    }
}

extension DeliveryResult {
    /// `sent`, `retryable` or `permanent`: a span attribute.
    var outcomeName: String {
        switch self {
        case .sent: "sent"
        case .retryable: "retryable"
        case .permanent: "permanent"
        }
    }
}
