import Foundation
import NIOSSL
import SwitchboardTestSupport
import Testing
@testable import SwitchboardHTTP

/// Runs a command to its end; its exit status and what it wrote.
func runTLSCommand(_ arguments: [String], in directory: URL? = nil) async throws -> (status: Int32, output: String, errors: String) {
    let process = ChildProcess()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = directory }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    try process.run()
    // Read while it runs (a full pipe would block it), on threads of their own: blocking reads on the cooperative
    // pool (two threads on two cores) would starve the server under test.
    async let output = readToEnd(out.fileHandleForReading)
    async let errors = readToEnd(err.fileHandleForReading)
    let (o, e) = await (output, errors)
    while process.isRunning { try await Task.sleep(for: .milliseconds(10)) }
    return (process.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

/// Everything `handle` gives until its end, read on a thread of its own.
func readToEnd(_ handle: FileHandle) async -> Data {
    await withCheckedContinuation { (continuation: CheckedContinuation<Data, Never>) in
        Thread { continuation.resume(returning: handle.readDataToEndOfFile()) }.start()
    }
}

/// Certificates made by the openssl CLI for a test: a root CA, an intermediate CA, and a server certificate for
/// 127.0.0.1 and localhost signed by the intermediate. `chain.pem` is the server certificate then the
/// intermediate (what SWITCHBOARD_TLS_CERT_FILE holds); a client trusting only `root.pem` verifies the server
/// only if the server sends the intermediate.
struct TestCertificates {
    let directory: URL
    var root: String { directory.appendingPathComponent("root.pem").path }
    var chain: String { directory.appendingPathComponent("chain.pem").path }
    var key: String { directory.appendingPathComponent("server.key").path }
    var otherKey: String { directory.appendingPathComponent("other.key").path }

    static func make() async throws -> TestCertificates {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n".write(to: dir.appendingPathComponent("ca.ext"), atomically: true, encoding: .utf8)
        try "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n".write(to: dir.appendingPathComponent("server.ext"), atomically: true, encoding: .utf8)
        let steps: [[String]] = [
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "root.key", "-out", "root.pem", "-days", "2", "-subj", "/CN=Switchboard Test Root",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "inter.key", "-out", "inter.csr", "-subj", "/CN=Switchboard Test Intermediate"],
            ["openssl", "x509", "-req", "-in", "inter.csr", "-CA", "root.pem", "-CAkey", "root.key", "-CAcreateserial", "-out", "inter.pem", "-days", "2", "-extfile", "ca.ext"],
            ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"],
            ["openssl", "x509", "-req", "-in", "server.csr", "-CA", "inter.pem", "-CAkey", "inter.key", "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext"],
            ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "other.key"],
        ]
        for step in steps {
            let r = try await runTLSCommand(step, in: dir)
            guard r.status == 0 else { throw TLSSetupError("\(step.joined(separator: " ")): \(r.errors)") }
        }
        let chain = try String(contentsOf: dir.appendingPathComponent("server.pem"), encoding: .utf8) + String(contentsOf: dir.appendingPathComponent("inter.pem"), encoding: .utf8)
        try chain.write(to: dir.appendingPathComponent("chain.pem"), atomically: true, encoding: .utf8)
        return TestCertificates(directory: dir)
    }
}

@Suite("TLS: the router serves HTTPS only, TLS 1.2 or later, from PEM files", .serialized)
struct TLSTests {
    @Test("curl gets answers over HTTPS, verifying the chain from the root; plain HTTP and TLS 1.1 get none")
    func https() async throws {
        let certificates = try await TestCertificates.make()
        defer { try? FileManager.default.removeItem(at: certificates.directory) }
        let tls = try HTTPServerSetup.tlsConfiguration(certificateFile: certificates.chain, keyFile: certificates.key)
        #expect(tls.minimumTLSVersion == .tlsv12)
        try await LiveAPI.run(tls: tls) { live in
            let base = "https://127.0.0.1:\(live.port)"
            let live1 = try await runTLSCommand(["curl", "-sS", "--max-time", "20", "--cacert", certificates.root, base + "/health/live"])
            #expect(live1.status == 0, "\(live1.errors)")
            #expect(live1.output == "{\"status\":\"ok\"}\n")
            let body = #"{"type":"sms","data":{"from":"+1234567890","to":"+0987654321","msg":"over TLS"}}"#
            let posted = try await runTLSCommand(["curl", "-sS", "--max-time", "20", "--cacert", certificates.root, "-H", "Content-Type: application/json", "-d", body,
                "-w", "\n%{http_code} %{ssl_verify_result}", base + "/api/v1/communication"])
            #expect(posted.status == 0, "\(posted.errors)")
            #expect(posted.output.hasSuffix("\n200 0"), "\(posted.output)")
            #expect(posted.output.contains("\"status\":\"queued\""))
            // TLS 1.2 and 1.3 both work.
            for version in ["--tls-max 1.2", "--tlsv1.3"] {
                let r = try await runTLSCommand(["curl", "-sS", "--max-time", "20", "--cacert", certificates.root] + version.split(separator: " ").map(String.init) + [base + "/health"])
                #expect(r.status == 0, "\(version): \(r.errors)")
            }
            // Plain HTTP on the HTTPS port: no HTTP answer.
            let plain = try await runTLSCommand(["curl", "-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(live.port)/health/live"])
            #expect(plain.status != 0)
            #expect(plain.output == "000")
            // TLS 1.1 is refused by the server (the client is allowed it: security level 0).
            let old = try await runTLSCommand(["openssl", "s_client", "-connect", "127.0.0.1:\(live.port)", "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"])
            #expect(old.status != 0)
            #expect(!old.output.contains("Verify return code: 0 (ok)") || old.output.contains("Cipher is (NONE)"), "\(old.output.suffix(400))")
            let current = try await runTLSCommand(["openssl", "s_client", "-connect", "127.0.0.1:\(live.port)", "-tls1_2", "-CAfile", certificates.root])
            #expect(current.output.contains("Verify return code: 0 (ok)"), "\(current.output.suffix(400))")
        }
    }

    @Test("a missing, unreadable, empty or mismatched file is an error naming the file and the reason")
    func badFiles() async throws {
        let certificates = try await TestCertificates.make()
        defer { try? FileManager.default.removeItem(at: certificates.directory) }
        let garbage = certificates.directory.appendingPathComponent("garbage.pem").path
        try "not a certificate\n".write(toFile: garbage, atomically: true, encoding: .utf8)
        let cases: [(String, String, String)] = [
            ("/nonexistent/cert.pem", certificates.key, "cannot read the certificate file /nonexistent/cert.pem"),
            (certificates.chain, "/nonexistent/key.pem", "cannot read the private key file /nonexistent/key.pem"),
            (garbage, certificates.key, "\(garbage)"),
            (certificates.chain, garbage, "\(garbage) does not hold a PEM private key"),
            (certificates.key, certificates.key, "\(certificates.key)"),
            (certificates.chain, certificates.otherKey, "does not match the certificate"),
        ]
        for (certificate, key, expected) in cases {
            do {
                _ = try HTTPServerSetup.tlsConfiguration(certificateFile: certificate, keyFile: key)
                Issue.record("\(certificate) + \(key) accepted")
            } catch {
                #expect(error.description.contains(expected), "\(error.description)")
            }
        }
    }
}
