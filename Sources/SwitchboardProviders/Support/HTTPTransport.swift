import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import SwitchboardCore

/// One HTTP answer from a provider API.
struct HTTPAnswer: Sendable {
    var status: Int
    var body: [UInt8]
    var text: String { String(decoding: body.prefix(2000), as: UTF8.self) }
}

/// Sends provider API requests with AsyncHTTPClient and turns transport failures into retryable errors.
struct HTTPTransport: Sendable {
    let client: HTTPClient
    let timeout: Duration
    /// Largest response body read.
    static let maxResponse = 1 << 20

    /// Sends one request; a transport failure (connect, timeout, reset) is returned as a retryable error.
    func send(method: HTTPMethod, url: String, headers: [(String, String)], body: [UInt8]) async -> Result<HTTPAnswer, ProviderError> {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(bytes: body))
        do {
            let seconds = Int64(timeout.components.seconds) + (timeout.components.attoseconds > 0 ? 1 : 0)
            let response = try await client.execute(request, timeout: .seconds(seconds))
            let bytes = try await response.body.collect(upTo: Self.maxResponse)
            return .success(HTTPAnswer(status: Int(response.status.code), body: Array(buffer: bytes)))
        } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout || error == .connectTimeout {
            return .failure(ProviderError(code: "timeout", message: "no answer from \(Self.host(url)) within \(timeout) (\(error))"))
        } catch {
            return .failure(ProviderError(code: "connection_failed", message: "request to \(Self.host(url)) failed: \(error)"))
        }
    }

    /// The scheme and host of `url`, for error messages (never the path, which may hold an account id).
    /// POSTs `body` and maps the answer with `result`; a transport failure (timeout, refused, reset) is retryable.
    func post(url: String, headers: [(String, String)], body: [UInt8], result: (HTTPAnswer) -> DeliveryResult) async -> DeliveryResult {
        switch await send(method: .POST, url: url, headers: headers, body: body) {
        case .failure(let e): .retryable(e)
        case .success(let a): result(a)
        }
    }

    /// `base` without trailing slashes, followed by `path` (which starts with "/").
    static func join(_ base: String, _ path: String) -> String {
        var base = base
        while base.hasSuffix("/") { base.removeLast() }
        return base + path
    }

    static func host(_ url: String) -> String {
        guard let u = URL(string: url), let h = u.host else { return "provider" }
        return "\(u.scheme ?? "https")://\(h)\(u.port.map { ":\($0)" } ?? "")"
    }
}

extension JSONValue {
    /// A number or a numeric string as an integer text (`21211`), else the string itself.
    var codeText: String? {
        switch self {
        case .number(let d): d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : String(d)
        case .string(let s): s
        default: nil
        }
    }

    var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }
}
