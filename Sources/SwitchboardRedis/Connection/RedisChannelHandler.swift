import Logging
import NIOCore
import NIOTLS

/// Thrown by the channel handler when a request reaches a connection that is
/// already closed, so the command was certainly not sent. Callers that own a pool
/// may retry such a command on another connection.
struct RedisRequestNotSentError: Error {}

/// What a request expects back.
enum RedisResponder: Sendable {
    /// One reply.
    case single(EventLoopPromise<RESPValue>)
    /// `count` replies, delivered together.
    case batch(EventLoopPromise<[RESPValue]>, count: Int)

    func fail(_ error: any Error) {
        switch self {
        case .single(let promise): promise.fail(error)
        case .batch(let promise, _): promise.fail(error)
        }
    }
}

/// One or more encoded commands written in a single flush.
struct RedisRequest: Sendable {
    var payload: ByteBuffer
    var responder: RedisResponder
    /// The reply must arrive within this time, or the connection is closed.
    var timeout: TimeAmount?
}

/// Writes requests, parses replies and completes the requests' promises in FIFO order.
///
/// Any number of requests may be in flight (pipelining). A reply that arrives
/// with nothing waiting for it, an undecodable reply or a timeout closes the
/// channel; every request still waiting then fails.
final class RedisChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = RedisRequest
    typealias OutboundOut = ByteBuffer

    /// Replies collected for a pipelined batch; a class so that appending mutates in place.
    private final class BatchReplies {
        var replies: [RESPValue]
        var remaining: Int

        init(count: Int) {
            self.replies = []
            self.replies.reserveCapacity(count)
            self.remaining = count
        }
    }

    private enum PendingResponder {
        case single(EventLoopPromise<RESPValue>)
        case batch(EventLoopPromise<[RESPValue]>, BatchReplies)
    }

    private struct Pending {
        var responder: PendingResponder
        var timeoutTask: Scheduled<Void>?
        var requestID: UInt64
    }

    private enum State {
        case open
        case closed(RedisError)
    }

    private var pending = CircularBuffer<Pending>(initialCapacity: 16)
    private var state = State.open
    private var processor = NIOSingleStepByteToMessageProcessor(RESPValueDecoder(), maximumBufferSize: nil)
    private var nextRequestID: UInt64 = 0
    private var receivedAnyReply = false
    private weak var context: ChannelHandlerContext?
    private let logger: Logger
    private let expectsTLSHandshake: Bool
    private var tlsHandshakePromise: EventLoopPromise<Void>?

    /// Creates the handler.
    /// - Parameters:
    ///   - logger: Where to log.
    ///   - expectsTLSHandshake: Whether a TLS handler sits before this one; ``tlsHandshakeFuture``
    ///     then completes when its handshake does (or fails with the reason it failed).
    init(logger: Logger, expectsTLSHandshake: Bool = false) {
        self.logger = logger
        self.expectsTLSHandshake = expectsTLSHandshake
    }

    /// Completes when the TLS handshake has succeeded (at once without TLS).
    /// Must be read on the channel's event loop, after the handler was added.
    var tlsHandshakeFuture: EventLoopFuture<Void> {
        if let promise = self.tlsHandshakePromise {
            return promise.futureResult
        }
        return self.context!.eventLoop.makeSucceededFuture(())
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if self.expectsTLSHandshake {
            self.tlsHandshakePromise = context.eventLoop.makePromise()
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event {
            self.tlsHandshakePromise?.succeed()
        }
        context.fireUserInboundEventTriggered(event)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.tlsHandshakePromise?.fail(RedisError.connectionFailed("connection closed during the TLS handshake"))
        self.failAll(with: .connectionClosed)
        self.context = nil
    }

    // MARK: Outbound

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = self.unwrapOutboundIn(data)
        guard case .open = self.state else {
            request.responder.fail(RedisRequestNotSentError())
            promise?.fail(RedisError.connectionClosed)
            return
        }

        let responder: PendingResponder
        switch request.responder {
        case .single(let promise):
            responder = .single(promise)
        case .batch(let promise, let count):
            if count == 0 {
                promise.succeed([])
                return
            }
            responder = .batch(promise, BatchReplies(count: count))
        }

        let requestID = self.nextRequestID
        self.nextRequestID &+= 1
        var timeoutTask: Scheduled<Void>?
        if let timeout = request.timeout {
            timeoutTask = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
                self.timeoutFired(requestID: requestID)
            }
        }
        self.pending.append(Pending(responder: responder, timeoutTask: timeoutTask, requestID: requestID))
        context.write(self.wrapOutboundOut(request.payload), promise: promise)
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = self.unwrapInboundIn(data)
        do {
            try self.processor.process(buffer: bytes) { value in
                self.deliver(value, context: context)
            }
        } catch let error as RedisError {
            self.logger.debug("Closing Redis connection after a protocol error", metadata: ["error": "\(error)"])
            self.failAll(with: error)
            context.close(promise: nil)
        } catch {
            self.failAll(with: .protocolError("\(error)"))
            context.close(promise: nil)
        }
    }

    private func deliver(_ value: RESPValue, context: ChannelHandlerContext) {
        guard case .open = self.state else { return }
        if case .push = value {
            // Out-of-band RESP3 push (for example client-side caching invalidations).
            // This client does not subscribe to anything, so pushes are not replies.
            self.logger.trace("Ignoring RESP3 push message")
            return
        }
        self.receivedAnyReply = true
        guard !self.pending.isEmpty else {
            self.logger.debug("Closing Redis connection: received a reply with no command waiting")
            self.failAll(with: .protocolError("unexpected reply with no command waiting"))
            context.close(promise: nil)
            return
        }
        let headIndex = self.pending.startIndex
        switch self.pending[headIndex].responder {
        case .single(let promise):
            let head = self.pending.removeFirst()
            head.timeoutTask?.cancel()
            promise.succeed(value)
        case .batch(let promise, let batch):
            batch.replies.append(value)
            batch.remaining -= 1
            if batch.remaining == 0 {
                let head = self.pending.removeFirst()
                head.timeoutTask?.cancel()
                let replies = batch.replies
                batch.replies = []
                promise.succeed(replies)
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        // Deliver whatever complete replies remain in the buffer, then fail the rest.
        // (When the handler itself closed the channel its state is already closed and
        // it may be inside `process`, which must not be re-entered.)
        if case .open = self.state {
            try? self.processor.finishProcessing(seenEOF: true) { value in
                self.deliver(value, context: context)
            }
        }
        self.tlsHandshakePromise?.fail(RedisError.connectionFailed("connection closed during the TLS handshake"))
        self.failAll(with: .connectionClosed)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let redisError: RedisError
        if let error = error as? RedisError {
            redisError = error
        } else if self.receivedAnyReply {
            redisError = .connectionClosed
        } else {
            // Typically a TLS handshake or certificate verification failure.
            redisError = .connectionFailed("\(error)")
        }
        self.logger.debug("Redis connection error", metadata: ["error": "\(error)"])
        self.tlsHandshakePromise?.fail(RedisError.connectionFailed("TLS: \(error)"))
        self.failAll(with: redisError)
        context.close(promise: nil)
    }

    // MARK: Failure

    private func timeoutFired(requestID: UInt64) {
        guard case .open = self.state else { return }
        guard self.pending.contains(where: { $0.requestID == requestID }) else { return }
        self.logger.debug("Redis command timed out; closing the connection")
        // Replies are matched by position, so once one is overdue the stream cannot be
        // trusted: fail the late request with a timeout and everything else as closed.
        var failed = self.pending
        self.pending.removeAll()
        self.state = .closed(.connectionClosed)
        while let entry = failed.popFirst() {
            entry.timeoutTask?.cancel()
            let error: RedisError = entry.requestID == requestID ? .timeout : .connectionClosed
            switch entry.responder {
            case .single(let promise): promise.fail(error)
            case .batch(let promise, _): promise.fail(error)
            }
        }
        self.context?.close(promise: nil)
    }

    private func failAll(with error: RedisError) {
        if case .open = self.state {
            self.state = .closed(error)
        }
        while let entry = self.pending.popFirst() {
            entry.timeoutTask?.cancel()
            switch entry.responder {
            case .single(let promise): promise.fail(error)
            case .batch(let promise, _): promise.fail(error)
            }
        }
    }
}

@available(*, unavailable)
extension RedisChannelHandler: Sendable {}
