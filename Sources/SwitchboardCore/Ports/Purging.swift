/// Implemented by the adapters that delete their own old data for the retention service
/// (`SWITCHBOARD_RETENTION_DAYS`). What "old" means is the adapter's: a store deletes the communications
/// past dispatch (`CommunicationStatus.isPastDispatch`) whose last change is before the cutoff, never one still
/// on its way; a search index deletes the log records from before it (and the copies of such communications);
/// a queue the dead-letter entries added before it; a sandbox mailbox the messages recorded before it. Work is
/// done in small transactions, so that accepting and delivering go on meanwhile. Engines with a lifecycle of
/// their own (Elasticsearch's ILM) leave it out.
public protocol Purging: Sendable {
    /// Deletes what is older than `cutoff`; returns how many records (rows, documents) were deleted.
    func purge(before cutoff: Timestamp) async throws -> Int
}
