import Foundation
import SwitchboardCore
@testable import SwitchboardSQLite

/// A fresh database file in a temporary directory.
func temporaryDatabase(_ name: String = "test", synchronous: SQLiteSynchronous = .normal) throws -> SQLiteDatabase {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-tests-\(UUID().uuidString)")
    return try SQLiteDatabase(options: SQLiteOptions(path: dir.appendingPathComponent("\(name).sqlite").path, synchronous: synchronous))
}

@Sendable func wallClock() -> Timestamp {
    Timestamp(milliseconds: Int64(Date().timeIntervalSince1970 * 1000))
}

func sms(_ to: String = "+15551234567", msg: String = "hello") -> CommunicationRequest {
    CommunicationRequest(channel: .sms, from: "+15550000000", to: to, msg: msg)
}
