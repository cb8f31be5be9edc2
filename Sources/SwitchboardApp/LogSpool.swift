import Logging
import ServiceLifecycle
import SwitchboardLifecycle
import SwitchboardCore

/// `log_stream` entries that could not be written (the queue was unreachable), kept in memory and written
/// later by `LogSpoolService`, so that an outage of the queue does not leave holes in `communication-logs`.
///
/// Bounded: past `capacity` the oldest entries are dropped and counted. Entries still here when the process
/// dies are lost from the logs index only; every status change stays in the store's history.
public actor LogSpool {
    public let capacity: Int
    private var entries: [[String: String]] = []
    /// Entries dropped because the spool was full.
    public private(set) var dropped = 0

    public init(capacity: Int = 100_000) {
        self.capacity = max(1, capacity)
    }

    /// Entries waiting.
    public var count: Int { entries.count }

    /// Keeps `batch` for a later attempt; returns how many older entries had to be dropped to make room.
    @discardableResult
    public func keep(_ batch: [[String: String]]) -> Int {
        entries.append(contentsOf: batch)
        return dropOldestBeyondCapacity()
    }

    /// Takes up to `limit` of the oldest entries.
    public func take(_ limit: Int) -> [[String: String]] {
        let n = min(limit, entries.count)
        defer { entries.removeFirst(n) }
        return Array(entries.prefix(n))
    }

    /// Puts back entries taken but not written, ahead of the rest.
    public func putBack(_ batch: [[String: String]]) {
        entries.insert(contentsOf: batch, at: 0)
        dropOldestBeyondCapacity()
    }

    @discardableResult
    private func dropOldestBeyondCapacity() -> Int {
        let excess = entries.count - capacity
        guard excess > 0 else { return 0 }
        entries.removeFirst(excess)
        dropped += excess
        return excess
    }

    /// Writes what is waiting to `log_stream`, oldest first, until the spool is empty or a write fails.
    /// Returns how many entries were written.
    @discardableResult
    public func drain(to queue: any MessageQueue, feed: (any StatusFeed)? = nil, chunk: Int = 1000) async throws -> Int {
        var written = 0
        while !entries.isEmpty {
            let batch = take(chunk)
            do {
                try await queue.publish(stream: StreamNames.log, entries: batch)
                try await feed?.append(batch.compactMap(LogRecord.init(fields:)))
            } catch {
                putBack(batch)
                throw error
            }
            written += batch.count
        }
        return written
    }
}

/// Writes the entries of the adapters' `LogSpool` once the queue answers again; on shutdown, one last attempt.
public struct LogSpoolService: Service {
    let adapters: Adapters
    let interval: Duration
    let logger: Logger

    public init(adapters: Adapters, interval: Duration = .seconds(1), logger: Logger) {
        self.adapters = adapters
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        await ServiceLoop.run("log spool", logger: logger) {
            await pause(for: interval)
            await drain()
            return .zero
        }
        await drain()
    }

    func drain() async {
        let spool = adapters.logSpool
        guard await spool.count > 0 else { return }
        do {
            let n = try await spool.drain(to: adapters.queue, feed: adapters.feed)
            logger.info("spooled log entries written to log_stream", metadata: ["count": "\(n)"])
        } catch {
            let waiting = await spool.count
            logger.warning("log_stream still unreachable; log entries kept in memory", metadata: ["waiting": "\(waiting)", "error": "\(error)"])
        }
    }
}
