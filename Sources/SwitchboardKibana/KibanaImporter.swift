import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import SwitchboardElasticsearch

/// How the importer authenticates to Kibana.
public enum KibanaAuth: Sendable, Equatable {
    /// No `Authorization` header (Kibana with security disabled).
    case none
    /// HTTP basic (`KIBANA_USERNAME` / `KIBANA_PASSWORD`).
    case basic(username: String, password: String)
    /// An Elasticsearch API key, as Kibana shows it: the base64 `id:key` (`KIBANA_API_KEY`).
    case apiKey(String)

    /// The `Authorization` header value, or nil: the same as the Elasticsearch cluster behind Kibana takes.
    var header: String? {
        let same: ElasticsearchConfiguration.Authentication =
            switch self {
            case .none: .none
            case .basic(let user, let password): .basic(user: user, password: password)
            case .apiKey(let key): .apiKey(key)
            }
        return same.authorizationHeader
    }

    /// From `KIBANA_API_KEY`, or `KIBANA_USERNAME` and `KIBANA_PASSWORD`; `.none` when none is set.
    /// - Throws: `KibanaImportError.configuration` when both kinds, or only one of username and password, are set.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> KibanaAuth {
        func value(_ name: String) -> String? { environment[name].flatMap { $0.isEmpty ? nil : $0 } }
        let user = value("KIBANA_USERNAME"), password = value("KIBANA_PASSWORD"), key = value("KIBANA_API_KEY")
        if key != nil && (user != nil || password != nil) {
            throw KibanaImportError.configuration("set either KIBANA_API_KEY or KIBANA_USERNAME and KIBANA_PASSWORD, not both")
        }
        if let key { return .apiKey(key) }
        switch (user, password) {
        case (nil, nil): return .none
        case (let u?, let p?): return .basic(username: u, password: p)
        default: throw KibanaImportError.configuration("KIBANA_USERNAME and KIBANA_PASSWORD go together")
        }
    }
}

/// One object Kibana refused, from the `errors` array of the import response.
public struct KibanaObjectError: Sendable, Equatable, CustomStringConvertible {
    /// The saved object's type (`lens`, `dashboard`, `index-pattern`).
    public var type: String
    /// The saved object's id.
    public var id: String
    /// Its title, when Kibana sent one.
    public var title: String?
    /// Kibana's error type: `conflict`, `ambiguous_conflict`, `missing_references`, `unsupported_type` or `unknown`.
    public var errorType: String
    /// Kibana's message (for `unknown`), or the missing references (`type:id`) for `missing_references`.
    public var detail: String?

    public init(type: String, id: String, title: String? = nil, errorType: String, detail: String? = nil) {
        self.type = type
        self.id = id
        self.title = title
        self.errorType = errorType
        self.detail = detail
    }

    public var description: String {
        "\(type) \(id)\(title.map { " (\"\($0)\")" } ?? ""): \(errorType)\(detail.map { " — \($0)" } ?? "")"
    }
}

/// What Kibana answered for one imported file.
public struct KibanaImportResult: Sendable, Equatable {
    /// The file imported.
    public var file: String
    /// Kibana's `success`: true when every object was imported.
    public var success: Bool
    /// Kibana's `successCount`.
    public var successCount: Int
    /// Kibana's `errors`, one per refused object.
    public var errors: [KibanaObjectError]

    public init(file: String, success: Bool, successCount: Int, errors: [KibanaObjectError]) {
        self.file = file
        self.success = success
        self.successCount = successCount
        self.errors = errors
    }
}

/// Why an import did not complete.
public enum KibanaImportError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Bad settings (URL, credentials, directory).
    case configuration(String)
    /// Kibana did not become ready (connection refused, 503) within the startup timeout.
    case unavailable(url: String, waited: Duration, lastProblem: String)
    /// Kibana answered the request with an HTTP error other than "not ready" (401, 403, 400, 413…).
    case http(file: String, status: Int, body: String)
    /// Kibana answered 200 but refused some objects.
    case objectsFailed(KibanaImportResult)
    /// The answer was not the import API's JSON.
    case invalidResponse(file: String, body: String)

    public var description: String {
        switch self {
        case .configuration(let m): return m
        case .unavailable(let url, let waited, let last):
            return "Kibana at \(url) was not ready after \(waited.components.seconds)s (last: \(last))"
        case .http(let file, let status, let body):
            return "\(file): Kibana answered HTTP \(status): \(body)"
        case .objectsFailed(let r):
            let lines = r.errors.map { "  \($0)" }.joined(separator: "\n")
            return "\(r.file): \(r.errors.count) object(s) not imported (\(r.successCount) imported):\n\(lines)"
        case .invalidResponse(let file, let body):
            return "\(file): not a saved objects import response: \(body)"
        }
    }
}

