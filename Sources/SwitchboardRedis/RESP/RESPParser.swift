import NIOCore

/// An incremental RESP2/RESP3 parser.
///
/// Feed it the bytes received so far with ``parse(_:)``. It consumes complete
/// tokens from the buffer and keeps the partially built aggregates in its own
/// state, so a reply that arrives in many chunks is parsed in linear time. When the
/// bytes do not yet hold a whole reply it returns `nil`; call it again once more bytes
/// have been appended to the same buffer. The result is the same for any split of the
/// input.
///
/// Once ``parse(_:)`` has thrown, the parser's state is undefined and the
/// connection it serves should be closed.
///
/// RESP3 streamed strings and streamed aggregates (`$?`, `*?`) are not supported:
/// Redis never sends them, and the parser reports them as a protocol error.
public struct RESPParser: Sendable {
    /// Upper bounds that protect against malformed or hostile input.
    public struct Limits: Sendable, Hashable {
        /// The largest bulk string accepted, in bytes. Redis's own default
        /// `proto-max-bulk-len` is 512 MiB.
        public var maximumBulkLength: Int
        /// The deepest nesting of aggregates accepted.
        public var maximumNestingDepth: Int
        /// The largest element count accepted for one aggregate.
        public var maximumAggregateCount: Int

        /// Creates limits.
        /// - Parameters:
        ///   - maximumBulkLength: The largest bulk string accepted, in bytes.
        ///   - maximumNestingDepth: The deepest nesting of aggregates accepted.
        ///   - maximumAggregateCount: The largest element count of one aggregate.
        public init(
            maximumBulkLength: Int = 512 * 1024 * 1024,
            maximumNestingDepth: Int = 256,
            maximumAggregateCount: Int = 1 << 31
        ) {
            self.maximumBulkLength = maximumBulkLength
            self.maximumNestingDepth = maximumNestingDepth
            self.maximumAggregateCount = maximumAggregateCount
        }
    }

    private enum AggregateKind: Sendable {
        case array
        case set
        case push
        case map
        case attribute
        case attributedValue([RESPMapEntry])
    }

    private struct Frame: Sendable {
        var kind: AggregateKind
        var remaining: Int
        var elements: [RESPValue]
    }

    private enum Token {
        case value(RESPValue)
        case aggregate(AggregateKind, count: Int)
    }

    /// The limits in force.
    public let limits: Limits
    private var stack: [Frame] = []

    /// Creates a parser.
    /// - Parameter limits: Bounds on sizes and nesting; the defaults suit Redis.
    public init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// Whether the parser holds a partially parsed reply.
    public var isMidReply: Bool {
        !self.stack.isEmpty
    }

    /// Parses the next complete value from `buffer`.
    ///
    /// Consumed bytes are removed from the front of `buffer` (its reader index moves).
    /// Bytes of an incomplete token are left in place.
    /// - Parameter buffer: The bytes received so far.
    /// - Returns: The next value, or `nil` if more bytes are needed.
    /// - Throws: ``RedisError/protocolError(_:)`` on malformed input.
    public mutating func parse(_ buffer: inout ByteBuffer) throws(RedisError) -> RESPValue? {
        while true {
            guard let token = try self.readToken(&buffer) else {
                return nil
            }
            var produced: RESPValue
            switch token {
            case .value(let value):
                produced = value
            case .aggregate(let kind, let count):
                if count == 0 {
                    if case .attribute = kind {
                        try self.push(Frame(kind: .attributedValue([]), remaining: 1, elements: []))
                        continue
                    }
                    produced = Self.build(kind, elements: [])
                } else {
                    let elementCount: Int
                    switch kind {
                    case .map, .attribute: elementCount = count * 2
                    default: elementCount = count
                    }
                    var elements: [RESPValue] = []
                    elements.reserveCapacity(Swift.min(elementCount, 1024))
                    try self.push(Frame(kind: kind, remaining: elementCount, elements: elements))
                    continue
                }
            }

            // Attach the produced value to the enclosing aggregates, completing them as needed.
            while true {
                guard !self.stack.isEmpty else {
                    return produced
                }
                let top = self.stack.count - 1
                self.stack[top].elements.append(produced)
                self.stack[top].remaining -= 1
                if self.stack[top].remaining > 0 {
                    break
                }
                let frame = self.stack.removeLast()
                if case .attribute = frame.kind {
                    // The attribute is complete; the value it annotates follows.
                    let entries = Self.pairs(frame.elements)
                    try self.push(Frame(kind: .attributedValue(entries), remaining: 1, elements: []))
                    break
                }
                produced = Self.build(frame.kind, elements: frame.elements)
            }
        }
    }

    /// Discards any partially parsed reply.
    public mutating func reset() {
        self.stack.removeAll()
    }

