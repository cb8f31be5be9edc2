/// Errors raised by the Redis client.
///
/// Every throwing API of this library throws `RedisError`. Server error replies are
/// mapped by their prefix (the first word of the error line): the prefixes Switchboard
/// meets have their own case, all others land in ``server(prefix:message:)``.
/// For the prefixed cases, `message` is the text after the prefix.
public enum RedisError: Error, Sendable, Hashable {
    /// `NOGROUP`: the stream key or consumer group does not exist.
    case noGroup(message: String)
    /// `BUSYGROUP`: the consumer group already exists.
    case busyGroup(message: String)
    /// `WRONGTYPE`: the key holds a value of another type.
    case wrongType(message: String)
    /// `NOAUTH`: authentication is required.
    case noAuth(message: String)
    /// `WRONGPASS`: the user name or password is wrong, or the user is disabled.
    case wrongPass(message: String)
    /// `NOPERM`: the ACL user may not run this command or touch this key.
    case noPerm(message: String)
    /// `LOADING`: the server is loading its dataset into memory.
    case loading(message: String)
    /// `READONLY`: the server is a read-only replica.
    case readOnly(message: String)
    /// Any other server error reply, such as `ERR` or `NOPROTO`.
    case server(prefix: String, message: String)
    /// The connection was closed before the reply arrived (or before the command could be sent).
    case connectionClosed
    /// A connection could not be established (after the configured retries).
    /// The payload describes the last underlying failure.
    case connectionFailed(String)
    /// The reply did not arrive within the command timeout. The connection is closed,
    /// since its reply stream can no longer be trusted.
    case timeout
    /// No pooled connection became free within the pool's lease timeout.
    case poolTimeout
    /// The client or pool has been shut down.
    case shutdown
    /// The waiting task was cancelled. If a command was in flight, its connection was closed.
    case cancelled
    /// The server sent bytes that are not valid RESP.
    case protocolError(String)
    /// The reply was valid RESP but not of the shape the typed command expects.
    case unexpectedReply(command: String, reply: String)
    /// A `redis://` or `rediss://` URL could not be parsed.
    case invalidURL(String)
    /// The TLS configuration could not be set up (for example, an unreadable CA file).
    case tlsConfiguration(String)

    /// Creates the error matching a server error line such as `"NOGROUP No such key"`.
    /// - Parameter serverMessage: The error text as sent by the server, prefix included.
    public init(serverMessage: String) {
        let prefix: Substring
        let rest: Substring
        if let space = serverMessage.firstIndex(of: " ") {
            prefix = serverMessage[..<space]
            rest = serverMessage[serverMessage.index(after: space)...]
        } else {
            prefix = serverMessage[...]
            rest = ""
        }
        let message = String(rest)
        switch prefix {
        case "NOGROUP": self = .noGroup(message: message)
        case "BUSYGROUP": self = .busyGroup(message: message)
        case "WRONGTYPE": self = .wrongType(message: message)
        case "NOAUTH": self = .noAuth(message: message)
        case "WRONGPASS": self = .wrongPass(message: message)
        case "NOPERM": self = .noPerm(message: message)
        case "LOADING": self = .loading(message: message)
        case "READONLY": self = .readOnly(message: message)
        default: self = .server(prefix: String(prefix), message: message)
        }
    }

    /// The server's error prefix (`"NOGROUP"`, `"ERR"`, …) for server error replies, `nil` otherwise.
    public var serverPrefix: String? {
        switch self {
        case .noGroup: return "NOGROUP"
        case .busyGroup: return "BUSYGROUP"
        case .wrongType: return "WRONGTYPE"
        case .noAuth: return "NOAUTH"
        case .wrongPass: return "WRONGPASS"
        case .noPerm: return "NOPERM"
        case .loading: return "LOADING"
        case .readOnly: return "READONLY"
        case .server(let prefix, _): return prefix
        default: return nil
        }
    }

    /// Whether the error is a reply from the server (as opposed to a connection or client failure).
    public var isServerError: Bool {
        self.serverPrefix != nil
    }

    /// Whether the failure concerns the connection (closed, unreachable, timed out), so that
    /// retrying later, on a new connection, may succeed. `LOADING` counts as well.
    public var isConnectionError: Bool {
        switch self {
        case .connectionClosed, .connectionFailed, .timeout, .poolTimeout, .loading: return true
        default: return false
        }
    }
}

extension RedisError: CustomStringConvertible {
    /// A readable description of the error.
    public var description: String {
        switch self {
        case .noGroup(let m), .busyGroup(let m), .wrongType(let m), .noAuth(let m), .wrongPass(let m),
            .noPerm(let m), .loading(let m), .readOnly(let m):
            return "Redis error \(self.serverPrefix ?? ""): \(m)"
        case .server(let prefix, let message):
            return "Redis error \(prefix): \(message)"
        case .connectionClosed:
            return "Redis connection closed"
        case .connectionFailed(let reason):
            return "Could not connect to Redis: \(reason)"
        case .timeout:
            return "Redis command timed out"
        case .poolTimeout:
            return "Timed out waiting for a pooled Redis connection"
        case .shutdown:
            return "Redis client has been shut down"
        case .cancelled:
            return "Redis command cancelled"
        case .protocolError(let reason):
            return "Redis protocol error: \(reason)"
        case .unexpectedReply(let command, let reply):
            return "Unexpected reply to \(command): \(reply)"
        case .invalidURL(let reason):
            return "Invalid Redis URL: \(reason)"
        case .tlsConfiguration(let reason):
            return "Invalid Redis TLS configuration: \(reason)"
        }
    }
}
