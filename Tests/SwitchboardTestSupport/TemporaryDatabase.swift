import Foundation
import SwitchboardSQLite

/// A fresh SQLite database file in a temporary directory of its own (`<name>.sqlite`); `configure` may change the
/// other options. The test targets that run on the embedded engine make theirs with it.
public func temporaryDatabase(_ name: String = "test", synchronous: SQLiteSynchronous = .normal, configure: (inout SQLiteOptions) -> Void = { _ in }) throws -> SQLiteDatabase {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-tests-\(UUID().uuidString)")
    var options = SQLiteOptions(path: dir.appendingPathComponent("\(name).sqlite").path, synchronous: synchronous)
    configure(&options)
    return try SQLiteDatabase(options: options)
}
