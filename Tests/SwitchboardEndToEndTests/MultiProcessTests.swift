import AsyncHTTPClient
import Foundation
import NIOCore
import SwitchboardTestSystem
import SwitchboardTestSupport
import Testing
import SwitchboardCore
import Synchronization

/// A `switchboard` child process.
final class ServiceProcess: @unchecked Sendable {
    let process = ChildProcess()
    let name: String

    init(_ arguments: [String], environment: [String: String], name: String) throws {
        self.name = name
        process.executableURL = try Self.binary()
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("SWITCHBOARD_") && $0.key != "PORT" }.merging(environment) { $1 }
        process.standardOutput = FileHandle.nullDevice
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-\(name)-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        process.standardError = try FileHandle(forWritingTo: log)
        try process.run()
    }

    /// The `switchboard` executable built beside this test bundle.
    static func binary() throws -> URL {
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [dir, dir.deletingLastPathComponent()] {
            let url = candidate.appendingPathComponent("switchboard")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        throw CocoaError(.fileNoSuchFile, userInfo: [NSLocalizedDescriptionKey: "switchboard executable not found beside \(dir.path); run `swift build --build-tests` first"])
    }

    func signal(_ s: Int32) { kill(process.processIdentifier, s) }

    /// Sends SIGTERM and waits; returns the exit status.
    func terminate() async -> Int32 {
        signal(SIGTERM)
        while process.isRunning { try? await Task.sleep(for: .milliseconds(20)) }
        return process.terminationStatus
    }

    /// Sends SIGTERM and waits at most `limit`; returns the exit status and how long it took, or nil (after a
    /// SIGKILL) when the process was still running.
    func terminate(within limit: Duration) async -> (status: Int32, took: Duration)? {
        let start = ContinuousClock.now
        signal(SIGTERM)
        while process.isRunning && ContinuousClock.now - start < limit { try? await Task.sleep(for: .milliseconds(20)) }
        guard !process.isRunning else {
            signal(SIGKILL)
            return nil
        }
        return (process.terminationStatus, ContinuousClock.now - start)
    }
}

@Suite("Separate processes on one SQLite file", .serialized)
struct MultiProcessTests {
    @Test("the router closes a connection idle for SWITCHBOARD_HTTP_IDLE_TIMEOUT_MS, and keeps a busy one")
    func idleConnectionsAreClosed() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-idle-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let port = try freeLoopbackPortNow()
        let idleMilliseconds = 1500
        let idleTimeout = Duration.milliseconds(idleMilliseconds)
        let router = try ServiceProcess(["router"], environment: [
            "SWITCHBOARD_DATABASE": dir.appendingPathComponent("idle.sqlite").path, "PORT": "\(port)", "SWITCHBOARD_LOG_LEVEL": "warning",
            "SWITCHBOARD_HTTP_IDLE_TIMEOUT_MS": "\(idleMilliseconds)",
        ], name: "router")
        defer { router.signal(SIGKILL) }
        try await eventually(timeout: .seconds(60), "router up") { (try? RawConnection(port: port)) != nil }

