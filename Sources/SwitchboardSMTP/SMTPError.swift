/// The step of an SMTP session during which something happened.
public enum SMTPStep: String, Sendable, Hashable, CustomStringConvertible {
    /// Opening the TCP connection.
    case connect
    /// Waiting for the server's `220` greeting (after the TLS handshake for implicit TLS).
    case greeting
    /// The `EHLO` command.
    case ehlo
    /// The `HELO` command (fallback when `EHLO` is rejected).
    case helo
    /// The `STARTTLS` command and the TLS handshake that follows it.
    case startTLS = "starttls"
    /// The TLS handshake itself (implicit TLS or after `STARTTLS`).
    case tlsHandshake = "tls-handshake"
    /// `AUTH` and its SASL exchange.
    case auth
    /// `MAIL FROM`.
    case mailFrom = "mail-from"
    /// `RCPT TO` (see ``SMTPFailure/recipient`` for which recipient).
    case rcptTo = "rcpt-to"
    /// The `DATA` command (waiting for `354`).
    case data
    /// Sending the message content and waiting for the final reply after `<CRLF>.<CRLF>`.
    case message
    /// `RSET`, used before reusing a connection.
    case rset
    /// `QUIT`.
    case quit

    /// The raw value, e.g. `"rcpt-to"`.
    public var description: String { rawValue }
}

/// Details of a negative (4xx or 5xx) reply from the server.
public struct SMTPFailure: Sendable, Hashable, CustomStringConvertible {
    /// The step that was rejected.
    public var step: SMTPStep
    /// The full server reply.
    public var reply: SMTPReply
    /// The recipient that was rejected, for ``SMTPStep/rcptTo`` failures.
    public var recipient: String?

    /// Creates failure details.
    public init(step: SMTPStep, reply: SMTPReply, recipient: String? = nil) {
        self.step = step
        self.reply = reply
        self.recipient = recipient
    }

    /// The three-digit SMTP reply code, e.g. `550`.
    public var code: Int { reply.code }

    /// The RFC 3463 enhanced status code, e.g. `5.1.1`, if the server sent one.
    public var enhancedStatusCode: SMTPEnhancedStatusCode? { reply.enhancedStatusCode }

    /// The server's text (without the reply code and enhanced status code).
    public var text: String { reply.text }

    /// E.g. `rcpt-to <bob@example.com>: 550 5.1.1 no such user`.
    public var description: String {
        var result = step.rawValue
        if let recipient { result += " <\(recipient)>" }
        result += ": \(reply.code)"
        if let enhanced = reply.enhancedStatusCode { result += " \(enhanced)" }
        let text = reply.text.replacingNewlines()
        if !text.isEmpty { result += " \(text)" }
        return result
    }
}

