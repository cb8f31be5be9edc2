import SwitchboardBackoff
import Foundation

/// How to reach an Elasticsearch 8 or OpenSearch cluster, and how the bulk indexer batches and retries.
public struct ElasticsearchConfiguration: Sendable {
    /// How requests authenticate.
    public enum Authentication: Sendable, Hashable {
        case none
        /// HTTP basic authentication (`ELASTICSEARCH_USER` / `ELASTICSEARCH_PASSWORD`).
        case basic(user: String, password: String)
        /// `Authorization: ApiKey <key>` (`ELASTICSEARCH_API_KEY`, the base64 `id:api_key` the cluster returns).
        case apiKey(String)

        /// The `Authorization` header value, or nil (also what Kibana, in front of the same cluster, takes).
        public var authorizationHeader: String? {
            switch self {
            case .none: nil
            case .basic(let user, let password): "Basic " + Data("\(user):\(password)".utf8).base64EncodedString()
            case .apiKey(let key): "ApiKey " + key
            }
        }
    }

    /// Base URL of a node (`ELASTICSEARCH_NODE`), without credentials and trailing slash: `http(s)://host[:port][/prefix]`.
    public var node: String
    /// How requests authenticate.
    public var authentication: Authentication
    /// Longest wait for one request (connect included).
    public var requestTimeout: Duration = .seconds(10)
    /// Longest wait for a connection.
    public var connectTimeout: Duration = .seconds(2)
    /// Batching and retries of writes.
    public var bulk = BulkOptions()
    /// At start, communications created since the index's newest `createdAt` minus this margin are indexed
    /// again from the store (what a crash lost from the in-memory buffer).
    public var catchUpMargin: Duration = .seconds(300)
    /// How often the catch-up looks whether documents were dropped.
    public var catchUpInterval: Duration = .seconds(1)

    /// - Parameters:
    ///   - node: `http://` or `https://` URL. Credentials in the URL (`https://user:pass@host`) become basic
    ///     authentication unless `authentication` is given.
    public init(node: String, authentication: Authentication = .none) throws {
        guard var components = URLComponents(string: node), let scheme = components.scheme?.lowercased(), scheme == "http" || scheme == "https",
            let host = components.host, !host.isEmpty
        else {
            throw ElasticsearchError.configuration("ELASTICSEARCH_NODE must be an http:// or https:// URL with a host")
        }
        var auth = authentication
        if let user = components.user {
            if auth == .none { auth = .basic(user: user.removingPercentEncoding ?? user, password: (components.password ?? "").removingPercentEncoding ?? "") }
            components.user = nil
            components.password = nil
        }
        guard components.query == nil, components.fragment == nil else {
            throw ElasticsearchError.configuration("ELASTICSEARCH_NODE must not have a query or fragment")
        }
        var text = components.string ?? node
        while text.hasSuffix("/") { text.removeLast() }
        self.node = text
        self.authentication = auth
    }

    /// The node and the kind of authentication, for logs and the settings summary (never a secret).
    public var description: String {
        switch authentication {
        case .none: node
        case .basic(let user, _): "\(node) (basic auth as \(user), password ****)"
        case .apiKey: "\(node) (api key ****)"
        }
    }
}

/// Batching, buffering and retries of the bulk indexer.
public struct BulkOptions: Sendable {
    /// Actions per `_bulk` request.
    public var maxActions = 1000
    /// Bytes of NDJSON per `_bulk` request (a single larger action is sent alone).
    public var maxBytes = 5 << 20
    /// Longest time a buffered action waits before its batch is sent.
    public var flushInterval: Duration = .milliseconds(500)
    /// Buffered actions (not yet sent) beyond which new ones are dropped and left to the catch-up.
    public var maxBuffered = 50_000
    /// Tries of one batch (429, 5xx, connection errors) before it is given up.
    public var maxAttempts = 6
    /// Backoff before the second try, doubled each time up to `maxBackoff`.
    public var baseBackoff: Duration = .milliseconds(100)
    /// Longest backoff.
    public var maxBackoff: Duration = .seconds(5)
    /// How long the last flush may take at graceful shutdown: a cluster that answers nothing must not hold the
    /// process up for its request timeout. What is not sent by then is left to the catch-up at the next start.
    public var shutdownFlushLimit: Duration = .milliseconds(1500)

    /// The defaults: 1000 actions or 5 MiB per request, 500 ms, 50 000 buffered, 6 tries from 100 ms to 5 s.
    public init() {}

    /// The backoff between tries: from `baseBackoff`, doubling up to `maxBackoff`.
    public var backoff: Backoff { Backoff(initial: baseBackoff, maximum: maxBackoff) }
}
