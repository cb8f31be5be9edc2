import CSQLite
import Foundation
import Logging
import SwitchboardCore

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
    /// Pages written to the write-ahead log between two background checkpoints (`sqlite-checkpt`).
    public var checkpointPages: Int
    /// The log's size in pages at which the writer's own COMMIT checkpoints (SQLite's automatic checkpoint).
    /// It copies only what the background checkpoints have not, and being done by the writer between two
    /// transactions, it lets the next transaction start the log over from its beginning — which a checkpoint
    /// running beside a busy writer never can, as the writer keeps adding to the log meanwhile.
    public var autocheckpointPages: Int

    public init(path: String, synchronous: SQLiteSynchronous = .full, readers: Int = 2, maxGroupSize: Int = 1024, checkpointPages: Int = 1_000, autocheckpointPages: Int = 4_000) {
        self.path = path
        self.synchronous = synchronous
        self.readers = max(1, readers)
        self.maxGroupSize = max(1, maxGroupSize)
        self.checkpointPages = max(1, checkpointPages)
        self.autocheckpointPages = max(1, autocheckpointPages)
    }
}

/// Thrown for work submitted after `close()`.
public struct DatabaseClosed: Error, CustomStringConvertible, Sendable, TemporaryFailure {
    public var description: String { "the database is closed" }
    public var temporaryReason: String? { "the service is shutting down" }
}

