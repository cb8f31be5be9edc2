import Hummingbird
import HummingbirdAuth
import SwitchboardCore

/// The request context of the API: Hummingbird's, with the API key the request was authenticated with
/// (hummingbird-auth's `AuthRequestContext`, set by `KeyAuthenticator`).
public struct APIRequestContext: AuthRequestContext, RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The key of the request, when it gave a valid one.
    public var identity: APIKeyRecord?
    /// True when `KeyAuthenticator` let the request through without a key: the API is open (no key exists yet
    /// on a loopback-only router, or `SWITCHBOARD_AUTH=off`).
    public var openAccess = false

    public init(source: Source) {
        coreContext = .init(source: source)
        identity = nil
    }
}
