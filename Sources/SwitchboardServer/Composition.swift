import Logging
import ServiceLifecycle
import SwitchboardApp
import SwitchboardCore
import SwitchboardElasticsearch
import SwitchboardRedisStreams
import SwitchboardSQLite
import CoreMetrics
import SwitchboardTelemetry
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
/// - Message templates live beside the communications too (MongoDB `templates`, else the SQLite `templates` table).
/// - Status-callback endpoints and deliveries live beside the communications too (MongoDB `callback_*`
///   collections, else the SQLite file's `callback_*` tables).
/// - Email attachments' bytes live beside the communications too (MongoDB `attachments`, else the SQLite file's
///   `attachments` table).
/// - API keys live beside the communications: in MongoDB (`api_keys`, on the store's client pool) when the store
///   is MongoDB, else in the SQLite file (`api_keys`).
/// - The API keys' rate limiter is Redis's (`RedisRateLimiter`, on the stream queue's client, one bucket per key
///   shared by every router) exactly when `REDIS_URL` is set, with the process's own `LocalRateLimiter` as its
///   fallback while Redis does not answer; else the local one alone (per process).
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
    /// Status-callback endpoints, deliveries and cursor: chosen with the store, like the keys.
    var callbackStore: any CallbackStore
    /// Message templates: chosen with the store, like the keys.
    var templateStore: any TemplateStore
    /// The API keys' rate limiter, and its engine's name (`redis` or `local`).
    var rateLimiter: Picked<any RateLimiter>
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

    /// - Parameter metrics: where the engines record (`switchboard_store_*`, `…_redis_pool_*`, `…_search_*`,
    ///   `…_engine_errors_total`).
    init(settings: Settings, logger: Logger, clock: @escaping @Sendable () -> Timestamp, metrics: any MetricsFactory) throws {
        database = try SQLiteDatabase(options: SQLiteOptions(path: settings.databasePath, synchronous: settings.synchronous), logger: logger, metrics: StoreEngineMetrics(engine: "sqlite", factory: metrics))
        let store = try Self.store(settings, database: database, logger: logger, metrics: metrics)
        let queue = try Self.queue(settings, database: database, logger: logger, clock: clock, metrics: metrics)
        let search = Self.search(settings, database: database, storeIsSQLite: store.adapter is SQLiteStore, logger: logger, metrics: metrics)
        redisQueue = queue.adapter as? RedisStreamQueue
        elasticsearch = search.adapter as? ElasticsearchSearchIndex
        #if MongoDB
        mongoStore = store.adapter as? MongoStore
        #endif
        // Keys, callbacks, templates, suppressions and attachments live with the store: on its engine.
        var beside = EngineStores.sqlite(database)
        #if MongoDB
        if let mongo = store.adapter as? MongoStore { beside = .mongo(mongo.connection) }
        #endif
        keyStore = beside.keys
        callbackStore = beside.callbacks
        templateStore = beside.templates
        rateLimiter = Self.rateLimiter(queue: redisQueue, logger: logger)
        let names = (store: store.name, queue: queue.name, search: search.name)
        // The status feed lives with the streams: in the SQLite file, or in Redis beside them.
        let feed: any StatusFeed = redisQueue.map { RedisStatusFeed(client: $0.client, retention: settings.events.retention, clock: clock) }
            ?? SQLiteStatusFeed(database: database, pollInterval: settings.events.pollInterval, clock: clock)
        let mailbox = SQLiteSandboxMailbox(database: database)
        engineServices = [SQLiteDatabaseService(database: database, logger: logger, reportEvery: settings.sqliteStatsInterval)]
        for picked in [store.engineServices, queue.engineServices, search.engineServices] { engineServices += picked }
        adapterServices = store.adapterServices + queue.adapterServices + search.adapterServices
        if store.adapter is SQLiteStore, let embeddedQueue = queue.adapter as? SQLiteQueue, search.adapter is SQLiteSearchIndex {
            let spool = LogSpool()
            adapters = Adapters(store: store.adapter, queue: queue.adapter, search: search.adapter, mailbox: mailbox, pipeline: SQLitePipeline(queue: embeddedQueue), logSpool: spool, feed: feed, names: names)
        } else {
            let (portByPort, pipeline) = Adapters.portByPort(store: store.adapter, queue: queue.adapter, search: search.adapter, mailbox: mailbox, feed: feed, options: Self.options(settings, portByPort: true), names: names, logger: logger, clock: clock)
            adapters = portByPort
            // First among the adapter services, so that it stops after the services that accept.
            adapterServices.insert(pipeline, at: 0)
        }
        adapters.attachments = beside.attachments
        adapters.suppressions = beside.suppressions
    }

    /// The stores that go with the communication store, on its engine.
    struct EngineStores {
        var keys: any KeyStore
        var callbacks: any CallbackStore
        var templates: any TemplateStore
        var suppressions: any SuppressionStore
        var attachments: any AttachmentStore

        /// In the SQLite file.
        static func sqlite(_ database: SQLiteDatabase) -> EngineStores {
            EngineStores(
                keys: SQLiteKeyStore(database: database), callbacks: SQLiteCallbackStore(database: database), templates: SQLiteTemplateStore(database: database),
                suppressions: SQLiteSuppressionStore(database: database), attachments: SQLiteAttachmentStore(database: database))
        }

        #if MongoDB
        /// In the MongoDB store's database, on its pool.
        static func mongo(_ connection: MongoConnection) -> EngineStores {
            EngineStores(
                keys: MongoKeyStore(connection: connection), callbacks: MongoCallbackStore(connection: connection), templates: MongoTemplateStore(connection: connection),
                suppressions: MongoSuppressionStore(connection: connection), attachments: MongoAttachmentStore(connection: connection))
        }
        #endif
    }

    static func store(_ settings: Settings, database: SQLiteDatabase, logger: Logger, metrics: any MetricsFactory) throws -> Picked<any CommunicationStore> {
        #if MongoDB
        if let url = settings.mongoURL {
            let mongo: MongoStore
            do { mongo = try MongoStore(url: url, logger: logger, metrics: StoreEngineMetrics(engine: "mongodb", factory: metrics)) } catch { throw SettingsError("MONGODB_URL=\(Settings.mask(url)): \(error)") }
            return Picked(adapter: mongo, name: "mongodb", engineServices: [mongo])
        }
        #else
        try settings.validateMongoURL()
        #endif
        return Picked(adapter: SQLiteStore(database: database), name: "sqlite")
    }

    static func queue(_ settings: Settings, database: SQLiteDatabase, logger: Logger, clock: @escaping @Sendable () -> Timestamp, metrics: any MetricsFactory) throws -> Picked<any MessageQueue> {
        if let url = settings.redisURL {
            let pools = (commands: RedisPoolMetrics(pool: "commands", factory: metrics), blocking: RedisPoolMetrics(pool: "blocking", factory: metrics))
            let redis = try RedisStreamQueue(url: url, lease: settings.lease, unavailableWait: settings.redisUnavailableWait, logger: logger, metrics: pools)
            return Picked(adapter: redis, name: "redis", engineServices: [redis])
        }
        return Picked(adapter: SQLiteQueue(database: database, lease: settings.lease, pollInterval: settings.pollInterval, clock: clock), name: "sqlite")
    }

    /// Redis's limiter on the stream queue's client when the queue is Redis (`REDIS_URL`), else the local one.
    static func rateLimiter(queue: RedisStreamQueue?, logger: Logger) -> Picked<any RateLimiter> {
        let local = LocalRateLimiter()
        guard let queue else { return Picked(adapter: local, name: "local") }
        return Picked(adapter: RedisRateLimiter(client: queue.client, fallback: local, logger: logger), name: "redis")
    }

    static func search(_ settings: Settings, database: SQLiteDatabase, storeIsSQLite: Bool, logger: Logger, metrics: any MetricsFactory) -> Picked<any SearchIndex> {
        if let es = settings.elasticsearch {
            let index = ElasticsearchSearchIndex(configuration: es, logger: logger, metrics: SearchEngineMetrics(engine: "elasticsearch", factory: metrics))
            return Picked(adapter: index, name: "elasticsearch", adapterServices: [index])
        }
        let index = SQLiteSearchIndex(database: database, documents: storeIsSQLite ? .storeRows : .ownTable)
        return Picked(adapter: index, name: "sqlite", engineServices: [index.refreshService(logger: logger)])
    }
}
