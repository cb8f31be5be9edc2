import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOSSL
import Synchronization
import ServiceLifecycle

/// How the router's HTTP server is set up beyond its routes: TLS, the connection cap, the idle timeout, and
/// the handler that answers what the HTTP decoder cannot read with a JSON error.
public enum HTTPServerSetup {
    /// The server for `Application(server:)`: HTTP/1.1, behind TLS when `tls` is given (HTTPS only: a plain
    /// HTTP request on the port fails its handshake), with `MalformedRequestHandler` after the decoder.
    ///
    /// With `webSockets` (the router of `GET /api/v1/ws`), an upgrade to a WebSocket is offered on the same port
    /// (hummingbird-websocket); the server pings every `ping` and closes a client that does not answer.
    public static func server(idleTimeout: Duration?, tls: TLSConfiguration?, log: AggregatedLog?, webSockets: Router<LiveSocketContext>? = nil, ping: Duration = .seconds(15)) throws -> HTTPServerBuilder {
        let http1 = HTTP1Channel.Configuration(additionalChannelHandlers: [MalformedRequestHandler(log: log)], idleTimeout: idleTimeout.map { TimeAmount($0) })
        let http: HTTPServerBuilder
        if let webSockets {
            let responder = webSockets.buildResponder()
            let configuration = HTTP1WebSocketUpgradeChannel.Configuration(http1: http1, ws: .init(maxFrameSize: 1 << 16, autoPing: .enabled(timePeriod: ping)))
            http = HTTPServerBuilder { httpResponder in
                let upgrade = HTTP1WebSocketUpgradeChannel(responder: httpResponder, webSocketResponder: responder, configuration: configuration)
                return IdleConnectionChannel(base: upgrade, timeout: idleTimeout.map { TimeAmount($0) })
            }
        } else {
            http = .http1(configuration: http1)
        }
        guard let tls else { return http }
        return try .tls(http, tlsConfiguration: tls)
    }

    /// A server TLS configuration from PEM files: `certificateFile` holds the certificate, then any
    /// intermediates (a chain); `keyFile` its private key. TLS 1.2 or later. Every failure says which file and
    /// why: unreadable, no certificate in it, no key in it, or a key that is not the certificate's.
    public static func tlsConfiguration(certificateFile: String, keyFile: String) throws(TLSSetupError) -> TLSConfiguration {
        let certificateBytes = try read(certificateFile, what: "certificate")
        let keyBytes = try read(keyFile, what: "private key")
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMBytes(certificateBytes)
        } catch {
            throw TLSSetupError("\(certificateFile) does not hold a PEM certificate (\(error))")
        }
        guard !chain.isEmpty else { throw TLSSetupError("\(certificateFile) holds no PEM certificate (-----BEGIN CERTIFICATE-----)") }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(bytes: keyBytes, format: .pem)
        } catch {
            throw TLSSetupError("\(keyFile) does not hold a PEM private key, or it is encrypted (\(error))")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        // Builds the context now, so that a key that is not the certificate's stops the start rather than the
        // first handshake.
        do {
            _ = try NIOSSLContext(configuration: configuration)
        } catch {
            throw TLSSetupError("the private key in \(keyFile) does not match the certificate in \(certificateFile), or they cannot be used together (\(error))")
        }
        return configuration
    }

    static func read(_ path: String, what: String) throws(TLSSetupError) -> [UInt8] {
        do {
            return Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            let reason = (error as NSError).localizedDescription
            throw TLSSetupError("cannot read the \(what) file \(path): \(reason)")
        }
    }
}

/// A TLS certificate or key that cannot be used.
public struct TLSSetupError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// Caps the connections the router holds (`SWITCHBOARD_MAX_CONNECTIONS`). At the cap the server stops accepting:
/// new connections wait in the listen backlog (then the kernel refuses them) until one closes, while the
/// connections it has are served as usual. Each file descriptor a connection takes is one the process keeps for
/// its database, its engines' connections and the runtime, which would otherwise crash when it cannot get one.
public struct ConnectionCap: AvailableConnectionsDelegate {
    public let maximum: Int
    let log: AggregatedLog?
    var open = 0

