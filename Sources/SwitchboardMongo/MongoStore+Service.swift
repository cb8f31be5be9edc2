#if MongoDB
import Logging
import ServiceLifecycle

/// The store's own lifecycle: it creates the indexes at start (not fatal when MongoDB is down: the API reports
/// the store down and every operation retries the connection and the indexes) and closes the client pool on
/// graceful shutdown. List it before the services that use it, so that it stops after them.
extension MongoStore: Service {
    public func run() async throws {
        do throws(MongoError) {
            try await prepare()
            logger.info("mongodb reachable", metadata: ["database": "\(databaseName)"])
        } catch .connection(let message) {
            logger.warning("mongodb unreachable at start; retrying on use", metadata: ["error": "\(message)"])
        }
        try? await gracefulShutdown()
        await shutdown()
        logger.info("mongodb connections closed")
    }
}
#endif
