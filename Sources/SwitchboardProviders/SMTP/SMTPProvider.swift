import Foundation
import Logging
import SwitchboardCore
import SwitchboardSMTP

/// Email delivery through an SMTP submission server (`SwitchboardSMTP`).
///
/// - From: `defaultFrom` (`SWITCHBOARD_SMTP_FROM`) when configured, with the request's `from` as
///   `Reply-To` when it differs; otherwise the request's `from`.
/// - Subject and HTML from the request (`multipart/alternative` when `html` is given); `cc` in the `Cc` header;
///   `bcc` only in the envelope (`RCPT TO`), never in a header; `replyTo` as `Reply-To` (before the request's `from`).
/// - Attachments read from the `AttachmentStore` by their `sha256` (`multipart/mixed`); one that is missing there
///   fails the message for good (`attachment_missing`), a store that does not answer is retried.
/// - The `Message-ID` is `<communication id@sender domain>` (`switchboard.invalid` for a non-ASCII domain), the same on every attempt (so a message sent
///   twice — delivery is at least once — carries one id), and is the provider message id.
/// - 4xx replies, timeouts and connection failures are retryable; 5xx replies and everything else
///   (TLS, configuration, invalid message) are permanent. The error keeps the reply code and enhanced code
///   (`550 5.1.1`) and the server's text.
public final class SMTPProvider: DeliveryProvider {
    /// Recorded on the message as its provider.
    public let name = "smtp"
    let client: SMTPClient
    let defaultFrom: EmailAddress?
    /// Where the attachments' bytes are (nil: a message with attachments fails for good).
    let attachments: (any AttachmentStore)?

    /// - Parameters:
    ///   - client: the client (its connections are reused across messages).
    ///   - attachments: the attachments' bytes.
    public init(client: SMTPClient, attachments: (any AttachmentStore)? = nil) {
        self.client = client
        self.defaultFrom = client.configuration.defaultFrom
        self.attachments = attachments
    }

    /// Creates the client from `configuration`.
    public convenience init(configuration: SMTPConfiguration, logger: Logger, attachments: (any AttachmentStore)? = nil) throws {
        try self.init(client: SMTPClient(configuration: configuration, logger: logger), attachments: attachments)
    }

    /// Closes the client's connections (QUIT).
    public func shutdown() async { await client.shutdown() }

