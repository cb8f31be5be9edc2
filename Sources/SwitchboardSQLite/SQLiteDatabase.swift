import CSQLite
import Foundation
import Logging

/// How hard SQLite syncs to disk on commit (`PRAGMA synchronous`).
public enum SQLiteSynchronous: String, Sendable, CaseIterable {
    /// fsync on every commit of the write-ahead log: a 200 answer survives a power cut.
    case full
    /// fsync at checkpoints only: survives a crash of the process, not of the machine.
    case normal
}

/// Options of the embedded engine.
public struct SQLiteOptions: Sendable {
    /// Path of the database file.
    public var path: String
    public var synchronous: SQLiteSynchronous
    /// Read connections (each on its own thread).
    public var readers: Int
    /// Most writes committed in one group transaction.
    public var maxGroupSize: Int

    public init(path: String, synchronous: SQLiteSynchronous = .full, readers: Int = 2, maxGroupSize: Int = 1024) {
        self.path = path
        self.synchronous = synchronous
        self.readers = max(1, readers)
        self.maxGroupSize = max(1, maxGroupSize)
    }
}

/// Thrown for work submitted after `close()`.
public struct DatabaseClosed: Error, CustomStringConvertible, Sendable {
    public var description: String { "the database is closed" }
}

/// One SQLite file in WAL mode: a single writer thread that group-commits concurrent writes, and a few
/// reader threads. Every adapter of the embedded engine (store, queue, search, sandbox) shares one.
///
/// Group commit: writes submitted while a transaction is being committed are gathered and committed
/// together in the next one. A write that throws is rolled back alone (the others are run again without
/// it). A write's caller is resumed only after the COMMIT that holds it succeeded.
public final class SQLiteDatabase: Sendable {
    public let options: SQLiteOptions
    private let writer: ConnectionThread
    private let readers: [ConnectionThread]
    private let nextReader = LockedCounter()
    let signal = StreamSignal()

    /// Opens (creating if needed) the database and brings its schema up to date.
    public init(options: SQLiteOptions, logger: Logger = Logger(label: "switchboard.sqlite")) throws {
        self.options = options
        let directory = (options.path as NSString).deletingLastPathComponent
        if !directory.isEmpty, options.path != ":memory:" {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        let writeConnection = try Connection(path: options.path, readOnly: false)
        try writeConnection.execute("PRAGMA journal_mode=WAL")
        try writeConnection.execute("PRAGMA synchronous=\(options.synchronous.rawValue.uppercased())")
        try writeConnection.execute("PRAGMA temp_store=MEMORY")
        try writeConnection.execute("PRAGMA cache_size=-65536")
        try writeConnection.execute("PRAGMA wal_autocheckpoint=4000")
        try Schema.migrate(writeConnection)
        writer = ConnectionThread(name: "sqlite-writer", connection: writeConnection, groupCommit: true, maxGroup: options.maxGroupSize)
        var readers: [ConnectionThread] = []
        for i in 0..<options.readers {
            let c = try Connection(path: options.path, readOnly: true)
            readers.append(ConnectionThread(name: "sqlite-reader-\(i)", connection: c, groupCommit: false, maxGroup: 1))
        }
        self.readers = readers
        logger.info("opened SQLite database", metadata: ["path": "\(options.path)", "synchronous": "\(options.synchronous.rawValue)"])
    }

    /// Runs `body` in a write transaction (shared with concurrent writes: group commit). Returns after the commit.
    func write<T: Sendable>(_ body: @escaping @Sendable (Connection) throws -> T) async throws -> T {
        try await writer.submit(body)
    }

    /// Runs `body` on a read connection (a consistent snapshot for its duration).
    func read<T: Sendable>(_ body: @escaping @Sendable (Connection) throws -> T) async throws -> T {
        let i = nextReader.next() % readers.count
        return try await readers[i].submit(body)
    }

    /// What the writer thread has done since opening.
    public var writerStatistics: WriterStatistics {
        writer.statistics
    }

    /// Finishes queued work and closes every connection.
    public func close() async {
        await writer.stop()
        for r in readers { await r.stop() }
    }
}

/// The single writer's work since the database was opened (`SQLiteDatabase.writerStatistics`).
public struct WriterStatistics: Sendable {
    /// Transactions committed (each holds a group of writes).
    public var groups = 0
    /// Writes run.
    public var writes = 0
    /// Pages written by the writer connection (to the write-ahead log at each commit).
    public var pages = 0
    /// Wall time spent in transactions.
    public var busy = Duration.zero
    /// CPU time of the writer thread spent in transactions.
    public var cpu = Duration.zero
}

final class LockedCounter: Sendable {
    private let value = NSLockedValue(0)
    func next() -> Int { value.withLock { v in v &+= 1; return v } }
}

/// A tiny lock-protected box (Foundation's NSLock; the Synchronization module's Mutex works too).
final class NSLockedValue<T>: @unchecked Sendable {
    private var value: T
    private let lock = NSLock()
    init(_ value: T) { self.value = value }
    func withLock<R>(_ body: (inout T) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}

/// A connection owned by one thread that runs submitted jobs; the writer's runs them in group transactions.
final class ConnectionThread: @unchecked Sendable {
    private final class Job {
        /// Runs the work; false when it threw (its transaction is then rolled back). May run more than once.
        let run: (Connection) -> Bool
        let finish: ((any Error)?) -> Void
        init(run: @escaping (Connection) -> Bool, finish: @escaping ((any Error)?) -> Void) {
            self.run = run
            self.finish = finish
        }
    }

