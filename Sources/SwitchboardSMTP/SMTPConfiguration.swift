/// How the connection to the server is secured.
public enum SMTPTLSMode: String, Sendable, Hashable, CustomStringConvertible {
    /// Connect in plaintext, then upgrade with `STARTTLS` (RFC 3207) before
    /// authenticating or sending anything. Fails if the server does not offer
    /// `STARTTLS`. The usual mode for port 587.
    case startTLS = "starttls"
    /// TLS from the first byte ("implicit TLS", RFC 8314). The usual mode for port 465.
    case implicitTLS = "tls"
    /// No encryption at all. Only for local relays and tests.
    case none

    /// The raw value, e.g. `"starttls"`.
    public var description: String { rawValue }

    /// The conventional port for this mode: 587, 465 or 25.
    public var defaultPort: Int {
        switch self {
        case .startTLS: return 587
        case .implicitTLS: return 465
        case .none: return 25
        }
    }
}

/// Timeouts for each step of an SMTP session.
///
/// The defaults are shorter than the RFC 5321 §4.5.3.2 recommendations (which are
/// meant for MTAs, not for an application waiting on a send) but generous enough
/// for slow submission servers.
public struct SMTPTimeouts: Sendable, Hashable {
    /// Establishing the TCP connection. Default 15 s.
    public var connect: Duration
    /// Waiting for the `220` greeting, including the TLS handshake for implicit TLS. Default 30 s.
    public var greeting: Duration
    /// Each command's reply (`EHLO`, `STARTTLS` + handshake, `AUTH`, `MAIL`, `RCPT`,
    /// `DATA`, `RSET`, `QUIT`). Default 30 s.
    public var command: Duration
    /// Sending the message content and waiting for the final reply after the
    /// terminating `.`; servers may scan the message at this point. Default 120 s.
    public var data: Duration

    /// Creates timeouts; every parameter has a sensible default.
    public init(
        connect: Duration = .seconds(15),
        greeting: Duration = .seconds(30),
        command: Duration = .seconds(30),
        data: Duration = .seconds(120)
    ) {
        self.connect = connect
        self.greeting = greeting
        self.command = command
        self.data = data
    }
}