    /// The message for one attempt.
    func email(for message: OutboundMessage, attachments files: [EmailMessage.Attachment] = []) -> EmailMessage {
        let r = message.request
        var email = EmailMessage(
            to: [EmailAddress(r.to)], cc: r.cc.map { EmailAddress($0) }, bcc: r.bcc.map { EmailAddress($0) },
            subject: r.subject ?? "", textBody: r.msg, htmlBody: r.html)
        email.attachments = files
        if let defaultFrom {
            email.from = defaultFrom
            if r.from.lowercased() != defaultFrom.address.lowercased() { email.replyTo = [EmailAddress(r.from)] }
        } else {
            email.from = EmailAddress(r.from)
        }
        if let replyTo = r.replyTo { email.replyTo = [EmailAddress(replyTo)] }
        let sender = email.from?.address ?? r.from
        // A Message-ID is ASCII: an internationalised sender domain (RFC 6531) cannot be its right side.
        let domain = sender.split(separator: "@").last.map(String.init).flatMap { d in
            d.utf8.allSatisfy { $0 < 0x80 && ($0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") || (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0)) } ? d : nil
        } ?? "switchboard.invalid"
        email.messageID = "<\(message.id)@\(domain)>"
        return email
    }

    /// Sends one email; never throws (see the type's error mapping).
    public func deliver(_ message: OutboundMessage) async -> DeliveryResult {
        let files: [EmailMessage.Attachment]
        switch await loadAttachments(message.request) {
        case .failure(let failure): return failure.result
        case .success(let f): files = f
        }
        do {
            let receipt = try await client.send(email(for: message, attachments: files))
            return .sent(providerMessageID: receipt.messageID)
        } catch let error as SMTPError {
            return Self.result(for: error)
        } catch {
            return .retryable(ProviderError(code: "smtp_error", message: "\(error)"))
        }
    }

    /// The bytes of the request's attachments, from the `AttachmentStore` (or, not yet admitted, from the
    /// request); a failed result when one is missing (permanent) or the store does not answer (retryable).
    func loadAttachments(_ r: CommunicationRequest) async -> Result<[EmailMessage.Attachment], DeliveryFailure> {
        var files: [EmailMessage.Attachment] = []
        for (i, a) in r.attachments.enumerated() {
            if let content = a.content {
                files.append(EmailMessage.Attachment(filename: a.filename, contentType: a.contentType, bytes: content))
                continue
            }
            let what = "attachment \(i) \"\(a.filename)\" (sha256 \(a.sha256 ?? "none"))"
            guard let sha = a.sha256, let store = attachments else {
                return .failure(DeliveryFailure(.permanent(ProviderError(code: "attachment_missing", message: "\(what): no attachment store to read it from"))))
            }
            do {
                guard let bytes = try await store.get(sha256: sha) else {
                    return .failure(DeliveryFailure(.permanent(ProviderError(code: "attachment_missing", message: "\(what) is not in the attachment store"))))
                }
                files.append(EmailMessage.Attachment(filename: a.filename, contentType: a.contentType, bytes: bytes))
            } catch {
                return .failure(DeliveryFailure(.retryable(ProviderError(code: "attachment_store_unavailable", message: "\(what) could not be read: \(error)"))))
            }
        }
        return .success(files)
    }

    /// A delivery result that ends an attempt before sending.
    struct DeliveryFailure: Error {
        let result: DeliveryResult
        init(_ result: DeliveryResult) { self.result = result }
    }

    /// Maps an `SMTPError` onto a delivery result, keeping the server's code and text.
    public static func result(for error: SMTPError) -> DeliveryResult {
        switch error {
        case .transient(let f): return .retryable(providerError(f))
        case .permanent(let f): return .permanent(providerError(f))
        case .timeout(let step): return .retryable(ProviderError(code: "timeout", message: "SMTP timeout at \(step)"))
        case .connectionFailed(let step, let reason): return .retryable(ProviderError(code: "connection_failed", message: "SMTP connection failed at \(step): \(reason)"))
        case .clientShutdown: return .retryable(ProviderError(code: "shutdown", message: error.description))
        case .tlsFailed: return .permanent(ProviderError(code: "tls_failed", message: error.description))
        case .protocolViolation: return .permanent(ProviderError(code: "protocol_violation", message: error.description))
        case .unsupported: return .permanent(ProviderError(code: "unsupported", message: error.description))
        case .messageTooLarge: return .permanent(ProviderError(code: "message_too_large", message: error.description))
        case .invalidConfiguration: return .permanent(ProviderError(code: "invalid_configuration", message: error.description))
        case .invalidMessage: return .permanent(ProviderError(code: "invalid_message", message: error.description))
        }
    }

    /// Whether a retryable error says the server is unwell (timeouts, lost connections, 4xx before or after
    /// the recipients) rather than that one recipient is deferred (a 4xx at RCPT TO): only the former
    /// should open the circuit.
    public static func countsAgainstCircuit(_ error: ProviderError) -> Bool {
        !error.message.hasPrefix(SMTPStep.rcptTo.rawValue + " ")
    }

    static func providerError(_ f: SMTPFailure) -> ProviderError {
        var code = "\(f.code)"
        if let enhanced = f.enhancedStatusCode { code += " \(enhanced)" }
        var message = f.step.rawValue
        if let recipient = f.recipient { message += " <\(recipient)>" }
        message += ": " + f.text.split(whereSeparator: \.isNewline).joined(separator: " ")
        return ProviderError(code: code, message: message)
    }
}
