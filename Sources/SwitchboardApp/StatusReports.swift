import Logging
import SwitchboardCore

/// Applies provider status reports: finds the communication by the provider's message id and records a
/// `reported` event through the state machine (monotonic: late and duplicate reports change nothing).
public struct StatusReportIngest: Sendable {
    let adapters: Adapters
    let clock: @Sendable () -> Timestamp
    let logger: Logger

    /// - Parameter clock: the time recorded on each transition.
    public init(adapters: Adapters, logger: Logger, clock: @escaping @Sendable () -> Timestamp = SystemTime.now) {
        self.adapters = adapters
        self.clock = clock
        self.logger = logger
    }

    /// What happened to one report.
    public enum Outcome: Sendable, Hashable {
        case applied(id: String, status: CommunicationStatus)
        case ignored(id: String, reason: String)
        case unknownMessage(providerMessageID: String)
        case untracked(rawStatus: String)
    }

    /// Records each report; store errors are thrown (the provider then retries the webhook).
    @discardableResult
    public func ingest(_ reports: [ProviderStatusReport], service: String) async throws -> [Outcome] {
        var outcomes: [Outcome] = []
        for report in reports {
            guard let status = report.status else { outcomes.append(.untracked(rawStatus: report.rawStatus)); continue }
            guard let c = try await adapters.store.communication(providerMessageID: report.providerMessageID) else {
                logger.notice("status report for an unknown message", metadata: ["providerMessageId": "\(report.providerMessageID)", "status": "\(report.rawStatus)"])
                outcomes.append(.unknownMessage(providerMessageID: report.providerMessageID))
                continue
            }
            let result = try await adapters.pipeline.record([StatusTransition(id: c.id, event: .reported(status: status, error: report.error), at: clock(), service: service)], settle: [], group: "")
            switch result.first {
            case .applied(let applied, _)?:
                outcomes.append(.applied(id: applied.id, status: applied.status))
                // A late "never again" (Twilio's undelivered callback with 21610): the recipient is suppressed too.
                if let store = adapters.suppressions, status == .failed || status == .undelivered, let error = report.error,
                    let s = Suppressor.suppression(for: c, provider: c.provider ?? service, error: error, at: clock())
                {
                    await Suppressor(store: store, logger: logger).suppress([(c.id, s)])
                }
            case .ignored(let c, let reason)?: outcomes.append(.ignored(id: c.id, reason: reason))
            default: outcomes.append(.unknownMessage(providerMessageID: report.providerMessageID))
            }
        }
        return outcomes
    }
}
