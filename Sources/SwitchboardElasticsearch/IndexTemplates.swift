import NIOHTTP1
import SwitchboardCore

/// The composable index templates (`_index_template`, the same on Elasticsearch 8 and OpenSearch 2+) built from
/// `IndexMappings`, and their installation.
public enum IndexTemplates {
    /// The template body for `index` (`communications` or `communication-logs`).
    public static func template(for index: String) -> JSONValue {
        var properties: [String: JSONValue] = [:]
        for f in IndexMappings.fields(of: index) ?? [] { properties[f.name] = .object(["type": .string(f.type)]) }
        return .object([
            "index_patterns": .array([.string(index)]),
            "priority": .number(100),
            "template": .object([
                "mappings": .object(["dynamic": .string("strict"), "properties": .object(properties)]),
            ]),
            "_meta": .object(["managedBy": .string("switchboard")]),
        ])
    }

    /// The properties the template of `index` must have (field → type).
    static func properties(_ index: String) -> [String: String] {
        Dictionary(uniqueKeysWithValues: (IndexMappings.fields(of: index) ?? []).map { ($0.name, $0.type) })
    }

    /// Puts each template when it is missing or lacks a field, creates each index when it is missing, and adds
    /// missing fields to an index that exists. Idempotent: a second call only reads.
    public static func install(_ client: ElasticsearchClient) async throws {
        for index in [IndexMappings.communicationsIndex, IndexMappings.logsIndex] {
            let want = properties(index)
            let current = try await client.send(.GET, "/_index_template/\(index)", accept: [404])
            var have: [String: String] = [:]
            if current.status == 200, let props = try current.decode(IndexTemplatesAnswer.self).mappings?.properties {
                have = props.compactMapValues(\.type)
            }
            if have != want {
                _ = try await client.send(.PUT, "/_index_template/\(index)", json: Array(template(for: index).canonicalText.utf8))
            }
            let exists = try await client.send(.HEAD, "/\(index)", accept: [404])
            if exists.status == 404 {
                do {
                    _ = try await client.send(.PUT, "/\(index)")
                } catch let ElasticsearchError.http(status, type, _) where status == 400 && type == "resource_already_exists_exception" {
                    // Created meanwhile by another process.
                }
            } else {
                let mapping = try await client.send(.GET, "/\(index)/_mapping").decode([String: IndexMappingAnswer].self)
                let present = Set(mapping[index]?.mappings?.properties.map { Array($0.keys) } ?? [])
                let missing = want.filter { !present.contains($0.key) }
                if !missing.isEmpty {
                    let body: JSONValue = .object(["properties": .object(missing.mapValues { .object(["type": .string($0)]) })])
                    _ = try await client.send(.PUT, "/\(index)/_mapping", json: Array(body.canonicalText.utf8))
                }
            }
        }
    }
}
