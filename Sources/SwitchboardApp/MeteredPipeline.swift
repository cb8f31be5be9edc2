import SwitchboardCore
import CoreMetrics
import SwitchboardTelemetry

/// The write path with its message metrics: every service's status changes go through `Pipeline`, so this is
/// the one place they are counted. A message accepted once is counted once (an idempotent replay is not), and
/// a transition is counted when the store applied it (a duplicate or stale one it ignored is not), so the
/// counters are exact: after N accepted messages of which M fail, `accepted` says N and `failed` M.
public struct MeteredPipeline: Pipeline {
    /// The pipeline that does the writing.
    public let base: any Pipeline
    let metrics: MessageMetrics
    let clock: @Sendable () -> Timestamp

    public init(_ base: any Pipeline, metrics: MessageMetrics, clock: @escaping @Sendable () -> Timestamp = SystemTime.now) {
        self.base = base
        self.metrics = metrics
        self.clock = clock
    }

    /// The message metrics for every channel and status.
    public static func messageMetrics(factory: (any MetricsFactory)? = nil) -> MessageMetrics {
        MessageMetrics(
            channels: MessageChannel.allCases.map(\.rawValue), statuses: CommunicationStatus.allCases.map(\.rawValue),
            factory: factory ?? MetricsSystem.factory)
    }

    public func accept(_ items: [NewCommunication], queuedAt: Timestamp, service: String) async throws -> [CreateOutcome] {
        let outcomes = try await base.accept(items, queuedAt: queuedAt, service: service)
        for case .created(let c) in outcomes {
            let channel = c.channel.rawValue
            metrics.accepted(channel: channel)
            for change in c.history { metrics.transition(channel: channel, status: change.status.rawValue) }
        }
        return outcomes
    }

    public func record(_ transitions: [StatusTransition], settle: [QueueEntry?], group: String) async throws -> [TransitionOutcome] {
        let outcomes = try await base.record(transitions, settle: settle, group: group)
        for case .applied(let c, let change) in outcomes {
            let channel = c.channel.rawValue
            metrics.transition(channel: channel, status: change.status.rawValue)
            switch change.status {
            case .sent:
                metrics.delivered(channel: channel, provider: change.provider ?? c.provider ?? "unknown", nanoseconds: (change.at.milliseconds - c.createdAt.milliseconds) * 1_000_000)
                metrics.attempts(channel: channel, count: c.attempts)
            case .failed:
                metrics.attempts(channel: channel, count: c.attempts)
            default:
                break
            }
        }
        return outcomes
    }

    public func readLogs(group: String, consumer: String, count: Int, block: Duration) async throws -> LogBatch {
        try await base.readLogs(group: group, consumer: consumer, count: count, block: block)
    }

    public func indexLogs(_ records: [LogRecord], consuming batch: LogBatch, deadLetters: [QueueEntry], reason: String, group: String) async throws {
        try await base.indexLogs(records, consuming: batch, deadLetters: deadLetters, reason: reason, group: group)
    }
}
