/// A search index that indexes in the background and may therefore miss documents (its cluster was down, its
/// buffer overflowed). The catch-up service (`SearchCatchUp`) re-indexes what it missed from the store.
public protocol CatchingUpSearchIndex: SearchIndex {
    /// The earliest `createdAt` among communication documents dropped or given up since the last call, or
    /// nil; forgets it.
    func takeDirtySince() async -> Timestamp?
    /// Remembers `since` again, when a catch-up from it could not finish.
    func markDirty(since: Timestamp) async
    /// The newest `createdAt` before `before` in the index, or nil when it holds no such communication.
    func newestCreatedAt(before: Timestamp) async throws -> Timestamp?
    /// Indexes documents and returns once the index confirmed them (unlike `index(communications:)`).
    func reindex(communications: [CommunicationDocument]) async throws
}
