import Foundation
import SwitchboardCore

// The cluster's answers we read, decoded with Foundation's `JSONDecoder`. Fields are read leniently: one of
// another type than expected reads as absent instead of failing the whole answer.

extension ElasticsearchResponse {
    /// The body decoded as `T`; `ElasticsearchError.invalidResponse` when it is not JSON of that shape.
    public func decode<T: Decodable>(_ type: T.Type) throws -> T {
        do { return try JSONDecoder().decode(T.self, from: Data(body)) } catch { throw ElasticsearchError.invalidResponse("\(error)") }
    }
}

extension KeyedDecodingContainer {
    /// The value at `key` when it is there as a `T`; nil when it is absent, null or of another type.
    func lenient<T: Decodable>(_ key: Key) -> T? {
        (try? decodeIfPresent(T.self, forKey: key)) ?? nil
    }

    /// `lenient(_:)` with the type spelled out.
    func lenient<T: Decodable>(_ type: T.Type, _ key: Key) -> T? {
        lenient(key)
    }
}

/// `GET /`: the product and its version.
struct NodeInfo: Decodable {
    struct Version: Decodable {
        var number: String?
        /// `opensearch` on OpenSearch; absent on Elasticsearch.
        var distribution: String?

        enum CodingKeys: String, CodingKey { case number, distribution }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            number = c.lenient(.number)
            distribution = c.lenient(.distribution)
        }
    }

    var version: Version?

    enum CodingKeys: String, CodingKey { case version }

    init(from decoder: any Decoder) throws {
        version = try decoder.container(keyedBy: CodingKeys.self).lenient(.version)
    }
}

/// The `error` member of an error answer: an object with `type` and `reason`, or (older nodes, proxies) a
/// bare string.
struct ClusterError: Decodable {
    var type: String?
    var reason: String?

    enum CodingKeys: String, CodingKey { case type, reason }

    init(from decoder: any Decoder) throws {
        if let c = try? decoder.container(keyedBy: CodingKeys.self) {
            type = c.lenient(.type)
            reason = c.lenient(.reason)
        } else {
            type = nil
            reason = try? decoder.singleValueContainer().decode(String.self)
        }
    }
}

/// An answer that may carry an `error` (an error status, a search of a missing index).
struct ErrorAnswer: Decodable {
    /// Nil when the answer has no `error` member; present (its fields nil) when it has one of another shape.
    var error: ClusterError?

    enum CodingKeys: String, CodingKey { case error }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        error = c.contains(.error) ? (c.lenient(.error) ?? ClusterError()) : nil
    }
}

extension ClusterError {
    /// An error member with neither a type nor a reason.
    init() {
        type = nil
        reason = nil
    }
}

/// A `_bulk` answer: `errors` is true when some item failed; then `items` says which, in request order.
struct BulkAnswer: Decodable {
    /// One item's result (under `index`, `create` or `update`, after its action).
    struct Result: Decodable {
        var status: Int
        /// Present when the item failed.
        var error: ClusterError?

        enum CodingKeys: String, CodingKey { case status, error }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            status = c.lenient(Double.self, .status).map { Int($0) } ?? 0
            error = c.contains(.error) ? (c.lenient(.error) ?? ClusterError()) : nil
        }

        init() {
            status = 0
            error = nil
        }
    }

    struct Item: Decodable {
        var result: Result

        enum CodingKeys: String, CodingKey { case index, create, update }

        init(from decoder: any Decoder) throws {
            let c = try? decoder.container(keyedBy: CodingKeys.self)
            result = c?.lenient(Result.self, .index) ?? c?.lenient(Result.self, .create) ?? c?.lenient(Result.self, .update) ?? Result()
        }
    }

    var errors: Bool
    var items: [Item]?

    enum CodingKeys: String, CodingKey { case errors, items }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        errors = c.lenient(Bool.self, .errors) ?? false
        items = c.lenient(.items)
    }
}

/// A `_search` answer: its hits (`hits.hits`), each with its `_source` and its sort values.
struct SearchAnswer<Source: Decodable>: Decodable {
    struct Hit: Decodable {
        var source: Source?
        /// The sort values (`[createdAt or timestamp, id]`), for the next page's `search_after`.
        var sort: [JSONValue]?

        enum CodingKeys: String, CodingKey {
            case source = "_source"
            case sort
        }

        init(from decoder: any Decoder) throws {
            let c = try? decoder.container(keyedBy: CodingKeys.self)
            source = c?.lenient(.source)
            sort = c?.lenient(.sort)
        }
    }

