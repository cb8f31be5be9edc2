import CSQLite
import Foundation
import SwitchboardTelemetry

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
    /// Committed, waiting for the sync thread: each one commit's durable jobs and when its COMMIT began
    /// (`DispatchTime` nanoseconds, for the commit duration).
    private var unsynced: [(jobs: [Job], started: UInt64)] = []
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
    /// Each group commit's duration and size, and failed commits (handles made once, by the owner).
    private let metrics: StoreEngineMetrics

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
    init(connection: Connection, maxGroup: Int, syncing path: String?, checkpointer: ConnectionThread?, checkpointPages: Int, metrics: StoreEngineMetrics) {
        self.maxGroup = maxGroup
        self.metrics = metrics
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
                commit(committed, on: connection, started: DispatchTime.now().uptimeNanoseconds)
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
                    metrics.failed()
                    for job in held + toRun { job.finish(error) }
                    return []
                }
            }
            guard let failed = toRun.firstIndex(where: { !$0.run(connection) }) else { return held + toRun }
            try? connection.execute("ROLLBACK")
            connection.runRollbackHooks()
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
    ///
    /// Metrics: the group's size, and its duration from the COMMIT (`started`) until its callers are resumed —
    /// the sync included when the group waits for one (recorded by the sync thread then).
    private func commit(_ jobs: [Job], on connection: Connection, started: UInt64) {
        do {
            try connection.runBeforeCommitHooks()
            try connection.execute("COMMIT")
        } catch {
            try? connection.execute("ROLLBACK")
            connection.runRollbackHooks()
            metrics.failed()
            for job in jobs { job.finish(error) }
            return
        }
        metrics.grouped(transactions: jobs.count)
        guard walPath != nil else {
            metrics.committed(nanoseconds: Int64(DispatchTime.now().uptimeNanoseconds - started))
            for job in jobs { job.finish(nil) }
            return
        }
        let durable = jobs.filter(\.durable)
        for job in jobs where !job.durable { job.finish(nil) }
        guard !durable.isEmpty else {
            metrics.committed(nanoseconds: Int64(DispatchTime.now().uptimeNanoseconds - started))
            return
        }
        condition.lock()
        unsynced.append((durable, started))
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
            if failure != nil { metrics.failed() }
            let synced = DispatchTime.now().uptimeNanoseconds
            for group in groups {
                if failure == nil { metrics.committed(nanoseconds: Int64(synced - group.started)) }
                for job in group.jobs { job.finish(failure) }
            }

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
