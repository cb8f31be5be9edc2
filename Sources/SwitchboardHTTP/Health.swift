import HTTPTypes
import Hummingbird
import SwitchboardCore

/// The health endpoints. The open ones (`/health`, `/health/live`, `/health/ready`) say only up, degraded or
/// down: no engine, address or error text (a connection error can name hosts, users and URLs). The details are
/// `GET /api/v1/health`, under the API's authentication (`read`).
extension API {
    /// One dependency's state, checked now.
    struct DependencyHealth {
        var role: String
        var engine: String
        /// `up`, `degraded` (the store answers but refused writes lately) or `down`.
        var status: String
        var error: String?
    }

    /// The three dependencies, checked concurrently, and the overall status: `unavailable` when the store is
    /// down, `degraded` when the queue or search is down or the store refused writes lately, else `ready`.
    func dependencyHealth() async -> (status: String, dependencies: [DependencyHealth]) {
        async let store: String? = check { try await adapters.store.ping() }
        async let queue: String? = check { try await adapters.queue.ping() }
        async let search: String? = check { try await adapters.search.ping() }
        var deps = await [
            DependencyHealth(role: "store", engine: adapters.names.store, status: "up", error: store),
            DependencyHealth(role: "queue", engine: adapters.names.queue, status: "up", error: queue),
            DependencyHealth(role: "search", engine: adapters.names.search, status: "up", error: search),
        ]
        for i in deps.indices where deps[i].error != nil { deps[i].status = "down" }
        // A store that answers but refuses writes (its disk is full, say) is degraded: reads work, POSTs get 503.
        if deps[0].error == nil, let refusal = writes.recentRefusal(within: StoreWriteHealth.memory) {
            deps[0].status = "degraded"
            deps[0].error = "writes refused \(refusal.age.components.seconds) s ago: \(refusal.reason)"
        }
        // Only the store is essential: with the queue down the router still accepts (the outbox publishes later),
        // with search down it accepts and delivers (the catch-up indexes later). Taking the instance out of a load
        // balancer then would turn a degraded service into an outage, so those answer 200 "degraded".
        let status = deps[0].status == "down" ? "unavailable" : deps.contains { $0.status != "up" } ? "degraded" : "ready"
        return (status, deps)
    }

    /// `GET /health/ready`: each dependency `up`, `degraded` or `down`, nothing more; 503 only when the store is down.
    func ready() async -> Response {
        let (status, deps) = await dependencyHealth()
        let shown = Dictionary(uniqueKeysWithValues: deps.map { ($0.role, JSONValue.object(["status": .string($0.status)])) })
        return .json(.object(["status": .string(status), "dependencies": .object(shown)]), status: status == "unavailable" ? .serviceUnavailable : .ok)
    }

    /// `GET /api/v1/health`: the same, with each dependency's engine and the error that made it down or degraded.
    func healthDetails() async -> Response {
        let (status, deps) = await dependencyHealth()
        let shown = Dictionary(uniqueKeysWithValues: deps.map {
            ($0.role, JSONValue.object(["engine": .string($0.engine), "status": .string($0.status), "error": Render.optional($0.error)]))
        })
        return .json(.object(["status": .string(status), "dependencies": .object(shown)]), status: status == "unavailable" ? .serviceUnavailable : .ok)
    }

    /// `GET /health` and `GET /health/live`: the process answers.
    static func live() -> Response {
        .json(.object(["status": .string("ok")]))
    }

    func check(_ body: @Sendable () async throws -> Void) async -> String? {
        do {
            try await body()
            return nil
        } catch {
            return "\(error)"
        }
    }
}
