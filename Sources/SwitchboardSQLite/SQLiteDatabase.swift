import Logging
import SwitchboardTelemetry

/// One SQLite file in WAL mode: a single writer thread that group-commits concurrent writes, and a few
/// reader threads. Every adapter of the embedded engine (store, queue, search, sandbox) shares one.
///
/// Group commit: writes submitted while a commit is being synced run in one open transaction, committed
/// together once the sync is done. A write that throws is rolled back alone (the others are run again
/// without it). A write's caller is resumed only after the COMMIT that holds it succeeded and, with
/// `SQLiteSynchronous.full`, was synced to disk (`GroupCommitWriter`) — unless it was submitted with
/// `durable: false` (see `write(durable:_:)`).
///
/// The threads and connections are the driver's (`DatabaseThreads`); this adds what the adapters share on
/// top: the schema (`Schema`, upgraded at open), the status counts kept with every write transaction
/// (`StatusCounter`, a hook on the write connection) and the in-process stream wake-ups (`StreamSignal`).
public final class SQLiteDatabase: Sendable {
    public let options: SQLiteOptions
    private let threads: DatabaseThreads
    let signal = StreamSignal()

    /// Opens (creating if needed) the database and brings its schema up to date.
    /// - Parameter metrics: where the writer records each group commit (duration, size) and failed commits;
    ///   by default the process's metrics backend (made here, once: bootstrap the backend before opening).
    public init(options: SQLiteOptions, logger: Logger = Logger(label: "switchboard.sqlite"), metrics: StoreEngineMetrics = StoreEngineMetrics(engine: "sqlite")) throws {
        self.options = options
        threads = try DatabaseThreads(options: options, metrics: metrics) { writeConnection in
            try Schema.migrate(writeConnection)
            writeConnection.addTransactionHook(StatusCounter())
        }
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
        try await threads.write(durable: durable, body)
    }

    /// Runs `body` on a read connection (a consistent snapshot for its duration).
    func read<T: Sendable>(_ body: @escaping @Sendable (Connection) throws -> T) async throws -> T {
        try await threads.read(body)
    }

    /// What the writer thread has done since opening.
    public var writerStatistics: WriterStatistics {
        threads.writerStatistics
    }

    /// Finishes queued work and closes every connection.
    public func close() async {
        await threads.close()
    }
}
