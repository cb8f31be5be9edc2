import NIOCore
import NIOSSL

/// The RESP protocol version spoken on a connection.
public enum RESPProtocolVersion: Int, Sendable, Hashable {
    /// RESP2, the protocol of Redis before version 6 and the default of a new connection.
    case resp2 = 2
    /// RESP3, negotiated with `HELLO 3` on Redis 6 and later.
    case resp3 = 3
}

/// How long a command may wait for its reply.
public enum RedisCommandTimeout: Sendable, Hashable {
    /// The connection's configured ``RedisConfiguration/commandTimeout``.
    case `default`
    /// No timeout: wait for the reply for as long as the connection stays open.
    case none
    /// Exactly this long.
    case exactly(Duration)
    /// The configured timeout plus this much (used for blocking commands such as
    /// `XREADGROUP … BLOCK ms`, whose reply legitimately takes up to `ms`).
    case defaultPlus(Duration)
}

/// Per-command options.
public struct RedisCommandOptions: Sendable, Hashable {
    /// How long the command may wait for its reply.
    public var timeout: RedisCommandTimeout
    /// Whether the command may block on the server (for example `XREADGROUP … BLOCK`).
    /// ``RedisClient`` runs blocking commands on a separate set of connections so
    /// that they never hold up other callers.
    public var isBlocking: Bool

    /// Creates options.
    /// - Parameters:
    ///   - timeout: How long the command may wait for its reply.
    ///   - isBlocking: Whether the command may block on the server.
    public init(timeout: RedisCommandTimeout = .default, isBlocking: Bool = false) {
        self.timeout = timeout
        self.isBlocking = isBlocking
    }

    /// The defaults: the configured timeout, not blocking.
    public static let `default` = RedisCommandOptions()
}

/// Everything needed to open a connection to one Redis server.
///
/// Build it from a URL with ``init(url:)`` or field by field. Its ``description``
/// never shows the password.
///
/// Supported URL forms:
/// - `redis://[[user]:password@]host[:port][/db][?options]`
/// - `rediss://…` — the same over TLS.
///
/// User name and password are percent-decoded. Query options (all optional):
/// - `connectTimeout`, `commandTimeout`: a number of milliseconds, or a number
///   followed by `ms` or `s` (`commandTimeout=0` disables the command timeout);
/// - `protocol`: `2` to stay on RESP2, `3` (the default) to try `HELLO 3` first;
/// - `clientName`: a name given to the connection with `CLIENT SETNAME`;
/// - `db`: the database number, as an alternative to the path;
/// - `caFile` (TLS): a PEM file of CA certificates to trust instead of the system's;
/// - `serverName` (TLS): the host name to verify the certificate against, if it
///   differs from the URL's host;
/// - `verifyPeer` (TLS): `false` disables certificate verification (never do this in production).
public struct RedisConfiguration: Sendable {
    /// TLS settings for `rediss://` connections.
    public struct TLS: Sendable {
        /// A PEM file of CA certificates to trust instead of the system's trust store.
        public var caFile: String?
        /// Whether the server's certificate chain and host name are verified. `true` by default.
        public var verifyCertificates: Bool
        /// The host name sent in SNI and checked against the certificate. Defaults to the
        /// configured host; IP addresses are checked against the certificate's IP
        /// subject alternative names and are not sent in SNI.
        public var serverName: String?
        /// A complete NIOSSL configuration to use as the base (for client certificates,
        /// cipher choices, …). `caFile` and `verifyCertificates` are applied on top of it.
        public var baseConfiguration: TLSConfiguration?

        /// Creates TLS settings.
        /// - Parameters:
        ///   - caFile: A PEM file of CA certificates to trust, or `nil` for the system trust store.
        ///   - verifyCertificates: Whether to verify the server certificate (default `true`).
        ///   - serverName: The name to verify the certificate against, if not the host.
        ///   - baseConfiguration: A NIOSSL configuration to start from.
        public init(
            caFile: String? = nil,
            verifyCertificates: Bool = true,
            serverName: String? = nil,
            baseConfiguration: TLSConfiguration? = nil
        ) {
            self.caFile = caFile
            self.verifyCertificates = verifyCertificates
            self.serverName = serverName
            self.baseConfiguration = baseConfiguration
        }
    }