    private mutating func push(_ frame: Frame) throws(RedisError) {
        guard self.stack.count < self.limits.maximumNestingDepth else {
            throw RedisError.protocolError("aggregate nesting deeper than \(self.limits.maximumNestingDepth)")
        }
        self.stack.append(frame)
    }

    private static func pairs(_ elements: [RESPValue]) -> [RESPMapEntry] {
        var entries: [RESPMapEntry] = []
        entries.reserveCapacity(elements.count / 2)
        var index = 0
        while index + 1 < elements.count {
            entries.append(RESPMapEntry(key: elements[index], value: elements[index + 1]))
            index += 2
        }
        return entries
    }

    private static func build(_ kind: AggregateKind, elements: [RESPValue]) -> RESPValue {
        switch kind {
        case .array: return .array(elements)
        case .set: return .set(elements)
        case .push: return .push(elements)
        case .map: return .map(Self.pairs(elements))
        case .attribute: return .attribute(attributes: Self.pairs(elements), value: .null)
        case .attributedValue(let attributes): return .attribute(attributes: attributes, value: elements.first ?? .null)
        }
    }

    // MARK: - Tokens

    private static let cr: UInt8 = 13
    private static let lf: UInt8 = 10

    /// Finds the end of the header line: the offset (from the reader index) of its CR,
    /// or -1 if the line is not complete yet. Throws on a CR not followed by LF.
    private static func lineEnd(_ buffer: ByteBuffer) throws(RedisError) -> Int {
        let result: Int = buffer.withUnsafeReadableBytes { bytes in
            var index = 1
            let count = bytes.count
            while index < count {
                if bytes[index] == Self.cr {
                    if index + 1 >= count { return -1 }
                    return bytes[index + 1] == Self.lf ? index : -2
                }
                index += 1
            }
            return -1
        }
        if result == -2 {
            throw RedisError.protocolError("carriage return not followed by line feed")
        }
        return result
    }

    private static func parseInteger(_ buffer: ByteBuffer, from start: Int, to end: Int) -> Int64? {
        guard end > start else { return nil }
        return buffer.withUnsafeReadableBytes { bytes -> Int64? in
            var index = start
            var negative = false
            if bytes[index] == UInt8(ascii: "-") {
                negative = true
                index += 1
            } else if bytes[index] == UInt8(ascii: "+") {
                index += 1
            }
            guard index < end else { return nil }
            var value: Int64 = 0
            while index < end {
                let digit = bytes[index] &- UInt8(ascii: "0")
                guard digit < 10 else { return nil }
                let (multiplied, overflow1) = value.multipliedReportingOverflow(by: 10)
                let (added, overflow2) =
                    negative
                    ? multiplied.subtractingReportingOverflow(Int64(digit))
                    : multiplied.addingReportingOverflow(Int64(digit))
                guard !overflow1, !overflow2 else { return nil }
                value = added
                index += 1
            }
            return value
        }
    }

    private func readToken(_ buffer: inout ByteBuffer) throws(RedisError) -> Token? {
        guard buffer.readableBytes >= 3 else { return nil }
        let lineEnd = try Self.lineEnd(buffer)
        guard lineEnd >= 0 else { return nil }
        let reader = buffer.readerIndex
        let typeByte = buffer.getInteger(at: reader, as: UInt8.self)!
        let lineLength = lineEnd - 1
        let headerLength = lineEnd + 2

        func lineString() -> String {
            buffer.getString(at: reader + 1, length: lineLength) ?? ""
        }
        func lineInteger(_ what: String) throws(RedisError) -> Int64 {
            guard let value = Self.parseInteger(buffer, from: 1, to: lineEnd) else {
                throw RedisError.protocolError("invalid \(what): \(lineString().prefix(32))")
            }
            return value
        }

        switch typeByte {
        case UInt8(ascii: "+"):
            let value = lineString()
            buffer.moveReaderIndex(forwardBy: headerLength)
            return .value(.simpleString(value))

        case UInt8(ascii: "-"):
            let value = lineString()
            buffer.moveReaderIndex(forwardBy: headerLength)
            return .value(.error(value))

        case UInt8(ascii: ":"):
            let value = try lineInteger("integer")
            buffer.moveReaderIndex(forwardBy: headerLength)
            return .value(.integer(value))

        case UInt8(ascii: "_"):
            guard lineLength == 0 else {
                throw RedisError.protocolError("null with a payload")
            }
            buffer.moveReaderIndex(forwardBy: headerLength)
            return .value(.null)

        case UInt8(ascii: ","):
            let text = lineString()
            guard let value = Double(text) else {
                throw RedisError.protocolError("invalid double: \(text.prefix(32))")
            }
            buffer.moveReaderIndex(forwardBy: headerLength)
            return .value(.double(value))

        case UInt8(ascii: "#"):
            let text = lineString()
            let value: Bool
            switch text {
            case "t": value = true
            case "f": value = false
            default: throw RedisError.protocolError("invalid boolean: \(text.prefix(32))")
            }
            buffer.moveReaderIndex(forwardBy: headerLength)
            return .value(.boolean(value))

        case UInt8(ascii: "("):
            let text = lineString()
            let digits = text.utf8.first.map { $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "+") } == true
                ? text.utf8.dropFirst() : text.utf8[...]
            guard !digits.isEmpty, digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
                throw RedisError.protocolError("invalid big number: \(text.prefix(32))")
            }
            buffer.moveReaderIndex(forwardBy: headerLength)
            return .value(.bigNumber(text))

