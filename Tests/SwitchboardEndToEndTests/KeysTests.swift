import AsyncHTTPClient
import Foundation
import NIOCore
import SwitchboardTestSystem
import SwitchboardTestSupport
import Testing
import SwitchboardCore
import SwitchboardHTTP
import SwitchboardServer

/// Runs `switchboard <arguments>` to completion with `environment` (the `SWITCHBOARD_*` variables of this
/// process left out), on a thread of its own; returns its exit status, standard output and standard error.
func runSwitchboard(_ arguments: [String], environment: [String: String]) async throws -> (status: Int32, out: String, err: String) {
    let binary = try ServiceProcess.binary()
    return try await offCooperativePool {
        let process = ChildProcess()
        process.executableURL = binary
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("SWITCHBOARD_") && $0.key != "PORT" && $0.key != "MONGODB_URL" }.merging(environment) { $1 }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Both pipes are read to the end before waiting (a full pipe would block the child).
        let errRead = DetachedRead(err.fileHandleForReading)
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errRead.wait(), as: UTF8.self))
    }
}

/// Reads a file handle to its end on a thread of its own; `wait()` returns what was read.
final class DetachedRead: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var data = Data()

    init(_ handle: FileHandle) {
        Thread {
            self.data = handle.readDataToEndOfFile()
            self.done.signal()
        }.start()
    }

    func wait() -> Data {
        done.wait()
        return data
    }
}

@Suite("API keys: the CLI and the router's safe defaults, as processes", .serialized)
struct KeysTests {
    @Test("keys create prints the key alone; list shows no secret; a router on the file requires it; revoke stops it there within 5 s")
    func cliCreateListRevoke() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-keys-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let database = dir.appendingPathComponent("keys.sqlite").path
        let env = ["SWITCHBOARD_LOG_LEVEL": "warning"]

        let created = try await runSwitchboard(["keys", "create", "--name", "ci pipeline", "--scope", "send", "--scope", "read", "--rate", "5", "--burst", "10", "--database", database], environment: env)
        #expect(created.status == 0, "\(created.err)")
        let key = created.out.trimmingCharacters(in: .newlines)
        #expect(!key.contains("\n") && APIKeySecret.isWellFormed(key) && key.hasPrefix("sb_live_"), "stdout: \(created.out)")
        #expect(!created.err.contains(key))
        let test = try await runSwitchboard(["keys", "create", "--name", "sandbox only", "--test", "--database", database], environment: env)
        #expect(test.status == 0 && test.out.hasPrefix("sb_test_"))
        let refused = try await runSwitchboard(["keys", "create", "--name", "x", "--scope", "write", "--database", database], environment: env)
        #expect(refused.status != 0 && refused.err.contains("--scope write"))

        let listed = try await runSwitchboard(["keys", "list", "--json", "--database", database], environment: env)
        #expect(listed.status == 0)
        #expect(!listed.out.contains(key) && !listed.out.contains(test.out.trimmingCharacters(in: .newlines)))
        let lines = listed.out.split(separator: "\n").map { try? JSONParser.parse(String($0)) }
        #expect(lines.count == 2)
        let first = try #require(lines.first ?? nil)
        let id = try #require(first["id"]?.stringValue)
        #expect(first["name"] == .string("ci pipeline") && first["scopes"] == .array([.string("send"), .string("read")]) && first["rate"] == .number(5) && first["burst"] == .number(10))
        #expect(first["revokedAt"] == .null && lines.last??["test"] == .bool(true))
        let table = try await runSwitchboard(["keys", "list", "--database", database], environment: env)
        #expect(table.out.hasPrefix("ID") && table.out.contains(id) && table.out.contains("LAST USED") && !table.out.contains(key))

        // A router on the same file: keys exist, so they are required.
        let port = try freeLoopbackPortNow()
        let router = try ServiceProcess(["router"], environment: env.merging(["SWITCHBOARD_DATABASE": database, "PORT": "\(port)"]) { $1 }, name: "keys-router")
        defer { router.signal(SIGKILL) }
        let http = HTTPClient(eventLoopGroupProvider: .singleton)
        defer { _ = http.shutdown() }
        let base = "http://127.0.0.1:\(port)"
        try await eventually("router up") { (try? await http.execute(HTTPClientRequest(url: base + "/health/live"), timeout: .seconds(2)))?.status == .ok }
        func stats(_ key: String?) async throws -> HTTPClientResponse {
            var request = HTTPClientRequest(url: base + "/api/v1/stats")
            if let key { request.headers.add(name: "X-API-Key", value: key) }
            return try await http.execute(request, timeout: .seconds(10))
        }
        #expect(try await stats(nil).status == .unauthorized)
        #expect(try await stats(key).status == .ok)
        // The command's audit records are in the logs index the router searches (service auth), by "cli".
        var logs = HTTPClientRequest(url: base + "/api/v1/logs?service=auth&limit=100")
        logs.headers.add(name: "X-API-Key", value: key)
        let audit = try await http.execute(logs, timeout: .seconds(10))
        let auditBody = String(buffer: try await audit.body.collect(upTo: 1 << 20))
        #expect(audit.status == .ok && auditBody.contains("\"key_created\"") && auditBody.contains(id) && auditBody.contains("\"cli\""), "\(auditBody)")
        #expect(!auditBody.contains(key))