        // A connection that never sends anything, and one that makes a request and then goes quiet.
        let silent = try RawConnection(port: port)
        let quiet = try RawConnection(port: port)
        try quiet.send("GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try await quiet.receive(timeout: .seconds(30)).hasPrefix("HTTP/1.1 200"))
        // A busy connection: a request every 100 ms for over two idle timeouts, from a thread of its own (a
        // cooperative pool kept busy by the other tests cannot make it late). It must be kept open only if no two
        // of its requests were an idle timeout apart: on a machine loaded enough to stall the client that long,
        // the server was right to close it, and the run shows nothing; then it is repeated, until one run was busy.
        var busyRuns: [BusyRun] = []
        let deadline = ContinuousClock.now + .seconds(120)
        while !(busyRuns.last?.wasBusy(idleTimeout: idleTimeout) ?? false), ContinuousClock.now < deadline {
            busyRuns.append(try await BusyRun.run(port: port, length: idleTimeout * 2 + .milliseconds(200), pace: .milliseconds(100)))
        }
        let shown = try #require(busyRuns.last.flatMap { $0.wasBusy(idleTimeout: idleTimeout) ? $0 : nil },
            "no run kept the connection busy (longest gaps: \(busyRuns.map(\.longestGap)))")
        #expect(shown.closedBy == nil, "the busy connection was not kept: \(shown.closedBy ?? "")")
        // The silent and quiet connections have been idle for over two timeouts now: they are closed (or are
        // about to be, on a machine slow enough to delay the router's timer).
        #expect(try await silent.receive(timeout: idleTimeout + .seconds(30)) == "", "the silent connection was not closed")
        #expect(try await quiet.receive(timeout: idleTimeout + .seconds(30)) == "", "the quiet connection was not closed")
    }

    @Test("SIGTERM stops serve, router, worker and logger promptly, though their loops pause for minutes between passes")
    func promptShutdown() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-stop-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        // A ten-minute pause: the outbox scheduler's interval.
        let env = [
            "SWITCHBOARD_DATABASE": dir.appendingPathComponent("stop.sqlite").path, "SWITCHBOARD_LOG_LEVEL": "warning",
            "SWITCHBOARD_SCHEDULER_INTERVAL_MS": "600000",
        ]
        let http = HTTPClient(eventLoopGroupProvider: .singleton)
        defer { _ = http.shutdown() }
        for arguments in [["serve"], ["router"], ["worker", "--channel", "sms"], ["logger"]] {
            let port = try freeLoopbackPortNow()
            let process = try ServiceProcess(arguments, environment: env.merging(["PORT": "\(port)"]) { $1 }, name: arguments[0])
            if arguments[0] == "serve" || arguments[0] == "router" {
                try await eventually("\(arguments[0]) up") {
                    (try? await http.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/health/live"), timeout: .seconds(2)))?.status == .ok
                }
            }
            try await Task.sleep(for: .seconds(1))  // every loop is in its pause
            let stopped = await process.terminate(within: .seconds(10))
            #expect(stopped != nil, "\(arguments.joined(separator: " ")) still running 10 s after SIGTERM")
            if let stopped {
                #expect(stopped.status == 0, "\(arguments[0]) exited with \(stopped.status)")
                #expect(stopped.took < .seconds(3), "\(arguments[0]) took \(stopped.took) to stop")
            }
        }
    }

    @Test("serve killed with SIGKILL under load: after a restart on the same file every answered message is there and sent")
    func killedServeLosesNothing() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-kill-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let port = try freeLoopbackPortNow()
        let env = [
            "SWITCHBOARD_DATABASE": dir.appendingPathComponent("kill.sqlite").path, "PORT": "\(port)", "SWITCHBOARD_LOG_LEVEL": "warning",
            "SWITCHBOARD_SQLITE_SYNCHRONOUS": "full", "SWITCHBOARD_LEASE_MS": "1000", "SWITCHBOARD_OUTBOX_GRACE_MS": "1000",
            "SWITCHBOARD_SCHEDULER_INTERVAL_MS": "100",
        ]
        let base = "http://127.0.0.1:\(port)"
        let http = HTTPClient(eventLoopGroupProvider: .singleton)
        var serve = try ServiceProcess(["serve"], environment: env, name: "serve-killed")
        do {
            try await eventually("serve up") {
                (try? await http.execute(HTTPClientRequest(url: base + "/health/live"), timeout: .seconds(2)))?.status == .ok
            }
            // 16 clients post until the process dies under them; each keeps the ids it was answered 200 for.
            let killed = KillFlag()
            let answered = try await withThrowingTaskGroup(of: [String].self) { group in
                for client in 0..<16 {
                    group.addTask {
                        var ids: [String] = []
                        var i = 0
                        while !killed.value.load(ordering: .relaxed) {
                            let type = MessageChannel.allCases[i % 3]
                            var request = HTTPClientRequest(url: base + "/api/v1/communication")
                            request.method = .POST
                            request.headers.add(name: "Content-Type", value: "application/json")
                            request.body = .bytes(body(type, to: recipient(type, client * 10_000 + i), msg: "killed \(client)-\(i)"))
                            i += 1
                            guard let response = try? await http.execute(request, timeout: .seconds(5)), response.status == .ok,
                                let answer = try? JSONParser.parse(Array(try await response.body.collect(upTo: 1 << 20).readableBytesView)),
                                let id = answer["id"]?.stringValue
                            else { continue }
                            ids.append(id)
                        }
                        return ids
                    }
                }
                // Kill once a few hundred are in, with requests, deliveries and log indexing all under way.
                try await eventually("300 stored") {
                    let r = try? await http.execute(HTTPClientRequest(url: base + "/api/v1/stats"), timeout: .seconds(2))
                    guard let r, let stats = try? JSONParser.parse(Array(try await r.body.collect(upTo: 1 << 20).readableBytesView)) else { return false }
                    guard case .number(let total)? = stats["communications"]?["total"] else { return false }
                    return total >= 300
                }
                serve.signal(SIGKILL)
                while serve.process.isRunning { try await Task.sleep(for: .milliseconds(10)) }
                killed.value.store(true, ordering: .relaxed)
                group.cancelAll()  // else requests in flight retry the refused connection until their deadline
                return try await group.reduce(into: [String]()) { $0 += $1 }
            }
            #expect(answered.count >= 300)

            serve = try ServiceProcess(["serve"], environment: env, name: "serve-restarted")
            // Up when it takes a connection (the client's pool backs off after the refusals above).
            try await eventually("serve restarted") { (try? RawConnection(port: port)) != nil }
            func get(_ path: String) async throws -> JSONValue {
                let r = try await http.execute(HTTPClientRequest(url: base + path), timeout: .seconds(10))
                return try JSONParser.parse(Array(try await r.body.collect(upTo: 1 << 24).readableBytesView))
            }
            try await eventually(timeout: .seconds(60), "everything stored is sent", toleratingErrors: true) {
                let counts = try await get("/api/v1/stats")["communications"]
                return counts?["total"] == counts?["byStatus"]?["sent"]
            }
            var sent = Set<String>()
            var cursor: String?
            repeat {
                let page = try await get("/api/v1/communications?status=sent&limit=1000" + (cursor.map { "&cursor=\($0)" } ?? ""))
                guard case .array(let items)? = page["items"] else { break }
                sent.formUnion(items.compactMap { $0["id"]?.stringValue })
                cursor = page["nextCursor"]?.stringValue
            } while cursor != nil
            let lost = answered.filter { !sent.contains($0) }
            #expect(lost.isEmpty, "\(lost.count) of \(answered.count) answered messages not sent after the restart: \(lost.prefix(5))")
            #expect(await serve.terminate() == 0)
        } catch {
            serve.signal(SIGKILL)
            try? await http.shutdown()
            throw error
        }
        try await http.shutdown()
    }

    @Test("router, two SMS workers, email and WhatsApp workers and the logger as processes; a worker killed with SIGKILL loses nothing")
    func separateProcesses() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-mp-\(UUID().uuidString)")
        let port = try freeLoopbackPortNow()
        let env = [
            "SWITCHBOARD_DATABASE": dir.appendingPathComponent("shared.sqlite").path, "PORT": "\(port)", "SWITCHBOARD_LEASE_MS": "1000",
            "SWITCHBOARD_POLL_MS": "20", "SWITCHBOARD_SQLITE_SYNCHRONOUS": "full", "SWITCHBOARD_LOG_LEVEL": "warning",
            "SWITCHBOARD_OUTBOX_GRACE_MS": "1000", "SWITCHBOARD_SCHEDULER_INTERVAL_MS": "100",
        ]
        let router = try ServiceProcess(["router"], environment: env, name: "router")
        // Give the router a moment to create the schema before the others open the file.
        let http = HTTPClient(eventLoopGroupProvider: .singleton)
        // A failing check must not leave processes running or the client open (its deinit traps).
        var started = [router]
        do {
            let base = "http://127.0.0.1:\(port)"
            func get(_ path: String) async throws -> JSONValue {
                let r = try await http.execute(HTTPClientRequest(url: base + path), timeout: .seconds(10))
                return try JSONParser.parse(Array(try await r.body.collect(upTo: 1 << 24).readableBytesView))
            }
            try await eventually("router up") { (try? await get("/health/ready"))?["status"] == .string("ready") }
            let smsA = try ServiceProcess(["worker", "--channel", "sms", "--concurrency", "8"], environment: env, name: "sms-a")
            let smsB = try ServiceProcess(["worker", "--channel", "sms", "--concurrency", "8"], environment: env, name: "sms-b")
            // Workers and the logging service serve GET /metrics on a port of their own.
            let metricsPorts = (email: try freeLoopbackPortNow(), whatsapp: try freeLoopbackPortNow(), logger: try freeLoopbackPortNow())
            let email = try ServiceProcess(["worker", "--channel", "email", "--metrics-port", "\(metricsPorts.email)"], environment: env, name: "email")
            let whatsapp = try ServiceProcess(["worker", "--channel", "whatsapp"], environment: env.merging(["SWITCHBOARD_METRICS_PORT": "\(metricsPorts.whatsapp)"]) { $1 }, name: "whatsapp")
            let logger = try ServiceProcess(["logger", "--metrics-port", "\(metricsPorts.logger)"], environment: env, name: "logger")
            started += [smsA, smsB, email, whatsapp, logger]

            var ids: [String] = []
            for i in 0..<300 {
                let type = MessageChannel.allCases[i % 3]
                var request = HTTPClientRequest(url: base + "/api/v1/communication")
                request.method = .POST
                request.headers.add(name: "Content-Type", value: "application/json")
                request.body = .bytes(body(type, to: recipient(type, i), msg: "multi-process \(i)"))
                let response = try await http.execute(request, timeout: .seconds(10))
                #expect(response.status == .ok)
                let answer = try JSONParser.parse(Array(try await response.body.collect(upTo: 1 << 20).readableBytesView))
                ids.append(try #require(answer["id"]?.stringValue))
                if i == 150 { smsA.signal(SIGKILL) }  // dies holding whatever it had
            }
            try await eventually(timeout: .seconds(60), "300 sent") {
                (try? await get("/api/v1/stats"))?["communications"]?["byStatus"]?["sent"] == .number(300)
            }
            let sandbox = try await get("/api/v1/sandbox/messages?limit=1000")
            guard case .array(let delivered)? = sandbox["items"] else { Issue.record("no sandbox list"); throw CancellationError() }
            let deliveredIDs = delivered.compactMap { $0["communicationId"]?.stringValue }
            #expect(Set(deliveredIDs) == Set(ids))
            // A message is sent twice only if the killed worker died between the provider call and its commit.
            #expect(deliveredIDs.count - Set(deliveredIDs).count <= 8)
            try await eventually("logs indexed") {
                // `queued` is recorded after the answer and may be overtaken by the worker's `processing`.
                guard case .array(let logs)? = try await get("/api/v1/logs?communicationId=\(ids[299])")["items"] else { return false }
                return Set(logs.compactMap { $0["status"]?.stringValue }).isSuperset(of: ["pending", "processing", "sent"])
            }
            // Each process counts what it did: the router the accepts, each worker its channel's deliveries.
            func metrics(_ port: Int) async throws -> [String: Double] {
                let r = try await http.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/metrics"), timeout: .seconds(10))
                #expect(r.status == .ok)
                return samples(String(buffer: try await r.body.collect(upTo: 1 << 24)))
            }
            let routerMetrics = try await metrics(port)
            for channel in MessageChannel.allCases {
                #expect(sample(routerMetrics, "switchboard_messages_accepted_total", ["channel": channel.rawValue]) == 100)
            }
            #expect(sample(routerMetrics, "switchboard_http_requests_total", ["method": "POST", "route": "/api/v1/communication", "status": "200"]) == 300)
            for (channel, metricsPort) in [(MessageChannel.email, metricsPorts.email), (.whatsapp, metricsPorts.whatsapp)] {
                let m = try await metrics(metricsPort)
                #expect(sample(m, "switchboard_status_transitions_total", ["channel": channel.rawValue, "status": "sent"]) == 100)
                #expect(sample(m, "switchboard_provider_calls_total", ["provider": "sandbox", "outcome": "sent"]) == 100)
                #expect(sample(m, "switchboard_messages_accepted_total", ["channel": channel.rawValue]) == 0)
            }
            #expect(sample(try await metrics(metricsPorts.logger), "process_start_time_seconds") != nil)
            for p in [smsB, email, whatsapp, logger, router] {
                let status = await p.terminate()
                #expect(status == 0, "\(p.name) exited with \(status)")
            }
        } catch {
            for p in started where p.process.isRunning { p.signal(SIGKILL) }
            try? await http.shutdown()
            throw error
        }
        try await http.shutdown()
    }
}