    /// Nil when the answer has no `hits.hits` array.
    var hits: [Hit]?

    enum CodingKeys: String, CodingKey { case hits }
    enum HitsKeys: String, CodingKey { case hits }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        hits = (try? c.nestedContainer(keyedBy: HitsKeys.self, forKey: .hits))?.lenient([Hit].self, .hits)
    }
}

/// A date in a `_source`: ISO 8601 text, or epoch milliseconds.
struct SourceDate: Decodable {
    var timestamp: Timestamp?

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) {
            timestamp = Timestamp(parsing: s)
        } else if let n = try? c.decode(Double.self) {
            timestamp = Timestamp(milliseconds: Int64(n))
        } else {
            timestamp = nil
        }
    }
}

/// The `_source` of a `communications` document (`Documents.source(_:)` writes it).
struct CommunicationSource: Decodable {
    var communicationId, type, from, to, msg, status, keyId: String?
    var createdAt, timestamp: Timestamp?
    /// `data.metadata` as `key=value` strings (`Documents.metadataPairs`).
    var metadata: [String]?

    enum CodingKeys: String, CodingKey { case communicationId, type, from, to, msg, status, createdAt, timestamp, keyId, metadata }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        communicationId = c.lenient(.communicationId)
        type = c.lenient(.type)
        from = c.lenient(.from)
        to = c.lenient(.to)
        msg = c.lenient(.msg)
        status = c.lenient(.status)
        keyId = c.lenient(.keyId)
        createdAt = c.lenient(SourceDate.self, .createdAt)?.timestamp
        timestamp = c.lenient(SourceDate.self, .timestamp)?.timestamp
        metadata = c.lenient(.metadata)
    }
}

/// The `_source` of a `communication-logs` document (`Documents.source(_:id:)` writes it).
struct LogSource: Decodable {
    var communicationId, service, status, type, from, to, msg, error, provider, traceparent: String?
    var attempt: Double?
    var timestamp: Timestamp?
    var test: Bool?

    enum CodingKeys: String, CodingKey { case communicationId, service, status, type, from, to, msg, error, provider, attempt, timestamp, test, traceparent }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        communicationId = c.lenient(.communicationId)
        service = c.lenient(.service)
        status = c.lenient(.status)
        type = c.lenient(.type)
        from = c.lenient(.from)
        to = c.lenient(.to)
        msg = c.lenient(.msg)
        error = c.lenient(.error)
        provider = c.lenient(.provider)
        attempt = c.lenient(.attempt)
        test = c.lenient(.test)
        traceparent = c.lenient(.traceparent)
        timestamp = c.lenient(SourceDate.self, .timestamp)?.timestamp
    }
}

/// A `mappings` object: its fields (`properties`) and each one's `type`.
struct MappingsAnswer: Decodable {
    struct Field: Decodable {
        var type: String?

        enum CodingKeys: String, CodingKey { case type }

        init(from decoder: any Decoder) throws {
            type = (try? decoder.container(keyedBy: CodingKeys.self))?.lenient(.type)
        }
    }

    var properties: [String: Field]?

    enum CodingKeys: String, CodingKey { case properties }

    init(from decoder: any Decoder) throws {
        properties = (try? decoder.container(keyedBy: CodingKeys.self))?.lenient(.properties)
    }
}

/// `GET /_index_template/<name>`: the first template's `template.mappings`.
struct IndexTemplatesAnswer: Decodable {
    var mappings: MappingsAnswer?

    enum CodingKeys: String, CodingKey {
        case indexTemplates = "index_templates"
        case indexTemplate = "index_template"
        case template, mappings
    }

    init(from decoder: any Decoder) throws {
        let c = try? decoder.container(keyedBy: CodingKeys.self)
        var list = try? c?.nestedUnkeyedContainer(forKey: .indexTemplates)
        let first = try? list?.nestedContainer(keyedBy: CodingKeys.self)
        let template = try? first?.nestedContainer(keyedBy: CodingKeys.self, forKey: .indexTemplate).nestedContainer(keyedBy: CodingKeys.self, forKey: .template)
        mappings = template?.lenient(.mappings)
    }
}

/// `GET /<index>/_mapping`: each index's `mappings`.
struct IndexMappingAnswer: Decodable {
    var mappings: MappingsAnswer?

    enum CodingKeys: String, CodingKey { case mappings }

    init(from decoder: any Decoder) throws {
        mappings = (try? decoder.container(keyedBy: CodingKeys.self))?.lenient(.mappings)
    }
}
