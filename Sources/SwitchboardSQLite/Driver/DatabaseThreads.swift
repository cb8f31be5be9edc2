import Foundation
import Synchronization
import SwitchboardTelemetry

/// The connections of one SQLite file in WAL mode, each on a thread of its own: a single writer that
/// group-commits concurrent writes (`GroupCommitWriter`, with its sync thread), a checkpointer, and a few
/// readers. Generic: what the file holds is its owner's business (`SQLiteDatabase`).
final class DatabaseThreads: Sendable {
    private let writer: GroupCommitWriter
    private let checkpointer: ConnectionThread?
    private let readers: [ConnectionThread]
    private let nextReader = Atomic<Int>(0)

    /// Opens (creating if needed) the file and its connections.
    ///
    /// - Parameter prepareWriter: run on the write connection once it is configured and before any other
    ///   connection opens (the owner's schema upgrade, its transaction hooks).
    /// - Parameter metrics: where the writer records its group commits.
    init(options: SQLiteOptions, metrics: StoreEngineMetrics, prepareWriter: (Connection) throws -> Void) throws {
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
        try prepareWriter(writeConnection)
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
            checkpointer: checkpointer, checkpointPages: options.checkpointPages, metrics: metrics)
        var readers: [ConnectionThread] = []
        for i in 0..<options.readers {
            let c = try Connection(path: options.path, readOnly: true)
            readers.append(ConnectionThread(name: "sqlite-reader-\(i)", connection: c))
        }
        self.readers = readers
    }

    /// Runs `body` in a write transaction shared with concurrent writes (see `SQLiteDatabase.write(durable:_:)`).
    func write<T: Sendable>(durable: Bool, _ body: @escaping @Sendable (Connection) throws -> T) async throws -> T {
        try await writer.submit(durable: durable, body)
    }

    /// Runs `body` on a read connection, the readers taken in turn.
    func read<T: Sendable>(_ body: @escaping @Sendable (Connection) throws -> T) async throws -> T {
        let i = nextReader.wrappingAdd(1, ordering: .relaxed).newValue % readers.count
        return try await readers[i].submit(body)
    }

    /// What the writer thread has done since opening.
    var writerStatistics: WriterStatistics {
        writer.statistics
    }

    /// Finishes queued work and closes every connection.
    func close() async {
        await writer.stop()
        await checkpointer?.stop()
        for r in readers { await r.stop() }
    }
}
