/// One delivery attempt handed to a provider.
public struct OutboundMessage: Sendable, Hashable {
    public var id: String
    public var request: CommunicationRequest
    /// 1 for the first attempt.
    public var attempt: Int

    public init(id: String, request: CommunicationRequest, attempt: Int) {
        self.id = id
        self.request = request
        self.attempt = attempt
    }
}

/// A provider's answer to one attempt.
public enum DeliveryResult: Sendable, Hashable {
    /// Accepted, with the provider's message id (Twilio sid, wamid, SMTP Message-ID).
    case sent(providerMessageID: String?)
    /// Failed, worth trying again (timeouts, 429, 5xx, SMTP 4xx).
    case retryable(ProviderError)
    /// Failed for good (invalid recipient, opted out, SMTP 5xx, auth).
    case permanent(ProviderError)
}

/// A delivery provider (SMTP, Twilio, Meta, the sandbox): the outbound port.
public protocol DeliveryProvider: Sendable {
    /// Name recorded on the message (`sandbox`, `twilio`, `smtp`, `meta`).
    var name: String { get }
    /// Delivers one message. Never throws: every failure is a `DeliveryResult`.
    func deliver(_ message: OutboundMessage) async -> DeliveryResult
}