        case UInt8(ascii: "$"), UInt8(ascii: "!"), UInt8(ascii: "="):
            if lineLength == 1, buffer.getInteger(at: reader + 1, as: UInt8.self) == UInt8(ascii: "?") {
                throw RedisError.protocolError("streamed strings are not supported")
            }
            let length = try lineInteger("length")
            if length == -1, typeByte == UInt8(ascii: "$") {
                buffer.moveReaderIndex(forwardBy: headerLength)
                return .value(.null)
            }
            guard length >= 0, length <= Int64(self.limits.maximumBulkLength) else {
                throw RedisError.protocolError("invalid bulk length \(length)")
            }
            let payloadLength = Int(length)
            let total = headerLength + payloadLength + 2
            guard buffer.readableBytes >= total else { return nil }
            guard buffer.getInteger(at: reader + headerLength + payloadLength, as: UInt8.self) == Self.cr,
                buffer.getInteger(at: reader + headerLength + payloadLength + 1, as: UInt8.self) == Self.lf
            else {
                throw RedisError.protocolError("bulk payload not terminated by CRLF")
            }
            let value: RESPValue
            switch typeByte {
            case UInt8(ascii: "$"):
                value = .bulkString(buffer.getSlice(at: reader + headerLength, length: payloadLength)!)
            case UInt8(ascii: "!"):
                value = .error(buffer.getString(at: reader + headerLength, length: payloadLength) ?? "")
            default:
                guard payloadLength >= 4,
                    buffer.getInteger(at: reader + headerLength + 3, as: UInt8.self) == UInt8(ascii: ":")
                else {
                    throw RedisError.protocolError("verbatim string without a format prefix")
                }
                let format = buffer.getString(at: reader + headerLength, length: 3) ?? ""
                let text = buffer.getString(at: reader + headerLength + 4, length: payloadLength - 4) ?? ""
                value = .verbatimString(format: format, text: text)
            }
            buffer.moveReaderIndex(forwardBy: total)
            return .value(value)

        case UInt8(ascii: "*"), UInt8(ascii: "%"), UInt8(ascii: "~"), UInt8(ascii: ">"), UInt8(ascii: "|"):
            if lineLength == 1, buffer.getInteger(at: reader + 1, as: UInt8.self) == UInt8(ascii: "?") {
                throw RedisError.protocolError("streamed aggregates are not supported")
            }
            let count = try lineInteger("aggregate length")
            if count == -1, typeByte == UInt8(ascii: "*") {
                buffer.moveReaderIndex(forwardBy: headerLength)
                return .value(.null)
            }
            guard count >= 0, count <= Int64(self.limits.maximumAggregateCount) else {
                throw RedisError.protocolError("invalid aggregate length \(count)")
            }
            let kind: AggregateKind
            switch typeByte {
            case UInt8(ascii: "*"): kind = .array
            case UInt8(ascii: "%"): kind = .map
            case UInt8(ascii: "~"): kind = .set
            case UInt8(ascii: ">"): kind = .push
            default: kind = .attribute
            }
            buffer.moveReaderIndex(forwardBy: headerLength)
            return .aggregate(kind, count: Int(count))

        default:
            throw RedisError.protocolError("unknown RESP type byte 0x\(String(typeByte, radix: 16))")
        }
    }
}

/// A SwiftNIO decoder that turns bytes into ``RESPValue``s with a ``RESPParser``.
public struct RESPValueDecoder: NIOSingleStepByteToMessageDecoder, Sendable {
    /// The decoded message type.
    public typealias InboundOut = RESPValue

    private var parser: RESPParser

    /// Creates a decoder.
    /// - Parameter limits: Bounds on sizes and nesting.
    public init(limits: RESPParser.Limits = RESPParser.Limits()) {
        self.parser = RESPParser(limits: limits)
    }

    /// Decodes the next value, or returns `nil` if more bytes are needed.
    /// - Parameter buffer: The accumulated bytes.
    /// - Returns: The next complete value, if any.
    public mutating func decode(buffer: inout ByteBuffer) throws -> RESPValue? {
        try self.parser.parse(&buffer)
    }

    /// Decodes what is left once the connection has closed.
    /// - Parameters:
    ///   - buffer: The accumulated bytes.
    ///   - seenEOF: Whether end-of-file was seen.
    /// - Returns: The next complete value, if any.
    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> RESPValue? {
        try self.parser.parse(&buffer)
    }
}
