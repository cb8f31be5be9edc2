import Logging
import ServiceLifecycle
import SwitchboardLifecycle

/// The database's own lifecycle: it keeps the file open while the other services run and closes it after they
/// stopped (a service group shuts its services down in reverse order, so list it first). With `reportEvery`
/// (`SWITCHBOARD_SQLITE_STATS`), it logs the writer's group-commit statistics at that interval.
public struct SQLiteDatabaseService: Service {
    let database: SQLiteDatabase
    let logger: Logger
    let reportEvery: Duration?

    public init(database: SQLiteDatabase, logger: Logger, reportEvery: Duration? = nil) {
        self.database = database
        self.logger = logger
        self.reportEvery = reportEvery
    }

    public func run() async throws {
        if let every = reportEvery {
            var last = database.writerStatistics
            await ServiceLoop.run("sqlite statistics", logger: logger) {
                await pause(for: every)
                let now = database.writerStatistics
                let groups = now.groups - last.groups, writes = now.writes - last.writes, pages = now.pages - last.pages
                logger.notice("sqlite writer", metadata: [
                    "commits": "\(groups)", "writes": "\(writes)", "writesPerCommit": "\(groups > 0 ? writes / groups : 0)",
                    "pagesPerCommit": "\(groups > 0 ? pages / groups : 0)", "syncs": "\(now.syncs - last.syncs)",
                    "busy": "\(Int((now.busy - last.busy) / every * 100))%", "cpu": "\(Int((now.cpu - last.cpu) / every * 100))%",
                ])
                last = now
                return .zero
            }
        }
        try? await gracefulShutdown()
        await database.close()
        logger.info("database closed")
    }
}

extension SQLiteSearchIndex {
    /// Brings the full-text indexes up to date every second in the background (text queries also refresh first).
    public func refreshService(logger: Logger) -> PeriodicTask {
        PeriodicTask(name: "search refresh", interval: .seconds(1), logger: logger) { try await self.refresh() }
    }
}
