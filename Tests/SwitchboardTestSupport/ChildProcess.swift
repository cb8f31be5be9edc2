import Foundation
import NIOConcurrencyHelpers
#if canImport(Glibc)
import Glibc
#endif

/// A child process started with `posix_spawn`, with the part of Foundation's `Process` interface the tests use.
///
/// Not Foundation's `Process`: on Linux its `run()` scans `/proc/self/fd` copying each entry's whole 256-byte
/// `d_name` (`findMaximumOpenFromProcSelfFD`), which reads past the end of readdir's buffer and crashed whole test
/// runs now and then ("Bad pointer dereference" in `Process.run()`; swift-corelibs-foundation PR #5472, fixed after
/// Swift 6.3.1). Here the child closes every descriptor above 2 with `posix_spawn_file_actions_addclosefrom_np`.
public final class ChildProcess: @unchecked Sendable {
    public var executableURL: URL?
    public var arguments: [String] = []
    /// Nil: this process's environment.
    public var environment: [String: String]?
    public var currentDirectoryURL: URL?
    /// `FileHandle` or `Pipe` (nil or `FileHandle.nullDevice`: /dev/null).
    public var standardInput: Any?
    public var standardOutput: Any?
    public var standardError: Any?

    private let state = NIOLockedValueBox<(pid: pid_t, status: Int32?)>((0, nil))

    public init() {}

    typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
    static let addCloseFrom: AddCloseFrom? = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np").map { unsafeBitCast($0, to: AddCloseFrom.self) }
    static let addChdir: AddChdir? = dlsym(nil, "posix_spawn_file_actions_addchdir_np").map { unsafeBitCast($0, to: AddChdir.self) }

    public var processIdentifier: Int32 { state.withLockedValue { $0.pid } }

    public func run() throws {
        guard let executable = executableURL?.path else { throw TestEnvironmentError(description: "ChildProcess: no executable") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var opened: [Int32] = []
        defer { for fd in opened { close(fd) } }
        func descriptor(_ io: Any?, reading: Bool) -> Int32 {
            switch io {
            case let pipe as Pipe: return reading ? pipe.fileHandleForReading.fileDescriptor : pipe.fileHandleForWriting.fileDescriptor
            case let handle as FileHandle where handle !== FileHandle.nullDevice && handle.fileDescriptor >= 0: return handle.fileDescriptor
            default:
                let fd = open("/dev/null", reading ? O_RDONLY : O_WRONLY)
                opened.append(fd)
                return fd
            }
        }
        posix_spawn_file_actions_adddup2(&actions, descriptor(standardInput, reading: true), 0)
        posix_spawn_file_actions_adddup2(&actions, descriptor(standardOutput, reading: false), 1)
        posix_spawn_file_actions_adddup2(&actions, descriptor(standardError, reading: false), 2)
        // glibc's GNU extensions (2.34 and 2.29), not in the Swift module's view of spawn.h: looked up at run time.
        guard let closeFrom = Self.addCloseFrom else { throw TestEnvironmentError(description: "posix_spawn_file_actions_addclosefrom_np is missing (glibc 2.34 or later needed)") }
        _ = closeFrom(&actions, 3)
        if let directory = currentDirectoryURL?.path {
            guard let chdir = Self.addChdir else { throw TestEnvironmentError(description: "posix_spawn_file_actions_addchdir_np is missing") }
            _ = chdir(&actions, directory)
        }

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        let env = (environment ?? ProcessInfo.processInfo.environment).map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for p in env { free(p) } }
        // As Foundation does: the child starts with no signal blocked and every signal at its default action (this
        // process ignores SIGPIPE, as NIO sets it, and a thread may block others: both would be inherited).
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, env)
        guard result == 0 else {
            throw TestEnvironmentError(description: "posix_spawn \(executable): \(String(cString: strerror(result)))")
        }
        state.withLockedValue { $0 = (pid, nil) }
        // As Foundation does: the parent's copies of the child's pipe ends, so that a reader sees the end.
        if let pipe = standardOutput as? Pipe { try? pipe.fileHandleForWriting.close() }
        if let pipe = standardError as? Pipe, (standardOutput as? Pipe) !== pipe { try? pipe.fileHandleForWriting.close() }
        if let pipe = standardInput as? Pipe { try? pipe.fileHandleForReading.close() }
    }

    /// Reaps the child if it has ended (`block`: waits for it).
    private func reap(block: Bool) -> Int32? {
        state.withLockedValue { s in
            if let status = s.status { return status }
            guard s.pid > 0 else { return nil }
            var raw: Int32 = 0
            let r = waitpid(s.pid, &raw, block ? 0 : WNOHANG)
            guard r == s.pid else { return nil }
            // Exited: its status; killed by a signal: the signal's number (as Foundation's `terminationStatus`).
            let low = raw & 0x7f
            s.status = low == 0 ? (raw >> 8) & 0xff : low
            return s.status
        }
    }

    public var isRunning: Bool { reap(block: false) == nil && processIdentifier > 0 }

    public var terminationStatus: Int32 { reap(block: false) ?? 0 }

    public func waitUntilExit() {
        while reap(block: false) == nil {
            guard processIdentifier > 0 else { return }
            usleep(5_000)
        }
    }

    public func terminate() { if isRunning { kill(processIdentifier, SIGTERM) } }
}
