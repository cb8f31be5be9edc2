import Foundation
import Testing
import SwitchboardCore
import SwitchboardTestSupport
@testable import SwitchboardSQLite

/// The shared template store contract (`TemplateStoreContract`) on the embedded engine.
@Suite("SQLite template store contract")
struct SQLiteTemplateStoreContractTests {
    func store() throws -> SQLiteTemplateStore { SQLiteTemplateStore(database: try temporaryDatabase("templates")) }

    @Test func versionsAndLocales() async throws { try await TemplateStoreContract.versionsAndLocales(try store()) }
    @Test func archive() async throws { try await TemplateStoreContract.archive(try store()) }
    @Test func list() async throws { try await TemplateStoreContract.list(try store()) }
    @Test func concurrentSaves() async throws { try await TemplateStoreContract.concurrentSaves(try store()) }

    @Test("two connections to one file (two routers) saving one name get distinct versions")
    func sharedFile() async throws {
        let first = try temporaryDatabase("templates-shared")
        let second = try SQLiteDatabase(options: SQLiteOptions(path: first.options.path, synchronous: .normal))
        let versions = try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 0..<10 {
                let db = i % 2 == 0 ? first : second
                group.addTask { try await SQLiteTemplateStore(database: db).save(TemplateStoreContract.draft("shared")).version }
            }
            var out: [Int] = []
            for try await v in group { out.append(v) }
            return out
        }
        #expect(versions.sorted() == Array(1...10))
        await second.close()
        await first.close()
    }
}
