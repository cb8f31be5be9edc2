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
