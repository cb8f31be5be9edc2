import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import SwitchboardCore
import SwitchboardTelemetry

/// Which product answers at the node (from `GET /`).
public enum SearchDialect: String, Sendable, Hashable {
    /// Elasticsearch (8.x).
    case elasticsearch
    /// OpenSearch (`version.distribution == "opensearch"`).
    case opensearch
}

/// A failed Elasticsearch request.
public enum ElasticsearchError: Error, CustomStringConvertible, Sendable, Hashable {
    /// The cluster answered with an error status; `type` and `reason` come from its `error` object.
    case http(status: Int, type: String?, reason: String?)
    /// No answer: connection refused or reset, TLS failure.
    case connection(String)
    /// No answer in time.
    case timeout(String)
    /// An answer we could not read.
    case invalidResponse(String)
    /// A setting that cannot work.
    case configuration(String)
    /// Items of a bulk request that failed for good (after their retries).
    case bulkItemsFailed(count: Int, first: String)

    /// Worth trying again: 429, 5xx, no answer.
    public var isRetryable: Bool {
        switch self {
        case .http(let status, _, _): status == 429 || status >= 500
        case .connection, .timeout: true
        case .invalidResponse, .configuration, .bulkItemsFailed: false
        }
    }

    /// A failure of the cluster rather than of the request: no answer, 429, 5xx, or credentials refused (401,
    /// 403). What `switchboard_engine_errors_total{engine="elasticsearch"}` counts.
    public var isEngineFailure: Bool {
        switch self {
        case .http(let status, _, _): status == 401 || status == 403 || status == 429 || status >= 500
        case .connection, .timeout: true
        case .invalidResponse, .configuration, .bulkItemsFailed: false
        }
    }

    /// The cluster did not answer at all.
    public var isUnreachable: Bool {
        switch self {
        case .connection, .timeout: true
        default: false
        }
    }

    public var description: String {
        switch self {
        case .http(let status, let type, let reason): "elasticsearch answered \(status)\(type.map { " \($0)" } ?? "")\(reason.map { ": \($0)" } ?? "")"
        case .connection(let m): "elasticsearch unreachable: \(m)"
        case .timeout(let m): "elasticsearch timed out: \(m)"
        case .invalidResponse(let m): "unreadable elasticsearch answer: \(m)"
        case .configuration(let m): m
        case .bulkItemsFailed(let count, let first): "\(count) bulk items failed; first: \(first)"
        }
    }
}

/// One answer of the cluster.
public struct ElasticsearchResponse: Sendable {
    /// The HTTP status.
    public var status: Int
    /// The body as received.
    public var body: [UInt8]
    /// The body as JSON.
    public func json() throws -> JSONValue {
        do { return try JSONParser.parse(body) } catch { throw ElasticsearchError.invalidResponse("\(error)") }
    }
}

/// A small Elasticsearch / OpenSearch REST client on AsyncHTTPClient: authentication, timeouts, typed errors.
///
/// Credentials go only into the `Authorization` header; errors and logs name the node, never a secret.
/// No `Expect: 100-continue` is sent.
public final class ElasticsearchClient: Sendable {
    /// Node, authentication, timeouts.
    public let configuration: ElasticsearchConfiguration
    let http: HTTPClient
    let authorization: String?
    /// Largest answer read (search pages, bulk responses).
    static let maxResponse = 64 << 20
    /// Failed requests (`send`) and documents bulk requests failed to index (`BulkIndexer`).
    public let metrics: SearchEngineMetrics

    /// Makes its own AsyncHTTPClient (closed by `shutdown()`) with the configured timeouts; connects lazily.
    /// - Parameter metrics: where failed requests and bulk failures are counted (`engine` `elasticsearch`).
    public init(configuration: ElasticsearchConfiguration, metrics: SearchEngineMetrics = SearchEngineMetrics(engine: "elasticsearch")) {
        self.configuration = configuration
        self.metrics = metrics
        var c = HTTPClient.Configuration(timeout: .init(connect: .nanoseconds(Int64(configuration.connectTimeout.nanoseconds)), read: .nanoseconds(Int64(configuration.requestTimeout.nanoseconds))))
        c.decompression = .disabled
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: c)
        authorization = configuration.authentication.authorizationHeader
    }

    /// Closes the connections.
    public func shutdown() async {
        try? await http.shutdown()
    }

    /// Sends one request. Statuses in `accept` and 2xx are returned; others are thrown as `ElasticsearchError.http`.
    /// A request that failed for the engine's reasons (no answer, 429, 5xx, or refused credentials: 401, 403) is
    /// counted in `switchboard_engine_errors_total{engine="elasticsearch"}`; other statuses are the request's.
    public func send(_ method: HTTPMethod, _ path: String, json body: [UInt8]? = nil, contentType: String = "application/json", accept: Set<Int> = []) async throws -> ElasticsearchResponse {
        do {
            return try await exchange(method, path, json: body, contentType: contentType, accept: accept)
        } catch let error as ElasticsearchError {
            if error.isEngineFailure { metrics.failed() }
            throw error
        }
    }

    func exchange(_ method: HTTPMethod, _ path: String, json body: [UInt8]?, contentType: String, accept: Set<Int>) async throws -> ElasticsearchResponse {
        var request = HTTPClientRequest(url: configuration.node + path)
        request.method = method
        if let authorization { request.headers.add(name: "Authorization", value: authorization) }
        request.headers.add(name: "Accept", value: "application/json")
        if let body {
            request.headers.add(name: "Content-Type", value: contentType)
            request.headers.add(name: "Content-Length", value: String(body.count))
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let response: ElasticsearchResponse
        do {
            let r = try await http.execute(request, timeout: .nanoseconds(Int64(configuration.requestTimeout.nanoseconds)))
            let bytes = try await r.body.collect(upTo: Self.maxResponse)
            response = ElasticsearchResponse(status: Int(r.status.code), body: Array(buffer: bytes))
        } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout || error == .connectTimeout {
            throw ElasticsearchError.timeout("\(method) \(Self.pathOnly(path)) on \(configuration.node) (\(error))")
        } catch {
            throw ElasticsearchError.connection("\(method) \(Self.pathOnly(path)) on \(configuration.node): \(error)")
        }
        if (200..<300).contains(response.status) || accept.contains(response.status) { return response }
        let error = (try? response.decode(ErrorAnswer.self))?.error
        // Without an `error` member (or JSON), the start of the body says what went wrong.
        let reason: String? = if let error { error.reason } else { String(decoding: response.body.prefix(300), as: UTF8.self) }
        throw ElasticsearchError.http(status: response.status, type: error?.type, reason: reason)
    }

    /// The dialect and version at the node (`GET /`).
    public func info() async throws -> (dialect: SearchDialect, version: String) {
        let version = try await send(.GET, "/").decode(NodeInfo.self).version
        return (version?.distribution == "opensearch" ? .opensearch : .elasticsearch, version?.number ?? "?")
    }

    static func pathOnly(_ path: String) -> String {
        String(path.prefix { $0 != "?" })
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (s, a) = components
        return s * 1_000_000_000 + a / 1_000_000_000
    }
}
