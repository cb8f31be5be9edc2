import Logging
import ServiceLifecycle

/// The queue's own lifecycle: at start it says whether Redis answers (not fatal: the router accepts into the
/// outbox and the workers retry until it is back); it keeps its connections open while the services that use
/// them run and closes them on graceful shutdown. List it before those services, so that it stops after them.
extension RedisStreamQueue: Service {
    public func run() async throws {
        do {
            try await ping()
            logger.info("redis reachable")
        } catch {
            logger.warning("redis unreachable at start; retrying in the background", metadata: ["error": "\(error)"])
        }
        try? await gracefulShutdown()
        await shutdown()
        logger.info("redis connections closed")
    }
}
