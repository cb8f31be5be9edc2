import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing
import SwitchboardApp
import SwitchboardCore
import SwitchboardTestSupport
@testable import SwitchboardHTTP

/// The committed OpenAPI document (`docs/openapi.json`), what the router serves, and the routes it has.
@Suite("OpenAPI document")
struct OpenAPITests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let documentPath = root.appendingPathComponent("docs/openapi.json").path

    static func committed() throws -> [UInt8] {
        Array(try Data(contentsOf: URL(fileURLWithPath: documentPath)))
    }

    static func document() throws -> JSONValue { try JSONParser.parse(try committed()) }

    /// Documented operations that no route serves yet: written from issue 16 by one helper while others build
    /// them. Each must leave this list when its route lands (the test below fails while a served one is listed).
    static let pendingOperations: Set<String> = []

    static let methods = ["get", "put", "post", "delete", "patch", "head", "options", "trace"]

    /// Every documented operation as `METHOD /path`.
    static func operations(_ doc: JSONValue) throws -> [(method: String, path: String, operation: JSONValue)] {
        guard case .object(let paths)? = doc["paths"] else { throw TestEnvironmentError(description: "no paths") }
        var out: [(String, String, JSONValue)] = []
        for (path, item) in paths.sorted(by: { $0.key < $1.key }) {
            for method in methods { if let op = item[method] { out.append((method.uppercased(), path, op)) } }
        }
        return out
    }

    /// The routes of the API, as the document writes them (`:id` → `{id}`), with the key scope each requires.
    static func routeScopes() throws -> [String: APIKeyScope?] {
        let f = try APIFixture()
        let api = API(adapters: f.adapters, dispatcher: Dispatcher(adapters: f.adapters, options: PipelineOptions()), logger: Logger(label: "test"))
        var out: [String: APIKeyScope?] = [:]
        for route in api.routes() {
            let path = route.path.split(separator: "/").map { $0.hasPrefix(":") ? "{\($0.dropFirst())}" : String($0) }.joined(separator: "/")
            out["\(route.method.rawValue) /\(path)"] = route.scope
        }
        return out
    }

    static func routes() throws -> Set<String> { Set(try routeScopes().keys) }

    /// The one scope an operation's `security` names (nil: open).
    static func scope(_ op: JSONValue) -> String? {
        guard case .array(let requirements)? = op["security"] else { return nil }
        for r in requirements {
            if case .object(let o) = r, case .array(let s)? = o.values.first, let first = s.first?.stringValue { return first }
        }
        return nil
    }

    @Test("GET /openapi.json serves the committed docs/openapi.json byte for byte, as JSON, without a key")
    func servedIsCommitted() async throws {
        let committed = try Self.committed()
        let f = try APIFixture()
        try await f.app.test(.router) { client in
            let r = try await client.execute(uri: "/openapi.json", method: .get)
            #expect(r.status == .ok)
            #expect(r.headers[.contentType]?.hasPrefix("application/json") == true)
            let served = Array(r.body.readableBytesView)
            let same = served == committed
            let firstDifference = zip(served, committed).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(served.count, committed.count)
            #expect(same, "the served document differs from docs/openapi.json from byte \(firstDifference) (\(served.count) vs \(committed.count) bytes): run scripts/openapi-embed.py")
        }
        let doc = try JSONParser.parse(committed)
        #expect(doc["openapi"]?.stringValue == "3.1.0")
    }

    @Test("every route of the API is documented with its method, and every documented operation is a route")
    func routesAreDocumented() throws {
        let doc = try Self.document()
        let routes = try Self.routes()
        let documented = Set(try Self.operations(doc).map { "\($0.method) \($0.path)" })
        for route in routes.sorted() {
            #expect(documented.contains(route), "\(route) is served but not in docs/openapi.json")
        }
        for op in documented.sorted() where !op.hasPrefix("HEAD ") {
            if Self.pendingOperations.contains(op) {
                #expect(!routes.contains(op), "\(op) is served now: take it out of OpenAPITests.pendingOperations")
            } else {
                #expect(routes.contains(op), "\(op) is in docs/openapi.json but no route serves it")
            }
        }
        // HEAD is answered wherever GET is (issue 16): documented for exactly those paths.
        for op in documented where op.hasPrefix("GET ") || op.hasPrefix("HEAD ") {
            let path = op.split(separator: " ", maxSplits: 1)[1]
            #expect(documented.contains("GET \(path)") && documented.contains("HEAD \(path)"), "\(path): GET and HEAD go together")
        }
    }

    @Test("each operation documents the key scope its route requires (HEAD the scope of GET)")
    func scopesMatchRoutes() throws {
        let doc = try Self.document()
        let routes = try Self.routeScopes()
        for (method, path, op) in try Self.operations(doc) {
            let served = method == "HEAD" ? "GET \(path)" : "\(method) \(path)"
            guard let scope = routes[served] else { continue }  // pending: the test above names them
            #expect(Self.scope(op) == scope?.rawValue, "\(method) \(path): the document says \(Self.scope(op) ?? "no key"), the route \(scope?.rawValue ?? "no key")")
        }
    }

    @Test("every /api/v1 operation needs a key with one scope, by bearer or X-API-Key; health, webhooks and the document need none")
    func security() throws {
        let doc = try Self.document()
        let scopes = Set(APIKeyScope.allCases.map(\.rawValue))
        for (method, path, op) in try Self.operations(doc) {
            guard case .array(let requirements)? = op["security"] else {
                Issue.record("\(method) \(path) has no security of its own")
                continue
            }
            if path.hasPrefix("/api/v1/") {
                let schemes = requirements.compactMap { r -> String? in
                    guard case .object(let o) = r, o.count == 1 else { return nil }
                    return o.keys.first
                }
                #expect(Set(schemes) == ["bearerAuth", "apiKeyHeader"], "\(method) \(path): \(schemes)")
                let required = Set(requirements.compactMap { r -> String? in
                    guard case .object(let o) = r, case .array(let s)? = o.values.first, s.count == 1 else { return nil }
                    return s[0].stringValue
                })
                #expect(required.count == 1 && required.isSubset(of: scopes), "\(method) \(path): one scope, the same for both schemes")
                for status in ["401", "403", "429"] {
                    #expect(op["responses"]?[status] != nil, "\(method) \(path) does not document \(status)")
                }
            } else {
                #expect(requirements.isEmpty, "\(method) \(path) must be open")
            }
        }
    }

    @Test("every error code the HTTP layer and the validator can answer is in the document")
    func errorCodesAreDocumented() throws {
        let text = String(decoding: try Self.committed(), as: UTF8.self)
        let sources = ["Sources/SwitchboardHTTP", "Sources/SwitchboardCore/Validation.swift", "Sources/SwitchboardProviders"]
        var files: [URL] = []
        for s in sources {
            let url = Self.root.appendingPathComponent(s)
            if url.pathExtension == "swift" { files.append(url); continue }
            let e = FileManager.default.enumerator(at: url, includingPropertiesForKeys: nil)
            while let f = e?.nextObject() as? URL { if f.pathExtension == "swift" { files.append(f) } }
        }
        #expect(files.count > 3)
        // `http_error`: Hummingbird's own errors other than 404, for statuses none of our routes produce.
        let undocumented: Set<String> = ["http_error"]
        var codes: Set<String> = []
        let pattern = try Regex(#"code: "([a-z_]+)""#)
        for file in files where file.lastPathComponent != "OpenAPIDocument.swift" {
            // Only the codes of API errors and request or webhook rejections (not the providers' own codes).
            for line in try String(contentsOf: file, encoding: .utf8).split(separator: "\n")
            where line.contains("APIError(") || line.contains("RequestError(") || line.contains("WebhookRejection(") {
                for match in line.matches(of: pattern) {
                    if let code = match.output[1].substring { codes.insert(String(code)) }
                }
            }
        }
        #expect(codes.count >= 25, "found only \(codes.sorted())")
        for code in codes.subtracting(undocumented).sorted() {
            let documented = text.contains("\"\(code)\"")
            #expect(documented, "error code \(code) is not in docs/openapi.json")
        }
    }

    @Test("openapi-spec-validator accepts the document (OpenAPI 3.1)")
    func validator() async throws {
        let result = try await runCommand([SMTPTestPaths.python, "-m", "openapi_spec_validator", "--schema", "3.1", Self.documentPath], timeout: 120)
        #expect(result.status == 0, "openapi-spec-validator: \(result.stdout) \(result.stderr) (scripts/install-test-deps.sh installs it)")
        #expect(result.stdout.contains("OK"))
    }

    @Test("the validator refuses a broken copy of the document (the check can fail)")
    func validatorRefuses() async throws {
        guard case .object(var doc) = try Self.document() else { throw TestEnvironmentError(description: "not an object") }
        doc["info"] = .number(3)
        let text = JSONValue.object(doc).canonicalText
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("openapi-broken-\(UUID().uuidString).json")
        try Data(text.utf8).write(to: path)
        defer { try? FileManager.default.removeItem(at: path) }
        let result = try await runCommand([SMTPTestPaths.python, "-m", "openapi_spec_validator", "--schema", "3.1", path.path], timeout: 120)
        #expect(result.status != 0)
    }
}
