import Foundation
import SwitchboardCore
import SwitchboardElasticsearch
import Testing

/// One saved object of `deploy/kibana`, with where it came from.
struct SavedObject {
    var file: String
    var line: Int
    var json: [String: Any]

    var type: String { json["type"] as? String ?? "" }
    var id: String { json["id"] as? String ?? "" }
    var attributes: [String: Any] { json["attributes"] as? [String: Any] ?? [:] }
    var references: [[String: Any]] { json["references"] as? [[String: Any]] ?? [] }
    var title: String { attributes["title"] as? String ?? "" }
    var whereabouts: String { "\(file):\(line) \(type) \(id)" }
}

enum Fixtures {
    /// `deploy/kibana` of this checkout.
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("deploy/kibana")

    static func files() throws -> [URL] {
        try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "ndjson" }.sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    /// Every line of every file, parsed; a line that is not a JSON object fails the calling test.
    static func objects() throws -> [SavedObject] {
        var out: [SavedObject] = []
        for file in try files() {
            let text = try String(contentsOf: file, encoding: .utf8)
            for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
                let any = try JSONSerialization.jsonObject(with: Data(line.utf8))
                let json = try #require(any as? [String: Any], "\(file.lastPathComponent):\(i + 1) is not a JSON object")
                out.append(SavedObject(file: file.lastPathComponent, line: i + 1, json: json))
            }
        }
        return out
    }

    /// A JSON string attribute (`panelsJSON`, `runtimeFieldMap`), parsed.
    static func parse(_ string: Any?) throws -> Any {
        let s = try #require(string as? String, "expected a JSON string")
        return try JSONSerialization.jsonObject(with: Data(s.utf8))
    }
}

/// The fields a data view offers: its index's mapped fields (`IndexMappings`) plus its runtime fields.
struct DataViewFields {
    var index: String
    /// Field name → Elasticsearch type (`keyword`, `date`, … or the runtime field's type, `long`).
    var types: [String: String]
    var runtime: Set<String>

    init(_ object: SavedObject) throws {
        index = object.title
        let mapped = try #require(IndexMappings.fields(of: index), "\(object.whereabouts): no index \(index) in IndexMappings")
        types = Dictionary(uniqueKeysWithValues: mapped.map { ($0.name, $0.type) })
        let runtimeMap = try #require(try Fixtures.parse(object.attributes["runtimeFieldMap"]) as? [String: [String: Any]])
        runtime = Set(runtimeMap.keys)
        for (name, def) in runtimeMap { types[name] = def["type"] as? String ?? "?" }
    }
}

