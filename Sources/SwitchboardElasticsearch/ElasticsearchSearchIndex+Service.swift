import Logging
import ServiceLifecycle
import SwitchboardLifecycle

/// The index's own lifecycle: it runs the bulk indexer's flusher and, at start, prepares the cluster (dialect,
/// templates, indices), retrying in the background while it is down; on graceful shutdown it sends what is
/// buffered and closes its connections. List it before the services that index, so that it stops after them.
extension ElasticsearchSearchIndex: Service {
    public func run() async throws {
        enum Ended { case flusher, preparation, limit }
        await withTaskGroup(of: Ended.self) { tasks in
            tasks.addTask {
                await self.bulk.run()
                return .flusher
            }
            tasks.addTask {
                // Ends when prepared, or on graceful shutdown: the retry's pause ends and the request in flight is
                // cancelled (then the last error is thrown).
                _ = try? await ServiceLoop.retrying("prepare the elasticsearch indices (unavailable at start)", logger: self.logger) {
                    try await cancelWhenGracefulShutdown { try await self.bulk.prepareIfNeeded() }  // logs the dialect the first time
                }
                return .preparation
            }
            try? await gracefulShutdown()
            await bulk.stop()
            // The flusher sends what is buffered; past the limit its request is cancelled and it gives up.
            // The final flush's time (`BulkOptions.shutdownFlushLimit`): a cluster that does not answer (down, or
            // accepting connections and answering nothing) must not hold the process up for its request timeout.
            // What is not sent by then is left to the catch-up at the next start (its margin covers it).
            let limit = bulk.options.shutdownFlushLimit
            tasks.addTask {
                try? await Task.sleep(for: limit)
                return .limit
            }
            var running: Set<Ended> = [.flusher, .preparation]
            while let ended = await tasks.next() {
                guard !running.isEmpty else { continue }  // the limit's task, cancelled
                if ended == .limit {
                    let buffered = await bulk.bufferedCount
                    logger.warning("elasticsearch did not take the last documents within \(limit) of the shutdown; the catch-up indexes them at the next start", metadata: ["buffered": "\(buffered)"])
                    running = []
                    tasks.cancelAll()
                    continue
                }
                running.remove(ended)
                if running.isEmpty { tasks.cancelAll() }
            }
        }
        let stats = await bulk.statistics
        logger.info("elasticsearch indexer stopped", metadata: ["indexed": "\(stats.indexed)", "failed": "\(stats.failed)", "dropped": "\(stats.dropped)"])
        await shutdown()
    }
}
