import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

/// A request the HTTP decoder could not read (SwiftNIO's `HTTPParserError`): the client's fault, so a 4xx with
/// the API's JSON error body, logged below error level, never a 500 or a dependency reported down.
public struct MalformedRequest: Error, Sendable, CustomStringConvertible {
    public var status: HTTPResponse.Status
    public var code: String
    public var message: String
    /// The decoder's own error.
    public var parserError: HTTPParserError

    public init(_ error: HTTPParserError) {
        parserError = error
        let described = Self.describe(error)
        status = described.0
        code = described.1
        message = described.2
    }

    static func describe(_ error: HTTPParserError) -> (HTTPResponse.Status, String, String) {
        switch error {
        case .headerOverflow:
            return (.requestHeaderFieldsTooLarge, "headers_too_large",
                "The request line and header fields are too large: at most \(MalformedRequestHandler.maxHeaderBytes / 1024) KiB in all, URL included.")
        case .invalidMethod:
            return (.badRequest, "unknown_method", "The request method is not an HTTP method this server reads; the API uses GET, HEAD, POST, DELETE and OPTIONS.")
        case .invalidURL:
            return (.badRequest, "invalid_url", "The request target is not a valid URL path.")
        case .invalidContentLength, .unexpectedContentLength:
            return (.badRequest, "invalid_content_length", "Content-Length is not a single non-negative number, or comes with Transfer-Encoding.")
        case .invalidChunkSize:
            return (.badRequest, "malformed_chunked_body", "The chunked body is malformed: a chunk size is not a hexadecimal number followed by CRLF.")
        case .invalidEOFState:
            return (.badRequest, "incomplete_request",
                "The connection was closed before the whole request arrived: the body is shorter than its Content-Length, or the chunked body has no last chunk.")
        case .invalidHeaderToken:
            return (.badRequest, "invalid_header", "A header field name or value holds a character HTTP does not allow there.")
        case .invalidVersion:
            return (.badRequest, "unsupported_http_version", "The request is not HTTP/1.0 or HTTP/1.1.")
        case .lfExpected:
            return (.badRequest, "malformed_request", "A line of the request does not end with CRLF (a bare LF or CR).")
        default:
            return (.badRequest, "malformed_request", "The request is not well-formed HTTP/1.1 (\(error)).")
        }
    }

    /// `{"error":{"code","message"}}`.
    var apiError: APIError { APIError(status, code: code, message: message) }

    public var description: String { "\(code): \(parserError)" }
}

/// Sits after the HTTP/1 decoder (one of Hummingbird's `additionalChannelHandlers`) and answers what the decoder
/// could not read with a JSON error instead of Hummingbird's empty 400:
/// - between requests (a bad request line or header: unknown method, oversized header or URL, bad
///   Content-Length, bare LF…), it writes the JSON answer itself, after the answers still being written to the
///   requests before it, and closes the connection;
/// - in the middle of a body (malformed chunked framing, a body cut short), it passes a `MalformedRequest` to the
///   route reading the body, whose error middleware answers it (a route that did not read its body has answered
///   already: the connection is then closed).
public final class MalformedRequestHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = HTTPRequestPart
    public typealias InboundOut = HTTPRequestPart
    public typealias OutboundIn = HTTPResponsePart
    public typealias OutboundOut = HTTPResponsePart

    /// Hummingbird's decoder limit on the request line and headers (80 KiB), quoted in the 431 answer.
    static let maxHeaderBytes = 80 * 1024

    let log: AggregatedLog?
    /// Request heads read / response ends written on this connection.
    var requests = 0
    var responses = 0
    /// A head was read and its end not yet: a decoder error now is in this request's body.
    var inBody = false
    /// An error between requests, answered once the answers in progress are written.
    var pending: MalformedRequest?
    var closing = false

    public init(log: AggregatedLog?) {
        self.log = log
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        switch unwrapInboundIn(data) {
        case .head:
            requests += 1
            inBody = true
        case .body:
            break
        case .end:
            inBody = false
        }
        context.fireChannelRead(data)
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let isEnd = if case .end = unwrapOutboundIn(data) { true } else { false }
        context.write(data, promise: promise)
        if isEnd {
            responses += 1
            if let pending, responses >= requests {
                self.pending = nil
                answer(pending, context: context)
            }
        }
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError else {
            // Bytes that came after the error (the decoder reads nothing more): the answer is written or due.
            if error is ByteToMessageDecoderError, closing || pending != nil { return }
            context.fireErrorCaught(error)
            return
        }
        let malformed = MalformedRequest(parserError)
        if inBody {
            // The route reading this body answers it (see ErrorMiddleware); not Hummingbird's `HTTPParserError`,
            // which would make it write a second, empty, answer after the route's.
            inBody = false
            context.fireErrorCaught(malformed)
            return
        }
        guard !closing, pending == nil else { return }
        log?.log("malformed_request", level: .notice, "malformed request answered \(malformed.status.code) \(malformed.code)", metadata: [
            "error": "\(parserError)", "remote": "\(context.remoteAddress.map { "\($0)" } ?? "?")",
        ])
        if responses >= requests {
            answer(malformed, context: context)
        } else {
            pending = malformed
        }
    }

    /// Writes the JSON answer and closes the connection (the decoder cannot read anything after the error).
    func answer(_ malformed: MalformedRequest, context: ChannelHandlerContext) {
        closing = true
        var text = malformed.apiError.body.canonicalText
        text.append("\n")
        let body = context.channel.allocator.buffer(string: text)
        let head = HTTPResponse(status: malformed.status, headerFields: [
            .contentType: "application/json; charset=utf-8", .contentLength: "\(body.readableBytes)", .connection: "close",
        ])
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(body)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }
}