/// One SQLite file in WAL mode: a single writer thread that group-commits concurrent writes, and a few
/// reader threads. Every adapter of the embedded engine (store, queue, search, sandbox) shares one.
///
/// Group commit: writes submitted while a commit is being synced run in one open transaction, committed
/// together once the sync is done. A write that throws is rolled back alone (the others are run again
/// without it). A write's caller is resumed only after the COMMIT that holds it succeeded and, with
/// `SQLiteSynchronous.full`, was synced to disk (`GroupCommitWriter`) — unless it was submitted with
/// `durable: false` (see `write(durable:_:)`).
public final class SQLiteDatabase: Sendable {
    public let options: SQLiteOptions
    private let writer: GroupCommitWriter
    private let checkpointer: ConnectionThread?
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
        // With `.full`, the writer's sync thread makes each commit durable before its callers go on (see
        // GroupCommitWriter); SQLite itself then need not sync at commit.
        try writeConnection.execute("PRAGMA synchronous=NORMAL")
        try writeConnection.execute("PRAGMA temp_store=MEMORY")
        try writeConnection.execute("PRAGMA cache_size=-65536")
        try writeConnection.execute("PRAGMA wal_autocheckpoint=\(options.autocheckpointPages)")
        try Schema.migrate(writeConnection)
        let onDisk = options.path != ":memory:" && !options.path.isEmpty
        // Checkpoints (copying the write-ahead log back into the file) are mostly done by a thread of their own,
        // so that the writer's COMMIT rarely has much to copy (SQLite's automatic checkpoint alone held it for
        // ~12 ms every few hundred milliseconds under load: the accept latency's tail). See GroupCommitWriter.
        var checkpointer: ConnectionThread?
        if onDisk {
            let c = try Connection(path: options.path, readOnly: false)
            try c.execute("PRAGMA synchronous=NORMAL")
            checkpointer = ConnectionThread(name: "sqlite-checkpt", connection: c)
        }
        self.checkpointer = checkpointer
        writer = GroupCommitWriter(
            connection: writeConnection, maxGroup: options.maxGroupSize, syncing: options.synchronous == .full && onDisk ? options.path : nil,
            checkpointer: checkpointer, checkpointPages: options.checkpointPages)
        var readers: [ConnectionThread] = []
        for i in 0..<options.readers {
            let c = try Connection(path: options.path, readOnly: true)
            readers.append(ConnectionThread(name: "sqlite-reader-\(i)", connection: c))
        }
        self.readers = readers
        logger.info("opened SQLite database", metadata: ["path": "\(options.path)", "synchronous": "\(options.synchronous.rawValue)"])
    }

    /// Runs `body` in a write transaction (shared with concurrent writes: group commit). Returns after the commit.
    ///
    /// - Parameter durable: true (the default): with `SQLiteSynchronous.full`, returns only once the commit is
    ///   on disk. False: returns once committed (visible to every connection) without waiting for the sync —
    ///   for writes whose loss in a power cut is harmless because they would be redone (a claim, a
    ///   `processing` marker, a derived index). Commits are synced in order, so the next durable write's sync
    ///   covers it; a crash can only lose a suffix of such writes together with everything after them.
    func write<T: Sendable>(durable: Bool = true, _ body: @escaping @Sendable (Connection) throws -> T) async throws -> T {
        try await writer.submit(durable: durable, body)
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
        await checkpointer?.stop()
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
    /// Syncs of the write-ahead log by the sync thread (`SQLiteSynchronous.full`; each covers every commit before it).
    public var syncs = 0
    /// Checkpoints asked of the checkpoint thread (one per `SQLiteOptions.checkpointPages` pages written).
    public var checkpoints = 0
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

/// A job for a connection thread.
final class Job {
    /// Runs the work; false when it threw (its transaction is then rolled back). May run more than once.
    let run: (Connection) -> Bool
    /// Resumes the caller: with the commit's error, or with what `run` produced.
    let finish: ((any Error)?) -> Void
    /// A write whose caller waits for the commit's sync (`SQLiteDatabase.write(durable:_:)`).
    let durable: Bool

    init(durable: Bool = true, run: @escaping (Connection) -> Bool, finish: @escaping ((any Error)?) -> Void) {
        self.durable = durable
        self.run = run
        self.finish = finish
    }

    /// A job running `body` and resuming `continuation` with its result when finished.
    static func make<T: Sendable>(durable: Bool, _ body: @escaping @Sendable (Connection) throws -> T, resuming continuation: CheckedContinuation<T, any Error>) -> Job {
        var result: Result<T, any Error>?
        return Job(
            durable: durable,
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
    }
}

/// What both kinds of connection thread share: the queue of submitted jobs and the stop handshake, under one
/// condition that each subclass's loop also waits on.
class JobThread: @unchecked Sendable {
    let condition = NSCondition()
    /// Submitted, not yet run.
    var queue: [Job] = []
    var stopping = false
    var stopped = false
    var connection: Connection?
    private var stopWaiters: [CheckedContinuation<Void, Never>] = []

    init(connection: Connection) {
        self.connection = connection
    }

    /// Starts `loop` on a new thread called `name` (what `top -H` and profilers show; at most 15 bytes).
    func start(_ name: String, _ loop: @escaping @Sendable () -> Void) {
        let thread = Thread {
            switchboard_name_current_thread(name)
            loop()
        }
        thread.name = name
        thread.start()
    }

    /// Queues `body`; `durable` matters to the writer only (`SQLiteDatabase.write(durable:_:)`).
    func submit<T: Sendable>(durable: Bool = true, _ body: @escaping @Sendable (Connection) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let job = Job.make(durable: durable, body, resuming: continuation)
            condition.lock()
            if stopping {
                condition.unlock()
                continuation.resume(throwing: DatabaseClosed())
                return
            }
            queue.append(job)
            condition.broadcast()
            condition.unlock()
        }
    }

    /// Queues `body` without waiting for it; what it throws is dropped.
    func send(_ body: @escaping (Connection) throws -> Void) {
        condition.lock()
        defer { condition.unlock() }
        guard !stopping else { return }
        queue.append(Job(run: { c in (try? body(c)) != nil }, finish: { _ in }))
        condition.broadcast()
    }

    /// Runs what was submitted, then closes the connection.
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
            condition.broadcast()
            condition.unlock()
        }
    }

    /// Closes the connection and resumes `stop`'s callers; called by the loop, holding the lock.
    func closeAndResumeStoppers() {
        connection = nil  // closes it
        stopped = true
        let waiters = stopWaiters
        stopWaiters = []
        condition.unlock()
        for w in waiters { w.resume() }
    }
}

/// A connection owned by one thread that runs submitted jobs one at a time (the readers, the checkpointer).
final class ConnectionThread: JobThread, @unchecked Sendable {
    /// True while a job runs. Read and written holding the lock.
    private var running = false

    init(name: String, connection: Connection) {
        super.init(connection: connection)
        start(name) { [self] in loop() }
    }

    /// Jobs submitted and not yet finished running. Read by other threads.
    var backlog: Int {
        condition.lock()
        defer { condition.unlock() }
        return queue.count + (running ? 1 : 0)
    }

