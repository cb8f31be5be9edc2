import SwitchboardCore

extension DatabaseClosed: TemporaryFailure {
    public var temporaryReason: String? { "the service is shutting down" }
}
