import Logging
import NIOConcurrencyHelpers
import NIOHTTP1
import ServiceLifecycle
import SwitchboardCore
import SwitchboardTelemetry

/// The `SearchIndex` port on Elasticsearch 8 or OpenSearch (`ELASTICSEARCH_NODE`): the seed's `communications`
/// and `communication-logs` indices.
///
/// - Communications are buffered and sent by the bulk indexer in the background (`index(communications:)`
///   never waits on the cluster); documents are upserted by `communicationId` with external versioning on
///   their `timestamp`, so a late older update never overwrites a newer one.
/// - Log records are sent at once and `index(logs:)` returns when the cluster confirmed them; their `_id` is
///   deterministic, so a redelivered `log_stream` entry does not duplicate.
/// - Searches are newest first (`createdAt` / `timestamp`, then the id), paged with `search_after` behind an
///   opaque cursor.
public final class ElasticsearchSearchIndex: CatchingUpSearchIndex {
    /// The REST client (for health checks and tests).
    public let client: ElasticsearchClient
    /// The bulk indexer; `ElasticsearchService` runs its flusher.
    public let bulk: BulkIndexer
    let logger: Logger
    let state = NIOLockedValueBox<SearchDialect?>(nil)

    /// Connects to nothing yet: the cluster is first contacted by `prepare()` or the first write.
    /// - Parameter metrics: where failed requests and bulk failures are counted.
    public init(configuration: ElasticsearchConfiguration, logger: Logger, metrics: SearchEngineMetrics = SearchEngineMetrics(engine: "elasticsearch")) {
        let client = ElasticsearchClient(configuration: configuration, metrics: metrics)
        self.client = client
        self.logger = logger
        let state = state
        bulk = BulkIndexer(client: client, options: configuration.bulk, logger: logger) {
            try await Self.prepare(client: client, state: state, logger: logger)
        }
    }

    static func prepare(client: ElasticsearchClient, state: NIOLockedValueBox<SearchDialect?>, logger: Logger) async throws {
        let info = try await client.info()
        try await IndexTemplates.install(client)
        let first = state.withLockedValue { old in
            defer { old = info.dialect }
            return old == nil
        }
        if first {
            logger.info("search cluster ready: templates and indices in place", metadata: ["dialect": "\(info.dialect.rawValue)", "version": "\(info.version)", "node": "\(client.configuration.description)"])
            if info.dialect == .opensearch, case .apiKey = client.configuration.authentication {
                logger.warning("ELASTICSEARCH_API_KEY is set but the cluster is OpenSearch, whose security plugin does not take Elasticsearch API keys; use ELASTICSEARCH_USER/PASSWORD")
            }
        }
    }

    /// The dialect found at the last successful preparation, or nil before it.
    public var dialect: SearchDialect? { state.withLockedValue { $0 } }

    /// Detects the dialect and installs the templates and indices (idempotent). The bulk indexer does it before
    /// its first request, and again after the cluster was unreachable.
    public func prepare() async throws {
        try await Self.prepare(client: client, state: state, logger: logger)
    }

    /// Closes the connections (after `bulk.stop()` and the flusher ended).
    public func shutdown() async {
        await client.shutdown()
    }

    // MARK: Writes

    static func action(_ d: CommunicationDocument) -> BulkAction {
        BulkAction(index: IndexMappings.communicationsIndex, id: d.communicationId, version: d.timestamp.milliseconds, source: Documents.source(d).canonicalText, createdAt: d.createdAt)
    }

    public func index(communications: [CommunicationDocument]) async throws {
        guard !communications.isEmpty else { return }
        await bulk.enqueue(communications.map(Self.action))
    }

    public func index(logs: [LogRecord]) async throws {
        guard !logs.isEmpty else { return }
        try await bulk.submit(logs.map { l in
            let id = Documents.logId(l)
            return BulkAction(index: IndexMappings.logsIndex, id: id, source: Documents.source(l, id: id).canonicalText)
        })
    }

    public func reindex(communications: [CommunicationDocument]) async throws {
        guard !communications.isEmpty else { return }
        try await bulk.submit(communications.map(Self.action))
    }

    public func takeDirtySince() async -> Timestamp? { await bulk.takeDirtySince() }

    public func markDirty(since: Timestamp) async { await bulk.markDirty(since: since) }

    /// The catch-up's question at start; cancelled when the catch-up is asked to stop (a cluster that answers
    /// nothing must not hold a shutdown up for its request timeout).
    public func newestCreatedAt(before: Timestamp) async throws -> Timestamp? {
        let range: JSONValue = .object(["range": .object(["createdAt": .object(["lt": .string(before.iso8601)])])])
        let body: JSONValue = .object(["size": .number(1), "_source": .array([.string("createdAt")]), "sort": .array([.object(["createdAt": .string("desc")])]), "query": range])
        return try await cancelWhenGracefulShutdown {
            try await self.hits(IndexMappings.communicationsIndex, body, CommunicationSource.self)?.first?.source?.createdAt
        }
    }

    /// Makes every confirmed write visible to searches (`_refresh`); the cluster does it by itself within a second.
    public func refresh() async throws {
        _ = try await client.send(.POST, "/\(IndexMappings.communicationsIndex),\(IndexMappings.logsIndex)/_refresh?ignore_unavailable=true")
    }

