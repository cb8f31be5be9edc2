import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A plain TCP connection to 127.0.0.1: bytes in, bytes out, no HTTP client in between (no pooling, no framing),
/// to see what the server does with a connection and with requests a client library would never send. Reads
/// poll without blocking a thread of the cooperative pool (other suites need them).
public final class RawConnection: @unchecked Sendable {
    public let fd: Int32

    public init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EMFILE) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        // No close here: the object is whole, so deinit runs when init throws and closes fd. Closing it here too
        // closed it twice — the second time a number NIO had meanwhile reused (a crash in getsockname, EBADF).
        guard rc == 0 else { throw POSIXError(.ECONNREFUSED) }
    }

    deinit { close(fd) }

    public func send(_ text: String) throws { try send(Array(text.utf8)) }

    public func send(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw POSIXError(.EPIPE) }
            sent += n
        }
    }

    /// Half-closes: the server reads the end of the request stream.
    public func finishWriting() { shutdown(fd, Int32(SHUT_WR)) }

    /// What arrives within `timeout` (up to 64 KiB, one read): "" when the server closed the connection.
    public func receive(timeout: Duration) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let received = try receive(waitingAtMost: .zero) { return received }
            guard ContinuousClock.now < deadline else { throw POSIXError(.ETIMEDOUT) }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// What arrives within `limit` (blocking the calling thread): "" when the server closed the connection, nil
    /// when nothing came.
    public func receive(waitingAtMost limit: Duration) throws -> String? {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&poller, 1, Int32(limit.components.seconds * 1000 + limit.components.attoseconds / 1_000_000_000_000_000))
        guard ready > 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let n = recv(fd, &buffer, buffer.count, 0)
        guard n >= 0 else { return "" }  // a reset is a close too
        return String(decoding: buffer[..<n], as: UTF8.self)
    }

    /// Everything the server writes until it closes the connection, or what came when `timeout` passed.
    public func readUntilClosed(timeout: Duration = .seconds(20)) async -> String {
        await read(timeout: timeout) { _ in false }
    }

    /// What arrives until `predicate` holds for it, the server closes the connection, or `timeout` passes.
    public func read(timeout: Duration = .seconds(20), until predicate: (String) -> Bool) async -> String {
        var received: [UInt8] = []
        let deadline = ContinuousClock.now + timeout
        var buffer = [UInt8](repeating: 0, count: 65536)
        while ContinuousClock.now < deadline, !predicate(String(decoding: received, as: UTF8.self)) {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&poller, 1, 0) > 0 {
                let n = recv(fd, &buffer, buffer.count, 0)
                if n <= 0 { break }
                received += buffer[..<n]
                continue
            }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return String(decoding: received, as: UTF8.self)
    }
}
