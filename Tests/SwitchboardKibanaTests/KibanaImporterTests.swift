import Foundation
import SwitchboardKibana
import Testing
import SwitchboardTestHTTP

/// A temporary directory of NDJSON files, removed by `remove()`.
struct TempDir {
    let url: URL

    init(files: [String: String]) throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("kibana-import-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        for (name, text) in files { try Data(text.utf8).write(to: url.appendingPathComponent(name)) }
    }

    func remove() { try? FileManager.default.removeItem(at: url) }
}

/// One part of a multipart/form-data body, parsed here independently of `Multipart`.
struct Part {
    var headers: [String: String]
    var body: [UInt8]
}

/// Splits `body` on `boundary` (RFC 2046): a preamble-free body of parts, then the closing delimiter.
func parseMultipart(_ body: [UInt8], boundary: String) throws -> [Part] {
    let text = String(decoding: body, as: UTF8.self)
    let delimiter = "--\(boundary)"
    #expect(text.hasPrefix(delimiter + "\r\n"), "body starts with the first delimiter")
    #expect(text.hasSuffix("\r\n" + delimiter + "--\r\n"), "body ends with the close delimiter")
    var parts: [Part] = []
    for chunk in text.components(separatedBy: "\r\n" + delimiter).dropLast() {
        var raw = chunk
        if raw.hasPrefix(delimiter) { raw.removeFirst(delimiter.count) }
        #expect(raw.hasPrefix("\r\n"))
        raw.removeFirst("\r\n".count)  // one Character: "\r\n" is a single grapheme
        let split = try #require(raw.range(of: "\r\n\r\n"), "part without header/body separator")
        var headers: [String: String] = [:]
        for line in raw[..<split.lowerBound].components(separatedBy: "\r\n") {
            let kv = line.split(separator: ":", maxSplits: 1)
            headers[kv[0].lowercased()] = kv[1].trimmingCharacters(in: .whitespaces)
        }
        parts.append(Part(headers: headers, body: Array(raw[split.upperBound...].utf8)))
    }
    return parts
}