    /// Sends what the bulk indexer holds and waits for it.
    public func flush() async { await bulk.flush() }

    // MARK: Search

    static func term(_ field: String, _ value: String) -> JSONValue { .object(["term": .object([field: .string(value)])]) }

    /// Every word of `text` must match one of `textFields` (analysed) or equal one of `exactFields`, as the
    /// SQLite index's full text does.
    static func words(_ text: String, textFields: [String], exactFields: [String]) -> [JSONValue] {
        text.split(whereSeparator: { $0.isWhitespace }).map { w in
            let word = String(w)
            let should = textFields.map { JSONValue.object(["match": .object([$0: .object(["query": .string(word)])])]) } + exactFields.map { term($0, word) }
            return .object(["bool": .object(["should": .array(should), "minimum_should_match": .number(1)])])
        }
    }

    static func body(filters: [JSONValue], must: [JSONValue], sort: (String, String), limit: Int, cursor: String?) throws -> JSONValue {
        var o: [String: JSONValue] = [
            "size": .number(Double(limit + 1)),
            "query": .object(["bool": .object(["filter": .array(filters), "must": .array(must)])]),
            "sort": .array([.object([sort.0: .string("desc")]), .object([sort.1: .string("desc")])]),
            "track_total_hits": .bool(false),
        ]
        if let cursor {
            let after = try SearchCursor.decode(cursor)
            o["search_after"] = .array([.number(Double(after.millis)), .string(after.id)])
        }
        return .object(o)
    }

    /// The hits of a search, or nil when the index does not exist yet.
    func hits<Source: Decodable>(_ index: String, _ body: JSONValue, _ source: Source.Type) async throws -> [SearchAnswer<Source>.Hit]? {
        let r = try await client.send(.POST, "/\(index)/_search", json: Array(body.canonicalText.utf8), accept: [404])
        if r.status == 404 {
            let error = try r.decode(ErrorAnswer.self).error
            if error?.type == "index_not_found_exception" { return nil }
            throw ElasticsearchError.http(status: 404, type: error?.type, reason: error?.reason)
        }
        guard let hits = try r.decode(SearchAnswer<Source>.self).hits else { throw ElasticsearchError.invalidResponse("search answer without hits") }
        return hits
    }

    static func cursor(_ sort: [JSONValue]?) -> String? {
        guard let sort, sort.count == 2, let id = sort[1].stringValue else { return nil }
        let millis: Int64?
        switch sort[0] {
        case .number(let n): millis = Int64(n)
        case .string(let s): millis = Int64(s) ?? Timestamp(parsing: s)?.milliseconds
        default: millis = nil
        }
        return millis.map { SearchCursor.encode(millis: $0, id: id) }
    }

    func page<Source: Decodable, T: Sendable>(_ index: String, _ body: JSONValue, limit: Int, _ decode: (Source) -> T?) async throws -> Page<T> {
        guard let hits = try await hits(index, body, Source.self) else { return Page(items: [], nextCursor: nil) }
        let shown = Array(hits.prefix(limit))
        let items = shown.compactMap { $0.source.flatMap(decode) }
        return Page(items: items, nextCursor: hits.count > limit ? shown.last.flatMap { Self.cursor($0.sort) } : nil)
    }

    public func search(_ q: CommunicationQuery) async throws -> Page<CommunicationDocument> {
        var filters: [JSONValue] = []
        if let type = q.type { filters.append(Self.term("type", type.rawValue)) }
        if let status = q.status { filters.append(Self.term("status", status.rawValue)) }
        if let to = q.to { filters.append(Self.term("to", to)) }
        if let key = q.key { filters.append(Self.term("keyId", key)) }
        for pair in Documents.metadataPairs(q.metadata) { filters.append(Self.term("metadata", pair)) }
        if q.since != nil || q.until != nil {
            var range: [String: JSONValue] = [:]
            if let since = q.since { range["gte"] = .string(since.iso8601) }
            if let until = q.until { range["lt"] = .string(until.iso8601) }
            filters.append(.object(["range": .object(["createdAt": .object(range)])]))
        }
        let must = q.text.map { Self.words($0, textFields: ["msg"], exactFields: ["from", "to"]) } ?? []
        let limit = max(1, min(q.limit, 1000))
        let body = try Self.body(filters: filters, must: must, sort: ("createdAt", "communicationId"), limit: limit, cursor: q.cursor)
        return try await page(IndexMappings.communicationsIndex, body, limit: limit, Documents.communication)
    }

    public func search(_ q: LogQuery) async throws -> Page<LogRecord> {
        var filters: [JSONValue] = []
        if let id = q.communicationId { filters.append(Self.term("communicationId", id)) }
        if let service = q.service { filters.append(Self.term("service", service)) }
        if let status = q.status { filters.append(Self.term("status", status.rawValue)) }
        let must = q.text.map { Self.words($0, textFields: ["msg", "error"], exactFields: ["from", "to"]) } ?? []
        let limit = max(1, min(q.limit, 1000))
        let body = try Self.body(filters: filters, must: must, sort: ("timestamp", "logId"), limit: limit, cursor: q.cursor)
        return try await page(IndexMappings.logsIndex, body, limit: limit, Documents.log)
    }

    public func ping() async throws {
        _ = try await client.info()
    }
}
