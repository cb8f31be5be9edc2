import Logging
import ServiceLifecycle
import SwitchboardLifecycle

/// The index's own lifecycle: it runs the bulk indexer's flusher and, at start, prepares the cluster (dialect,
/// templates, indices), retrying in the background while it is down; on graceful shutdown it sends what is
/// buffered and closes its connections. List it before the services that index, so that it stops after them.
extension ElasticsearchSearchIndex: Service {
    public func run() async throws {
        await withTaskGroup(of: Void.self) { tasks in
            tasks.addTask { await self.bulk.run() }
            tasks.addTask {
                // Ends when prepared, or on graceful shutdown (the retry's pause ends, then the last error is thrown).
                _ = try? await ServiceLoop.retrying("prepare the elasticsearch indices (unavailable at start)", logger: self.logger) {
                    try await self.bulk.prepareIfNeeded()  // logs the dialect the first time
                }
            }
            try? await gracefulShutdown()
            await bulk.stop()
            await tasks.waitForAll()
        }
        let stats = await bulk.statistics
        logger.info("elasticsearch indexer stopped", metadata: ["indexed": "\(stats.indexed)", "failed": "\(stats.failed)", "dropped": "\(stats.dropped)"])
        await shutdown()
    }
}
