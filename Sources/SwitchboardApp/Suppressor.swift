import Logging
import SwitchboardCore

/// Puts recipients on the suppression list after a provider said they must not be sent to again
/// (`SuppressionRules`): called by the `ChannelWorker` for the permanent failures of a batch, after their
/// outcome is recorded. A failure to write the list is logged, never the delivery's failure: the message's record
/// stands, and the next bounce of the recipient tries again.
public struct Suppressor: Sendable {
    let store: any SuppressionStore
    let logger: Logger

    public init(store: any SuppressionStore, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    /// The entry a permanent failure makes, if it is one that suppresses. Test messages (a test key's, delivered by
    /// the sandbox) suppress like the others: that is how a client tries the list.
    public static func suppression(for c: Communication, provider: String, error: ProviderError, at: Timestamp) -> Suppression? {
        guard let reason = SuppressionRules.reason(provider: provider, channel: c.channel, error: error) else { return nil }
        return Suppression(channel: c.channel, to: c.request.to, reason: reason, source: .provider, detail: "\(provider) \(error.code ?? "")", createdAt: at)
    }

    /// Stores `entries`, logging each (the recipient is not logged whole: its domain or last digits only).
    public func suppress(_ entries: [(communicationID: String, suppression: Suppression)]) async {
        for (id, s) in entries {
            do {
                try await store.add(s)
                logger.info("recipient suppressed after a provider's answer", metadata: ["id": "\(id)", "channel": "\(s.channel.rawValue)", "recipient": "\(Self.masked(s.to))", "detail": "\(s.detail ?? "")"])
            } catch {
                logger.error("could not write the suppression list (the delivery's outcome is recorded)", metadata: ["id": "\(id)", "channel": "\(s.channel.rawValue)", "error": "\(error)"])
            }
        }
    }

    /// `…@example.com`, `…0042`: enough to find the entry, not the whole address in a log.
    static func masked(_ to: String) -> String {
        if let at = to.lastIndex(of: "@") { return "…" + to[at...] }
        return "…" + to.suffix(4)
    }
}
