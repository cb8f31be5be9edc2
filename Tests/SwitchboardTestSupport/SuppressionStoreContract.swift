import Foundation
import Testing
import SwitchboardCore

/// Behaviour every `SuppressionStore` must show. The SQLite store (`SwitchboardSQLiteTests`) and the MongoDB store
/// (`SwitchboardMongoTests`) run every check, each on an empty store.
public enum SuppressionStoreContract {
    static func at(_ ms: Int64) -> Timestamp { Timestamp(milliseconds: ms) }

    /// An entry is added, read back whole, replaced by a second add (newest reason wins), and removed once.
    /// Email recipients compare case-insensitively; phone numbers as they are.
    public static func addLookupRemove(_ store: any SuppressionStore) async throws {
        let manual = Suppression(channel: .email, to: "Ada@Example.COM", reason: "asked by phone", source: .manual, createdAt: at(1000), keyID: "key_abc")
        #expect(manual.to == "ada@example.com")
        try await store.add(manual)
        let key = SuppressionKey(channel: .email, to: "ADA@example.com")
        #expect(try await store.lookup([key]) == [key: manual])
        // Another channel, another recipient: not suppressed.
        #expect(try await store.lookup([SuppressionKey(channel: .sms, to: "ada@example.com"), SuppressionKey(channel: .email, to: "bob@example.com")]).isEmpty)
        let bounce = Suppression(channel: .email, to: "ada@example.com", reason: "unknown mailbox: SMTP 550 5.1.1", source: .provider, detail: "smtp 550 5.1.1", createdAt: at(2000))
        try await store.add(bounce)
        #expect(try await store.lookup([key])[key] == bounce)
        let phone = Suppression(channel: .sms, to: "+15551230000", reason: "opted out", source: .provider, detail: "twilio 21610", createdAt: at(3000))
        try await store.add(phone)
        #expect(try await store.lookup([SuppressionKey(channel: .sms, to: "+15551230000")]).count == 1)
        #expect(try await store.lookup([SuppressionKey(channel: .whatsapp, to: "+15551230000")]).isEmpty)
        #expect(try await store.remove(channel: .email, to: "ada@example.com"))
        #expect(try await store.remove(channel: .email, to: "ada@example.com") == false)
        #expect(try await store.lookup([key]).isEmpty)
        #expect(try await store.lookup([]).isEmpty)
    }

    /// One lookup answers a batch's 1,000 recipients, on several channels, repeated keys included.
    public static func batchLookup(_ store: any SuppressionStore) async throws {
        for i in stride(from: 0, to: 1000, by: 7) {
            try await store.add(Suppression(channel: .sms, to: String(format: "+1555000%04d", i), reason: "r\(i)", source: .manual, createdAt: at(Int64(i))))
        }
        try await store.add(Suppression(channel: .email, to: "x@example.com", reason: "r", source: .manual, createdAt: at(1)))
        var keys = (0..<1000).map { SuppressionKey(channel: .sms, to: String(format: "+1555000%04d", $0)) }
        keys += [SuppressionKey(channel: .email, to: "X@example.com"), SuppressionKey(channel: .email, to: "y@example.com"), keys[7]]
        let found = try await store.lookup(keys)
        #expect(found.count == 143 + 1)
        #expect(found[SuppressionKey(channel: .sms, to: "+15550000014")]?.reason == "r14")
        #expect(found[SuppressionKey(channel: .sms, to: "+15550000015")] == nil)
        #expect(found[SuppressionKey(channel: .email, to: "x@example.com")] != nil)
    }

    /// The list is ordered by channel then recipient, filtered by channel and recipient, and paged with a cursor
    /// that survives a recipient with `+` or `@`; a cursor it did not issue is refused.
    public static func list(_ store: any SuppressionStore) async throws {
        let entries = [
            Suppression(channel: .sms, to: "+15550000002", reason: "b", source: .manual, createdAt: at(1)),
            Suppression(channel: .sms, to: "+15550000001", reason: "a", source: .provider, detail: "twilio 21610", createdAt: at(2)),
            Suppression(channel: .email, to: "z@example.com", reason: "c", source: .manual, createdAt: at(3)),
            Suppression(channel: .whatsapp, to: "+15550000001", reason: "d", source: .provider, createdAt: at(4)),
            Suppression(channel: .email, to: "a@example.com", reason: "e", source: .manual, createdAt: at(5)),
        ]
        for e in entries { try await store.add(e) }
        let all = try await store.list(channel: nil, to: nil, limit: 10, cursor: nil)
        #expect(all.items.map { "\($0.channel.rawValue) \($0.to)" } == ["email a@example.com", "email z@example.com", "sms +15550000001", "sms +15550000002", "whatsapp +15550000001"])
        #expect(all.nextCursor == nil)
        var seen: [String] = []
        var cursor: String?
        repeat {
            let page = try await store.list(channel: nil, to: nil, limit: 2, cursor: cursor)
            #expect(page.items.count <= 2)
            seen += page.items.map(\.reason)
            cursor = page.nextCursor
        } while cursor != nil
        #expect(seen == ["e", "c", "a", "b", "d"])
        #expect(try await store.list(channel: .sms, to: nil, limit: 10, cursor: nil).items.map(\.reason) == ["a", "b"])
        #expect(try await store.list(channel: nil, to: "+15550000001", limit: 10, cursor: nil).items.map(\.reason) == ["a", "d"])
        #expect(try await store.list(channel: .email, to: "z@example.com", limit: 10, cursor: nil).items.map(\.reason) == ["c"])
        let first = try await store.list(channel: .sms, to: nil, limit: 1, cursor: nil)
        #expect(first.items.map(\.reason) == ["a"])
        let next = try #require(first.nextCursor)
        #expect(!next.contains("+") && !next.contains("@"))
        #expect(try await store.list(channel: .sms, to: nil, limit: 1, cursor: next).items.map(\.reason) == ["b"])
        await #expect(throws: InvalidCursor.self) { try await store.list(channel: nil, to: nil, limit: 1, cursor: "not a cursor!") }
    }
}
