/// Where the sandbox provider records what it delivered.
public protocol SandboxMailbox: Sendable {
    func record(_ message: SandboxMessage) async throws
    /// Newest first.
    func messages(channel: MessageChannel?, to: String?, limit: Int) async throws -> [SandboxMessage]
}

/// A message the sandbox provider "delivered".
public struct SandboxMessage: Sendable, Hashable {
    public var communicationId: String
    public var channel: MessageChannel
    public var from: String
    public var to: String
    public var msg: String
    public var subject: String?
    public var attempt: Int
    public var providerMessageID: String
    public var at: Timestamp

    public init(communicationId: String, channel: MessageChannel, from: String, to: String, msg: String, subject: String?, attempt: Int, providerMessageID: String, at: Timestamp) {
        self.communicationId = communicationId
        self.channel = channel
        self.from = from
        self.to = to
        self.msg = msg
        self.subject = subject
        self.attempt = attempt
        self.providerMessageID = providerMessageID
        self.at = at
    }
}
