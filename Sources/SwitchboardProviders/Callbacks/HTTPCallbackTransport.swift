import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import SwitchboardCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The `CallbackTransport` on AsyncHTTPClient: one POST per attempt, signed with Standard Webhooks headers.
///
/// Safety, because a client chooses the URL and the router makes the request from inside the deployment:
/// - the host is resolved first and every address checked (`CallbackRules.refusal(address:)`: loopback, private,
///   link-local, metadata); a plain-http request then connects to the checked address itself (the name goes in
///   `Host`), so a DNS answer that changes between check and connection (rebinding) cannot redirect it. An https
///   request is made by name (its certificate is for the name): AsyncHTTPClient resolves it again, a window of
///   milliseconds that a rebinding attacker would have to hit on the second of two lookups;
/// - redirects are not followed (a 3xx is an answer, and a permanent failure);
/// - at most `maxAnswer` bytes of the answer are read, then the connection is dropped; the answer is discarded;
/// - each attempt ends after `timeout`.
public struct HTTPCallbackTransport: CallbackTransport {
    /// Bytes of an answer read at most.
    public static let maxAnswer = 64 * 1024
    public static let userAgent = "switchboard-callbacks/1 (Standard Webhooks)"

    let client: HTTPClient
    let timeout: Duration
    /// `SWITCHBOARD_CALLBACK_ALLOW_PRIVATE`: no address check (tests, private deployments).
    let allowPrivate: Bool

    public init(client: HTTPClient = .shared, timeout: Duration, allowPrivate: Bool) {
        self.client = client
        self.timeout = timeout
        self.allowPrivate = allowPrivate
    }

    /// A client for callbacks: redirects are never followed.
    public static func makeClient() -> HTTPClient {
        var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow)
        configuration.decompression = .disabled
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    public func send(_ delivery: CallbackDelivery, secret: String, at: Timestamp) async -> CallbackRules.Answer {
        let body = Array(delivery.payload.utf8)
        guard let signature = StandardWebhooks.headers(secret: secret, id: delivery.id, timestamp: at.milliseconds / 1000, body: body) else {
            return .noAnswer("the endpoint's secret is not usable", retryable: false)
        }
        let target: CallbackRules.Target
        switch CallbackRules.target(delivery.url) {
        case .failure(let e): return .noAnswer(e.message, retryable: false)
        case .success(let t): target = t
        }
        var url = delivery.url
        var hostHeader: String?
        if !allowPrivate {
            if let why = CallbackRules.refusal(host: target.host) { return .noAnswer("refused: \(why)", retryable: false) }
            let addresses: [IPAddress]
            if let literal = IPAddress(parsing: target.host) {
                addresses = [literal]
            } else {
                do {
                    addresses = try await Self.resolve(target.host)
                } catch {
                    return .noAnswer("\(target.host) could not be resolved: \(error)", retryable: true)
                }
            }
            if let why = addresses.lazy.compactMap(CallbackRules.refusal(address:)).first {
                return .noAnswer("refused: \(target.host) resolves to a forbidden address (\(why))", retryable: false)
            }
            if target.scheme == "http", IPAddress(parsing: target.host) == nil, let first = addresses.first {
                // Connect to the address just checked, not to a second answer of the DNS.
                url = Self.replacingHost(of: delivery.url, with: first, port: target.port)
                hostHeader = target.port == 80 ? target.host : "\(target.host):\(target.port)"
            }
        }
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        request.headers.add(name: "user-agent", value: Self.userAgent)
        if let hostHeader { request.headers.replaceOrAdd(name: "host", value: hostHeader) }
        for (name, value) in signature { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(bytes: body))
        do {
            let nanoseconds = timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000
            let response = try await client.execute(request, timeout: .nanoseconds(nanoseconds))
            // Read a little of the answer, then let the connection go: nobody needs it.
            var read = 0
            for try await chunk in response.body {
                read += chunk.readableBytes
                if read >= Self.maxAnswer { break }
            }
            return .status(Int(response.status.code), retryAfter: response.headers.first(name: "retry-after"))
        } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout || error == .connectTimeout {
            return .noAnswer("no answer within \(timeout)", retryable: true)
        } catch {
            return .noAnswer("request failed: \(error)", retryable: true)
        }
    }

    /// `url` with its host replaced by `address` (brackets for IPv6) and its port written out.
    static func replacingHost(of url: String, with address: IPAddress, port: Int) -> String {
        guard let schemeEnd = url.range(of: "://") else { return url }
        let rest = url[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        let host: String
        switch address {
        case .v4: host = address.description
        case .v6: host = "[\(address.description)]"
        }
        return String(url[..<schemeEnd.upperBound]) + "\(host):\(port)" + String(rest[authorityEnd...])
    }

    struct ResolutionError: Error, CustomStringConvertible {
        var description: String
    }

    /// Every address of `host` (getaddrinfo, on NIO's blocking-I/O pool).
    public static func resolve(_ host: String) async throws -> [IPAddress] {
        try await NIOThreadPool.singleton.runIfActive {
            var hints = addrinfo()
            #if canImport(Glibc)
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            #else
            hints.ai_socktype = SOCK_STREAM
            #endif
            var result: UnsafeMutablePointer<addrinfo>?
            let rc = getaddrinfo(host, nil, &hints, &result)
            guard rc == 0, let first = result else { throw ResolutionError(description: String(cString: gai_strerror(rc))) }
            defer { freeaddrinfo(first) }
            var out: [IPAddress] = []
            var p: UnsafeMutablePointer<addrinfo>? = first
            while let ai = p {
                if ai.pointee.ai_family == AF_INET, let sa = ai.pointee.ai_addr {
                    var a = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
                    out.append(.v4(withUnsafeBytes(of: &a) { Array($0) }))
                } else if ai.pointee.ai_family == AF_INET6, let sa = ai.pointee.ai_addr {
                    var a = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
                    out.append(.v6(withUnsafeBytes(of: &a) { Array($0) }))
                }
                p = ai.pointee.ai_next
            }
            guard !out.isEmpty else { throw ResolutionError(description: "no address") }
            return out
        }
    }

    /// Whether `host` (a name or a literal) may receive callbacks: nil if so, else why not. Names are resolved.
    public static func refusal(host: String) async -> String? {
        if let why = CallbackRules.refusal(host: host) { return why }
        guard IPAddress(parsing: host) == nil else { return nil }
        guard let addresses = try? await resolve(host) else { return nil }  // unresolvable now: checked again at send time
        return addresses.lazy.compactMap(CallbackRules.refusal(address:)).first.map { "\(host) resolves to a forbidden address: \($0)" }
    }
}
