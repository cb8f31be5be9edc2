import Logging
import ServiceLifecycle
import SwitchboardApp
import SwitchboardCore
import SwitchboardElasticsearch
import SwitchboardRedisStreams
import SwitchboardSQLite
#if MongoDB
import SwitchboardMongo
#endif

/// The one place where the adapters are chosen from `Settings` and paired: each port is picked as one value
/// (the adapter and the services it brings), and the rules that tie adapters together are stated here.
///
/// Pairings:
/// - The SQLite file is always open: it holds the sandbox mailbox, and whatever port is not elsewhere.
/// - Search on SQLite reads the store's rows when the store is SQLite too (`.storeRows`); beside MongoDB it
///   keeps its own copy (`.ownTable`).
/// - The pipeline is the embedded one (`SQLitePipeline`, one transaction per step) only when store, queue and
///   search are all in the SQLite file; else the port-by-port one (`PortByPortPipeline`).
/// - The stall watchdog (`SWITCHBOARD_STALL_TIMEOUT_MS`) is on exactly when the pipeline is port-by-port: only
///   then can a stream entry be lost on its own.
/// - API keys live beside the communications: in MongoDB (`api_keys`, on the store's client pool) when the store
///   is MongoDB, else in the SQLite file (`api_keys`).
struct Composition {
    var database: SQLiteDatabase
    var redisQueue: RedisStreamQueue?
    var elasticsearch: ElasticsearchSearchIndex?
    #if MongoDB
    var mongoStore: MongoStore?
    #endif
    var adapters: Adapters
    /// Where the API keys are: chosen with the store.
    var keyStore: any KeyStore
    /// Services that keep an engine open: started first, stopped last (the database last of all).
    var engineServices: [any Service] = []
    /// Services the adapters run beside the role's services.
    var adapterServices: [any Service] = []

    /// One port's adapter as picked, with its engine's name and the services it brings.
    struct Picked<Port: Sendable> {
        var adapter: Port
        var name: String
        var engineServices: [any Service] = []
        var adapterServices: [any Service] = []
    }

    /// The pipeline options for `settings`: the stall watchdog only on the port-by-port pipeline.
    static func options(_ settings: Settings, portByPort: Bool) -> PipelineOptions {
        var o = settings.pipeline
        o.stallTimeout = portByPort ? settings.stallTimeout : nil
        return o
    }

    init(settings: Settings, logger: Logger, clock: @escaping @Sendable () -> Timestamp) throws {
        database = try SQLiteDatabase(options: SQLiteOptions(path: settings.databasePath, synchronous: settings.synchronous), logger: logger)
        let store = try Self.store(settings, database: database, logger: logger)
        let queue = try Self.queue(settings, database: database, logger: logger, clock: clock)
        let search = Self.search(settings, database: database, storeIsSQLite: store.adapter is SQLiteStore, logger: logger)
        redisQueue = queue.adapter as? RedisStreamQueue
        elasticsearch = search.adapter as? ElasticsearchSearchIndex
        #if MongoDB
        mongoStore = store.adapter as? MongoStore
        #endif
        keyStore = Self.keyStore(store: store.adapter, database: database)
        let names = (store: store.name, queue: queue.name, search: search.name)
        let mailbox = SQLiteSandboxMailbox(database: database)
        engineServices = [SQLiteDatabaseService(database: database, logger: logger, reportEvery: settings.sqliteStatsInterval)]
        for picked in [store.engineServices, queue.engineServices, search.engineServices] { engineServices += picked }
        adapterServices = store.adapterServices + queue.adapterServices + search.adapterServices
        if store.adapter is SQLiteStore, let embeddedQueue = queue.adapter as? SQLiteQueue, search.adapter is SQLiteSearchIndex {
            let spool = LogSpool()
            adapters = Adapters(store: store.adapter, queue: queue.adapter, search: search.adapter, mailbox: mailbox, pipeline: SQLitePipeline(queue: embeddedQueue), logSpool: spool, names: names)
        } else {
            let (portByPort, pipeline) = Adapters.portByPort(store: store.adapter, queue: queue.adapter, search: search.adapter, mailbox: mailbox, options: Self.options(settings, portByPort: true), names: names, logger: logger, clock: clock)
            adapters = portByPort
            // First among the adapter services, so that it stops after the services that accept.
            adapterServices.insert(pipeline, at: 0)
        }
    }

    static func store(_ settings: Settings, database: SQLiteDatabase, logger: Logger) throws -> Picked<any CommunicationStore> {
        #if MongoDB
        if let url = settings.mongoURL {
            let mongo: MongoStore
            do { mongo = try MongoStore(url: url, logger: logger) } catch { throw SettingsError("MONGODB_URL=\(Settings.mask(url)): \(error)") }
            return Picked(adapter: mongo, name: "mongodb", engineServices: [mongo])
        }
        #else
        try settings.validateMongoURL()
        #endif
        return Picked(adapter: SQLiteStore(database: database), name: "sqlite")
    }

    /// The key store that goes with `store`: the same engine.
    static func keyStore(store: any CommunicationStore, database: SQLiteDatabase) -> any KeyStore {
        #if MongoDB
        if let mongo = store as? MongoStore { return MongoKeyStore(connection: mongo.connection) }
        #endif
        return SQLiteKeyStore(database: database)
    }

    static func queue(_ settings: Settings, database: SQLiteDatabase, logger: Logger, clock: @escaping @Sendable () -> Timestamp) throws -> Picked<any MessageQueue> {
        if let url = settings.redisURL {
            let redis = try RedisStreamQueue(url: url, lease: settings.lease, unavailableWait: settings.redisUnavailableWait, logger: logger)
            return Picked(adapter: redis, name: "redis", engineServices: [redis])
        }
        return Picked(adapter: SQLiteQueue(database: database, lease: settings.lease, pollInterval: settings.pollInterval, clock: clock), name: "sqlite")
    }

    static func search(_ settings: Settings, database: SQLiteDatabase, storeIsSQLite: Bool, logger: Logger) -> Picked<any SearchIndex> {
        if let es = settings.elasticsearch {
            let index = ElasticsearchSearchIndex(configuration: es, logger: logger)
            return Picked(adapter: index, name: "elasticsearch", adapterServices: [index])
        }
        let index = SQLiteSearchIndex(database: database, documents: storeIsSQLite ? .storeRows : .ownTable)
        return Picked(adapter: index, name: "sqlite", engineServices: [index.refreshService(logger: logger)])
    }
}
