import ArgumentParser
import Foundation
import SwitchboardKibana

/// `switchboard kibana …`: Kibana housekeeping.
struct KibanaCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kibana",
        abstract: "Kibana: import the dashboards and data views of deploy/kibana.",
        subcommands: [KibanaImportCommand.self])
}

/// `switchboard kibana import`: the saved objects of `--dir`, one file at a time, into Kibana.
struct KibanaImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import the saved objects (*.ndjson, in name order) into Kibana, overwriting objects with the same ids.",
        discussion: """
            Authentication: KIBANA_API_KEY (an API key, base64 id:key), or KIBANA_USERNAME and KIBANA_PASSWORD \
            (basic), or none. Retries while Kibana is starting (connection refused, 503) for --wait seconds.
            """)

    @Option(help: "Kibana URL (KIBANA_URL, default http://127.0.0.1:5601).")
    var url: String?

    @Option(help: "Directory of *.ndjson saved object files.")
    var dir: String = "deploy/kibana"

    @Option(help: "Kibana space id to import into (default: the default space).")
    var space: String?

    @Option(help: "Seconds to wait for Kibana to be ready.")
    var wait: Int = 180

    func validate() throws {
        if wait < 0 { throw ValidationError("--wait must be 0 or more") }
    }

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let target = url ?? environment["KIBANA_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? "http://127.0.0.1:5601"
        do {
            let importer = try KibanaImporter(url: target, space: space, auth: try KibanaAuth.fromEnvironment(environment), startupTimeout: .seconds(wait))
            let results = try await importer.importDirectory(dir) { r in
                print("\(r.file): \(r.successCount) object(s) imported")
            }
            print("imported \(results.reduce(0) { $0 + $1.successCount }) saved object(s) from \(results.count) file(s) into \(importer.url)\(space.map { " (space \($0))" } ?? "")")
        } catch let error as KibanaImportError {
            FileHandle.standardError.write(Data("switchboard kibana import: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }
}
