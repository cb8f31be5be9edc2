import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// A local HTTP server standing in for a cluster: records every request and answers with `responder`.
final class FakeCluster: Sendable {
    struct Request: Sendable {
        var method: String
        var uri: String
        var headers: [(String, String)]
        var body: [UInt8]

        func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
        var text: String { String(decoding: body, as: UTF8.self) }
        /// The `_id`s of a `_bulk` body, in order.
        var bulkIDs: [String] {
            text.split(separator: "\n").enumerated().compactMap { i, line in
                guard i % 2 == 0, let r = line.range(of: #""_id":""#) else { return nil }
                return String(line[r.upperBound...].prefix { $0 != "\"" })
            }
        }
    }

    /// Answers a request (its number among all requests, from 0) with a status and a JSON body.
    typealias Responder = @Sendable (Request, Int) -> (Int, String)

    let requests = NIOLockedValueBox<[Request]>([])
    let responder: Responder
    let channel: NIOCore.Channel
    var url: String { "http://127.0.0.1:\(channel.localAddress!.port!)" }
    var bulkRequests: [Request] { requests.withLockedValue { $0.filter { $0.uri.hasPrefix("/_bulk") } } }

    private init(responder: @escaping Responder, channel: NIOCore.Channel) {
        self.responder = responder
        self.channel = channel
    }

    static func start(_ responder: @escaping Responder) async throws -> FakeCluster {
        let box = NIOLockedValueBox<FakeCluster?>(nil)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(Handler { request in
                        let server = box.withLockedValue { $0 }!
                        let n = server.requests.withLockedValue { r in r.append(request); return r.count - 1 }
                        return server.responder(request, n)
                    })
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let server = FakeCluster(responder: responder, channel: channel)
        box.withLockedValue { $0 = server }
        return server
    }

    func stop() async {
        try? await channel.close()
    }

    /// A `_bulk` answer: `errors` false and every item 201.
    static func bulkOK(_ r: Request) -> String {
        "{\"errors\":false,\"items\":[" + r.bulkIDs.map { "{\"index\":{\"_id\":\"\($0)\",\"status\":201}}" }.joined(separator: ",") + "]}"
    }

    final class Handler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let answer: @Sendable (Request) -> (Int, String)
        var head: HTTPRequestHead?
        var body: [UInt8] = []

        init(_ answer: @escaping @Sendable (Request) -> (Int, String)) { self.answer = answer }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let h):
                head = h
                body = []
            case .body(var b):
                body += b.readBytes(length: b.readableBytes) ?? []
            case .end:
                guard let head else { return }
                let (status, text) = answer(Request(method: head.method.rawValue, uri: head.uri, headers: head.headers.map { ($0.name, $0.value) }, body: body))
                var headers = HTTPHeaders([("Content-Type", "application/json"), ("Content-Length", String(text.utf8.count))])
                headers.add(name: "Connection", value: "keep-alive")
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: HTTPResponseStatus(statusCode: status), headers: headers))), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}