/// Set once the process under test was killed: the clients stop posting.
final class KillFlag: Sendable {
    let value = Atomic<Bool>(false)
}

/// One run of a client keeping a connection busy: a request, its answer, a pause, over and over, on a thread of its
/// own.
struct BusyRun: Sendable {
    /// The longest time between two requests (or the connection and the first): the longest the server saw the
    /// connection idle, at most.
    var longestGap: Duration = .zero
    /// How the connection ended early, if it did: a write refused, no answer or the server's close.
    var closedBy: String?

    /// Whether the connection was never left idle for anything near `idleTimeout` (a margin of a fifth for the
    /// server's own clock reading): a close would then be wrong.
    func wasBusy(idleTimeout: Duration) -> Bool { longestGap < idleTimeout * 0.8 }

    static func run(port: Int, length: Duration, pace: Duration) async throws -> BusyRun {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<BusyRun, any Error>) in
            Thread.detachNewThread {
                do {
                    let connection = try RawConnection(port: port)
                    var run = BusyRun()
                    let start = ContinuousClock.now
                    var last = start
                    while ContinuousClock.now - start < length {
                        let now = ContinuousClock.now
                        run.longestGap = max(run.longestGap, now - last)
                        last = now
                        do {
                            try connection.send("GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
                        } catch {
                            run.closedBy = "a request could not be sent (\(error))"
                            break
                        }
                        // The answer: a generous bound, the router is up and answers every request.
                        guard let answer = try connection.receive(waitingAtMost: .seconds(30)) else {
                            run.closedBy = "no answer within 30 s"
                            break
                        }
                        guard answer.hasPrefix("HTTP/1.1 200") else {
                            run.closedBy = answer.isEmpty ? "closed by the server" : "answered \(answer.prefix(40))"
                            break
                        }
                        Thread.sleep(forTimeInterval: Double(pace.components.attoseconds) / 1e18 + Double(pace.components.seconds))
                    }
                    continuation.resume(returning: run)
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }
}
