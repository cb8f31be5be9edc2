import Foundation
import SwitchboardCore
@testable import SwitchboardSQLite

/// A fresh database file in a temporary directory; `configure` may change the other options.
func temporaryDatabase(_ name: String = "test", synchronous: SQLiteSynchronous = .normal, configure: (inout SQLiteOptions) -> Void = { _ in }) throws -> SQLiteDatabase {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-tests-\(UUID().uuidString)")
    var options = SQLiteOptions(path: dir.appendingPathComponent("\(name).sqlite").path, synchronous: synchronous)
    configure(&options)
    return try SQLiteDatabase(options: options)
}

@Sendable func wallClock() -> Timestamp {
    Timestamp(milliseconds: Int64(Date().timeIntervalSince1970 * 1000))
}

func sms(_ to: String = "+15551234567", msg: String = "hello") -> CommunicationRequest {
    CommunicationRequest(channel: .sms, from: "+15550000000", to: to, msg: msg)
}