/// Everything ``SMTPClient`` needs to know about a server and how to use it.
///
/// `description`, `debugDescription` and the reflection mirror (used by `dump` and
/// `String(reflecting:)`) never show the password.
public struct SMTPConfiguration: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The server host name or IP address.
    public var host: String
    /// The server port (587 for STARTTLS submission, 465 for implicit TLS, 25 for relays).
    public var port: Int
    /// How the connection is secured.
    public var tlsMode: SMTPTLSMode
    /// The user name for `AUTH`. Authentication happens only when both `username` and `password` are set.
    public var username: String?
    /// The password for `AUTH`. Never logged or printed.
    public var password: String?
    /// A PEM file with the CA certificate(s) to trust instead of the system trust store
    /// (for private relays with their own CA, and for tests with a self-signed certificate).
    public var caCertificatePath: String?
    /// Disables certificate and host name verification. **For tests only**: it makes
    /// TLS useless against an active attacker.
    public var insecureSkipCertificateVerification: Bool
    /// Allows `AUTH` over an unencrypted connection (``SMTPTLSMode/none``).
    /// Off by default: credentials are otherwise only sent after TLS is established.
    public var allowInsecureAuthentication: Bool
    /// The name sent with `EHLO`/`HELO`: ideally this machine's fully qualified domain name.
    public var heloName: String
    /// Timeouts for each step.
    public var timeouts: SMTPTimeouts
    /// The author used for messages whose ``EmailMessage/from`` is `nil`.
    public var defaultFrom: EmailAddress?
    /// The largest number of simultaneous connections the client opens. Sends beyond
    /// that wait for a connection to become free. Default 2; use 1 for a single
    /// serialised connection.
    public var maxConnections: Int
    /// After this many messages a connection is closed (with `QUIT`) and a fresh one
    /// is opened; many providers cap messages per connection. Default 100.
    public var maxMessagesPerConnection: Int
    /// An idle connection older than this is closed instead of reused. Servers
    /// commonly drop idle clients after a few minutes. Default 60 s.
    public var maxIdleTime: Duration

    /// Creates a configuration.
    ///
    /// - Parameters:
    ///   - host: The server host name or IP address.
    ///   - port: The port; `nil` picks ``SMTPTLSMode/defaultPort``.
    ///   - tlsMode: How to secure the connection. Default ``SMTPTLSMode/startTLS``.
    ///   - username: The `AUTH` user name, if the server needs authentication.
    ///   - password: The `AUTH` password.
    ///   - caCertificatePath: A PEM file of CA certificates to trust instead of the system store.
    ///   - insecureSkipCertificateVerification: Disable certificate verification (tests only).
    ///   - allowInsecureAuthentication: Allow `AUTH` without TLS.
    ///   - heloName: The `EHLO` name. Default `"localhost"`; set this to your host's FQDN.
    ///   - timeouts: Per-step timeouts.
    ///   - defaultFrom: The author for messages without one.
    ///   - maxConnections: The connection pool size (≥ 1).
    ///   - maxMessagesPerConnection: Messages per connection before reconnecting (≥ 1).
    ///   - maxIdleTime: How long an idle connection may be kept for reuse.
    public init(
        host: String,
        port: Int? = nil,
        tlsMode: SMTPTLSMode = .startTLS,
        username: String? = nil,
        password: String? = nil,
        caCertificatePath: String? = nil,
        insecureSkipCertificateVerification: Bool = false,
        allowInsecureAuthentication: Bool = false,
        heloName: String = "localhost",
        timeouts: SMTPTimeouts = SMTPTimeouts(),
        defaultFrom: EmailAddress? = nil,
        maxConnections: Int = 2,
        maxMessagesPerConnection: Int = 100,
        maxIdleTime: Duration = .seconds(60)
    ) {
        self.host = host
        self.port = port ?? tlsMode.defaultPort
        self.tlsMode = tlsMode
        self.username = username
        self.password = password
        self.caCertificatePath = caCertificatePath
        self.insecureSkipCertificateVerification = insecureSkipCertificateVerification
        self.allowInsecureAuthentication = allowInsecureAuthentication
        self.heloName = heloName
        self.timeouts = timeouts
        self.defaultFrom = defaultFrom
        self.maxConnections = maxConnections
        self.maxMessagesPerConnection = maxMessagesPerConnection
        self.maxIdleTime = maxIdleTime
    }

    /// `true` when both a user name and a password are configured.
    public var hasCredentials: Bool {
        username != nil && password != nil
    }

    /// A summary for logs. The password is always masked.
    public var description: String {
        var parts = [
            "host: \(host)",
            "port: \(port)",
            "tlsMode: \(tlsMode)",
            "username: \(username.map { "\"\($0)\"" } ?? "nil")",
            "password: \(password == nil ? "nil" : "********")",
        ]
        if let caCertificatePath { parts.append("caCertificatePath: \(caCertificatePath)") }
        if insecureSkipCertificateVerification { parts.append("insecureSkipCertificateVerification: true") }
        if allowInsecureAuthentication { parts.append("allowInsecureAuthentication: true") }
        parts.append("heloName: \(heloName)")
        if let defaultFrom { parts.append("defaultFrom: \(defaultFrom)") }
        parts.append("maxConnections: \(maxConnections)")
        return "SMTPConfiguration(\(parts.joined(separator: ", ")))"
    }

    /// The same as ``description``: the password is masked.
    public var debugDescription: String { description }

    /// A mirror with the password masked, so that `dump(configuration)` is safe.
    public var customMirror: Mirror {
        Mirror(self, children: [
            "host": host,
            "port": port,
            "tlsMode": tlsMode,
            "username": username as Any,
            "password": (password == nil ? "nil" : "********") as Any,
            "caCertificatePath": caCertificatePath as Any,
            "insecureSkipCertificateVerification": insecureSkipCertificateVerification,
            "allowInsecureAuthentication": allowInsecureAuthentication,
            "heloName": heloName,
            "timeouts": timeouts,
            "defaultFrom": defaultFrom as Any,
            "maxConnections": maxConnections,
            "maxMessagesPerConnection": maxMessagesPerConnection,
            "maxIdleTime": maxIdleTime,
        ])
    }

    /// Checks values that would otherwise fail later in confusing ways.
    func validate() throws(SMTPError) {
        guard !host.isEmpty else { throw SMTPError.invalidConfiguration("host is empty") }
        guard (1...65_535).contains(port) else { throw SMTPError.invalidConfiguration("port \(port) is out of range") }
        guard maxConnections >= 1 else { throw SMTPError.invalidConfiguration("maxConnections must be at least 1") }
        guard maxMessagesPerConnection >= 1 else {
            throw SMTPError.invalidConfiguration("maxMessagesPerConnection must be at least 1")
        }
        guard !heloName.isEmpty, heloName.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw SMTPError.invalidConfiguration("heloName must be a non-empty ASCII host name or address literal")
        }
        if (username == nil) != (password == nil) {
            throw SMTPError.invalidConfiguration("username and password must be set together")
        }
        for value in [username, password].compactMap({ $0 }) where value.utf8.contains(0) {
            throw SMTPError.invalidConfiguration("credentials must not contain NUL")
        }
        if hasCredentials && tlsMode == .none && !allowInsecureAuthentication {
            throw SMTPError.invalidConfiguration(
                "credentials are configured for a plaintext connection; use TLS or set allowInsecureAuthentication"
            )
        }
        if let defaultFrom {
            do {
                try defaultFrom.validate(role: "default From")
            } catch {
                throw SMTPError.invalidConfiguration("defaultFrom is invalid: \(error)")
            }
        }
    }
}
