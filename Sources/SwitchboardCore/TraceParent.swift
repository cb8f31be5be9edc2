/// A W3C Trace Context `traceparent` value (https://www.w3.org/TR/trace-context/#traceparent-header):
/// `00-<trace-id: 32 hex>-<parent-id: 16 hex>-<flags: 2 hex>`, lowercase.
///
/// Every message has one, whether tracing is exported or not: parsed from the client's `traceparent` header, or
/// made at random by the router. It is stored on the communication's record, carried in its stream entries and
/// log records, so the trace id correlates records, log lines and `communication-logs` documents even with no
/// tracing backend. Pure value: no I/O, no tracing library (the bridge to swift-distributed-tracing is in
/// `SwitchboardTelemetry`).
public struct TraceParent: Sendable, Hashable, CustomStringConvertible {
    /// 32 lowercase hex digits, not all zero.
    public let traceID: String
    /// The id of the span this context points at (the parent of a span started from it): 16 lowercase hex digits,
    /// not all zero.
    public let parentID: String
    /// The trace flags; bit 0 is `sampled`.
    public let flags: UInt8

    /// Nil unless `traceID` and `parentID` are valid (lowercase hex of the right length, not all zero).
    public init?(traceID: String, parentID: String, flags: UInt8 = 1) {
        guard Self.isID(traceID.utf8, length: 32), Self.isID(parentID.utf8, length: 16) else { return nil }
        self.traceID = traceID
        self.parentID = parentID
        self.flags = flags
    }

    /// Parses a `traceparent` header value. Version `00` must be exactly 55 characters; a later version (not `ff`)
    /// is read by its first four fields, as the specification asks, if what follows them starts with `-`.
    /// Surrounding spaces and tabs are ignored. Nil for anything else (upper-case hex, zero ids, wrong lengths).
    public init?(parsing text: some StringProtocol) {
        var bytes = Array(text.utf8)
        while let last = bytes.last, last == 0x20 || last == 0x09 { bytes.removeLast() }
        var start = 0
        while start < bytes.count, bytes[start] == 0x20 || bytes[start] == 0x09 { start += 1 }
        let b = bytes[start...]
        guard b.count >= 55 else { return nil }
        let s = b.startIndex
        guard b[s + 2] == 0x2D, b[s + 35] == 0x2D, b[s + 52] == 0x2D,
            let version = Self.hexByte(b[s], b[s + 1]), version != 0xFF,
            let flags = Self.hexByte(b[s + 53], b[s + 54])
        else { return nil }
        if version == 0 {
            guard b.count == 55 else { return nil }
        } else if b.count > 55 {
            guard b[s + 55] == 0x2D else { return nil }
        }
        let trace = b[(s + 3)..<(s + 35)]
        let parent = b[(s + 36)..<(s + 52)]
        guard Self.isID(trace, length: 32), Self.isID(parent, length: 16) else { return nil }
        self.traceID = String(decoding: trace, as: UTF8.self)
        self.parentID = String(decoding: parent, as: UTF8.self)
        self.flags = flags
    }

    /// A new trace: random trace and parent ids (never all zero), sampled.
    public static func random<R: RandomNumberGenerator>(using rng: inout R) -> TraceParent {
        var hi: UInt64 = 0
        var lo: UInt64 = 0
        while hi == 0 && lo == 0 { hi = rng.next(); lo = rng.next() }
        var span: UInt64 = 0
        while span == 0 { span = rng.next() }
        return TraceParent(checked: hex(hi) + hex(lo), parentID: hex(span), flags: 1)
    }

    /// A new trace from the system's random generator.
    public static func random() -> TraceParent {
        var rng = SystemRandomNumberGenerator()
        return random(using: &rng)
    }

    /// The same trace and flags with another parent span (a random one when nil).
    public func withParent(_ parentID: String? = nil) -> TraceParent? {
        if let parentID { return TraceParent(traceID: traceID, parentID: parentID, flags: flags) }
        var rng = SystemRandomNumberGenerator()
        var span: UInt64 = 0
        while span == 0 { span = rng.next() }
        return TraceParent(checked: traceID, parentID: Self.hex(span), flags: flags)
    }

    public var sampled: Bool { flags & 1 == 1 }

    /// The header value: `00-<trace id>-<parent id>-<flags>`.
    public var text: String { "00-\(traceID)-\(parentID)-\(Self.hex(flags))" }

    public var description: String { text }

    // MARK: - Helpers

    private init(checked traceID: String, parentID: String, flags: UInt8) {
        self.traceID = traceID
        self.parentID = parentID
        self.flags = flags
    }

    private static let digits: [UInt8] = Array("0123456789abcdef".utf8)

    /// Lowercase hex, zero-padded to the width of the integer.
    static func hex<T: FixedWidthInteger & UnsignedInteger>(_ value: T) -> String {
        let width = T.bitWidth / 4
        return String(unsafeUninitializedCapacity: width) { buffer in
            var v = value
            for i in stride(from: width - 1, through: 0, by: -1) {
                buffer[i] = digits[Int(v & 0xF)]
                v >>= 4
            }
            return width
        }
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: c - 0x30
        case 0x61...0x66: c - 0x61 + 10
        default: nil
        }
    }

    private static func hexByte(_ a: UInt8, _ b: UInt8) -> UInt8? {
        guard let h = nibble(a), let l = nibble(b) else { return nil }
        return h << 4 | l
    }

    /// `length` lowercase hex digits, not all zero.
    private static func isID<C: Collection>(_ bytes: C, length: Int) -> Bool where C.Element == UInt8 {
        guard bytes.count == length else { return false }
        var nonZero = false
        for c in bytes {
            guard nibble(c) != nil else { return false }
            if c != 0x30 { nonZero = true }
        }
        return nonZero
    }
}
