import NIOCore

/// Encodes Redis commands as RESP arrays of bulk strings, the form every Redis
/// server accepts regardless of the negotiated protocol version.
public enum RESPEncoder {
    /// Appends one command to `buffer`.
    /// - Parameters:
    ///   - arguments: The command name followed by its arguments, for example `["XLEN", "events"]`.
    ///   - buffer: The buffer to append to.
    public static func encodeCommand(_ arguments: [String], into buffer: inout ByteBuffer) {
        buffer.reserveCapacity(minimumWritableBytes: Self.estimatedSize(of: arguments))
        buffer.writeInteger(UInt8(ascii: "*"))
        Self.writeDecimal(arguments.count, into: &buffer)
        buffer.writeInteger(crlf)
        for argument in arguments {
            buffer.writeInteger(UInt8(ascii: "$"))
            Self.writeDecimal(argument.utf8.count, into: &buffer)
            buffer.writeInteger(crlf)
            buffer.writeString(argument)
            buffer.writeInteger(crlf)
        }
    }

    /// Appends one command whose arguments are raw bytes to `buffer`.
    /// - Parameters:
    ///   - arguments: The command name followed by its arguments.
    ///   - buffer: The buffer to append to.
    public static func encodeCommand(_ arguments: [ByteBuffer], into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "*"))
        Self.writeDecimal(arguments.count, into: &buffer)
        buffer.writeInteger(crlf)
        for argument in arguments {
            buffer.writeInteger(UInt8(ascii: "$"))
            Self.writeDecimal(argument.readableBytes, into: &buffer)
            buffer.writeInteger(crlf)
            buffer.writeImmutableBuffer(argument)
            buffer.writeInteger(crlf)
        }
    }

    /// Returns a new buffer holding one encoded command.
    /// - Parameter arguments: The command name followed by its arguments.
    /// - Returns: The encoded bytes.
    public static func encodeCommand(_ arguments: [String]) -> ByteBuffer {
        var buffer = ByteBuffer()
        Self.encodeCommand(arguments, into: &buffer)
        return buffer
    }

    /// A close upper estimate of the encoded size of a command.
    /// - Parameter arguments: The command name followed by its arguments.
    /// - Returns: The number of bytes to reserve.
    public static func estimatedSize(of arguments: [String]) -> Int {
        var size = 16
        for argument in arguments {
            size &+= argument.utf8.count &+ 16
        }
        return size
    }

    private static let crlf: UInt16 = 0x0D0A  // "\r\n" written big-endian

    /// Writes a non-negative integer as ASCII decimal digits without allocating.
    @inline(__always)
    static func writeDecimal(_ value: Int, into buffer: inout ByteBuffer) {
        precondition(value >= 0)
        if value < 10 {
            buffer.writeInteger(UInt8(truncatingIfNeeded: 48 &+ value))
            return
        }
        var digits = 1
        var probe = value / 10
        while probe > 0 {
            digits += 1
            probe /= 10
        }
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: digits) { pointer in
            var remaining = value
            var index = digits - 1
            while index >= 0 {
                pointer[index] = UInt8(truncatingIfNeeded: 48 &+ remaining % 10)
                remaining /= 10
                index -= 1
            }
            return digits
        }
    }
}
