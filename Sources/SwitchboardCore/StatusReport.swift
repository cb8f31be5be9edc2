/// A provider's report about a message it accepted earlier (a status webhook), already authenticated.
public struct ProviderStatusReport: Sendable, Hashable {
    /// The provider's id of the message (Twilio `MessageSid`, WhatsApp wamid).
    public var providerMessageID: String
    /// `delivered`, `read`, `undelivered` or `failed`; nil when the report says nothing we track
    /// (e.g. Twilio `queued`, WhatsApp `sent`).
    public var status: CommunicationStatus?
    /// The provider's error, for failed and undelivered reports.
    public var error: ProviderError?
    /// The provider's own word for the status, for logs.
    public var rawStatus: String

    /// Creates a report.
    public init(providerMessageID: String, status: CommunicationStatus?, error: ProviderError? = nil, rawStatus: String) {
        self.providerMessageID = providerMessageID
        self.status = status
        self.error = error
        self.rawStatus = rawStatus
    }
}
