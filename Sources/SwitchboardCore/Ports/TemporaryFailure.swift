/// An engine's error that means "not now" rather than "never": the engine cannot take work for the moment
/// (its disk is full, another process holds its lock past the busy timeout, it does not answer, it is
/// closing). The API answers it with 503 and `Retry-After` instead of 500, so clients know a retry is right.
public protocol TemporaryFailure: Error {
    /// Why, in a few words a client may read (no path, address or secret); nil when this error is not temporary.
    var temporaryReason: String? { get }
}
