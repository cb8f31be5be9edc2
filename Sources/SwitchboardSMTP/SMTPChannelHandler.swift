import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS

/// Instructions to switch the connection to TLS once the server accepted `STARTTLS`.
struct TLSUpgrade: Sendable {
    let context: NIOSSLContext
    let serverHostname: String?
}

/// One outbound request: optional bytes to send, and a promise for the next reply.
///
/// Every request expects exactly one reply. A request without bytes just waits for
/// the next reply (used for the greeting).
struct SMTPRequest: Sendable {
    var bytes: ByteBuffer?
    var step: SMTPStep
    var timeout: TimeAmount
    var replyPromise: EventLoopPromise<SMTPReply>
    /// When set and the reply is `220`, the TLS handler is inserted before the
    /// promise is completed, so no byte can be read as plaintext after the reply.
    var tlsUpgrade: TLSUpgrade?
}

/// Parses SMTP replies from the byte stream and matches them, in order, with the
/// requests written through it. Enforces per-request timeouts. After any transport
/// error, timeout or protocol violation the channel is closed and every pending and
/// future request fails.
///
/// All state is confined to the channel's event loop.
final class SMTPChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = SMTPRequest
    typealias OutboundOut = ByteBuffer

    /// RFC 5321 §4.5.3.1.5 limits reply lines to 512 octets; be lenient but bounded.
    static let maximumLineLength = 8192
    /// A bound on lines per reply, so a hostile server cannot exhaust memory.
    static let maximumLinesPerReply = 1000
    /// A bound on replies nobody has asked for yet.
    static let maximumUnclaimedReplies = 8

    private struct Pending {
        var id: UInt64
        var step: SMTPStep
        var promise: EventLoopPromise<SMTPReply>
        var timer: Scheduled<Void>?
        var tlsUpgrade: TLSUpgrade?
    }

    private var pending = CircularBuffer<Pending>()
    /// The `STARTTLS` request once its 220 arrived: answered when the TLS handshake completes (or fails), so
    /// nothing is written after STARTTLS until TLS is up and a failed handshake is reported as such.
    private var handshaking: (request: Pending, reply: SMTPReply)?
    private var unclaimed = CircularBuffer<SMTPReply>()
    private var inbound: ByteBuffer?
    private var partialCode: Int?
    private var partialLines: [String] = []
    private var terminalError: SMTPError?
    private var nextID: UInt64 = 0
    private var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        fail(with: .connectionFailed(step: .connect, reason: "connection torn down"), close: false)
        self.context = nil
    }

    // MARK: Outbound

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        if let terminalError {
            request.replyPromise.fail(terminalError.replacingStep(request.step))
            promise?.fail(terminalError)
            return
        }
        let id = nextID
        nextID += 1
        let timer = context.eventLoop.assumeIsolated().scheduleTask(in: request.timeout) { [self] in
            self.timerFired(id: id)
        }
        pending.append(Pending(id: id, step: request.step, promise: request.replyPromise, timer: timer, tlsUpgrade: request.tlsUpgrade))
        if let bytes = request.bytes {
            context.write(wrapOutboundOut(bytes), promise: promise)
        } else {
            promise?.succeed(())
        }
        // A reply that arrived before anyone asked (e.g. the greeting) goes to the oldest request.
        while !unclaimed.isEmpty && !pending.isEmpty {
            deliver(unclaimed.removeFirst(), context: context)
        }
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if inbound == nil {
            inbound = bytes
        } else {
            inbound!.writeBuffer(&bytes)
        }
        while terminalError == nil, let line = nextLine() {
            process(line: line, context: context)
        }
        if terminalError == nil, let inbound, inbound.readableBytes > Self.maximumLineLength {
            violation("reply line longer than \(Self.maximumLineLength) octets", context: context)
        }
        if let readable = inbound?.readableBytes, readable == 0 {
            inbound = nil // release the buffer between replies
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted? = event as? TLSUserEvent, let (request, reply) = handshaking {
            handshaking = nil
            request.timer?.cancel()
            request.promise.succeed(reply)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(with: .connectionFailed(step: .connect, reason: "connection closed by the server"), close: false)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if pending.isEmpty, let sslError = error as? NIOSSLError, case .uncleanShutdown = sslError {
            // Many servers close TCP without a TLS close_notify after QUIT: harmless.
            context.close(promise: nil)
            return
        }
        fail(with: SMTPError.from(error, step: pending.first?.step ?? .connect), close: true)
    }

    /// Extracts the next LF-terminated line (without CR LF) from the inbound buffer.
    private func nextLine() -> String? {
        guard var buffer = inbound,
              let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n"))
        else { return nil }
        let length = newline - buffer.readerIndex
        guard var lineBytes = buffer.readBytes(length: length) else { return nil }
        buffer.moveReaderIndex(forwardBy: 1)
        if lineBytes.last == UInt8(ascii: "\r") { lineBytes.removeLast() }
        inbound = buffer
        return String(decoding: lineBytes, as: UTF8.self)
    }

    /// Handles one reply line: `ddd-text` (continuation), `ddd text` or `ddd` (last line).
    private func process(line: String, context: ChannelHandlerContext) {
        let utf8 = Array(line.utf8)
        guard utf8.count >= 3,
              utf8[0..<3].allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              utf8.count == 3 || utf8[3] == UInt8(ascii: " ") || utf8[3] == UInt8(ascii: "-")
        else {
            violation("malformed reply line \(quoted(String(line.prefix(80))))", context: context)
            return
        }
        let code = Int(String(decoding: utf8[0..<3], as: UTF8.self))!
        guard (200...599).contains(code) || (100...199).contains(code) else {
            violation("invalid reply code \(code)", context: context)
            return
        }
        if let partialCode, partialCode != code {
            violation("reply code changed within a multi-line reply (\(partialCode) then \(code))", context: context)
            return
        }
        partialLines.append(utf8.count > 4 ? String(decoding: utf8[4...], as: UTF8.self) : "")
        if partialLines.count > Self.maximumLinesPerReply {
            violation("reply has more than \(Self.maximumLinesPerReply) lines", context: context)
            return
        }
        if utf8.count > 3 && utf8[3] == UInt8(ascii: "-") {
            partialCode = code
            return
        }
        let reply = SMTPReply(code: code, lines: partialLines)
        partialCode = nil
        partialLines = []
        if pending.isEmpty {
            guard unclaimed.count < Self.maximumUnclaimedReplies else {
                violation("too many unsolicited replies", context: context)
                return
            }
            unclaimed.append(reply)
        } else {
            deliver(reply, context: context)
        }
    }

    private func deliver(_ reply: SMTPReply, context: ChannelHandlerContext) {
        let request = pending.removeFirst()
        if let upgrade = request.tlsUpgrade, reply.code == 220 {
            // RFC 3207 §4: TLS negotiation starts right after the 220. Anything the
            // server (or an attacker) sent after the 220 in plaintext must not be
            // interpreted later as if it had been protected ("STARTTLS injection").
            if (inbound?.readableBytes ?? 0) > 0 || !unclaimed.isEmpty || !pending.isEmpty {
                request.timer?.cancel()
                request.promise.fail(SMTPError.protocolViolation(step: .startTLS, reason: "plaintext data after the STARTTLS reply"))
                fail(with: .protocolViolation(step: .startTLS, reason: "plaintext data after the STARTTLS reply"), close: true)
                return
            }
            // Answered when the handshake ends (`userInboundEventTriggered` or `fail`); the request's timer
            // keeps running meanwhile, so a handshake that never ends times out as this step.
            handshaking = (request, reply)
            do {
                let tlsHandler = try NIOSSLClientHandler(context: upgrade.context, serverHostname: upgrade.serverHostname)
                try context.pipeline.syncOperations.addHandler(tlsHandler, position: .first)
            } catch {
                fail(with: .tlsFailed(step: .startTLS, reason: "cannot start TLS: \(error)"), close: true)
            }
            return
        }
        request.timer?.cancel()
        request.promise.succeed(reply)
    }

    private func timerFired(id: UInt64) {
        guard let request = pending.first(where: { $0.id == id }) ?? handshaking.map(\.request).flatMap({ $0.id == id ? $0 : nil }) else { return }
        fail(with: .timeout(step: request.step), close: true)
    }

    private func violation(_ reason: String, context: ChannelHandlerContext) {
        fail(with: .protocolViolation(step: pending.first?.step ?? .greeting, reason: reason), close: true)
    }

    /// Fails every pending request (each with its own step) and all future ones,
    /// optionally closing the channel. Only the first error is kept.
    private func fail(with error: SMTPError, close: Bool) {
        if terminalError == nil {
            terminalError = error
        }
        if let (request, _) = handshaking {
            handshaking = nil
            request.timer?.cancel()
            request.promise.fail(error.replacingStep(.tlsHandshake))
        }
        let failed = pending
        pending.removeAll()
        for request in failed {
            request.timer?.cancel()
            request.promise.fail(error.replacingStep(request.step))
        }
        if close, let context {
            context.close(promise: nil)
        }
    }
}