    private func loop() {
        while true {
            condition.lock()
            while queue.isEmpty && !stopping { condition.wait() }
            if queue.isEmpty && stopping {
                closeAndResumeStoppers()
                return
            }
            let job = queue.removeFirst()
            running = true
            condition.unlock()
            if let connection {
                _ = job.run(connection)
                job.finish(nil)
            }
            condition.lock()
            running = false
            condition.unlock()
        }
    }
}

/// The write connection: one thread runs every write, many per transaction (group commit).
///
/// Writes are run as they arrive in an open transaction. It is committed as soon as the previous commit is
/// durable, so while the disk syncs one group the next group's statements already run. With
/// `SQLiteSynchronous.full` the connection itself does not sync (`synchronous=NORMAL`); a second thread
/// calls fdatasync on the write-ahead log after each COMMIT and only then resumes that group's callers —
/// the guarantee of `synchronous=FULL` (a write is on disk before its caller goes on), with the sync taken
/// off the writer's path. Writes submitted with `durable: false` are resumed right after their COMMIT; a
/// commit holding only such writes is not synced (the next durable commit's sync covers it). A write that throws is rolled back alone: the transaction is rolled back and the
/// other writes are run again without it, so the common case costs no savepoints.
final class GroupCommitWriter: JobThread, @unchecked Sendable {
    /// Committed, waiting for the sync thread (each inner array one commit).
    private var unsynced: [[Job]] = []
    /// True while the sync thread is syncing.
    private var syncing = false
    private var writerDone = false
    private let maxGroup: Int
    /// The write-ahead log's path when commits are synced by the sync thread; nil: not synced (or in memory).
    private let walPath: String?
    /// Where checkpoints run (nil in memory), and the pages written since the last one was asked for.
    private let checkpointer: ConnectionThread?
    private var pagesSinceCheckpoint = 0
    /// Pages written to the log between two background checkpoints (`SQLiteOptions.checkpointPages`).
    private let checkpointPages: Int
    private var stats = WriterStatistics()

    /// No commit is waiting for or under a sync (always, without a sync thread). Read holding the lock.
    private var diskFree: Bool { !syncing && unsynced.isEmpty }

    /// What the writer has done so far.
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

    /// - Parameter syncing: the database file whose write-ahead log the sync thread makes durable after each
    ///   commit; nil when commits need no sync.
    init(connection: Connection, maxGroup: Int, syncing path: String?, checkpointer: ConnectionThread?, checkpointPages: Int) {
        self.maxGroup = maxGroup
        self.checkpointPages = checkpointPages
        walPath = path.map { $0 + "-wal" }
        self.checkpointer = checkpointer
        super.init(connection: connection)
        start("sqlite-writer") { [self] in writeLoop() }
        if walPath != nil { start("sqlite-sync") { [self] in syncLoop() } }
    }

    private func writeLoop() {
        // Run in the open transaction, not yet committed.
        var open: [Job] = []
        while true {
            condition.lock()
            // Work: new jobs to run, or an open transaction that can be committed (no sync under way).
            while queue.isEmpty && !stopping && !(!open.isEmpty && diskFree) {
                condition.wait()
            }
            if stopping && queue.isEmpty && open.isEmpty {
                writerDone = true
                condition.broadcast()
                condition.unlock()
                finishStopping()
                return
            }
            let take = min(queue.count, max(0, maxGroup - open.count))
            let batch = Array(queue.prefix(take))
            queue.removeFirst(take)
            // Commit now when the disk is free (or the group is full, or we are stopping); else keep the
            // transaction open and run what arrives meanwhile.
            let commitNow = diskFree || open.count + batch.count >= maxGroup || stopping
            condition.unlock()
            guard let connection else { continue }

            let start = DispatchTime.now().uptimeNanoseconds
            let cpuStart = Self.threadCPUNanoseconds()
            if !batch.isEmpty { open = run(batch, after: open, on: connection) }
            var committed: [Job] = []
            if commitNow && !open.isEmpty {
                committed = open
                open = []
                commit(committed, on: connection)
            }
            let elapsed = DispatchTime.now().uptimeNanoseconds - start
            let cpu = Self.threadCPUNanoseconds() - cpuStart
            let pages = connection.takePagesWritten()
            askForCheckpoint(after: pages)
            condition.lock()
            stats.cpu += .nanoseconds(Int64(cpu))
            stats.busy += .nanoseconds(Int64(elapsed))
            stats.writes += batch.count
            stats.pages += pages
            if !committed.isEmpty { stats.groups += 1 }
            condition.unlock()
        }
    }

