import Logging
import ServiceLifecycle
import SwitchboardLifecycle
import SwitchboardCore

/// Re-indexes from the store what a background search index missed.
///
/// At start it indexes again every communication created since the index's newest `createdAt` minus `margin`
/// (what a crash lost from the in-memory buffer; everything when the index is empty). Only documents created
/// before this start count, so documents this process indexes meanwhile do not move the starting point. Then, every `interval`,
/// it asks the index whether documents were dropped (buffer full, batch given up) and re-indexes from the
/// earliest one's `createdAt`, waiting with backoff until the index answers again. Re-indexing cannot
/// overwrite newer data: documents carry their `timestamp` as version.
public struct SearchCatchUp: Service {
    let store: any CommunicationStore
    let index: any CatchingUpSearchIndex
    let margin: Duration
    let interval: Duration
    let pageSize: Int
    let logger: Logger
    let clock: @Sendable () -> Timestamp

    public init(store: any CommunicationStore, index: any CatchingUpSearchIndex, margin: Duration = .seconds(300), interval: Duration = .seconds(1), pageSize: Int = 500, logger: Logger, clock: @escaping @Sendable () -> Timestamp = SystemTime.now) {
        self.clock = clock
        self.store = store
        self.index = index
        self.margin = margin
        self.interval = interval
        self.pageSize = max(1, pageSize)
        self.logger = logger
    }

    public func run() async throws {
        var since: Timestamp?
        var startDone = false
        let startedAt = clock()
        await ServiceLoop.run("search catch-up (waiting for the index)", logger: logger, backoff: Backoff(initial: interval * 2, maximum: .seconds(10)), level: .warning) {
            if !startDone {
                let newest = try await index.newestCreatedAt(before: startedAt)
                since = newest.map { Timestamp(milliseconds: $0.milliseconds - Int64(margin.components.seconds) * 1000) } ?? Timestamp(milliseconds: 0)
                startDone = true
            }
            if let dirty = await index.takeDirtySince() { since = min(since ?? dirty, dirty) }
            if let from = since {
                let count = try await catchUp(from: from)
                since = nil
                if count > 0 { logger.notice("search catch-up done", metadata: ["since": "\(from)", "documents": "\(count)"]) }
            }
            return interval
        }
        // What is still to do stays with the index for the next start's margin; nothing else to keep.
        if let since { await index.markDirty(since: since) }
    }

    /// Re-indexes every communication created at or after `since`; returns how many.
    @discardableResult
    public func catchUp(from since: Timestamp) async throws -> Int {
        var after: String?
        var count = 0
        while true {
            let page = try await store.communications(createdSince: since, after: after, limit: pageSize)
            guard let last = page.last else { return count }
            try await index.reindex(communications: page.map(CommunicationDocument.init))
            count += page.count
            after = last.id
            if page.count < pageSize { return count }
        }
    }
}
