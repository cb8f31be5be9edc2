import Foundation
import SwitchboardCore
import SwitchboardServer
import SwitchboardTestSupport
import SwitchboardTestSystem
import Testing

/// A `switchboard` process started through `/bin/sh` (for `ulimit`), its standard error kept in a file to read.
final class ShellLaunched: @unchecked Sendable {
    let process = ChildProcess()
    let log: URL

    /// - Parameter shellPrefix: run before `exec switchboard …` (say `ulimit -n 1024`).
    init(_ arguments: [String], environment: [String: String], shellPrefix: String = "true") throws {
        log = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-hardening-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "\(shellPrefix) && exec \"$0\" \"$@\"", try ServiceProcess.binary().path] + arguments
        process.environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("SWITCHBOARD_") && $0.key != "PORT" && !$0.key.hasPrefix("ELASTICSEARCH_") }
            .merging(environment) { $1 }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: log)
        try process.run()
    }

    var errors: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

    func signal(_ s: Int32) { kill(process.processIdentifier, s) }

    /// Waits at most `limit` for the process to end; its status, or nil.
    func exit(within limit: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + limit
        while process.isRunning, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        return process.isRunning ? nil : process.terminationStatus
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(at: log)
    }
}

@Suite("Hardening, against the built binary: connection flood, TLS at start, shutdown with Elasticsearch unreachable", .serialized)
struct HardeningProcessTests {
    static let seedBody = #"{"type":"sms","data":{"from":"+1234567890","to":"+0987654321","msg":"Hello"}}"#

    static func post(_ body: String = seedBody) -> String {
        "POST /api/v1/communication HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body
    }