@available(*, unavailable)
extension SMTPChannelHandler: Sendable {}

extension SMTPError {
    /// Maps NIO, NIOSSL and system errors to ``SMTPError``.
    static func from(_ error: any Error, step: SMTPStep) -> SMTPError {
        switch error {
        case let error as SMTPError:
            return error
        case let error as NIOSSLError:
            if case .uncleanShutdown = error {
                return .connectionFailed(step: step, reason: "TLS connection closed without close_notify")
            }
            return .tlsFailed(step: .tlsHandshake, reason: String(describing: error))
        case let error as NIOSSLExtraError:
            return .tlsFailed(step: .tlsHandshake, reason: String(describing: error))
        case let error as BoringSSLError:
            return .tlsFailed(step: .tlsHandshake, reason: String(describing: error))
        case let error as ChannelError:
            switch error {
            case .connectTimeout:
                return .timeout(step: .connect)
            case .ioOnClosedChannel, .alreadyClosed, .eof, .outputClosed, .inputClosed:
                return .connectionFailed(step: step, reason: "connection closed")
            default:
                return .connectionFailed(step: step, reason: String(describing: error))
            }
        case let error as NIOConnectionError:
            return .connectionFailed(step: .connect, reason: error.description)
        case let error as IOError:
            return .connectionFailed(step: step, reason: error.description)
        default:
            return .connectionFailed(step: step, reason: String(describing: error))
        }
    }

    /// The same error attributed to another step, for transport-level errors that
    /// affect every pending request. Server replies and TLS errors keep their step.
    func replacingStep(_ step: SMTPStep) -> SMTPError {
        switch self {
        case .timeout:
            return .timeout(step: step)
        case .connectionFailed(_, let reason):
            return .connectionFailed(step: step, reason: reason)
        case .protocolViolation(_, let reason):
            return .protocolViolation(step: step, reason: reason)
        default:
            return self
        }
    }
}
