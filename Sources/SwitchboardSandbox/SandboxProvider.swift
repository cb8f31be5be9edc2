import SwitchboardCore

/// The sandbox: a provider for every channel that delivers by recording the message in a
/// `SandboxMailbox` (`GET /api/v1/sandbox/messages`). It is the default while a channel has no credentials.
///
/// Like a payment sandbox's test card numbers, some recipients make it fail on purpose:
///
/// | recipient (SMS / WhatsApp) | recipient (email)            | behaviour                                        |
/// |----------------------------|------------------------------|--------------------------------------------------|
/// | `+15005550001`             | `fail-permanent@sandbox.test`| fails permanently on every attempt               |
/// | `+15005550002`             | `fail-transient@sandbox.test`| fails with a retryable error on every attempt    |
/// | `+15005550003`             | `flaky@sandbox.test`         | fails retryably on attempts 1 and 2, then is sent|
/// | `+15005550004`             | `unknown@sandbox.test`       | fails permanently as an opted-out recipient (SMS: Twilio `21610`, WhatsApp: Meta `131050`) or an unknown mailbox (`550 5.1.1`): the recipient is then suppressed |
public struct SandboxProvider: DeliveryProvider {
    /// The magic recipients.
    public enum MagicRecipient {
        public static let permanentPhone = "+15005550001"
        public static let transientPhone = "+15005550002"
        public static let flakyPhone = "+15005550003"
        public static let permanentEmail = "fail-permanent@sandbox.test"
        public static let transientEmail = "fail-transient@sandbox.test"
        public static let flakyEmail = "flaky@sandbox.test"
        public static let optedOutPhone = "+15005550004"
        public static let unknownEmail = "unknown@sandbox.test"
    }

    public let name = "sandbox"
    let mailbox: any SandboxMailbox
    let clock: @Sendable () -> Timestamp

    public init(mailbox: any SandboxMailbox, clock: @escaping @Sendable () -> Timestamp) {
        self.mailbox = mailbox
        self.clock = clock
    }

    public func deliver(_ message: OutboundMessage) async -> DeliveryResult {
        let to = message.request.to.lowercased()
        switch to {
        case MagicRecipient.permanentPhone, MagicRecipient.permanentEmail:
            return .permanent(ProviderError(code: "SANDBOX_REJECTED", message: "sandbox: recipient \(message.request.to) rejects every message"))
        case MagicRecipient.transientPhone, MagicRecipient.transientEmail:
            return .retryable(ProviderError(code: "SANDBOX_UNAVAILABLE", message: "sandbox: recipient \(message.request.to) is temporarily unavailable (attempt \(message.attempt))"))
        case MagicRecipient.flakyPhone, MagicRecipient.flakyEmail:
            if message.attempt <= 2 {
                return .retryable(ProviderError(code: "SANDBOX_FLAKY", message: "sandbox: transient failure \(message.attempt) of 2"))
            }
        case MagicRecipient.optedOutPhone where message.request.channel == .whatsapp:
            return .permanent(ProviderError(code: "131050", message: "sandbox: recipient \(message.request.to) has chosen to stop receiving marketing messages from this business"))
        case MagicRecipient.optedOutPhone:
            return .permanent(ProviderError(code: "21610", message: "sandbox: attempt to send to unsubscribed recipient \(message.request.to)"))
        case MagicRecipient.unknownEmail:
            return .permanent(ProviderError(code: "550 5.1.1", message: "RCPT TO <\(message.request.to)>: sandbox: user unknown"))
        default:
            break
        }
        let providerID = "sbx_\(message.id)_\(message.attempt)"
        do {
            try await mailbox.record(SandboxMessage(communicationId: message.id, channel: message.request.channel, from: message.request.from, to: message.request.to, msg: message.request.msg, subject: message.request.subject, attempt: message.attempt, providerMessageID: providerID, at: clock()))
        } catch {
            return .retryable(ProviderError(code: "SANDBOX_STORE", message: "sandbox could not record the message: \(error)"))
        }
        return .sent(providerMessageID: providerID)
    }
}