    /// Asks the checkpoint thread for a PASSIVE checkpoint once `checkpointPages` pages were written since the
    /// last one, unless one is still queued or running. A passive checkpoint copies what no reader still needs
    /// and never blocks this writer; the writer's automatic checkpoint (`SQLiteOptions.autocheckpointPages`)
    /// then finds little left to copy, and the log starts over after it.
    private func askForCheckpoint(after pages: Int) {
        guard let checkpointer else { return }
        pagesSinceCheckpoint += pages
        guard pagesSinceCheckpoint >= checkpointPages, checkpointer.backlog == 0 else { return }
        pagesSinceCheckpoint = 0
        checkpointer.send { c in try c.execute("PRAGMA wal_checkpoint(PASSIVE)") }
        condition.lock()
        stats.checkpoints += 1
        condition.unlock()
    }

    /// Runs `batch` in the open transaction that already holds `open` (beginning one if there is none). A job
    /// that throws is resumed with its error; the transaction is rolled back and every other job run again in
    /// a new one. Returns the jobs the open transaction now holds.
    private func run(_ batch: [Job], after open: [Job], on connection: Connection) -> [Job] {
        var held = open
        var toRun = batch
        var begin = open.isEmpty
        while true {
            if begin {
                do {
                    try connection.execute("BEGIN IMMEDIATE")
                } catch {
                    for job in held + toRun { job.finish(error) }
                    return []
                }
            }
            guard let failed = toRun.firstIndex(where: { !$0.run(connection) }) else { return held + toRun }
            try? connection.execute("ROLLBACK")
            connection.discardStatusCounts()
            toRun.remove(at: failed).finish(nil)  // resumes its caller with the job's own error
            toRun = held + toRun
            held = []
            begin = true
            if toRun.isEmpty { return [] }
        }
    }

    /// Commits the open transaction holding `jobs`, then hands the durable ones to the sync thread and
    /// resumes the others (all of them when commits are not synced). A commit with no durable job is not
    /// synced on its own: the next durable commit's sync covers it.
    private func commit(_ jobs: [Job], on connection: Connection) {
        do {
            try connection.writeStatusCounts()
            try connection.execute("COMMIT")
        } catch {
            try? connection.execute("ROLLBACK")
            for job in jobs { job.finish(error) }
            return
        }
        guard walPath != nil else {
            for job in jobs { job.finish(nil) }
            return
        }
        let durable = jobs.filter(\.durable)
        for job in jobs where !job.durable { job.finish(nil) }
        guard !durable.isEmpty else { return }
        condition.lock()
        unsynced.append(durable)
        condition.broadcast()
        condition.unlock()
    }

    private func syncLoop() {
        var fd: Int32 = -1
        defer { if fd >= 0 { close(fd) } }
        while true {
            condition.lock()
            while unsynced.isEmpty && !writerDone { condition.wait() }
            if unsynced.isEmpty && writerDone {
                condition.unlock()
                return
            }
            let groups = unsynced
            unsynced = []
            syncing = true
            condition.unlock()

            var failure: (any Error)?
            if fd < 0, let walPath { fd = open(walPath, O_RDONLY | O_CLOEXEC) }
            if fd < 0 || fdatasync(fd) != 0 {
                let code = errno
                failure = SQLiteError(code: SQLITE_IOERR, message: "could not sync the write-ahead log: \(String(cString: strerror(code)))")
            }
            condition.lock()
            stats.syncs += 1
            condition.unlock()
            for group in groups { for job in group { job.finish(failure) } }

            condition.lock()
            syncing = false
            condition.broadcast()
            condition.unlock()
        }
    }

    /// Once the writer has committed everything: waits for the sync thread, closes, resumes `stop`'s callers.
    private func finishStopping() {
        condition.lock()
        while !diskFree { condition.wait() }
        closeAndResumeStoppers()
    }
}