let okReply = MockHTTPServer.Reply(status: 200, body: #"{"success":true,"successCount":2,"successResults":[{"type":"index-pattern","id":"a","meta":{"title":"a"}},{"type":"lens","id":"b","meta":{"title":"b"}}]}"#)

@Suite("switchboard kibana import (against a local HTTP server)")
struct KibanaImporterTests {
    @Test("one multipart POST per file, in name order: path with overwrite=true and space, kbn-xsrf, basic auth, the file's bytes")
    func sendsTheRightRequest() async throws {
        let server = try await MockHTTPServer.start(fallback: okReply)
        let first = #"{"type":"index-pattern","id":"a","attributes":{"title":"x"},"references":[]}"# + "\n"
        let second = "{\"type\":\"lens\",\"id\":\"b\",\"attributes\":{\"title\":\"é \\\"q\\\"\"},\"references\":[]}\n"
        let dir = try TempDir(files: ["20-second.ndjson": second, "00-first.ndjson": first, "notes.txt": "not sent"])
        defer { dir.remove() }
        let importer = try KibanaImporter(url: server.baseURL + "/", space: "ops-team", auth: .basic(username: "elastic", password: "s3cr:et"))
        let results = try await importer.importDirectory(dir.url.path)
        await server.stop()

        #expect(results.map(\.file) == ["00-first.ndjson", "20-second.ndjson"])
        #expect(results.allSatisfy { $0.success && $0.successCount == 2 && $0.errors.isEmpty })
        let requests = server.requests
        #expect(requests.count == 2)
        for (request, (name, contents)) in zip(requests, [("00-first.ndjson", first), ("20-second.ndjson", second)]) {
            #expect(request.method == "POST")
            #expect(request.path == "/s/ops-team/api/saved_objects/_import")
            #expect(request.query == "overwrite=true")
            #expect(request.headers["kbn-xsrf"] == "true")
            #expect(request.headers["authorization"] == "Basic " + Data("elastic:s3cr:et".utf8).base64EncodedString())
            let contentType = try #require(request.headers["content-type"])
            #expect(contentType.hasPrefix("multipart/form-data; boundary="))
            let boundary = String(contentType.dropFirst("multipart/form-data; boundary=".count))
            #expect(!boundary.isEmpty && !contents.contains(boundary))
            let parts = try parseMultipart(request.body, boundary: boundary)
            #expect(parts.count == 1)
            #expect(parts.first?.headers["content-disposition"] == "form-data; name=\"file\"; filename=\"\(name)\"")
            #expect(parts.first?.headers["content-type"] == "application/ndjson")
            #expect(parts.first?.body == Array(contents.utf8))
            #expect(request.headers["content-length"] == String(request.body.count))
        }
    }

    @Test("the default space has no /s/ prefix; an API key goes in Authorization: ApiKey; no credentials, no header")
    func defaultSpaceAndAPIKey() async throws {
        let server = try await MockHTTPServer.start(fallback: okReply)
        let dir = try TempDir(files: ["a.ndjson": "{}\n"])
        defer { dir.remove() }
        _ = try await KibanaImporter(url: server.baseURL, auth: .apiKey("aWQ6a2V5")).importDirectory(dir.url.path)
        _ = try await KibanaImporter(url: server.baseURL).importDirectory(dir.url.path)
        await server.stop()
        let requests = server.requests
        #expect(requests.count == 2)
        #expect(requests.map(\.path) == ["/api/saved_objects/_import", "/api/saved_objects/_import"])
        #expect(requests.first?.headers["authorization"] == "ApiKey aWQ6a2V5")
        #expect(requests.last?.headers["authorization"] == nil)
    }

    @Test("refused objects: the import throws with each object's type, id and reason, and stops before the next file")
    func objectErrors() async throws {
        let server = try await MockHTTPServer.start(fallback: okReply)
        server.enqueue(.init(status: 200, body: #"""
            {"success":false,"successCount":1,"errors":[
              {"id":"switchboard-lens-throughput","type":"lens","meta":{"title":"Throughput","icon":"lensApp"},
               "error":{"type":"missing_references","references":[{"type":"index-pattern","id":"switchboard-communication-logs"}]}},
              {"id":"switchboard-dashboard-service-health","type":"dashboard","title":"Service Health","meta":{},
               "error":{"type":"unknown","message":"boom","statusCode":500}}]}
            """#))
        let dir = try TempDir(files: ["10-a.ndjson": "{}\n", "20-b.ndjson": "{}\n"])
        defer { dir.remove() }
        let error = await #expect(throws: KibanaImportError.self) {
            _ = try await KibanaImporter(url: server.baseURL).importDirectory(dir.url.path)
        }
        await server.stop()
        #expect(server.requests.count == 1)
        guard case .objectsFailed(let result)? = error else {
            Issue.record("expected objectsFailed, got \(String(describing: error))")
            return
        }
        #expect(result.file == "10-a.ndjson")
        #expect(result.successCount == 1)
        #expect(result.errors == [
            KibanaObjectError(type: "lens", id: "switchboard-lens-throughput", title: "Throughput", errorType: "missing_references",
                              detail: "missing index-pattern:switchboard-communication-logs"),
            KibanaObjectError(type: "dashboard", id: "switchboard-dashboard-service-health", title: "Service Health", errorType: "unknown", detail: "boom"),
        ])
        let message = "\(error!)"
        #expect(message.contains("lens switchboard-lens-throughput"))
        #expect(message.contains("dashboard switchboard-dashboard-service-health"))
    }

    @Test("503 while Kibana starts: retried until it answers")
    func retriesOn503() async throws {
        let server = try await MockHTTPServer.start(fallback: okReply)
        let starting = MockHTTPServer.Reply(status: 503, body: #"{"statusCode":503,"error":"Service Unavailable","message":"Kibana server is not ready yet"}"#)
        server.enqueue(starting, starting)
        let dir = try TempDir(files: ["a.ndjson": "{\"id\":\"x\"}\n"])
        defer { dir.remove() }
        let importer = try KibanaImporter(url: server.baseURL, startupTimeout: .seconds(10), retryInterval: .milliseconds(50))
        let results = try await importer.importDirectory(dir.url.path)
        await server.stop()
        #expect(results.count == 1)
        #expect(server.requests.count == 3)
        #expect(Set(server.requests.map { String(decoding: $0.body, as: UTF8.self).contains("{\"id\":\"x\"}") }) == [true], "each retry sends the whole file")
    }

    @Test("connection refused until the timeout: unavailable, naming the URL")
    func givesUpWhenUnreachable() async throws {
        let server = try await MockHTTPServer.start(fallback: okReply)
        let url = server.baseURL
        await server.stop()  // nothing listens on that port any more
        let dir = try TempDir(files: ["a.ndjson": "{}\n"])
        defer { dir.remove() }
        let started = ContinuousClock.now
        let importer = try KibanaImporter(url: url, startupTimeout: .milliseconds(600), retryInterval: .milliseconds(100), connectTimeout: .milliseconds(300))
        let error = await #expect(throws: KibanaImportError.self) { _ = try await importer.importDirectory(dir.url.path) }
        guard case .unavailable(let reported, _, _)? = error else {
            Issue.record("expected unavailable, got \(String(describing: error))")
            return
        }
        #expect(reported == url)
        // Bounded by the startup timeout plus one connection attempt, not by the HTTP client's default 10 s.
        #expect(ContinuousClock.now - started < .seconds(6))
    }

    @Test("401 is not retried and is reported with Kibana's message")
    func unauthorized() async throws {
        let server = try await MockHTTPServer.start(fallback: .init(status: 401, body: #"{"statusCode":401,"error":"Unauthorized","message":"unable to authenticate user"}"#))
        let dir = try TempDir(files: ["a.ndjson": "{}\n"])
        defer { dir.remove() }
        let error = await #expect(throws: KibanaImportError.self) {
            _ = try await KibanaImporter(url: server.baseURL, auth: .basic(username: "elastic", password: "hunter2"), retryInterval: .milliseconds(10)).importDirectory(dir.url.path)
        }
        await server.stop()
        #expect(server.requests.count == 1)
        guard case .http(_, 401, let body)? = error else {
            Issue.record("expected http 401, got \(String(describing: error))")
            return
        }
        #expect(body.contains("unable to authenticate"))
        #expect(!"\(error!)".contains("hunter2"))
    }

    @Test("settings: credentials from the environment, never in the URL; space ids checked; an empty directory refused")
    func settings() throws {
        #expect(try KibanaAuth.fromEnvironment([:]) == .none)
        #expect(try KibanaAuth.fromEnvironment(["KIBANA_USERNAME": "u", "KIBANA_PASSWORD": "p"]) == .basic(username: "u", password: "p"))
        #expect(try KibanaAuth.fromEnvironment(["KIBANA_API_KEY": "k", "KIBANA_USERNAME": ""]) == .apiKey("k"))
        #expect(throws: KibanaImportError.self) { try KibanaAuth.fromEnvironment(["KIBANA_USERNAME": "u"]) }
        #expect(throws: KibanaImportError.self) { try KibanaAuth.fromEnvironment(["KIBANA_API_KEY": "k", "KIBANA_PASSWORD": "p"]) }

        do {
            _ = try KibanaImporter(url: "http://elastic:hunter2@kibana:5601")
            Issue.record("credentials in the URL were accepted")
        } catch {
            #expect(!"\(error)".contains("hunter2"))
        }
        #expect(throws: KibanaImportError.self) { try KibanaImporter(url: "kibana:5601") }
        #expect(throws: KibanaImportError.self) { try KibanaImporter(url: "http://kibana:5601", space: "Ops Team") }
        #expect(try KibanaImporter(url: "http://kibana:5601//", space: "ops").importURL == "http://kibana:5601/s/ops/api/saved_objects/_import?overwrite=true")

        let empty = try TempDir(files: ["readme.md": "x"])
        defer { empty.remove() }
        #expect(throws: KibanaImportError.self) { try KibanaImporter.files(in: empty.url.path) }
    }

    @Test("deploy/kibana imports in an order where data views come before what uses them")
    func deployDirectoryOrder() throws {
        let files = try KibanaImporter.files(in: Fixtures.directory.path).map(\.lastPathComponent)
        #expect(files.first == "00-data-views.ndjson")
        #expect(files == files.sorted())
    }
}
