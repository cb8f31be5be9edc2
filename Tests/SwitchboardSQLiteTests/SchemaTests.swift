import Foundation
import Testing
import SwitchboardCore
import SwitchboardTestSupport
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

    @Test("a version 1 file is upgraded at open: its messages are searchable over the store's rows and counted")
    func upgradeFromVersionOne() async throws {
        let path = try versionOneFile()
        let c = try Connection(path: path, readOnly: false)
        try c.execute(
            """
            INSERT INTO communications (id, type, sender, recipient, msg, data, status, created_at, updated_at)
            VALUES ('000000000000000000000001', 'sms', '+15550000000', '+15551234567', 'stored before the upgrade', '{}', 'sent', 1, 2);
            INSERT INTO stream_entries (stream, fields, created_at) VALUES ('log_stream', '[{"a":"1"},{"a":"2"}]', 1), ('log_stream', '{"a":"3"}', 1);
            """)
        let db = try SQLiteDatabase(options: SQLiteOptions(path: path, synchronous: .normal))
        #expect(try await db.read { c in try c.scalar("PRAGMA user_version") } == Schema.version)
        let search = SQLiteSearchIndex(database: db, documents: .storeRows)
        #expect(try await search.search(CommunicationQuery(text: "upgrade", limit: 5)).items.map(\.communicationId) == ["000000000000000000000001"])
        #expect(try await search.search(CommunicationQuery(status: .sent, to: "+15551234567", limit: 5)).items.count == 1)
        // Version 3 counted the rows already there.
        #expect(try await SQLiteStore(database: db).statusCounts() == [StatusCount(channel: .sms, status: .sent, count: 1)])
        // ... and the sets of fields of the stream entries already there.
        #expect(try await SQLiteQueue(database: db, clock: wallClock).info(stream: "log_stream", group: "logger").length == 3)
        // Version 5: a row from before traces reads without a trace context; a new one keeps it.
        let store = SQLiteStore(database: db)
        #expect(try await store.communication(id: "000000000000000000000001")?.traceParent == nil)
        var traced = StoreContract.new("000000000000000000000002")
        traced.traceParent = TraceParent(parsing: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        _ = try await store.create([traced])
        #expect(try await store.communication(id: "000000000000000000000002")?.traceParent?.traceID == "4bf92f3577b34da6a3ce929d0e0e4736")
        await db.close()
        // Opening again changes nothing.
        let again = try SQLiteDatabase(options: SQLiteOptions(path: path, synchronous: .normal))
        #expect(try await SQLiteSearchIndex(database: again, documents: .storeRows).search(CommunicationQuery(text: "upgrade", limit: 5)).items.count == 1)
        await again.close()
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
