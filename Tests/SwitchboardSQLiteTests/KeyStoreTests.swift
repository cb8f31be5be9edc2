import Foundation
import Testing
import SwitchboardCore
import SwitchboardTestSupport
@testable import SwitchboardSQLite

/// The shared key store contract (`KeyStoreContract`) on the embedded engine.
@Suite("SQLite key store contract")
struct SQLiteKeyStoreContractTests {
    @Test func createListFind() async throws { try await KeyStoreContract.createListFind(SQLiteKeyStore(database: try temporaryDatabase())) }
    @Test func duplicates() async throws { try await KeyStoreContract.duplicates(SQLiteKeyStore(database: try temporaryDatabase())) }
    @Test func revoke() async throws { try await KeyStoreContract.revoke(SQLiteKeyStore(database: try temporaryDatabase())) }
    @Test func markUsed() async throws { try await KeyStoreContract.markUsed(SQLiteKeyStore(database: try temporaryDatabase())) }

    @Test("a key created through one connection to the file is seen by another process's connection, and only its hash is in the file")
    func sharedFile() async throws {
        let first = try temporaryDatabase("keys")
        let second = try SQLiteDatabase(options: SQLiteOptions(path: first.options.path, synchronous: .normal))
        let hash = String(repeating: "ab", count: 32)
        try await SQLiteKeyStore(database: first).create(KeyStoreContract.key("key_shared", hash: hash, scopes: [.admin]))
        #expect(try await SQLiteKeyStore(database: second).key(secretHash: hash)?.id == "key_shared")
        _ = try await SQLiteKeyStore(database: second).revoke(id: "key_shared", at: Timestamp(milliseconds: 42))
        #expect(try await SQLiteKeyStore(database: first).keys().first?.revokedAt == Timestamp(milliseconds: 42))
        let columns = try await first.read { c in
            var names: [String] = []
            try c.query("SELECT name FROM pragma_table_info('api_keys')") { s in names.append(s.text(0)) }
            return names
        }
        #expect(columns.contains("secret_hash") && !columns.contains { $0.contains("secret") && $0 != "secret_hash" })
        await second.close()
        await first.close()
    }
}
