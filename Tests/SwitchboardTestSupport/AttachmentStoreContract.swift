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
}
