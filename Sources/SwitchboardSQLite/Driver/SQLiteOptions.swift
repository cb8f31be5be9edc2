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
