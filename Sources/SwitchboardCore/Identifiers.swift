import Synchronization

/// Makes 24-hex-digit ids in MongoDB ObjectId layout (4 bytes of seconds, 5 random bytes per process, a
/// 3-byte counter), so ids sort roughly by creation time and fit a MongoDB `_id` later.
public final class ObjectIDGenerator: Sendable {
    private let processUnique: UInt64
    private let counter: Mutex<UInt32>

    /// - Parameter random: source of the per-process random part and the counter's start.
    public init(random: inout some RandomNumberGenerator) {
        processUnique = random.next() & 0xFF_FFFF_FFFF
        counter = Mutex(UInt32(truncatingIfNeeded: random.next()) & 0xFF_FFFF)
    }

    /// A new id for `now`.
    public func next(now: Timestamp) -> String {
        let count = counter.withLock { c -> UInt32 in
            c = (c &+ 1) & 0xFF_FFFF
            return c
        }
        let seconds = UInt32(truncatingIfNeeded: now.milliseconds / 1000)
        return Self.hex(UInt64(seconds), digits: 8) + Self.hex(processUnique, digits: 10) + Self.hex(UInt64(count), digits: 6)
    }

    static func hex(_ v: UInt64, digits: Int) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: max(0, digits - s.count)) + s
    }

    /// True when `s` looks like an id this generator makes (24 lowercase hex digits).
    public static func isValid(_ s: String) -> Bool {
        s.utf8.count == 24 && s.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }
}
