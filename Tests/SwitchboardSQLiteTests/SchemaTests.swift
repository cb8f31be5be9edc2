import Foundation
import Testing
import SwitchboardCore
@testable import SwitchboardSQLite

@Suite("SQLite schema")
struct SchemaTests {
    /// A file at schema version 1.
    func versionOneFile() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-schema-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("v1.sqlite").path
        let c = try Connection(path: path, readOnly: false)
        try c.execute("PRAGMA journal_mode=WAL")
        try c.execute(Schema.v1)
        try c.execute("PRAGMA user_version = 1")
        return path
    }

    @Test("a file from a newer build is refused with a clear error, not opened")
    func newerFileRefused() throws {
        let path = try versionOneFile()
        let c = try Connection(path: path, readOnly: false)
        try c.execute("PRAGMA user_version = \(Schema.version + 1)")
        #expect {
            _ = try SQLiteDatabase(options: SQLiteOptions(path: path, synchronous: .normal))
        } throws: { error in
            "\(error)".contains("newer than this build")
        }
    }
}
