import Foundation
import Testing
import SwitchboardApp
import SwitchboardCore
import SwitchboardSQLite

@Suite("Log spool")
struct LogSpoolTests {
    @Test("keeps entries in order, bounded, and drains them to log_stream")
    func spool() async throws {
        let spool = LogSpool(capacity: 5)
        #expect(await spool.keep((0..<3).map { ["n": "\($0)"] }) == 0)
        #expect(await spool.keep((3..<7).map { ["n": "\($0)"] }) == 2)
        let (dropped, waiting) = (await spool.dropped, await spool.count)
        #expect(dropped == 2 && waiting == 5)
        let taken = await spool.take(2)
        #expect(taken.map { $0["n"] } == ["2", "3"])
        await spool.putBack(taken)
        let db = try SQLiteDatabase(options: SQLiteOptions(path: FileManager.default.temporaryDirectory.appendingPathComponent("spool-\(UUID().uuidString).sqlite").path, synchronous: .normal), logger: quietLogger())
        let queue = SQLiteQueue(database: db, lease: .seconds(1), pollInterval: .milliseconds(10), clock: SystemTime.now)
        #expect(try await spool.drain(to: queue, chunk: 2) == 5)
        #expect(await spool.count == 0)
        #expect(try await queue.entries(stream: StreamNames.log, limit: 10).map { $0.fields["n"] } == ["2", "3", "4", "5", "6"])
        await db.close()
    }
}
