import Foundation
import Testing
import SwitchboardCore

/// Behaviour every `AttachmentStore` must show. The SQLite store (`SwitchboardSQLiteTests`) and the MongoDB store
/// (`SwitchboardMongoTests`) run every check, each on an empty store.
public enum AttachmentStoreContract {
    /// A 64-hex-digit key that differs between the contract's files (FNV-1a in four lanes): the store trusts the
    /// caller's digest (the API computes the real SHA-256), so the contract needs only distinct, well-formed keys.
    public static func sha256(_ bytes: [UInt8]) -> String {
        (0..<4).map { lane -> String in
            var h: UInt64 = 0xcbf2_9ce4_8422_2325 ^ UInt64(lane)
            for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
            h ^= UInt64(bytes.count)
            let hex = String(h, radix: 16)
            return String(repeating: "0", count: 16 - hex.count) + hex
        }.joined()
    }

    /// Bytes of every value, in a pseudo-random order.
    public static func binary(_ count: Int, seed: UInt64 = 1) -> [UInt8] {
        var x = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0..<count).map { _ in
            x ^= x << 13
            x ^= x >> 7
            x ^= x << 17
            return UInt8(truncatingIfNeeded: x)
        }
    }

    /// Bytes come back as they were put, binary and empty ones too; an unknown digest is nil.
    public static func roundTrip(_ store: any AttachmentStore) async throws {
        let files: [[UInt8]] = [binary(4096), [], Array("hello".utf8), [0, 0, 0, 255, 13, 10, 0]]
        for f in files { try await store.put(sha256: sha256(f), bytes: f) }
        for f in files { #expect(try await store.get(sha256: sha256(f)) == f) }
        #expect(try await store.get(sha256: String(repeating: "0", count: 64)) == nil)
    }

    /// Putting the same file again (an idempotent replay, a file reused by another message) keeps one copy and
    /// leaves it intact, also when several puts race.
    public static func storedOnce(_ store: any AttachmentStore) async throws {
        let f = binary(10_000, seed: 7)
        let key = sha256(f)
        try await store.put(sha256: key, bytes: f)
        try await store.put(sha256: key, bytes: f)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<4 { group.addTask { try await store.put(sha256: key, bytes: f) } }
            try await group.waitForAll()
        }
        #expect(try await store.get(sha256: key) == f)
    }

    /// The 10 MiB the API allows in all fits in one file.
    public static func large(_ store: any AttachmentStore) async throws {
        let f = binary(10 << 20, seed: 3)
        let key = sha256(f)
        try await store.put(sha256: key, bytes: f)
        let back = try await store.get(sha256: key)
        #expect(back?.count == f.count)
        #expect(back == f)
    }

    /// Retention (`Purging`, after the store's own purge): a file stored or used again since the cutoff is kept, and
    /// so is an older one that a message the store kept still names (created before the cutoff, not finished);
    /// the others are deleted, once.
    public static func retention(_ attachments: any AttachmentStore, store: any CommunicationStore) async throws {
        let files = try #require(attachments as? any Purging, "the attachment store does not purge")
        let messages = try #require(store as? any Purging, "the store does not purge")
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let content = (1...4).map { binary(100, seed: UInt64($0)) }
        for f in content { try await attachments.put(sha256: sha256(f), bytes: f) }
        // Stored a moment ago: newer than a cutoff a minute back.
        #expect(try await files.purge(before: Timestamp(milliseconds: now - 60_000)) == 0)

        func email(_ id: String, naming f: [UInt8]) -> NewCommunication {
            let named: JSONValue = .array([.object(["filename": .string("f.bin"), "contentType": .string("application/octet-stream"), "size": .number(Double(f.count)), "sha256": .string(sha256(f))])])
            let data: JSONValue = .object(["from": .string("a@example.com"), "to": .string("b@example.com"), "msg": .string("m"), "attachments": named])
            let request = CommunicationRequest(channel: .email, from: "a@example.com", to: "b@example.com", msg: "m", data: data)
            return NewCommunication(id: id, request: request, idempotencyKey: nil, createdAt: Timestamp(milliseconds: 1000), dispatchAt: Timestamp(milliseconds: 11_000))
        }
        func t(_ id: String, _ e: StatusEvent) -> StatusTransition { StatusTransition(id: id, event: e, at: Timestamp(milliseconds: 2000), service: "test") }
        // Both old; the first still waits (queued), the second was sent.
        _ = try await store.create([email("waiting", naming: content[0]), email("done", naming: content[1])])
        _ = try await store.apply([
            t("waiting", .queued(dispatchSeq: 1)),
            t("done", .queued(dispatchSeq: 1)), t("done", .processing(dispatchSeq: 1, redelivery: false)), t("done", .sent(provider: "smtp", providerMessageID: "pm-done")),
        ])
        // A cutoff after every file was stored: all of them count as old.
        let cutoff = Timestamp(milliseconds: now + 3_600_000)
        #expect(try await messages.purge(before: cutoff) == 1)
        #expect(try await files.purge(before: cutoff) == 3)
        #expect(try await attachments.get(sha256: sha256(content[0])) == content[0], "the file of the message still waiting was deleted")
        for f in content.dropFirst() { #expect(try await attachments.get(sha256: sha256(f)) == nil) }
        #expect(try await files.purge(before: cutoff) == 0, "a second purge found more")
    }
}
