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
@testable import SwitchboardSQLite

/// The body of an error answer has the documented shape: `{"error":{"code","message"[,"field"]}}`.
func documentedError(_ body: String) -> (code: String, message: String)? {
    guard let value = try? JSONParser.parse(Array(body.utf8)), case .object(let outer) = value, outer.count == 1,
        case .object(let error)? = outer["error"], let code = error["code"]?.stringValue, let message = error["message"]?.stringValue, !message.isEmpty,
        Set(error.keys).isSubset(of: ["code", "message", "field"])
    else { return nil }
    return (code, message)
}

@Suite("Hardening: malformed requests, HEAD, CORS, query input, aggregated warnings, connection cap")
struct HardeningTests {
    /// Requests the HTTP decoder cannot read, before any route runs: each answered 4xx with a JSON error.
    static let unreadable: [(name: String, request: String, status: Int, code: String)] = [
        ("unknown method", "FROB /health/live HTTP/1.1\r\nHost: x\r\n\r\n", 400, "unknown_method"),
        ("oversized URL", "GET /health/live?" + String(repeating: "a", count: 100_000) + " HTTP/1.1\r\nHost: x\r\n\r\n", 431, "headers_too_large"),
        ("oversized header", "GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + String(repeating: "b", count: 100_000) + "\r\n\r\n", 431, "headers_too_large"),
        ("Content-Length not a number", "POST /api/v1/communication HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: abc\r\n\r\n{}", 400, "invalid_content_length"),
        ("two Content-Lengths", "POST /api/v1/communication HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", 400, "invalid_content_length"),
        ("bare LF", "GET /health/live HTTP/1.1\nHost: x\n\n", 400, ""),
        ("unknown HTTP version", "GET /health/live HTTP/7.1\r\nHost: x\r\n\r\n", 400, ""),
        ("space in a header name", "GET /health/live HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n", 400, ""),
    ]

    @Test("a request the decoder cannot read is a 4xx with a JSON error body, logged below error level", arguments: 0..<unreadable.count)
    func unreadableRequests(index: Int) async throws {
        let (name, request, status, code) = Self.unreadable[index]
        let logs = LogCapture()
        try await LiveAPI.run(logs: logs) { live in
            let socket = try RawConnection(port: live.port)
            try socket.send(request)
            let text = await socket.readUntilClosed()
            let answers = RawAnswer.parse(text)
            #expect(answers.count == 1, "\(name): \(text.prefix(300))")
            guard let answer = answers.first else { return }
            #expect(answer.status == status, "\(name)")
            #expect(answer.header("Content-Type")?.hasPrefix("application/json") == true, "\(name)")
            let error = try #require(documentedError(answer.body), "\(name): \(answer.body)")
            if !code.isEmpty { #expect(error.code == code, "\(name)") }
            #expect(answer.header("Connection")?.lowercased() == "close")
        }
        #expect(logs.all.allSatisfy { $0.level < .error }, "\(logs.all.filter { $0.level >= .error }.map { "\($0.message) \($0.metadata)" })")
        #expect(!logs.matching("malformed request").isEmpty, "the refusal is logged")
    }

    @Test("an unreadable request after a good one on the same connection: the good one is answered first, then the JSON error")
    func pipelinedUnreadableRequest() async throws {
        try await LiveAPI.run { live in
            let socket = try RawConnection(port: live.port)
            try socket.send("GET /health/live HTTP/1.1\r\nHost: x\r\n\r\nGET /health/ready HTTP/1.1\r\nHost: x\r\n\r\nFROB / HTTP/1.1\r\n\r\n")
            let answers = RawAnswer.parse(await socket.readUntilClosed())
            #expect(answers.map(\.status) == [200, 200, 400])
            #expect(answers.last.flatMap { documentedError($0.body) }?.code == "unknown_method")
        }
    }

    @Test("malformed chunked framing and a body shorter than its Content-Length: 400 JSON, not 500, nothing stored, nothing at error level")
    func malformedBodies() async throws {
        let post = "POST /api/v1/communication HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        let body = #"{"type":"sms","data":{"from":"+1234567890","to":"+0987654321","msg":"Hello"}}"#
        let cases: [(String, String, Bool, String)] = [
            ("bad chunk size", post + "Transfer-Encoding: chunked\r\n\r\nzz\r\n" + body + "\r\n0\r\n\r\n", false, "malformed_chunked_body"),
            ("chunk without its CRLF", post + "Transfer-Encoding: chunked\r\n\r\n5\r\n" + body + "\r\n0\r\n\r\n", false, ""),
            ("body cut short", post + "Content-Length: \(body.utf8.count + 40)\r\n\r\n" + body, true, "incomplete_request"),
            ("chunked body cut short", post + "Transfer-Encoding: chunked\r\n\r\n\(String(body.utf8.count, radix: 16))\r\n" + body + "\r\n", true, "incomplete_request"),
        ]
        let logs = LogCapture()
        try await LiveAPI.run(logs: logs) { live in
            for (name, request, halfClose, code) in cases {
                let socket = try RawConnection(port: live.port)
                try socket.send(request)
                if halfClose { socket.finishWriting() }
                let text = await socket.readUntilClosed(timeout: .seconds(20))
                let answers = RawAnswer.parse(text)
                #expect(answers.count == 1, "\(name): one answer, got \(text.prefix(400))")
                guard let answer = answers.first else { continue }
                #expect((400..<500).contains(answer.status), "\(name): \(answer.status)")
                let error = documentedError(answer.body)
                #expect(error != nil, "\(name): \(answer.body)")
                if !code.isEmpty { #expect(error?.code == code, "\(name)") }
            }
            #expect(try await live.fixture.adapters.store.statusCounts().isEmpty, "nothing stored")
        }
        #expect(logs.all.allSatisfy { $0.level < .error }, "\(logs.all.filter { $0.level >= .error }.map { "\($0.message) \($0.metadata)" })")
    }

    @Test("a control character in a query parameter is a 400 naming it, not search_unavailable", arguments: ["%01", "%00", "abc%7F", "a%0Ab"])
    func controlCharactersInQueries(value: String) async throws {
        let f = try APIFixture()
        try await f.app.test(.router) { client in
            for path in ["/api/v1/communications?q=", "/api/v1/logs?q=", "/api/v1/communications?to=", "/api/v1/sandbox/messages?to="] {
                let r = try await client.execute(uri: path + value, method: .get)
                #expect(r.status == .badRequest, "\(path)\(value)")
                #expect(try errorCode(r) == "invalid_parameter")
                #expect(try json(r)["error"]?["field"] != nil)
            }
            #expect(try await client.execute(uri: "/api/v1/communications?q=caf%C3%A9%20au%20lait", method: .get).status == .ok)
        }
    }

    @Test("HEAD is answered wherever GET is, with GET's status and headers and no body; Allow lists it")
    func head() async throws {
        try await LiveAPI.run { live in
            for path in ["/health", "/health/live", "/health/ready", "/api/v1/health", "/api/v1/communications", "/api/v1/logs", "/api/v1/stats", "/api/v1/sandbox/messages",
                "/api/v1/dead-letters?stream=sms_stream", "/api/v1/communication/0123456789abcdef01234567", "/api/v1/dead-letters"] {
                let get = try RawConnection(port: live.port)
                try get.send("GET \(path) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                let got = try #require(RawAnswer.parse(await get.readUntilClosed()).first, "\(path)")
                let head = try RawConnection(port: live.port)
                try head.send("HEAD \(path) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                let text = await head.readUntilClosed()
                #expect(text.hasSuffix("\r\n\r\n"), "\(path): a body came after the head: \(text.suffix(80))")
                let answer = try #require(RawAnswer.parse(text).first, "\(path)")
                #expect(answer.status == got.status, "\(path)")
                #expect(answer.header("Content-Type") == got.header("Content-Type"), "\(path)")
            }
            let post = try RawConnection(port: live.port)
            try post.send("POST /health/live HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            let refused = try #require(RawAnswer.parse(await post.readUntilClosed()).first)
            #expect(refused.status == 405)
            #expect(refused.header("Allow") == "GET, HEAD")
        }
    }

    @Test("CORS: none by default; allowed origins get preflights and Access-Control-Allow-Origin, others nothing")
    func cors() async throws {
        let f = try APIFixture()
        func app(_ cors: CORSPolicy) -> some ApplicationProtocol {
            let api = API(adapters: f.adapters, dispatcher: Dispatcher(adapters: f.adapters, options: PipelineOptions()), logger: Logger(label: "test"), cors: cors)
            return Application(router: api.router())
        }
        let preflight: HTTPFields = [.origin: "https://app.example.com", .accessControlRequestMethod: "POST", .accessControlRequestHeaders: "authorization, idempotency-key, content-type"]
        try await app(.none).test(.router) { client in
            let r = try await client.execute(uri: "/api/v1/communication", method: .options, headers: preflight)
            #expect(r.headers[.accessControlAllowOrigin] == nil)
            #expect(r.status == .methodNotAllowed)
            #expect(try errorCode(r) == "method_not_allowed")
            let get = try await client.execute(uri: "/health/live", method: .get, headers: [.origin: "https://app.example.com"])
            #expect(get.headers[.accessControlAllowOrigin] == nil)
        }
        let policy = try CORSPolicy.parse("https://App.example.com/, http://localhost:5173")
        #expect(policy.origins == ["https://app.example.com", "http://localhost:5173"])
        try await app(policy).test(.router) { client in
            let r = try await client.execute(uri: "/api/v1/communication", method: .options, headers: preflight)
            #expect(r.status == .noContent)
            #expect(r.headers[.accessControlAllowOrigin] == "https://app.example.com")
            #expect(r.headers[.accessControlAllowMethods]?.contains("POST") == true)
            let allowedHeaders = r.headers[.accessControlAllowHeaders]?.lowercased() ?? ""
            for h in ["authorization", "idempotency-key", "x-api-key", "content-type"] { #expect(allowedHeaders.contains(h), "\(h)") }
            #expect(r.headers[.accessControlMaxAge] != nil)
            #expect(r.headers[values: .vary].contains("Origin"))
            let read = try await client.execute(uri: "/api/v1/communication/:id".replacingOccurrences(of: ":id", with: "0123456789abcdef01234567"), method: .options, headers: preflight)
            #expect(read.headers[.accessControlAllowMethods]?.contains("GET") == true)
            // The actual requests: an allowed origin can read every answer, errors included.
            let posted = try await client.execute(uri: "/api/v1/communication", method: .post, headers: [.origin: "https://app.example.com", .contentType: "application/json"],
                body: ByteBuffer(string: #"{"type":"sms","data":{"from":"+1234567890","to":"+0987654321","msg":"Hello"}}"#))
            #expect(posted.status == .ok)
            #expect(posted.headers[.accessControlAllowOrigin] == "https://app.example.com")
            let missing = try await client.execute(uri: "/api/v1/nothing", method: .get, headers: [.origin: "http://localhost:5173"])
            #expect(missing.status == .notFound)
            #expect(missing.headers[.accessControlAllowOrigin] == "http://localhost:5173")
            // Another origin: no CORS header, and a preflight is not answered as one.
            let other = try await client.execute(uri: "/health/live", method: .get, headers: [.origin: "https://evil.example.net"])
            #expect(other.status == .ok)
            #expect(other.headers[.accessControlAllowOrigin] == nil)
            var evil = preflight
            evil[.origin] = "https://evil.example.net"
            let refused = try await client.execute(uri: "/api/v1/communication", method: .options, headers: evil)
            #expect(refused.headers[.accessControlAllowOrigin] == nil)
            #expect(refused.status == .methodNotAllowed)
        }
        #expect(throws: CORSPolicyError.self) { try CORSPolicy.parse("ftp://files.example.com") }
        #expect(throws: CORSPolicyError.self) { try CORSPolicy.parse("https://app.example.com/path") }
        #expect(try CORSPolicy.parse("*").allows("https://anything.example"))
        #expect(!CORSPolicy.none.allows("https://app.example.com"))
    }

    @Test("repeated warnings of one kind: the first logged whole, the rest counted and logged once when the interval ends")
    func aggregatedWarnings() async throws {
        let logs = LogCapture()
        let log = AggregatedLog(logger: logs.logger, interval: .milliseconds(300))
        for i in 0..<1000 { log.log("store_unavailable", level: .warning, "request refused", metadata: ["i": "\(i)"]) }
        log.log("other", level: .notice, "something else")
        #expect(logs.matching("request refused").count == 1)
        #expect(logs.matching("something else").count == 1)
        try await Task.sleep(for: .milliseconds(900))
        let lines = logs.matching("request refused")
        #expect(lines.count == 2, "\(lines.map(\.message))")
        #expect(lines.last?.message.contains("999 more in the last 0.3 s") == true, "\(lines.last?.message ?? "")")
        #expect(lines.last?.metadata["i"] == "999")
        #expect(lines.allSatisfy { $0.level == .warning })
        // A new interval starts with a whole line again.
        log.log("store_unavailable", level: .warning, "request refused")
        #expect(logs.matching("request refused").count == 3)
    }

    @Test("a full disk refusing 300 requests writes a few warning lines, not one per request")
    func refusalsAreAggregated() async throws {
        let logs = LogCapture()
        try await LiveAPI.run(warningInterval: .seconds(600), logs: logs) { live in
            let f = live.fixture
            try await f.database.write { c in
                let pages = try c.scalar("PRAGMA page_count") ?? 0
                try c.execute("PRAGMA max_page_count = \(pages)")
            }
            var refused = 0
            for i in 0..<3000 where refused < 300 {
                let body = #"{"type":"sms","data":{"from":"+1234567890","to":"+0987654321","msg":"filling \#(i) \#(String(repeating: "x", count: 400))"}}"#
                let socket = try RawConnection(port: live.port)
                try socket.send("POST /api/v1/communication HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body)
                let answer = RawAnswer.parse(await socket.readUntilClosed()).first
                if answer?.status == 503 { refused += 1 }
            }
            #expect(refused == 300)
        }
        let warnings = logs.matching("request refused")
        #expect((1...2).contains(warnings.count), "\(warnings.count) lines for 300 refusals")
    }

    @Test("the connection cap: past it new connections wait, the open ones are served, and the waiting ones are served once some close")
    func connectionCap() async throws {
        let logs = LogCapture()
        try await LiveAPI.run(maxConnections: 8, warningInterval: .seconds(600), logs: logs) { live in
            let first = try RawConnection(port: live.port)
            try first.send("GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(await first.read(until: { $0.contains("\r\n\r\n") }).hasPrefix("HTTP/1.1 200"))
            var others: [RawConnection] = []
            for _ in 0..<30 {
                let s = try RawConnection(port: live.port)  // completes in the kernel's backlog even when not accepted
                try s.send("GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
                others.append(s)
            }
            try await Task.sleep(for: .seconds(1))
            var answered: [Int] = []
            for (i, s) in others.enumerated() {
                let text = await s.read(timeout: .milliseconds(50)) { $0.contains("\r\n\r\n") }
                if text.hasPrefix("HTTP/1.1") { answered.append(i) }
            }
            // NIO accepts up to 4 connections per read of the listening socket: the cap may be passed by 3.
            #expect(answered.count <= 7 + 3, "\(answered.count) of 30 were served past a cap of 8")
            #expect(answered.count >= 1)
            // The connection the server holds keeps being served.
            try first.send("GET /health/ready HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(await first.read(timeout: .seconds(5), until: { $0.contains("\r\n\r\n") }).hasPrefix("HTTP/1.1 200"))
            // Closing the served ones lets the others in.
            let waiting = others.indices.filter { !answered.contains($0) }
            for i in answered { shutdown(others[i].fd, Int32(SHUT_RDWR)) }
            shutdown(first.fd, Int32(SHUT_RDWR))
            var served = 0
            for i in waiting.prefix(5) {
                let text = await others[i].read(timeout: .seconds(10)) { $0.contains("\r\n\r\n") }
                if text.hasPrefix("HTTP/1.1 200") { served += 1 }
                shutdown(others[i].fd, Int32(SHUT_RDWR))
            }
            #expect(served == min(5, waiting.count))
        }
        #expect(!logs.matching("connection cap reached").isEmpty)
        #expect(logs.matching("connection cap reached").count <= 2, "aggregated")
    }

    @Test("a connection the client dropped during the WebSocket upgrade's negotiation is logged at debug, not error; other errors stay errors")
    func clientGoneIsNotAnError() {
        let capture = LogCapture()
        var logger = capture.logger
        logger.handler = ClientGoneIsNotAnError(base: logger.handler)
        logger.error("Error handling upgrade result", metadata: ["error.type": .string("\(ChannelError.inappropriateOperationForState)")])
        logger.error("Error handling upgrade result", metadata: ["error.type": .string("\(ChannelError.ioOnClosedChannel)")])
        logger.error("Error handling upgrade result", metadata: ["error.type": .string("disk full")])
        logger.error("something else", metadata: ["error.type": .string("\(ChannelError.ioOnClosedChannel)")])
        #expect(capture.all.map(\.level) == [.debug, .debug, .error, .error])
        // Below debug's threshold, the lowered lines are not written at all.
        logger.logLevel = .info
        logger.error("Error handling upgrade result", metadata: ["error.type": .string("\(ChannelError.eof)")])
        #expect(capture.all.count == 4)
    }
}
