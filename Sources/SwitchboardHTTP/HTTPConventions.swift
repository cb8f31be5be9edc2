import Foundation
import HTTPTypes
import Hummingbird

/// The registered routes by path, for the answers that depend on which methods a path takes: 405 with `Allow`,
/// and CORS preflights. A path that takes GET takes HEAD too (the router answers HEAD with the GET answer's head).
struct RouteTable: Sendable {
    /// Each route's method and path segments, a parameter as `*`.
    let routes: [(method: HTTPRequest.Method, segments: [String])]

    init(_ routes: [(HTTPRequest.Method, [String])]) {
        self.routes = routes.map { (method: $0.0, segments: $0.1) }
    }

    /// The methods `path` takes, in the order the routes were registered (HEAD after GET); empty for an unknown path.
    func methods(for path: String) -> [HTTPRequest.Method] {
        let segments = path.split(separator: "/").map(String.init)
        var methods: [HTTPRequest.Method] = []
        for route in routes where route.segments.count == segments.count && zip(route.segments, segments).allSatisfy({ $0 == "*" || $0 == $1 }) {
            if !methods.contains(route.method) { methods.append(route.method) }
            if route.method == .get, !methods.contains(.head) { methods.append(.head) }
        }
        return methods
    }
}

/// Which browser origins may call the API (`SWITCHBOARD_CORS_ORIGINS`): none by default, so a page on another
/// site can never read an answer.
public struct CORSPolicy: Sendable, Hashable {
    /// Allowed origins, each `scheme://host[:port]` in lower case; `*` allows every origin.
    public var origins: Set<String>
    /// How long a browser may keep a preflight's answer (`Access-Control-Max-Age`).
    public var maxAgeSeconds = 600

    public init(origins: Set<String> = []) {
        self.origins = origins
    }

    /// No origin allowed: no CORS header is ever sent.
    public static let none = CORSPolicy()

    /// The request headers a browser may send (a preflight's `Access-Control-Allow-Headers`).
    static let allowedHeaders = "Authorization, Content-Type, Idempotency-Key, X-API-Key"
    /// The answer headers a page may read besides the simple ones.
    static let exposedHeaders = "Idempotent-Replayed, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, WWW-Authenticate, Allow"

    /// Whether `origin` (an `Origin` header) is allowed.
    public func allows(_ origin: String) -> Bool {
        guard !origins.isEmpty, origin != "null" else { return false }
        return origins.contains("*") || origins.contains(origin.lowercased())
    }

    /// Reads a comma-separated list of origins (`https://app.example.com, http://localhost:5173`, or `*`), each
    /// an `http` or `https` origin without path; throws a message naming the entry that is not.
    public static func parse(_ list: String) throws(CORSPolicyError) -> CORSPolicy {
        var origins = Set<String>()
        for entry in list.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !entry.isEmpty {
            if entry == "*" {
                origins.insert(entry)
                continue
            }
            var origin = entry.lowercased()
            if origin.hasSuffix("/") { origin.removeLast() }
            guard let scheme = ["http://", "https://"].first(where: { origin.hasPrefix($0) }) else {
                throw CORSPolicyError(entry: entry, reason: "an origin is http:// or https:// followed by a host")
            }
            let authority = origin.dropFirst(scheme.count)
            guard !authority.isEmpty, !authority.contains("/"), !authority.contains("?"), !authority.contains("#"), !authority.contains("@"),
                authority.allSatisfy({ $0.isASCII && !$0.isWhitespace })
            else {
                throw CORSPolicyError(entry: entry, reason: "an origin is a scheme and a host (and port), with no path, query or user")
            }
            origins.insert(origin)
        }
        return CORSPolicy(origins: origins)
    }
}

/// A `SWITCHBOARD_CORS_ORIGINS` entry that is not an origin.
public struct CORSPolicyError: Error, CustomStringConvertible, Sendable {
    public var entry: String
    public var reason: String
    public var description: String { "\"\(entry)\" is not an origin: \(reason)" }
}

/// The HTTP conventions clients expect, outside every other middleware:
/// - CORS for the configured origins: a preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`)
///   from an allowed origin on a known path is answered 204 with the path's methods and the headers the API
///   reads (`Authorization`, `Idempotency-Key`, `X-API-Key`, `Content-Type`), before authentication (a browser
///   sends no credentials with it); every answer to an allowed origin carries `Access-Control-Allow-Origin`,
///   errors included. Other origins get no CORS header, so the browser keeps the answer from the page.
/// - HEAD answered wherever GET is, with the GET answer's status and headers and no body (errors included).
struct HTTPConventionsMiddleware<Context: RequestContext>: RouterMiddleware {
    let cors: CORSPolicy
    let routes: RouteTable

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let origin = request.headers[.origin].flatMap { cors.allows($0) ? $0 : nil }
        if request.method == .options, let origin, request.headers[.accessControlRequestMethod] != nil {
            let methods = routes.methods(for: request.uri.path)
            if !methods.isEmpty {
                let headers: HTTPFields = [
                    .accessControlAllowOrigin: origin, .accessControlAllowMethods: (methods + [.options]).map(\.rawValue).joined(separator: ", "),
                    .accessControlAllowHeaders: CORSPolicy.allowedHeaders, .accessControlMaxAge: "\(cors.maxAgeSeconds)", .vary: "Origin",
                ]
                return Response(status: .noContent, headers: headers)
            }
        }
        var response = try await next(request, context)
        if let origin {
            response.headers[.accessControlAllowOrigin] = origin
            response.headers[.accessControlExposeHeaders] = CORSPolicy.exposedHeaders
        }
        if !cors.origins.isEmpty, !response.headers[values: .vary].contains(where: { $0.lowercased().contains("origin") }) {
            // The answer depends on Origin: caches must not hand one origin's answer to another.
            response.headers.append(HTTPField(name: .vary, value: "Origin"))
        }
        if request.method == .head {
            response = response.createHeadResponse()
        }
        return response
    }
}