/// Every error thrown by this library.
///
/// Use ``isRetryable`` to decide whether to try again later: 4xx replies, timeouts
/// and connection failures are retryable; 5xx replies (including `535`
/// authentication failures), TLS/verification failures, configuration errors and
/// invalid messages are not.
public enum SMTPError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The server answered with a 4xx reply: try again later.
    case transient(SMTPFailure)
    /// The server answered with a 5xx reply: do not retry the same message unchanged.
    /// Authentication failures (`535 5.7.8`) are reported as `permanent` with step ``SMTPStep/auth``.
    case permanent(SMTPFailure)
    /// The server sent a reply that makes no sense at this point (e.g. a 2xx where
    /// `354` was expected, or a malformed reply line).
    case protocolViolation(step: SMTPStep, reason: String)
    /// A step did not finish within its configured timeout.
    case timeout(step: SMTPStep)
    /// The connection could not be opened, or was closed or reset by the peer.
    case connectionFailed(step: SMTPStep, reason: String)
    /// TLS could not be established: handshake or certificate/hostname verification
    /// failed, or the server did not offer `STARTTLS` although it was required.
    case tlsFailed(step: SMTPStep, reason: String)
    /// The server lacks something this message or configuration needs, e.g. no
    /// supported `AUTH` mechanism, or `SMTPUTF8` for a non-ASCII address.
    case unsupported(step: SMTPStep, reason: String)
    /// The message is larger than the `SIZE` limit the server advertised.
    case messageTooLarge(size: Int, limit: Int)
    /// The configuration is unusable (e.g. unreadable CA file, or credentials
    /// configured for a plaintext connection without ``SMTPConfiguration/allowInsecureAuthentication``).
    case invalidConfiguration(String)
    /// The message cannot be rendered or sent (e.g. no recipient, a header value
    /// containing a line break, an invalid address).
    case invalidMessage(String)
    /// ``SMTPClient/shutdown()`` was called.
    case clientShutdown

    /// Whether retrying the same operation later may succeed.
    public var isRetryable: Bool {
        switch self {
        case .transient, .timeout, .connectionFailed:
            return true
        case .permanent, .protocolViolation, .tlsFailed, .unsupported, .messageTooLarge,
             .invalidConfiguration, .invalidMessage, .clientShutdown:
            return false
        }
    }

    /// The server's negative reply details for ``transient(_:)`` and ``permanent(_:)``; `nil` otherwise.
    public var failure: SMTPFailure? {
        switch self {
        case .transient(let failure), .permanent(let failure):
            return failure
        default:
            return nil
        }
    }

    /// The SMTP reply code for ``transient(_:)`` and ``permanent(_:)``, e.g. `550`.
    public var code: Int? { failure?.code }

    /// The enhanced status code (e.g. `5.1.1`) if the server sent one.
    public var enhancedStatusCode: SMTPEnhancedStatusCode? { failure?.enhancedStatusCode }

    /// The step during which the error happened, when known.
    public var step: SMTPStep? {
        switch self {
        case .transient(let failure), .permanent(let failure):
            return failure.step
        case .protocolViolation(let step, _), .timeout(let step), .connectionFailed(let step, _),
             .tlsFailed(let step, _), .unsupported(let step, _):
            return step
        case .messageTooLarge:
            return .mailFrom
        case .invalidConfiguration, .invalidMessage, .clientShutdown:
            return nil
        }
    }

    /// `true` when the server rejected the credentials (a 5xx reply to `AUTH`, typically `535 5.7.8`).
    public var isAuthenticationFailure: Bool {
        if case .permanent(let failure) = self, failure.step == .auth { return true }
        return false
    }

    /// A one-line human-readable description (never contains credentials).
    public var description: String {
        switch self {
        case .transient(let failure):
            return "SMTP transient failure at \(failure)"
        case .permanent(let failure):
            return "SMTP permanent failure at \(failure)"
        case .protocolViolation(let step, let reason):
            return "SMTP protocol violation at \(step): \(reason)"
        case .timeout(let step):
            return "SMTP timeout at \(step)"
        case .connectionFailed(let step, let reason):
            return "SMTP connection failed at \(step): \(reason)"
        case .tlsFailed(let step, let reason):
            return "SMTP TLS failure at \(step): \(reason)"
        case .unsupported(let step, let reason):
            return "SMTP server does not support what is needed at \(step): \(reason)"
        case .messageTooLarge(let size, let limit):
            return "SMTP message of \(size) octets exceeds the server's SIZE limit of \(limit) octets"
        case .invalidConfiguration(let reason):
            return "SMTP configuration invalid: \(reason)"
        case .invalidMessage(let reason):
            return "SMTP message invalid: \(reason)"
        case .clientShutdown:
            return "SMTP client has been shut down"
        }
    }

    /// Classifies a negative reply: 4xx → ``transient(_:)``, 5xx → ``permanent(_:)``,
    /// anything else → ``protocolViolation(step:reason:)``.
    static func rejection(_ reply: SMTPReply, step: SMTPStep, recipient: String? = nil) -> SMTPError {
        let failure = SMTPFailure(step: step, reply: reply, recipient: recipient)
        if reply.isTransientFailure { return .transient(failure) }
        if reply.isPermanentFailure { return .permanent(failure) }
        return .protocolViolation(step: step, reason: "unexpected reply \(reply.description.replacingNewlines())")
    }
}

extension String {
    /// Replaces CR and LF with spaces so that server text stays on one log line.
    func replacingNewlines() -> String {
        String(self.map { $0 == "\n" || $0 == "\r" || $0 == "\r\n" ? " " : $0 })
    }
}