        let revoked = try await runSwitchboard(["keys", "revoke", id, "--database", database], environment: env)
        #expect(revoked.status == 0 && revoked.out.contains("revoked \(id)"))
        let at = ContinuousClock.now
        try await eventually(timeout: .seconds(10), poll: .milliseconds(100), "the router refuses the revoked key") { try await stats(key).status == .unauthorized }
        #expect(ContinuousClock.now - at < .seconds(5))
        let unknown = try await runSwitchboard(["keys", "revoke", "key_nosuchkey", "--database", database], environment: env)
        #expect(unknown.status != 0 && unknown.err.contains("no key has id"))
        // The last use was recorded by the router (written at its next refresh).
        try await eventually(timeout: .seconds(20), "last use recorded") {
            let again = try await runSwitchboard(["keys", "list", "--json", "--database", database], environment: env)
            return (try? JSONParser.parse(String(again.out.split(separator: "\n").first ?? "")))?["lastUsedAt"]?.stringValue != nil
        }
    }

    @Test("SWITCHBOARD_AUTH is on or off; SWITCHBOARD_ADMIN_KEY must look like a key and is never shown")
    func settings() throws {
        #expect(try Settings.fromEnvironment([:]).auth == .on)
        #expect(try Settings.fromEnvironment(["SWITCHBOARD_AUTH": "OFF"]).auth == .off)
        #expect(throws: SettingsError.self) { try Settings.fromEnvironment(["SWITCHBOARD_AUTH": "maybe"]) }
        let key = KeyAdministration.generateSecret()
        let s = try Settings.fromEnvironment(["SWITCHBOARD_ADMIN_KEY": key])
        let summary = s.summary.map { "\($0.0)=\($0.1)" }.joined(separator: " ")
        #expect(s.adminKey == key && !summary.contains(String(key.dropFirst(8).prefix(12))) && summary.contains("bootstrap admin key set"))
        #expect {
            try Settings.fromEnvironment(["SWITCHBOARD_ADMIN_KEY": "sb_live_guessable"])
        } throws: { error in
            "\(error)".contains("SWITCHBOARD_ADMIN_KEY") && !"\(error)".contains("guessable")
        }
    }

    @Test("serve on a non-loopback address with no key refuses to start and says how to make one")
    func refusesToStartOpenBeyondLoopback() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-open-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let env = ["SWITCHBOARD_DATABASE": dir.appendingPathComponent("open.sqlite").path, "SWITCHBOARD_LOG_LEVEL": "warning"]
        // Refused before anything listens: no port is opened on 0.0.0.0.
        let refused = try await runSwitchboard(["serve", "--host", "0.0.0.0", "--port", "\(try freeLoopbackPortNow())"], environment: env)
        #expect(refused.status != 0)
        #expect(refused.err.contains("refusing to listen on 0.0.0.0") && refused.err.contains("switchboard keys create") && refused.err.contains("SWITCHBOARD_AUTH=off"), "\(refused.err)")
        let badAdminKey = try await runSwitchboard(["serve"], environment: env.merging(["SWITCHBOARD_ADMIN_KEY": "letmein"]) { $1 })
        #expect(badAdminKey.status != 0 && badAdminKey.err.contains("SWITCHBOARD_ADMIN_KEY") && !badAdminKey.err.contains("letmein"))
    }

    @Test("the start check: open with a warning on loopback, refused beyond it, keys required once one exists or with the bootstrap key, open on purpose with SWITCHBOARD_AUTH=off")
    func startCheck() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-check-\(UUID().uuidString)/check.sqlite").path
        func system(host: String, auth: String = "on", adminKey: String? = nil) throws -> SwitchboardSystem {
            var env = ["SWITCHBOARD_AUTH": auth]
            env["SWITCHBOARD_ADMIN_KEY"] = adminKey
            var s = try Settings.fromEnvironment(env)
            s.databasePath = path
            s.host = host
            return try SwitchboardSystem(settings: s, logger: quietLogger())
        }
        func check(_ s: SwitchboardSystem) async throws -> SwitchboardSystem.AccessState {
            do {
                let state = try await s.checkAccess()
                await s.close()
                return state
            } catch {
                await s.close()
                throw error
            }
        }
        #expect(SwitchboardSystem.isLoopback("127.0.0.1") && SwitchboardSystem.isLoopback("::1") && SwitchboardSystem.isLoopback("localhost") && SwitchboardSystem.isLoopback("127.1.2.3"))
        #expect(!SwitchboardSystem.isLoopback("0.0.0.0") && !SwitchboardSystem.isLoopback("::") && !SwitchboardSystem.isLoopback("10.0.0.1") && !SwitchboardSystem.isLoopback("127.0.0.1.example.com"))
        let loopback = try system(host: "127.0.0.1")
        let settings = loopback.settings
        #expect(try await check(loopback) == .openOnLoopback)
        await #expect(throws: SettingsError.self) { try await check(try system(host: "0.0.0.0")) }
        #expect(try await check(try system(host: "0.0.0.0", auth: "off")) == .openByChoice)
        #expect(try await check(try system(host: "0.0.0.0", adminKey: KeyAdministration.generateSecret())) == .keysRequired)
        // One key in the store: required everywhere.
        let admin = try KeyAdministration(settings: settings, logger: quietLogger())
        _ = try await admin.create(APIKeySpec(name: "first", scopes: [.admin]))
        await admin.close()
        #expect(try await check(try system(host: "0.0.0.0")) == .keysRequired)
    }
}