/// The field names a KQL query names (`field : value`), outside quoted strings.
func kqlFields(_ query: String) -> Set<String> {
    let unquoted = query.replacingOccurrences(of: #""(?:[^"\\]|\\.)*""#, with: "\"\"", options: .regularExpression)
    let regex = try! NSRegularExpression(pattern: #"([A-Za-z_@][A-Za-z0-9_.@]*)\s*:"#)
    let ns = unquoted as NSString
    return Set(regex.matches(in: unquoted, range: NSRange(location: 0, length: ns.length)).map { ns.substring(with: $0.range(at: 1)) })
}

/// The quoted values a KQL query compares `field` with (`field : "a"`, `field : ("a" or "b")`).
func kqlValues(_ query: String, field: String) -> Set<String> {
    let regex = try! NSRegularExpression(pattern: "\\b\(field)\\s*:\\s*(\\([^)]*\\)|\"[^\"]*\")")
    let ns = query as NSString
    var values = Set<String>()
    for m in regex.matches(in: query, range: NSRange(location: 0, length: ns.length)) {
        let clause = ns.substring(with: m.range(at: 1)) as NSString
        let quoted = try! NSRegularExpression(pattern: #""([^"]*)""#)
        for q in quoted.matches(in: clause as String, range: NSRange(location: 0, length: clause.length)) {
            values.insert(clause.substring(with: q.range(at: 1)))
        }
    }
    return values
}

/// What one Lens layer uses: its columns' fields and the KQL it filters with.
struct LensUse {
    var fields: [(field: String, operation: String, context: String)] = []
    var queries: [(query: String, context: String)] = []
}

func lensUses(_ object: SavedObject) throws -> [String: LensUse] {
    let state = try #require(object.attributes["state"] as? [String: Any], "\(object.whereabouts): no state")
    let layers = try #require(((state["datasourceStates"] as? [String: Any])?["formBased"] as? [String: Any])?["layers"] as? [String: [String: Any]],
                              "\(object.whereabouts): no formBased layers")
    let stateQuery = (state["query"] as? [String: Any])?["query"] as? String ?? ""
    var out: [String: LensUse] = [:]
    for (layerId, layer) in layers {
        var use = LensUse()
        use.queries.append((stateQuery, "state.query"))
        let columns = try #require(layer["columns"] as? [String: [String: Any]], "\(object.whereabouts): layer \(layerId) has no columns")
        for (columnId, column) in columns {
            let op = column["operationType"] as? String ?? ""
            if let field = column["sourceField"] as? String, field != "___records___" {
                use.fields.append((field, op, "column \(columnId)"))
            }
            if let q = (column["filter"] as? [String: Any])?["query"] as? String { use.queries.append((q, "column \(columnId) filter")) }
            for f in ((column["params"] as? [String: Any])?["filters"] as? [[String: Any]]) ?? [] {
                if let q = (f["input"] as? [String: Any])?["query"] as? String { use.queries.append((q, "column \(columnId) filters")) }
            }
        }
        for filter in (state["filters"] as? [[String: Any]]) ?? [] {
            if let key = (filter["meta"] as? [String: Any])?["key"] as? String { use.fields.append((key, "filter", "state.filters")) }
        }
        out[layerId] = use
    }
    return out
}

@Suite("Kibana saved objects (deploy/kibana)")
struct SavedObjectsTests {
    @Test("every line of every file is a saved object of the Kibana 8 export format")
    func everyLineParses() throws {
        let files = try Fixtures.files()
        #expect(files.count >= 4, "data views + three dashboards")
        let objects = try Fixtures.objects()
        #expect(objects.count >= 20)
        for o in objects {
            #expect(!o.id.isEmpty, "\(o.whereabouts): no id")
            #expect(["index-pattern", "lens", "dashboard", "visualization"].contains(o.type), "\(o.whereabouts): unexpected type")
            #expect(o.json["attributes"] is [String: Any], "\(o.whereabouts): no attributes")
            #expect(o.json["references"] is [[String: Any]], "\(o.whereabouts): no references array")
            #expect(o.json["coreMigrationVersion"] as? String == "8.8.0", "\(o.whereabouts): coreMigrationVersion")
            let expected = ["index-pattern": "8.0.0", "lens": "8.9.0", "dashboard": "8.9.0", "visualization": "8.5.0"][o.type]
            #expect(o.json["typeMigrationVersion"] as? String == expected, "\(o.whereabouts): typeMigrationVersion")
            #expect(!o.title.isEmpty, "\(o.whereabouts): no title")
        }
    }

    @Test("ids are unique")
    func uniqueIDs() throws {
        let objects = try Fixtures.objects()
        let dupes = Dictionary(grouping: objects, by: \.id).filter { $0.value.count > 1 }.keys
        #expect(dupes.isEmpty, "duplicate ids: \(dupes.sorted())")
    }

    @Test("every reference resolves to an object of its type, imported no later than the object using it")
    func referencesResolve() throws {
        let objects = try Fixtures.objects()
        var position: [String: (String, Int)] = [:]
        for (i, o) in objects.enumerated() { position["\(o.type):\(o.id)"] = (o.file, i) }
        for (i, o) in objects.enumerated() {
            for ref in o.references {
                let key = "\(ref["type"] as? String ?? ""):\(ref["id"] as? String ?? "")"
                #expect(!(ref["name"] as? String ?? "").isEmpty, "\(o.whereabouts): reference without name")
                guard let (file, at) = position[key] else {
                    Issue.record("\(o.whereabouts): reference \(key) resolves to nothing")
                    continue
                }
                // Files are imported one by one in name order: a referenced object must be in an earlier file or the same one.
                #expect(file <= o.file && (file < o.file || at != i), "\(o.whereabouts): \(key) is imported after it")
            }
        }
    }

    @Test("the data views: communications on createdAt with processingLatencyMs, communication-logs on timestamp")
    func dataViews() throws {
        let views = try Fixtures.objects().filter { $0.type == "index-pattern" }
        let byIndex = Dictionary(uniqueKeysWithValues: views.map { ($0.title, $0) })
        #expect(Set(byIndex.keys) == [IndexMappings.communicationsIndex, IndexMappings.logsIndex])
        #expect(byIndex[IndexMappings.communicationsIndex]?.attributes["timeFieldName"] as? String == "createdAt")
        #expect(byIndex[IndexMappings.logsIndex]?.attributes["timeFieldName"] as? String == "timestamp")
        for view in views {
            let fields = try DataViewFields(view)
            let time = try #require(view.attributes["timeFieldName"] as? String)
            #expect(fields.types[time] == "date", "\(view.whereabouts): time field \(time) is not a date of \(fields.index)")
            // Runtime fields must not shadow a mapped field, and their scripts read mapped fields only.
            let runtimeMap = try #require(try Fixtures.parse(view.attributes["runtimeFieldMap"]) as? [String: [String: Any]])
            for (name, def) in runtimeMap {
                #expect(IndexMappings.fields(of: fields.index)?.contains { $0.name == name } == false, "\(name) shadows a mapped field")
                let source = try #require((def["script"] as? [String: Any])?["source"] as? String)
                #expect(source.contains("emit("), "\(name): a runtime field script emits its value")
                let regex = try NSRegularExpression(pattern: #"doc\['([^']+)'\]"#)
                let read = regex.matches(in: source, range: NSRange(source.startIndex..., in: source)).map { String(source[Range($0.range(at: 1), in: source)!]) }
                #expect(!read.isEmpty)
                for field in read { #expect(IndexMappings.fields(of: fields.index)?.contains { $0.name == field } == true, "\(name) reads \(field), not in \(fields.index)") }
            }
        }
        // Field labels name mapped fields; the logs view labels the trace id (issue 17).
        for view in views {
            let attrs = try #require(try Fixtures.parse(view.attributes["fieldAttrs"]) as? [String: [String: Any]])
            let index = try DataViewFields(view).index
            for name in attrs.keys { #expect(IndexMappings.fields(of: index)?.contains { $0.name == name } == true, "\(view.whereabouts): label for \(name), not a field of \(index)") }
        }
        let logAttrs = try #require(try Fixtures.parse(byIndex[IndexMappings.logsIndex]?.attributes["fieldAttrs"]) as? [String: [String: Any]])
        #expect(logAttrs["traceId"]?["customLabel"] as? String == "Trace id")
        #expect(IndexMappings.logs.contains(IndexMappings.Field("traceId", "keyword")))
        let comm = try DataViewFields(try #require(byIndex[IndexMappings.communicationsIndex]))
        #expect(comm.runtime == ["processingLatencyMs"])
        #expect(comm.types["processingLatencyMs"] == "long")
        let source = try #require(((try Fixtures.parse(byIndex[IndexMappings.communicationsIndex]?.attributes["runtimeFieldMap"]) as? [String: [String: Any]])?["processingLatencyMs"]?["script"] as? [String: Any])?["source"] as? String)
        #expect(source.contains("doc['timestamp']") && source.contains("doc['createdAt']") && source.contains(" - "))
    }

    @Test("every field a Lens visualization uses exists in its data view's index or runtime fields, with a type that fits the operation")
    func lensFieldsExist() throws {
        let objects = try Fixtures.objects()
        let views = Dictionary(uniqueKeysWithValues: try objects.filter { $0.type == "index-pattern" }.map { ($0.id, try DataViewFields($0)) })
        let lenses = objects.filter { $0.type == "lens" }
        #expect(lenses.count >= 9)
        var checked = 0
        for lens in lenses {
            for (layerId, use) in try lensUses(lens) {
                let ref = try #require(lens.references.first { $0["name"] as? String == "indexpattern-datasource-layer-\(layerId)" },
                                       "\(lens.whereabouts): layer \(layerId) has no data view reference")
                let view = try #require(views[ref["id"] as? String ?? ""], "\(lens.whereabouts): layer \(layerId) data view not in the files")
                for (field, op, context) in use.fields {
                    checked += 1
                    let type = view.types[field]
                    #expect(type != nil, "\(lens.whereabouts) \(context): \(field) is not a field of \(view.index)")
                    switch op {
                    case "date_histogram": #expect(type == "date", "\(lens.whereabouts) \(context): date_histogram on \(field) (\(type ?? "?"))")
                    case "terms": #expect(type == "keyword", "\(lens.whereabouts) \(context): terms on \(field) (\(type ?? "?"))")
                    case "median", "average", "percentile", "sum", "min", "max":
                        #expect(["integer", "long", "double"].contains(type ?? ""), "\(lens.whereabouts) \(context): \(op) of \(field) (\(type ?? "?"))")
                    default: break
                    }
                }
                for (query, context) in use.queries {
                    for field in kqlFields(query) {
                        checked += 1
                        #expect(view.types[field] != nil, "\(lens.whereabouts) \(context): KQL names \(field), not a field of \(view.index)")
                    }
                    for status in kqlValues(query, field: "status") {
                        #expect(CommunicationStatus(rawValue: status) != nil, "\(lens.whereabouts) \(context): no status \(status)")
                    }
                    for service in kqlValues(query, field: "service") {
                        #expect(["router", "email", "sms", "whatsapp", "scheduler", "webhook"].contains(service), "\(lens.whereabouts) \(context): no service \(service)")
                    }
                    for type in kqlValues(query, field: "type") {
                        #expect(MessageChannel(rawValue: type) != nil, "\(lens.whereabouts) \(context): no type \(type)")
                    }
                }
            }
        }
        #expect(checked > 40)
    }

    @Test("every accessor of a Lens visualization names a column of its layer, and columnOrder lists the columns")
    func lensAccessors() throws {
        for lens in try Fixtures.objects().filter({ $0.type == "lens" }) {
            let state = try #require(lens.attributes["state"] as? [String: Any])
            let layers = try #require(((state["datasourceStates"] as? [String: Any])?["formBased"] as? [String: Any])?["layers"] as? [String: [String: Any]])
            #expect(layers.count == 1, "\(lens.whereabouts): one layer")
            let (layerId, layer) = try #require(layers.first)
            let columns = Set((layer["columns"] as? [String: Any] ?? [:]).keys)
            #expect(Set(layer["columnOrder"] as? [String] ?? []) == columns, "\(lens.whereabouts): columnOrder")
            let vis = try #require(state["visualization"] as? [String: Any])
            var accessors: [String] = []
            let visLayers = (vis["layers"] as? [[String: Any]]) ?? [vis]
            for l in visLayers {
                #expect(l["layerId"] as? String == layerId, "\(lens.whereabouts): visualization layer id")
                for key in ["xAccessor", "splitAccessor", "metricAccessor", "breakdownByAccessor"] { if let a = l[key] as? String { accessors.append(a) } }
                for key in ["accessors", "primaryGroups", "metrics"] { accessors += l[key] as? [String] ?? [] }
            }
            #expect(!accessors.isEmpty, "\(lens.whereabouts): no accessor")
            for a in accessors { #expect(columns.contains(a), "\(lens.whereabouts): accessor \(a) is not a column") }
            #expect(["lnsXY", "lnsPie", "lnsMetric", "lnsDatatable"].contains(lens.attributes["visualizationType"] as? String ?? ""))
        }
    }

    @Test("the seed's three dashboards, each panel a resolvable by-reference Lens panel on the 48-column grid")
    func dashboards() throws {
        let objects = try Fixtures.objects()
        let ids = Set(objects.map { "\($0.type):\($0.id)" })
        let dashboards = objects.filter { $0.type == "dashboard" }
        #expect(Set(dashboards.map(\.title)) == ["Communication Overview", "Service Health", "Operational Metrics"])
        var used = Set<String>()
        for d in dashboards {
            let panels = try #require(try Fixtures.parse(d.attributes["panelsJSON"]) as? [[String: Any]], "\(d.whereabouts): panelsJSON")
            #expect(panels.count >= 3, "\(d.whereabouts): panels")
            _ = try Fixtures.parse(d.attributes["optionsJSON"])
            let search = try #require(try Fixtures.parse((d.attributes["kibanaSavedObjectMeta"] as? [String: Any])?["searchSourceJSON"]) as? [String: Any])
            #expect((search["query"] as? [String: Any])?["language"] as? String == "kuery")
            var indices = Set<String>()
            for panel in panels {
                let index = try #require(panel["panelIndex"] as? String)
                #expect(indices.insert(index).inserted, "\(d.whereabouts): panelIndex \(index) twice")
                let grid = try #require(panel["gridData"] as? [String: Any])
                let x = grid["x"] as? Int ?? -1, w = grid["w"] as? Int ?? 0
                #expect(x >= 0 && w > 0 && x + w <= 48 && (grid["h"] as? Int ?? 0) > 0, "\(d.whereabouts): panel \(index) grid")
                #expect(grid["i"] as? String == index)
                let refName = try #require(panel["panelRefName"] as? String, "\(d.whereabouts): panel \(index) is not by reference")
                let ref = try #require(d.references.first { $0["name"] as? String == "\(index):\(refName)" }, "\(d.whereabouts): no reference \(index):\(refName)")
                #expect(ref["type"] as? String == panel["type"] as? String)
                let key = "\(ref["type"] as? String ?? ""):\(ref["id"] as? String ?? "")"
                #expect(ids.contains(key), "\(d.whereabouts): panel \(index) → \(key) missing")
                used.insert(key)
            }
            #expect(d.references.count == panels.count, "\(d.whereabouts): a reference per panel")
        }
        let lenses = Set(objects.filter { $0.type == "lens" }.map { "lens:\($0.id)" })
        #expect(lenses.subtracting(used).isEmpty, "Lens objects on no dashboard: \(lenses.subtracting(used).sorted())")
    }

    @Test("the KQL helpers see fields and values, not quoted text")
    func kqlHelpers() {
        #expect(kqlFields(#"status : ("failed" or "retrying") or error : * and not msg : "a:b""#) == ["status", "error", "msg"])
        #expect(kqlValues(#"status : ("failed" or "retrying") and service : "sms""#, field: "status") == ["failed", "retrying"])
        #expect(kqlValues(#"status : ("failed" or "retrying") and service : "sms""#, field: "service") == ["sms"])
    }
}
