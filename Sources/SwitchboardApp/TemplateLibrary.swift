import SwitchboardCore
import Synchronization

/// The templates as a router uses them: the `TemplateStore`, with the versions of each name read at most once
/// per `ttl` (5 s by default) and each version compiled once.
///
/// A save or an archive through this router is seen by it at once (its entry is dropped); another router sees
/// it within `ttl`: that is the bound on how late a new version is used. Compiled versions never go stale
/// (a version is never changed), so they are kept until the cache is full.
public final class TemplateLibrary: Sendable {
    public let store: any TemplateStore
    public let ttl: Duration
    let clock: @Sendable () -> ContinuousClock.Instant
    /// Names (at most `maxNames`) and their versions as last read, an unknown name too (as no version).
    private let versionsByName = Mutex<[String: (versions: [MessageTemplate], readAt: ContinuousClock.Instant)]>([:])
    private let compiledByVersion = Mutex<[CompiledKey: TemplateRenderer.Compiled]>([:])
    static let maxNames = 10_000
    static let maxCompiled = 10_000

    struct CompiledKey: Hashable {
        var name: String
        var locale: String
        var version: Int
    }

    public init(store: any TemplateStore, ttl: Duration = .seconds(5), clock: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }) {
        self.store = store
        self.ttl = ttl
        self.clock = clock
    }

    /// Every version of `name` (empty: none), from the cache while it is fresh.
    public func versions(name: String) async throws -> [MessageTemplate] {
        let now = clock()
        if let hit = versionsByName.withLock({ $0[name] }), now - hit.readAt < ttl { return hit.versions }
        let versions = try await store.versions(name: name)
        versionsByName.withLock { cache in
            if cache.count >= Self.maxNames { cache.removeAll(keepingCapacity: true) }
            cache[name] = (versions, now)
        }
        return versions
    }

    /// Saves a new version (this router uses it at once).
    public func save(_ draft: TemplateDraft) async throws -> MessageTemplate {
        let saved = try await store.save(draft)
        forget(draft.name)
        return saved
    }

    /// Archives every version of `name` (this router refuses it at once); how many were newly archived.
    public func archive(name: String) async throws -> Int {
        let n = try await store.archive(name: name)
        forget(name)
        return n
    }

    func forget(_ name: String) {
        _ = versionsByName.withLock { $0.removeValue(forKey: name) }
    }

    /// `t` compiled, once per version.
    public func compiled(_ t: MessageTemplate) -> Result<TemplateRenderer.Compiled, TemplateRenderer.Problem> {
        let key = CompiledKey(name: t.name, locale: t.locale, version: t.version)
        if let hit = compiledByVersion.withLock({ $0[key] }) { return .success(hit) }
        let result = TemplateRenderer.compile(t)
        if case .success(let c) = result {
            compiledByVersion.withLock { cache in
                if cache.count >= Self.maxCompiled { cache.removeAll(keepingCapacity: true) }
                cache[key] = c
            }
        }
        return result
    }

    /// Renders `t` with `variables`.
    public func render(_ t: MessageTemplate, variables: [String: JSONValue]) -> Result<TemplateRenderer.Rendered, TemplateRenderer.Problem> {
        compiled(t).flatMap { TemplateRenderer.render($0, variables: variables) }
    }
}
