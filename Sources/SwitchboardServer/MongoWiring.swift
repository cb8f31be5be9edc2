import Logging
import ServiceLifecycle
#if MongoDB
import SwitchboardMongo
#endif

extension Settings {
    /// Whether this build has the MongoDB store (the `MongoDB` package trait).
    public static var mongoDBAvailable: Bool {
        #if MongoDB
        true
        #else
        false
        #endif
    }

    /// Checks that `mongoURL`, if set, can be used: this build has the MongoDB store and libmongoc parses the URL
    /// (the error never shows the password).
    public func validateMongoURL() throws {
        guard let mongoURL else { return }
        #if MongoDB
        do {
            try MongoConnection.validate(url: mongoURL)
        } catch {
            throw SettingsError("MONGODB_URL=\(Self.mask(mongoURL)): \(error)")
        }
        #else
        throw SettingsError("MONGODB_URL is set, but this build has no MongoDB store. Build with the MongoDB trait (swift build -c release --traits MongoDB; needs libmongoc-dev), or unset MONGODB_URL to keep the store on SQLite.")
        #endif
    }
}

#if MongoDB
/// Creates the MongoDB indexes at start and closes the client pool after the services that use it stopped
/// (listed right after `DatabaseService`, it shuts down after every pipeline service).
public struct MongoService: Service {
    let store: MongoStore
    let logger: Logger

    public init(store: MongoStore, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    public func run() async throws {
        do throws(MongoError) {
            try await store.prepare()
            logger.info("mongodb reachable", metadata: ["database": "\(store.databaseName)"])
        } catch .connection(let message) {
            // Not fatal: the API reports the store down and every operation retries the connection (and the indexes).
            logger.warning("mongodb unreachable at start; retrying on use", metadata: ["error": "\(message)"])
        }
        try? await gracefulShutdown()
        await store.shutdown()
        logger.info("mongodb connections closed")
    }
}
#endif