    /// The flood, from a process of its own (this test process must not hold 1,100 descriptors: Foundation's
    /// `Process.run()` reads `/proc/self/fd` and can crash while another test starts a process). Per round: open
    /// the connections without waiting, post once on a new one, hold them, close them all, then wait for the
    /// newcomer's answer. One JSON line per round.
    static let floodDriver = #"""
    import json, socket, sys, time
    port, rounds, count, hold = (int(a) for a in sys.argv[1:5])
    post = sys.argv[5].encode()
    for r in range(rounds):
        flood = []
        for _ in range(count):
            s = socket.socket(); s.setblocking(False)
            try: s.connect(("127.0.0.1", port))
            except BlockingIOError: pass
            except OSError: s.close(); continue
            flood.append(s)
        time.sleep(0.3)
        newcomer = socket.socket(); newcomer.setblocking(False)
        try: newcomer.connect(("127.0.0.1", port))
        except BlockingIOError: pass
        posted = False
        deadline = time.time() + 0.5
        while time.time() < deadline and not posted:
            try: newcomer.send(post); posted = True
            except OSError: time.sleep(0.02)
        time.sleep(hold)
        for s in flood: s.close()
        answer = b""
        if posted:
            newcomer.setblocking(True); newcomer.settimeout(20)
            try: answer = newcomer.recv(4096)
            except OSError: pass
        newcomer.close()
        print(json.dumps({"round": r + 1, "opened": len(flood), "posted": posted, "answer": answer[:12].decode("latin-1")}), flush=True)
    """#

    @Test("a flood of 1,100 connections with ulimit -n 1024, four times: serve caps its connections, keeps serving the ones it has, never crashes")
    func connectionFlood() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-flood-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let port = try freeLoopbackPortNow()
        let serve = try ShellLaunched(["serve"], environment: [
            "SWITCHBOARD_DATABASE": dir.appendingPathComponent("flood.sqlite").path, "PORT": "\(port)", "SWITCHBOARD_LOG_LEVEL": "info",
        ], shellPrefix: "ulimit -n 1024")
        try await eventually(timeout: .seconds(60), "serve up") { (try? RawConnection(port: port)) != nil }
        // The cap follows from the limit: half of 1024.
        try await eventually(timeout: .seconds(10), "the start-up line") { serve.errors.contains("at most 512 (open-file limit 1024") }

        // A client that was there before the flood, on a keep-alive connection.
        let regular = try RawConnection(port: port)
        try regular.send(Self.post())
        #expect(try await regular.receive(timeout: .seconds(30)).hasPrefix("HTTP/1.1 200"))

        let driver = ChildProcess()
        driver.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        driver.arguments = ["python3", "-c", Self.floodDriver, "\(port)", "4", "1100", "3", Self.post()]
        let output = Pipe()
        driver.standardOutput = output
        driver.standardError = FileHandle.nullDevice
        try driver.run()
        // Meanwhile the regular client is served, promptly, flood or not.
        var requests = 0
        let deadline = ContinuousClock.now + .seconds(180)
        while driver.isRunning, ContinuousClock.now < deadline {
            let started = ContinuousClock.now
            try regular.send("GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            let answer = try await regular.receive(timeout: .seconds(10))
            #expect(answer.hasPrefix("HTTP/1.1 200"), "the regular client got \(answer.prefix(60))")
            #expect(ContinuousClock.now - started < .seconds(3), "the regular client waited \(ContinuousClock.now - started)")
            #expect(serve.process.isRunning, "serve died: \(serve.errors.suffix(2000))")
            requests += 1
            try await Task.sleep(for: .milliseconds(250))
        }
        if driver.isRunning { driver.terminate() }
        // The loop ran across the flood (four rounds of at least 3.3 s each). How many it made depends on how busy
        // this test process is (a loaded CI run made 14 to 19, an idle one ~50); the promptness of each answer is
        // the check above.
        #expect(requests >= 4, "only \(requests) requests during the flood")
        let rounds = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).split(separator: "\n").compactMap {
            try? JSONParser.parse(Array($0.utf8))
        }
        #expect(rounds.count == 4, "the driver ran \(rounds.count) rounds")
        for round in rounds {
            guard case .number(let opened)? = round["opened"] else { continue }
            #expect(opened >= 1000, "round \(round): only \(opened) connections opened")
            // The newcomer's turn came once the flood left.
            if round["posted"] == .bool(true) { #expect(round["answer"]?.stringValue?.hasPrefix("HTTP/1.1 200") == true, "round \(round)") }
        }
        #expect(serve.process.isRunning, "serve died: \(serve.errors.suffix(2000))")

        // Still whole: new connections are served, and the warnings were aggregated.
        let after = try RawConnection(port: port)
        try after.send(Self.post())
        #expect(try await after.receive(timeout: .seconds(30)).hasPrefix("HTTP/1.1 200"))
        let capLines = serve.errors.components(separatedBy: "\n").filter { $0.contains("connection cap reached") }
        #expect(!capLines.isEmpty, "the cap was never reached")
        #expect(capLines.count <= 8, "\(capLines.count) lines about the cap: not aggregated")
        let errorLines = serve.errors.components(separatedBy: "\n").filter { $0.contains(" error ") || $0.contains(" critical ") }
        #expect(errorLines.isEmpty, "\(errorLines.prefix(5))")
        serve.signal(SIGTERM)
        #expect(await serve.exit(within: .seconds(10)) == 0)
    }

    @Test("an unreadable or mismatched TLS file stops the start with a message naming it")
    func badTLSFilesStopTheStart() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-badtls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let garbage = dir.appendingPathComponent("garbage.pem")
        try "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n".write(to: garbage, atomically: true, encoding: .utf8)
        let cases: [([String: String], String)] = [
            (["SWITCHBOARD_TLS_CERT_FILE": "/nonexistent/cert.pem", "SWITCHBOARD_TLS_KEY_FILE": "/nonexistent/key.pem"], "cannot read the certificate file /nonexistent/cert.pem"),
            (["SWITCHBOARD_TLS_CERT_FILE": garbage.path, "SWITCHBOARD_TLS_KEY_FILE": garbage.path], garbage.path),
            (["SWITCHBOARD_TLS_CERT_FILE": garbage.path], "SWITCHBOARD_TLS_CERT_FILE is set without SWITCHBOARD_TLS_KEY_FILE"),
        ]
        for (tls, expected) in cases {
            let port = try freeLoopbackPortNow()
            let serve = try ShellLaunched(["serve"], environment: tls.merging([
                "SWITCHBOARD_DATABASE": dir.appendingPathComponent("tls.sqlite").path, "PORT": "\(port)",
            ]) { $1 })
            let status = await serve.exit(within: .seconds(30))
            #expect(status != nil && status != 0, "serve started with \(tls)")
            #expect(serve.errors.contains(expected), "\(serve.errors.suffix(500))")
            #expect((try? RawConnection(port: port)) == nil, "something listens on the port")
        }
    }

    @Test("serve over TLS: curl gets answers over HTTPS with the test's certificate")
    func servesHTTPS() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-https-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let (made, output) = try await runProgram("/usr/bin/openssl", [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "cert.pem", "-days", "1", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ], in: dir.path)
        #expect(made == 0, "\(output)")
        let port = try freeLoopbackPortNow()
        let serve = try ShellLaunched(["serve"], environment: [
            "SWITCHBOARD_DATABASE": dir.appendingPathComponent("https.sqlite").path, "PORT": "\(port)",
            "SWITCHBOARD_TLS_CERT_FILE": dir.appendingPathComponent("cert.pem").path, "SWITCHBOARD_TLS_KEY_FILE": dir.appendingPathComponent("key.pem").path,
        ])
        try await eventually(timeout: .seconds(60), "serve up") { (try? RawConnection(port: port)) != nil }
        let (status, answer) = try await runProgram("/usr/bin/curl", [
            "-sS", "--max-time", "20", "--cacert", dir.appendingPathComponent("cert.pem").path, "-H", "Content-Type: application/json",
            "-d", Self.seedBody, "https://127.0.0.1:\(port)/api/v1/communication",
        ])
        #expect(status == 0, "\(answer)")
        #expect(answer.contains("\"status\":\"queued\""), "\(answer)")
        let (plain, _) = try await runProgram("/usr/bin/curl", ["-sS", "--max-time", "10", "http://127.0.0.1:\(port)/health/live"])
        #expect(plain != 0, "plain HTTP answered on the HTTPS port")
        serve.signal(SIGTERM)
        #expect(await serve.exit(within: .seconds(10)) == 0)
    }

    @Test("SIGTERM with Elasticsearch unreachable (answering nothing, or refusing): serve stops within a second or two", arguments: ["silent", "refusing"])
    func shutdownWithElasticsearchUnreachable(kind: String) async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-esdown-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        // "silent": a listening socket that never accepts: connections complete in the kernel, requests are never
        // answered (each waits for the 10 s request timeout). "refusing": a port nobody listens on.
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) } }
        let esPort = Int(UInt16(bigEndian: address.sin_port))
        if kind == "silent" { listen(listener, 512) }
        let port = try freeLoopbackPortNow()
        let serve = try ShellLaunched(["serve"], environment: [
            "SWITCHBOARD_DATABASE": dir.appendingPathComponent("es.sqlite").path, "PORT": "\(port)", "SWITCHBOARD_LOG_LEVEL": "warning",
            "ELASTICSEARCH_NODE": "http://127.0.0.1:\(esPort)", "SWITCHBOARD_ELASTICSEARCH_FLUSH_MS": "100",
        ])
        try await eventually(timeout: .seconds(60), "serve up") { (try? RawConnection(port: port)) != nil }
        // Messages under way: documents buffered for the index, log records for the logging service.
        for _ in 0..<5 {
            let c = try RawConnection(port: port)
            try c.send(Self.post())
            #expect(try await c.receive(timeout: .seconds(30)).hasPrefix("HTTP/1.1 200"))
        }
        try await Task.sleep(for: .seconds(2))  // the indexer, the logging service and the catch-up are each waiting on the cluster
        let started = ContinuousClock.now
        serve.signal(SIGTERM)
        let status = await serve.exit(within: .seconds(15))
        let took = ContinuousClock.now - started
        #expect(status == 0, "\(serve.errors.suffix(1500))")
        #expect(took < .seconds(3), "took \(took) to stop")
    }

    @Test("the connection cap: the default is half the open-file limit, at most 16,384; a setting above what the limit allows is lowered")
    func connectionCapSettings() throws {
        var s = Settings()
        #expect(s.effectiveMaxConnections(openFileLimit: 1024) == (512, false))
        #expect(s.effectiveMaxConnections(openFileLimit: 20_000) == (10_000, false))
        #expect(s.effectiveMaxConnections(openFileLimit: 1_048_576) == (16_384, false))
        s = try Settings.fromEnvironment(["SWITCHBOARD_MAX_CONNECTIONS": "5000"])
        #expect(s.effectiveMaxConnections(openFileLimit: 20_000) == (5000, false))
        #expect(s.effectiveMaxConnections(openFileLimit: 1024) == (1024 - Settings.reservedFileDescriptors, true))
        #expect(throws: SettingsError.self) { try Settings.fromEnvironment(["SWITCHBOARD_MAX_CONNECTIONS": "0"]) }
        #expect(throws: SettingsError.self) { try Settings.fromEnvironment(["SWITCHBOARD_CORS_ORIGINS": "app.example.com"]) }
        #expect(try Settings.fromEnvironment(["SWITCHBOARD_CORS_ORIGINS": "https://app.example.com"]).corsOrigins.origins == ["https://app.example.com"])
        #expect(throws: SettingsError.self) { try Settings.fromEnvironment(["SWITCHBOARD_TLS_KEY_FILE": "/k.pem"]) }
    }
}