/// Imports Kibana saved objects (NDJSON export files) with `POST /api/saved_objects/_import?overwrite=true`,
/// one multipart request per file, waiting for Kibana to finish starting first.
public struct KibanaImporter: Sendable {
    /// Kibana's base URL, without credentials (`http://127.0.0.1:5601`).
    public var url: String
    /// The Kibana space to import into; nil for the default space.
    public var space: String?
    /// How to authenticate.
    public var auth: KibanaAuth
    /// How long to keep retrying while Kibana is unreachable or answers 503 (starting up).
    public var startupTimeout: Duration
    /// Pause between attempts while waiting.
    public var retryInterval: Duration
    /// Deadline of one request.
    public var requestTimeout: Duration
    /// How long one connection attempt may take (a refused connection is retried by the HTTP client until then).
    public var connectTimeout: Duration

    /// - Throws: `KibanaImportError.configuration` when `url` is not an http(s) URL, carries credentials, or
    ///   `space` is not a valid space id.
    public init(url: String, space: String? = nil, auth: KibanaAuth = .none, startupTimeout: Duration = .seconds(180),
                retryInterval: Duration = .seconds(2), requestTimeout: Duration = .seconds(60), connectTimeout: Duration = .seconds(3)) throws {
        guard let u = URL(string: url), let scheme = u.scheme?.lowercased(), scheme == "http" || scheme == "https", u.host != nil else {
            throw KibanaImportError.configuration("Kibana URL must be http(s)://host[:port], got \(Self.redacted(url))")
        }
        guard u.user == nil && u.password == nil else {
            throw KibanaImportError.configuration("put Kibana credentials in KIBANA_USERNAME/KIBANA_PASSWORD or KIBANA_API_KEY, not in the URL")
        }
        if let space {
            // Kibana space ids: lowercase letters, digits, "_" and "-".
            guard !space.isEmpty, space.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" || $0 == "-" }) else {
                throw KibanaImportError.configuration("--space \(space): a space id is lowercase letters, digits, '_' and '-'")
            }
        }
        var base = url
        while base.hasSuffix("/") { base.removeLast() }
        self.url = base
        self.space = space
        self.auth = auth
        self.startupTimeout = startupTimeout
        self.retryInterval = retryInterval
        self.requestTimeout = requestTimeout
        self.connectTimeout = connectTimeout
    }

    /// The import endpoint: `<url>[/s/<space>]/api/saved_objects/_import?overwrite=true`.
    public var importURL: String {
        url + (space.map { "/s/\($0)" } ?? "") + "/api/saved_objects/_import?overwrite=true"
    }

    /// The `*.ndjson` files of `directory`, sorted by name (data views first: `00-data-views.ndjson`).
    public static func files(in directory: String) throws -> [URL] {
        let dir = URL(fileURLWithPath: directory, isDirectory: true)
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: dir.path) } catch {
            throw KibanaImportError.configuration("cannot read \(directory): \(error.localizedDescription)")
        }
        let files = names.filter { $0.hasSuffix(".ndjson") }.sorted().map { dir.appendingPathComponent($0) }
        guard !files.isEmpty else { throw KibanaImportError.configuration("no *.ndjson file in \(directory)") }
        return files
    }

    /// Imports every `*.ndjson` file of `directory` in name order, stopping at the first file that fails.
    /// - Parameter progress: called after each file with Kibana's answer.
    /// - Returns: one result per file, all successful.
    /// - Throws: `KibanaImportError`.
    public func importDirectory(_ directory: String, progress: @Sendable (KibanaImportResult) -> Void = { _ in }) async throws -> [KibanaImportResult] {
        let files = try Self.files(in: directory)
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: makeClientConfiguration())
        do {
            var results: [KibanaImportResult] = []
            for file in files {
                let bytes: [UInt8]
                do { bytes = Array(try Data(contentsOf: file)) } catch {
                    throw KibanaImportError.configuration("cannot read \(file.path): \(error.localizedDescription)")
                }
                let r = try await importFile(named: file.lastPathComponent, contents: bytes, client: client)
                progress(r)
                results.append(r)
            }
            try await client.shutdown()
            return results
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    /// Sends one NDJSON file, retrying while Kibana is starting.
    /// - Returns: Kibana's answer, when every object was imported.
    /// - Throws: `KibanaImportError.objectsFailed` with the refused objects, or another `KibanaImportError`.
    public func importFile(named name: String, contents: [UInt8], client: HTTPClient) async throws -> KibanaImportResult {
        let boundary = "switchboard-" + UUID().uuidString
        var request = HTTPClientRequest(url: importURL)
        request.method = .POST
        request.headers.add(name: "kbn-xsrf", value: "true")
        request.headers.add(name: "Content-Type", value: "multipart/form-data; boundary=\(boundary)")
        if let authorization = auth.header { request.headers.add(name: "Authorization", value: authorization) }
        let body = Multipart.formData(boundary: boundary, field: "file", filename: name, contentType: "application/ndjson", contents: contents)

        let clock = ContinuousClock()
        let start = clock.now
        while true {
            let problem: String
            do {
                request.body = .bytes(ByteBuffer(bytes: body))
                let response = try await client.execute(request, timeout: .seconds(Self.wholeSeconds(requestTimeout)))
                let bytes = Array(buffer: try await response.body.collect(upTo: 16 << 20))
                let status = Int(response.status.code)
                if Self.retryableStatuses.contains(status) {
                    problem = "HTTP \(status)"
                } else if (200..<300).contains(status) {
                    let result = try Self.parse(file: name, body: bytes)
                    guard result.success && result.errors.isEmpty else { throw KibanaImportError.objectsFailed(result) }
                    return result
                } else {
                    throw KibanaImportError.http(file: name, status: status, body: Self.excerpt(bytes))
                }
            } catch let error as KibanaImportError {
                throw error
            } catch {
                // Connection refused, reset or timed out: Kibana (or its container) is not up yet.
                problem = "\(error)"
            }
            let waited = clock.now - start
            guard waited + retryInterval <= startupTimeout else {
                throw KibanaImportError.unavailable(url: url, waited: waited, lastProblem: problem)
            }
            try await Task.sleep(for: retryInterval)
        }
    }

    /// The HTTP client settings the importer expects: connection attempts bounded by `connectTimeout`.
    public func makeClientConfiguration() -> HTTPClient.Configuration {
        let c = connectTimeout.components
        let ms = max(1, c.seconds * 1000 + c.attoseconds / 1_000_000_000_000_000)
        return HTTPClient.Configuration(timeout: .init(connect: .milliseconds(ms)))
    }

    /// Statuses meaning "not ready yet": Kibana answers 503 while it starts; a proxy in front says 502 or 504.
    static let retryableStatuses: Set<Int> = [502, 503, 504]

    /// Kibana's import response.
    static func parse(file: String, body: [UInt8]) throws -> KibanaImportResult {
        struct Response: Decodable {
            struct Failure: Decodable {
                struct Meta: Decodable { var title: String? }
                struct Detail: Decodable {
                    struct Reference: Decodable { var type: String; var id: String }
                    var type: String
                    var message: String?
                    var references: [Reference]?
                }
                var id: String
                var type: String
                var title: String?
                var meta: Meta?
                var error: Detail
            }
            var success: Bool
            var successCount: Int
            var errors: [Failure]?
        }
        let r: Response
        do { r = try JSONDecoder().decode(Response.self, from: Data(body)) } catch {
            throw KibanaImportError.invalidResponse(file: file, body: excerpt(body))
        }
        let errors = (r.errors ?? []).map { f in
            let detail = f.error.references.map { refs in "missing " + refs.map { "\($0.type):\($0.id)" }.joined(separator: ", ") } ?? f.error.message
            return KibanaObjectError(type: f.type, id: f.id, title: f.title ?? f.meta?.title, errorType: f.error.type, detail: detail)
        }
        return KibanaImportResult(file: file, success: r.success, successCount: r.successCount, errors: errors)
    }

    static func excerpt(_ body: [UInt8]) -> String { String(decoding: body.prefix(1000), as: UTF8.self) }

    static func wholeSeconds(_ d: Duration) -> Int64 {
        max(1, d.components.seconds + (d.components.attoseconds > 0 ? 1 : 0))
    }

    /// `url` with any `user:password@` removed, for messages.
    static func redacted(_ url: String) -> String {
        guard var c = URLComponents(string: url), c.user != nil || c.password != nil else { return url }
        c.user = nil
        c.password = nil
        return c.string ?? "<url>"
    }
}

/// `multipart/form-data` bodies (RFC 7578).
public enum Multipart {
    /// A body with one file part: `field` named `filename`, of type `contentType`, holding `contents`.
    public static func formData(boundary: String, field: String, filename: String, contentType: String, contents: [UInt8]) -> [UInt8] {
        func quoted(_ s: String) -> String { s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") }
        var body: [UInt8] = []
        body += Array("--\(boundary)\r\n".utf8)
        body += Array("Content-Disposition: form-data; name=\"\(quoted(field))\"; filename=\"\(quoted(filename))\"\r\n".utf8)
        body += Array("Content-Type: \(contentType)\r\n\r\n".utf8)
        body += contents
        body += Array("\r\n--\(boundary)--\r\n".utf8)
        return body
    }
}
