import ArgumentParser
import Foundation
import Logging
import SwitchboardCore
import SwitchboardServer

/// `switchboard keys …`: the deployment's API keys, in the store the services use (`--database`, `MONGODB_URL`).
struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "API keys: create, list, revoke (in the store the services use).",
        discussion: """
            Every /api/v1 request needs a key as soon as one exists: Authorization: Bearer <key> or X-API-Key: <key>.
            Scopes: send (POST /api/v1/communication), read (every GET), admin (keys and everything else; implies both).
            A revoked key stops working on every router within 5 seconds.
            """,
        subcommands: [KeysCreate.self, KeysList.self, KeysRevoke.self, KeysGenerate.self])
}

/// Logs of a keys command go to standard error, warnings and worse only: standard output carries the answer.
func keysLogger(_ settings: Settings) -> Logger {
    let level = max(settings.logLevel, .warning)
    LoggingSystem.bootstrap { label in LogLineHandler(label: label, level: level) }
    return Logger(label: "switchboard.keys")
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data("switchboard keys: \(message)\n".utf8))
}

/// Runs `body` with the deployment's key store, closed afterwards; a setting that cannot be used is one line on
/// standard error and exit status 1.
func withKeyStore(_ common: CommonOptions, _ body: (KeyAdministration) async throws -> Void) async throws {
    let settings = try common.settings()
    let admin: KeyAdministration
    do {
        admin = try KeyAdministration(settings: settings, logger: keysLogger(settings))
    } catch {
        printError("\(error)")
        throw ExitCode.failure
    }
    do {
        try await body(admin)
    } catch {
        await admin.close()
        throw error
    }
    await admin.close()
}

struct KeysCreate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Create a key and print it, alone, on standard output: it is shown this once and never stored (only its hash is).")

    @OptionGroup var common: CommonOptions
    @Option(help: "Who uses the key (shown in lists).")
    var name: String
    @Option(name: .customLong("scope"), help: "send, read or admin; repeat for several (default: send).")
    var scopes: [String] = []
    @Option(help: "Requests per second allowed to this key (default: SWITCHBOARD_KEY_RATE).")
    var rate: Double?
    @Option(help: "Largest burst of requests (default: SWITCHBOARD_KEY_BURST).")
    var burst: Int?
    @Flag(help: "A test key (sb_test_…): its messages go to the sandbox, whatever providers are configured.")
    var test = false

    func spec() throws -> APIKeySpec {
        var set: Set<APIKeyScope> = []
        for s in scopes {
            guard let scope = APIKeyScope(rawValue: s.lowercased()) else { throw ValidationError("--scope \(s): use send, read or admin") }
            set.insert(scope)
        }
        let spec = APIKeySpec(name: name, scopes: set.isEmpty ? [.send] : set, rate: rate, burst: burst, test: test)
        if let problem = spec.validate() { throw ValidationError("--\(problem.field ?? "name"): \(problem.message)") }
        return spec
    }

    func validate() throws { _ = try spec() }

    func run() async throws {
        let spec = try spec()
        try await withKeyStore(common) { admin in
            let (secret, record) = try await admin.create(spec)
            print(secret)
            printError("created \(record.id) \"\(record.name)\" (scopes \(record.scopes.sorted().map(\.rawValue).joined(separator: ","))\(record.test ? ", test key" : "")); keep the key now, it cannot be shown again")
        }
    }
}

struct KeysList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List the keys: id, name, scopes, limits, created, last used, revoked (never a secret).")

    @OptionGroup var common: CommonOptions
    @Flag(help: "One JSON object per key, a line each.")
    var json = false

    static func row(_ k: APIKeyRecord) -> [String] {
        [
            k.id, k.name, k.scopes.sorted().map(\.rawValue).joined(separator: ",") + (k.test ? " (test)" : ""),
            k.rate.map { "\($0)/s" } ?? "default", k.burst.map(String.init) ?? "default",
            k.createdAt.iso8601, k.lastUsedAt?.iso8601 ?? "never", k.revokedAt?.iso8601 ?? "-",
        ]
    }

    static func jsonLine(_ k: APIKeyRecord) -> String {
        JSONValue.object([
            "id": .string(k.id), "name": .string(k.name), "scopes": .array(k.scopes.sorted().map { .string($0.rawValue) }),
            "rate": k.rate.map { .number($0) } ?? .null, "burst": k.burst.map { .number(Double($0)) } ?? .null, "test": .bool(k.test),
            "createdAt": .string(k.createdAt.iso8601), "lastUsedAt": k.lastUsedAt.map { .string($0.iso8601) } ?? .null,
            "revokedAt": k.revokedAt.map { .string($0.iso8601) } ?? .null,
        ]).canonicalText
    }

    func run() async throws {
        try await withKeyStore(common) { admin in
            let keys = try await admin.list()
            if json {
                for k in keys { print(Self.jsonLine(k)) }
                return
            }
            let rows = [["ID", "NAME", "SCOPES", "RATE", "BURST", "CREATED", "LAST USED", "REVOKED"]] + keys.map(Self.row)
            let widths = (0..<8).map { column in rows.map { $0[column].count }.max() ?? 0 }
            for row in rows {
                print(zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ").trimmingCharacters(in: .whitespaces))
            }
        }
    }
}

struct KeysRevoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke", abstract: "Revoke a key by id: every router refuses it within 5 seconds.")

    @OptionGroup var common: CommonOptions
    @Argument(help: "The key's id (key_…, as `switchboard keys list` shows it).")
    var id: String

    func run() async throws {
        try await withKeyStore(common) { admin in
            guard APIKeySecret.isWellFormedID(id), let record = try await admin.revoke(id: id) else {
                printError("no key has id \(id.prefix(80))")
                throw ExitCode.failure
            }
            print("revoked \(record.id) \"\(record.name)\" at \(record.revokedAt?.iso8601 ?? "?")")
        }
    }
}

struct KeysGenerate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Print a new key without storing it: a value for SWITCHBOARD_ADMIN_KEY (the bootstrap admin key of a container).")

    @Flag(help: "A test key (sb_test_…).")
    var test = false

    func run() {
        print(KeyAdministration.generateSecret(test: test))
    }
}
