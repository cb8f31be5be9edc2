import Foundation
import SwitchboardCore
import SwitchboardServer
import SwitchboardTestSupport
import SwitchboardTestSystem
import Testing

/// A `switchboard` process started through `/bin/sh` (for `ulimit`), its standard error kept in a file to read.
final class ShellLaunched: @unchecked Sendable {
    let process = Process()
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

/// A TCP connection opened without waiting (the flood's): it may sit in the server's backlog, or be refused.
struct PendingConnection {
    let fd: Int32

    init?(port: Int) {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return nil }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 || errno == EINPROGRESS else {
            Glibc.close(fd)
            return nil
        }
    }

    /// Sends `text` if the connection is writable now.
    func sendIfConnected(_ text: String) -> Bool {
        var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        guard poll(&poller, 1, 0) > 0, poller.revents & Int16(POLLOUT) != 0 else { return false }
        let bytes = Array(text.utf8)
        return Glibc.send(fd, bytes, bytes.count, Int32(MSG_NOSIGNAL)) == bytes.count
    }

    func close() { Glibc.close(fd) }
}

@Suite("Hardening, against the built binary: connection flood, TLS at start, shutdown with Elasticsearch unreachable", .serialized)
struct HardeningProcessTests {
    static let seedBody = #"{"type":"sms","data":{"from":"+1234567890","to":"+0987654321","msg":"Hello"}}"#

    static func post(_ body: String = seedBody) -> String {
        "POST /api/v1/communication HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body
    }

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

        for round in 1...4 {
            var flood: [PendingConnection] = []
            for _ in 0..<1100 {
                if let c = PendingConnection(port: port) { flood.append(c) }
            }
            #expect(flood.count >= 1000, "round \(round): only \(flood.count) connections opened")
            // Posting once on a new connection, as a client arriving now would.
            try await Task.sleep(for: .milliseconds(300))
            let newcomer = PendingConnection(port: port)
            try await Task.sleep(for: .milliseconds(200))
            let posted = newcomer?.sendIfConnected(Self.post()) ?? false
            // Held: meanwhile the regular client is served, promptly.
            let holdUntil = ContinuousClock.now + .seconds(3)
            while ContinuousClock.now < holdUntil {
                let started = ContinuousClock.now
                try regular.send("GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
                let answer = try await regular.receive(timeout: .seconds(10))
                #expect(answer.hasPrefix("HTTP/1.1 200"), "round \(round): the regular client got \(answer.prefix(60))")
                #expect(ContinuousClock.now - started < .seconds(3), "round \(round): the regular client waited \(ContinuousClock.now - started)")
                try await Task.sleep(for: .milliseconds(250))
            }
            #expect(serve.process.isRunning, "round \(round): serve died: \(serve.errors.suffix(2000))")
            for c in flood { c.close() }
            if posted, let newcomer {
                // Its turn came once the flood left.
                var poller = pollfd(fd: newcomer.fd, events: Int16(POLLIN), revents: 0)
                let deadline = ContinuousClock.now + .seconds(20)
                while poll(&poller, 1, 0) == 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
                var buffer = [UInt8](repeating: 0, count: 4096)
                let n = recv(newcomer.fd, &buffer, buffer.count, 0)
                #expect(n > 0 && String(decoding: buffer[..<max(0, n)], as: UTF8.self).hasPrefix("HTTP/1.1 200"), "round \(round): the newcomer's POST was not answered")
            }
            newcomer?.close()
            #expect(serve.process.isRunning, "round \(round): serve died after the flood closed: \(serve.errors.suffix(2000))")
        }

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