    public init(maximum: Int, log: AggregatedLog?) {
        self.maximum = max(1, maximum)
        self.log = log
    }

    public mutating func connectionOpened() {
        open += 1
        if open >= maximum {
            log?.log("connection_cap", level: .warning, "connection cap reached: \(open) connections open; new ones wait in the listen backlog until some close (SWITCHBOARD_MAX_CONNECTIONS=\(maximum))")
        }
    }

    public mutating func connectionClosed() {
        open -= 1
    }

    public func isAcceptingNewConnections() -> Bool {
        open < maximum
    }
}

/// Closes a connection on which nothing was read or written for `timeout` (when there is one), from its first
/// moment. With the WebSocket upgrade, hummingbird-websocket installs its idle handling only once a first request
/// has been read, so a connection that never sends anything would stay open forever; this keeps the router's rule
/// (`SWITCHBOARD_HTTP_IDLE_TIMEOUT_MS`) for it. Event streams and WebSockets are never idle that long: they get a
/// heartbeat or a ping well within it. Its connections log through `ClientGoneIsNotAnError`.
struct IdleConnectionChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value
    let base: Base
    let timeout: TimeAmount?

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandlers(
                timeout.map { [IdleStateHandler(allTimeout: $0), IdleCloser()] } ?? [IdleCloser()])
        }.flatMap { base.setup(channel: channel, logger: logger) }
    }

    /// On graceful shutdown a connection that has not sent a byte is closed at once, as Hummingbird's HTTP/1
    /// channel closes its idle ones (the upgrade channel waits for a first request before it handles shutdown).
    func handle(value: Value, logger: Logger) async {
        let channel = value.channel
        var logger = logger
        logger.handler = ClientGoneIsNotAnError(base: logger.handler)
        await withGracefulShutdownHandler { [logger] in
            await base.handle(value: value, logger: logger)
        } onGracefulShutdown: {
            channel.pipeline.handler(type: IdleCloser.self).whenSuccess { closer in
                if !closer.readSomething.load(ordering: .relaxed) { channel.close(promise: nil) }
            }
        }
    }

    /// Closes the channel when `IdleStateHandler` says it was idle both ways; notes whether anything was read.
    final class IdleCloser: ChannelInboundHandler, RemovableChannelHandler, Sendable {
        typealias InboundIn = NIOAny
        let readSomething = Atomic<Bool>(false)

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            readSomething.store(true, ordering: .relaxed)
            context.fireChannelRead(data)
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .all {
                context.close(promise: nil)
            } else {
                context.fireUserInboundEventTriggered(event)
            }
        }
    }
}

/// hummingbird-websocket logs at `error` any failure of a connection's upgrade negotiation but a closed input,
/// including a connection the client dropped while it was being set up (NIO's `ChannelError`, such as
/// "Inappropriate operation for state" during a connection flood). A client leaving is not the server's error:
/// those lines are lowered to `debug`; every other line passes as it is.
struct ClientGoneIsNotAnError: LogHandler {
    var base: any LogHandler

    var logLevel: Logger.Level {
        get { base.logLevel }
        set { base.logLevel = newValue }
    }

    var metadata: Logger.Metadata {
        get { base.metadata }
        set { base.metadata = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { base[metadataKey: key] }
        set { base[metadataKey: key] = newValue }
    }

    func log(event: LogEvent) {
        var event = event
        if event.level == .error, event.message.description == "Error handling upgrade result",
            case .string(let type)? = event.metadata?["error.type"], Self.channelErrors.contains(type)
        {
            guard base.logLevel <= .debug else { return }
            event.level = .debug
        }
        base.log(event: event)
    }

    /// The descriptions of NIO's `ChannelError` cases that mean the connection went away.
    static let channelErrors: Set<String> = [
        "\(ChannelError.inappropriateOperationForState)", "\(ChannelError.ioOnClosedChannel)", "\(ChannelError.alreadyClosed)",
        "\(ChannelError.outputClosed)", "\(ChannelError.eof)",
    ]
}
