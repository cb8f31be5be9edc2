import CoreMetrics
import Synchronization

/// The message counters and histograms, made once (a label lookup per increment would cost the hot path):
/// one handle per channel, channel and status, channel and provider.
public final class MessageMetrics: Sendable {
    private let accepted: [String: Counter]
    private let transitions: [String: [String: Counter]]
    private let attempts: [String: Recorder]
    private let delivery: Mutex<[String: Timer]>
    private let factory: any MetricsFactory

    /// - Parameters:
    ///   - channels: the channels' names (`email`, `sms`, `whatsapp`).
    ///   - statuses: every status's name.
    public init(channels: [String], statuses: [String], factory: any MetricsFactory = MetricsSystem.factory) {
        self.factory = factory
        var accepted: [String: Counter] = [:]
        var transitions: [String: [String: Counter]] = [:]
        var attempts: [String: Recorder] = [:]
        for c in channels {
            accepted[c] = Counter(label: MetricName.messagesAccepted, dimensions: [("channel", c)], factory: factory)
            attempts[c] = Recorder(label: MetricName.messageAttempts, dimensions: [("channel", c)], aggregate: true, factory: factory)
            var byStatus: [String: Counter] = [:]
            for s in statuses {
                byStatus[s] = Counter(label: MetricName.statusTransitions, dimensions: [("channel", c), ("status", s)], factory: factory)
            }
            transitions[c] = byStatus
        }
        self.accepted = accepted
        self.transitions = transitions
        self.attempts = attempts
        self.delivery = Mutex([:])
    }

    /// One message accepted on `channel`.
    public func accepted(channel: String) {
        accepted[channel]?.increment()
    }

    /// One status change to `status` recorded for a message of `channel`.
    public func transition(channel: String, status: String) {
        transitions[channel]?[status]?.increment()
    }

    /// A message of `channel` ended after `count` attempts.
    public func attempts(channel: String, count: Int) {
        attempts[channel]?.record(count)
    }

    /// A message of `channel` was sent by `provider` `nanoseconds` after it was accepted.
    public func delivered(channel: String, provider: String, nanoseconds: Int64) {
        let key = channel + "\u{0}" + provider
        let timer = delivery.withLock { cache in
            if let t = cache[key] { return t }
            let t = Timer(label: MetricName.deliveryDuration, dimensions: [("channel", channel), ("provider", provider)], factory: factory)
            cache[key] = t
            return t
        }
        timer.recordNanoseconds(max(0, nanoseconds))
    }
}