    /// The server's host name or IP address.
    public var host: String
    /// The server's TCP port. 6379 by default.
    public var port: Int
    /// The ACL user name, or `nil` for the default user.
    public var username: String?
    /// The password, or `nil` if the server requires none. Never logged or printed.
    public var password: String?
    /// The database selected after connecting (`SELECT`). 0 by default.
    public var database: Int
    /// TLS settings, or `nil` for a plain TCP connection.
    public var tls: TLS?
    /// How long establishing the TCP (and TLS) connection may take. 5 s by default.
    public var connectTimeout: Duration
    /// How long a command may wait for its reply, or `nil` for no limit. 10 s by default.
    public var commandTimeout: Duration?
    /// The preferred protocol: ``RESPProtocolVersion/resp3`` (the default) tries
    /// `HELLO 3` and falls back to RESP2 on servers that do not know it.
    public var protocolVersion: RESPProtocolVersion
    /// A name set on each connection (`CLIENT SETNAME`), shown by `CLIENT LIST`.
    public var clientName: String?

    /// Creates a configuration.
    /// - Parameters:
    ///   - host: The server's host name or IP address.
    ///   - port: The server's TCP port.
    ///   - username: The ACL user name, or `nil` for the default user.
    ///   - password: The password, or `nil`.
    ///   - database: The database to select.
    ///   - tls: TLS settings, or `nil` for plain TCP.
    ///   - connectTimeout: How long connecting may take.
    ///   - commandTimeout: How long a command may wait for its reply (`nil`: no limit).
    ///   - protocolVersion: The preferred protocol version.
    ///   - clientName: A connection name for `CLIENT SETNAME`.
    public init(
        host: String = "127.0.0.1",
        port: Int = 6379,
        username: String? = nil,
        password: String? = nil,
        database: Int = 0,
        tls: TLS? = nil,
        connectTimeout: Duration = .seconds(5),
        commandTimeout: Duration? = .seconds(10),
        protocolVersion: RESPProtocolVersion = .resp3,
        clientName: String? = nil
    ) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.tls = tls
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.protocolVersion = protocolVersion
        self.clientName = clientName
    }

    /// Parses a `redis://` or `rediss://` URL.
    /// - Parameter url: The URL, for example `redis://:secret@127.0.0.1:6379/2`.
    /// - Throws: ``RedisError/invalidURL(_:)`` if the URL is malformed. The error text never
    ///   contains the password.
    public init(url: String) throws(RedisError) {
        self.init()
        let schemeEnd: String.Index
        if url.hasPrefix("redis://") {
            schemeEnd = url.index(url.startIndex, offsetBy: 8)
        } else if url.hasPrefix("rediss://") {
            schemeEnd = url.index(url.startIndex, offsetBy: 9)
            self.tls = TLS()
        } else {
            throw RedisError.invalidURL("the scheme must be redis:// or rediss://")
        }

        var rest = url[schemeEnd...]
        var query: Substring = ""
        if let questionMark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: questionMark)...]
            rest = rest[..<questionMark]
        }
        if let hash = query.firstIndex(of: "#") {
            query = query[..<hash]
        }
        var path: Substring = ""
        // The path starts at the first "/" after the user info (a password may contain "/" only percent-encoded).
        let authorityStart = rest.lastIndex(of: "@").map { rest.index(after: $0) } ?? rest.startIndex
        if let slash = rest[authorityStart...].firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }

        var hostPort = rest
        if let at = rest.lastIndex(of: "@") {
            let userInfo = rest[..<at]
            hostPort = rest[rest.index(after: at)...]
            let user: Substring
            let password: Substring?
            if let colon = userInfo.firstIndex(of: ":") {
                user = userInfo[..<colon]
                password = userInfo[userInfo.index(after: colon)...]
            } else {
                user = userInfo
                password = nil
            }
            guard let decodedUser = Self.percentDecode(user) else {
                throw RedisError.invalidURL("the user name is not validly percent-encoded")
            }
            self.username = decodedUser.isEmpty ? nil : decodedUser
            if let password {
                guard let decodedPassword = Self.percentDecode(password) else {
                    throw RedisError.invalidURL("the password is not validly percent-encoded")
                }
                self.password = decodedPassword
            }
        }

        // Host and port; IPv6 literals are written in brackets.
        if hostPort.hasPrefix("[") {
            guard let close = hostPort.firstIndex(of: "]") else {
                throw RedisError.invalidURL("unterminated IPv6 address")
            }
            self.host = String(hostPort[hostPort.index(after: hostPort.startIndex)..<close])
            let afterHost = hostPort[hostPort.index(after: close)...]
            if !afterHost.isEmpty {
                guard afterHost.hasPrefix(":") else {
                    throw RedisError.invalidURL("unexpected text after the IPv6 address")
                }
                self.port = try Self.parsePort(afterHost.dropFirst())
            }
        } else if let colon = hostPort.lastIndex(of: ":") {
            self.host = String(hostPort[..<colon])
            self.port = try Self.parsePort(hostPort[hostPort.index(after: colon)...])
        } else {
            self.host = String(hostPort)
        }
        guard !self.host.isEmpty else {
            throw RedisError.invalidURL("missing host")
        }

        if !path.isEmpty {
            guard let database = Int(path), database >= 0 else {
                throw RedisError.invalidURL("the path must be a database number")
            }
            self.database = database
        }

        for item in query.split(separator: "&") where !item.isEmpty {
            let key: Substring
            let rawValue: Substring
            if let equals = item.firstIndex(of: "=") {
                key = item[..<equals]
                rawValue = item[item.index(after: equals)...]
            } else {
                key = item
                rawValue = ""
            }
            guard let value = Self.percentDecode(rawValue) else {
                throw RedisError.invalidURL("option \(key) is not validly percent-encoded")
            }
            switch key.lowercased() {
            case "connecttimeout", "connect_timeout":
                guard let duration = Self.parseDuration(value), duration > .zero else {
                    throw RedisError.invalidURL("invalid connectTimeout")
                }
                self.connectTimeout = duration
            case "commandtimeout", "command_timeout", "timeout":
                guard let duration = Self.parseDuration(value) else {
                    throw RedisError.invalidURL("invalid commandTimeout")
                }
                self.commandTimeout = duration == .zero ? nil : duration
            case "protocol":
                switch value {
                case "2": self.protocolVersion = .resp2
                case "3": self.protocolVersion = .resp3
                default: throw RedisError.invalidURL("protocol must be 2 or 3")
                }
            case "clientname", "client_name", "name":
                self.clientName = value.isEmpty ? nil : value
            case "db", "database":
                guard let database = Int(value), database >= 0 else {
                    throw RedisError.invalidURL("invalid db")
                }
                self.database = database
            case "cafile", "ca_file", "tlscafile":
                guard self.tls != nil else { throw RedisError.invalidURL("caFile needs rediss://") }
                self.tls?.caFile = value
            case "servername", "server_name", "tlsservername":
                guard self.tls != nil else { throw RedisError.invalidURL("serverName needs rediss://") }
                self.tls?.serverName = value
            case "verifypeer", "verify_peer", "tlsverify":
                guard self.tls != nil else { throw RedisError.invalidURL("verifyPeer needs rediss://") }
                switch value.lowercased() {
                case "true", "1", "yes": self.tls?.verifyCertificates = true
                case "false", "0", "no": self.tls?.verifyCertificates = false
                default: throw RedisError.invalidURL("verifyPeer must be true or false")
                }
            default:
                throw RedisError.invalidURL("unknown option \(key)")
            }
        }
    }

    private static func parsePort(_ text: Substring) throws(RedisError) -> Int {
        guard let port = Int(text), (1...65535).contains(port) else {
            throw RedisError.invalidURL("invalid port")
        }
        return port
    }

    /// Parses `"1500"` (milliseconds), `"1500ms"` or `"1.5s"`.
    static func parseDuration(_ text: String) -> Duration? {
        if text.hasSuffix("ms"), let value = Double(text.dropLast(2)), value >= 0 {
            return .nanoseconds(Int64(value * 1_000_000))
        }
        if text.hasSuffix("s"), let value = Double(text.dropLast()), value >= 0 {
            return .nanoseconds(Int64(value * 1_000_000_000))
        }
        if let value = Int64(text), value >= 0 {
            return .milliseconds(value)
        }
        return nil
    }

    static func percentDecode(_ text: Substring) -> String? {
        guard text.contains("%") else { return String(text) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = iterator.next().flatMap(Self.hexValue),
                    let low = iterator.next().flatMap(Self.hexValue)
                else { return nil }
                bytes.append(high << 4 | low)
            } else {
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

extension RedisConfiguration: CustomStringConvertible {
    /// The configuration as a URL with the password masked as `***`.
    public var description: String {
        var text = self.tls == nil ? "redis://" : "rediss://"
        if self.username != nil || self.password != nil {
            text += self.username ?? ""
            if self.password != nil {
                text += ":***"
            }
            text += "@"
        }
        text += self.host.contains(":") ? "[\(self.host)]" : self.host
        text += ":\(self.port)"
        if self.database != 0 {
            text += "/\(self.database)"
        }
        return text
    }
}

extension Duration {
    /// The duration in whole milliseconds, rounded down.
    var wholeMilliseconds: Int64 {
        let (seconds, attoseconds) = self.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    /// The duration as a NIO `TimeAmount`.
    var timeAmount: TimeAmount {
        let (seconds, attoseconds) = self.components
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
