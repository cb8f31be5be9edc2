import Logging
import ServiceLifecycle
import SwitchboardLifecycle
import SwitchboardCore

extension MessageQueue {
    /// Creates the consumer group, retrying with backoff while the queue is unreachable (a worker started
    /// while Redis is down waits for it instead of exiting). Returns false if the service was asked to stop first.
    func createGroupWhenReachable(stream: String, group: String, logger: Logger) async -> Bool {
        do {
            try await ServiceLoop.retrying("create the consumer group \(group) of \(stream)", logger: logger) { try await createGroup(stream: stream, group: group) }
            return true
        } catch {
            return false
        }
    }

    /// Runs `body` while renewing the leases of entries `ids`, held by `consumer`, every third of the lease
    /// (`renew`), at most `maxRenewals` times: a consumer still working on entries keeps them, one that
    /// crashed renews nothing and its entries are taken over when their lease runs out.
    func keepingLeases<T: Sendable>(
        stream: String, group: String, consumer: String, ids: [String], maxRenewals: Int, logger: Logger, _ body: () async throws -> T
    ) async throws -> T {
        guard !ids.isEmpty, maxRenewals > 0 else { return try await body() }
        var seen = Set<String>()
        let ids = ids.filter { seen.insert($0).inserted }  // an embedded entry may stand for several records
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { await self.renewLeases(stream: stream, group: group, consumer: consumer, ids: ids, maxRenewals: maxRenewals, logger: logger) }
            defer { tasks.cancelAll() }
            return try await body()
        }
    }

    private func renewLeases(stream: String, group: String, consumer: String, ids: [String], maxRenewals: Int, logger: Logger) async {
        for _ in 0..<maxRenewals {
            do { try await Task.sleep(for: lease / 3) } catch { return }
            do {
                let renewed = try await renew(stream: stream, group: group, consumer: consumer, ids: ids)
                if renewed.count < ids.count {
                    logger.warning("entries still being worked on were taken over by another consumer", metadata: ["stream": "\(stream)", "lost": "\(ids.count - renewed.count)", "held": "\(ids.count)"])
                }
            } catch {
                logger.warning("could not renew the leases of entries still being worked on", metadata: ["stream": "\(stream)", "error": "\(error)", "held": "\(ids.count)"])
            }
        }
        if !Task.isCancelled {
            logger.warning("entries held for \(maxRenewals) lease renewals are no longer renewed; another consumer may take them over", metadata: ["stream": "\(stream)", "held": "\(ids.count)"])
        }
    }
}