    private let condition = NSCondition()
    private var jobs: [Job] = []
    private var stopping = false
    private var stopped = false
    private var connection: Connection?
    private let groupCommit: Bool
    private let maxGroup: Int
    private var stopWaiters: [CheckedContinuation<Void, Never>] = []
    /// Writer statistics, read by `statistics`.
    private var stats = WriterStatistics()

    var statistics: WriterStatistics {
        condition.lock()
        defer { condition.unlock() }
        return stats
    }

    static func threadCPUNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    init(name: String, connection: Connection, groupCommit: Bool, maxGroup: Int) {
        self.connection = connection
        self.groupCommit = groupCommit
        self.maxGroup = maxGroup
        let thread = Thread { [self] in
            // The kernel's thread name (what `top -H` and profilers show); at most 15 bytes.
            switchboard_name_current_thread(name)
            self.loop()
        }
        thread.name = name
        thread.start()
    }

    func submit<T: Sendable>(_ body: @escaping @Sendable (Connection) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            var result: Result<T, any Error>?
            let job = Job(
                run: { connection in
                    do {
                        result = .success(try body(connection))
                        return true
                    } catch {
                        result = .failure(error)
                        return false
                    }
                },
                finish: { commitError in
                    if let commitError { continuation.resume(throwing: commitError); return }
                    continuation.resume(with: result ?? .failure(DatabaseClosed()))
                })
            condition.lock()
            if stopping {
                condition.unlock()
                continuation.resume(throwing: DatabaseClosed())
                return
            }
            jobs.append(job)
            condition.signal()
            condition.unlock()
        }
    }

    func stop() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            condition.lock()
            if stopped {
                condition.unlock()
                c.resume()
                return
            }
            stopping = true
            stopWaiters.append(c)
            condition.signal()
            condition.unlock()
        }
    }

    private func loop() {
        while true {
            condition.lock()
            while jobs.isEmpty && !stopping { condition.wait() }
            if jobs.isEmpty && stopping {
                connection = nil  // closes it
                stopped = true
                let waiters = stopWaiters
                stopWaiters = []
                condition.unlock()
                for w in waiters { w.resume() }
                return
            }
            let take = groupCommit ? min(jobs.count, maxGroup) : 1
            let batch = Array(jobs.prefix(take))
            jobs.removeFirst(take)
            condition.unlock()
            guard let connection else { continue }
            if groupCommit {
                let start = DispatchTime.now().uptimeNanoseconds
                let cpuStart = Self.threadCPUNanoseconds()
                runGroup(batch, on: connection)
                let elapsed = DispatchTime.now().uptimeNanoseconds - start
                let cpu = Self.threadCPUNanoseconds() - cpuStart
                let pages = connection.takePagesWritten()
                condition.lock()
                stats.cpu += .nanoseconds(Int64(cpu))
                stats.groups += 1
                stats.writes += batch.count
                stats.pages += pages
                stats.busy += .nanoseconds(Int64(elapsed))
                condition.unlock()
            } else {
                for job in batch {
                    _ = job.run(connection)
                    job.finish(nil)
                }
            }
        }
    }

    /// Runs `batch` in one transaction. A job that throws is taken out, the transaction rolled back and the
    /// others run again in a new one, so the common case (nothing throws) costs no savepoints.
    private func runGroup(_ batch: [Job], on connection: Connection) {
        var jobs = batch
        while !jobs.isEmpty {
            do {
                try connection.execute("BEGIN IMMEDIATE")
            } catch {
                for job in jobs { job.finish(error) }
                return
            }
            if let failed = jobs.firstIndex(where: { !$0.run(connection) }) {
                try? connection.execute("ROLLBACK")
                jobs.remove(at: failed).finish(nil)  // resumes its caller with the job's own error
                continue
            }
            do {
                try connection.execute("COMMIT")
                for job in jobs { job.finish(nil) }
            } catch {
                try? connection.execute("ROLLBACK")
                for job in jobs { job.finish(error) }
            }
            return
        }
    }
}
