import Logging
import SwitchboardCore
import SwitchboardElasticsearch

extension Settings {
    /// The Elasticsearch / OpenSearch variables, for `--help` and the README.
    static let elasticsearchVariables: [Variable] = [
        Variable(name: "ELASTICSEARCH_NODE", meaning: "search on Elasticsearch 8 or OpenSearch: http(s)://host:port (unset: SQLite FTS5)", defaultValue: "unset"),
        Variable(name: "ELASTICSEARCH_USER", meaning: "basic-auth user (with ELASTICSEARCH_PASSWORD)", defaultValue: "unset"),
        Variable(name: "ELASTICSEARCH_PASSWORD", meaning: "basic-auth password", defaultValue: "unset"),
        Variable(name: "ELASTICSEARCH_API_KEY", meaning: "API key (base64 id:key), sent as Authorization: ApiKey; wins over user/password", defaultValue: "unset"),
        Variable(name: "SWITCHBOARD_ELASTICSEARCH_TIMEOUT_MS", meaning: "longest wait for one Elasticsearch request", defaultValue: "10000"),
        Variable(name: "SWITCHBOARD_ELASTICSEARCH_BULK_ACTIONS", meaning: "documents per _bulk request", defaultValue: "1000"),
        Variable(name: "SWITCHBOARD_ELASTICSEARCH_BULK_BYTES", meaning: "bytes per _bulk request", defaultValue: "5242880"),
        Variable(name: "SWITCHBOARD_ELASTICSEARCH_FLUSH_MS", meaning: "longest wait of a buffered document before its batch is sent", defaultValue: "500"),
        Variable(name: "SWITCHBOARD_ELASTICSEARCH_BUFFER", meaning: "buffered documents beyond which new ones are left to the catch-up", defaultValue: "50000"),
        Variable(name: "SWITCHBOARD_ELASTICSEARCH_CATCHUP_MARGIN_MS", meaning: "at start, re-index communications created since the index's newest minus this", defaultValue: "300000"),
    ]

    /// Reads the Elasticsearch variables; nil when `ELASTICSEARCH_NODE` is unset.
    static func elasticsearchConfiguration(_ reader: EnvironmentReader) throws -> ElasticsearchConfiguration? {
        guard let node = reader.value("ELASTICSEARCH_NODE") else { return nil }
        var auth = ElasticsearchConfiguration.Authentication.none
        if let key = reader.value("ELASTICSEARCH_API_KEY") {
            auth = .apiKey(key)
        } else if let user = reader.value("ELASTICSEARCH_USER") {
            auth = .basic(user: user, password: reader.value("ELASTICSEARCH_PASSWORD") ?? "")
        } else if reader.value("ELASTICSEARCH_PASSWORD") != nil {
            throw SettingsError("ELASTICSEARCH_PASSWORD is set without ELASTICSEARCH_USER")
        }
        var c: ElasticsearchConfiguration
        do {
            c = try ElasticsearchConfiguration(node: node, authentication: auth)
        } catch {
            throw SettingsError("ELASTICSEARCH_NODE=\(mask(node)): \(error)")
        }
        if let v = try reader.millis("SWITCHBOARD_ELASTICSEARCH_TIMEOUT_MS") { c.requestTimeout = max(.milliseconds(100), v) }
        if let v = try reader.int("SWITCHBOARD_ELASTICSEARCH_BULK_ACTIONS", 1...100_000) { c.bulk.maxActions = v }
        if let v = try reader.int("SWITCHBOARD_ELASTICSEARCH_BULK_BYTES", 1024...(512 << 20)) { c.bulk.maxBytes = v }
        if let v = try reader.millis("SWITCHBOARD_ELASTICSEARCH_FLUSH_MS") { c.bulk.flushInterval = max(.milliseconds(1), v) }
        if let v = try reader.int("SWITCHBOARD_ELASTICSEARCH_BUFFER", 1...10_000_000) { c.bulk.maxBuffered = v }
        if let v = try reader.millis("SWITCHBOARD_ELASTICSEARCH_CATCHUP_MARGIN_MS") { c.catchUpMargin = v }
        return c
    }
}
