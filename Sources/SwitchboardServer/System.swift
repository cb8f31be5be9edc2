import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import SwitchboardApp
import SwitchboardCore
import SwitchboardElasticsearch
import SwitchboardHTTP
import SwitchboardProviders
import SwitchboardRedisStreams
import SwitchboardSMTP
import SwitchboardSQLite
import SwitchboardSandbox
#if MongoDB
import SwitchboardMongo
#endif

/// Which services a process runs.
public enum Role: Sendable, Hashable {
    /// Everything in one process (`switchboard serve`).
    case all
    /// The HTTP API and the outbox scheduler.
    case router
    /// One channel's worker.
    case worker(Channel)
    /// The logging service.
    case logger
}

/// The assembled system: engines, providers and the services of a role.
public struct SwitchboardSystem: Sendable {
    public let settings: Settings
    public let database: SQLiteDatabase
    /// The Redis Streams queue when `REDIS_URL` is set (the store and search stay on `database`).
    public let redisQueue: RedisStreamQueue?
    /// The search index when `ELASTICSEARCH_NODE` is set (else search is SQLite FTS5 in `database`).
    public let elasticsearch: ElasticsearchSearchIndex?
    #if MongoDB
    /// The MongoDB store when `MONGODB_URL` is set (queue and search stay as they are).
    public let mongoStore: MongoStore?
    #endif
    /// The adapters; tests may swap one (e.g. drop `pipeline` to run the general, port-by-port path).
    public var engine: Engine
    public let logger: Logger
    let clock: @Sendable () -> Timestamp
    /// The SMTP provider, shared by every email worker of the process (one connection pool).
    let smtp: SMTPProvider?
    /// The providers, one instance per kind (so a circuit and a rate limit are shared by the channel
    /// workers of this process): real ones behind a `ResilientProvider`, the sandbox as it is.
    let providerInstances: [ProviderKind: any DeliveryProvider]

    /// Opens the engines named by `settings` and builds the configured providers.
    public init(settings: Settings, logger: Logger, clock: @escaping @Sendable () -> Timestamp = SystemTime.now) throws {
        self.settings = settings
        self.logger = logger
        self.clock = clock
        let p = settings.providers
        var smtpLogger = logger
        smtpLogger[metadataKey: "provider"] = "smtp"
        let smtp: SMTPProvider?
        do {
            smtp = try p.smtp.map { try SMTPProvider(configuration: $0, logger: smtpLogger) }
        } catch {
            throw SettingsError("SMTP settings are unusable: \(error)")
        }
        self.smtp = smtp
        database = try SQLiteDatabase(options: SQLiteOptions(path: settings.databasePath, synchronous: settings.synchronous), logger: logger)
        let queue: any MessageQueue
        if let url = settings.redisURL {
            let redis = try RedisStreamQueue(url: url, lease: settings.lease, unavailableWait: settings.redisUnavailableWait, logger: logger)
            redisQueue = redis
            queue = redis
        } else {
            redisQueue = nil
            queue = SQLiteQueue(database: database, lease: settings.lease, pollInterval: settings.pollInterval, clock: clock)
        }
        let embeddedQueue = queue as? SQLiteQueue
        var store: any CommunicationStore = SQLiteStore(database: database)
        #if MongoDB
        mongoStore = try settings.mongoURL.map { url in
            do { return try MongoStore(url: url, logger: logger) } catch { throw SettingsError("MONGODB_URL=\(Settings.mask(url)): \(error)") }
        }
        if let mongoStore { store = mongoStore }
        #else
        try settings.validateMongoURL()
        #endif
        engine = Engine(
            store: store,
            queue: queue,
            // With the SQLite store in the same file, search reads its rows; beside MongoDB it keeps a copy.
            search: SQLiteSearchIndex(database: database, documents: settings.mongoURL == nil ? .storeRows : .ownTable),
            mailbox: SQLiteSandboxMailbox(database: database),
            // One transaction per pipeline step only when the store and the streams share the SQLite file.
            pipeline: settings.mongoURL == nil ? embeddedQueue.map(SQLitePipeline.init(queue:)) : nil,
            names: (store: settings.mongoURL == nil ? "sqlite" : "mongodb", queue: redisQueue == nil ? "sqlite" : "redis", search: "sqlite"))
        if let es = settings.elasticsearch {
            // The atomic pipeline writes SQLite's search tables, so it is off when search is elsewhere.
            let index = ElasticsearchSearchIndex(configuration: es, logger: logger)
            elasticsearch = index
            engine.search = index
            engine.pipeline = nil
            engine.names.search = "elasticsearch"
        } else {
            elasticsearch = nil
        }
        // The sandbox is never wrapped: its failures are simulated per recipient, not an outage.
        var instances: [ProviderKind: any DeliveryProvider] = [.sandbox: SandboxProvider(mailbox: engine.mailbox!, clock: clock)]
        func wrap(_ kind: ProviderKind, _ base: any DeliveryProvider, _ counts: @escaping @Sendable (ProviderError) -> Bool = { _ in true }) {
            let rate = p.rates[kind].map { TokenBucketStateMachine.Configuration(ratePerSecond: $0, burst: max(1, $0), maxWait: .seconds(2)) }
            instances[kind] = ResilientProvider(base, breaker: p.breaker, rateLimit: rate, logger: logger, countsAgainstCircuit: counts)
        }
        if let smtp { wrap(.smtp, smtp, SMTPProvider.countsAgainstCircuit) }
        if let t = p.twilio { wrap(.twilio, TwilioProvider(configuration: t)) }
        if let w = p.whatsApp { wrap(.meta, WhatsAppProvider(configuration: w)) }
        providerInstances = instances
    }

    /// The pipeline options in effect: the stall watchdog runs only when the streams can lose entries on their
    /// own (no atomic pipeline, i.e. Redis streams or a store apart from the streams).
    public var pipelineOptions: PipelineOptions {
        var o = settings.pipeline
        o.stallTimeout = engine.pipeline == nil ? settings.stallTimeout : nil
        return o
    }

    /// Closes the engines: the Redis connections, then the database. For embedders and tests; `run(role:)`
    /// closes them itself.
    public func close() async {
        await redisQueue?.shutdown()
        await elasticsearch?.shutdown()
        #if MongoDB
        await mongoStore?.shutdown()
        #endif
        await database.close()
    }

    /// The providers of `channel`, in failover order (`SWITCHBOARD_<CHANNEL>_PROVIDERS`, else the configured
    /// real provider, else the sandbox), each real one behind its circuit breaker and rate limit.
    public func providers(for channel: Channel) -> [any DeliveryProvider] {
        settings.providers.order(for: channel).compactMap { providerInstances[$0] }
    }

    /// The status webhooks this configuration serves.
    public var webhooks: Webhooks {
        let p = settings.providers
        return Webhooks(
            twilio: p.twilio.map { TwilioStatusWebhook(authToken: $0.authToken) },
            whatsApp: (p.whatsAppVerifyToken != nil || p.whatsAppAppSecret != nil) ? WhatsAppWebhook(verifyToken: p.whatsAppVerifyToken, appSecret: p.whatsAppAppSecret) : nil,
            publicURL: p.publicURL)
    }

    /// Closes provider connections (SMTP QUIT).
    public func shutdownProviders() async {
        await smtp?.shutdown()
    }

    /// A unique consumer name for this process: `<host>-<pid>-<role>`.
    public static func consumerName(_ suffix: String) -> String {
        "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)-\(suffix)"
    }

    /// The HTTP application (router API).
    public func application() -> Application<RouterResponder<BasicRequestContext>> {
        let api = API(engine: engine, dispatcher: Dispatcher(engine: engine, options: pipelineOptions, logger: logger, clock: clock), logger: logger, webhooks: webhooks)
        return Application(
            router: api.router(),
            server: .http1(configuration: .init(idleTimeout: settings.httpIdleTimeout.map { .init($0) })),
            configuration: .init(address: .hostname(settings.host, port: settings.port), serverName: "switchboard"),
            logger: logger)
    }

    /// What the retention service purges: the engines that can (`Purging`). Elasticsearch indices are left
    /// to the cluster's own lifecycle policies (ILM / ISM), as the README says.
    public var retentionTargets: [RetentionService.Target] {
        var targets: [RetentionService.Target] = []
        if let p = engine.store as? any Purging { targets.append(.init(name: "store", purging: p)) }
        if let p = engine.queue as? any Purging { targets.append(.init(name: "dead letters", purging: p)) }
        if let p = engine.search as? any Purging { targets.append(.init(name: "search index", purging: p)) }
        if let p = engine.mailbox as? any Purging { targets.append(.init(name: "sandbox", purging: p)) }
        return targets
    }

    /// The services of `role`, without the HTTP application.
    public func backgroundServices(role: Role) -> [any Service] {
        var services: [any Service] = []
        let options = pipelineOptions
        if let es = elasticsearch {
            // First, so that it stops last and flushes what the others indexed; the catch-up runs wherever
            // communications are indexed (not in a logging-only process).
            services.append(ElasticsearchService(index: es, logger: logger))
            if role != .logger {
                services.append(SearchCatchUp(store: engine.store, index: es, margin: settings.elasticsearch?.catchUpMargin ?? .seconds(300), interval: settings.elasticsearch?.catchUpInterval ?? .seconds(1), logger: logger, clock: clock))
            }
        }
        // Before the pipeline services, so it stops after them: its final attempt writes what they spooled.
        services.append(LogSpoolService(engine: engine, logger: logger))
        if role == .all || role == .router {
            services.append(OutboxScheduler(engine: engine, options: options, logger: logger, clock: clock))
            if let period = settings.retention {
                services.append(RetentionService(period: period, targets: retentionTargets, logger: logger, clock: clock))
            }
        }
        for channel in Channel.allCases where role == .all || role == .worker(channel) {
            services.append(ChannelWorker(channel: channel, engine: engine, providers: providers(for: channel), options: options, consumer: Self.consumerName(channel.rawValue), logger: logger, clock: clock))
        }
        if role == .all || role == .logger {
            services.append(LogIndexer(engine: engine, options: options, consumer: Self.consumerName("logger"), logger: logger))
        }
        return services
    }

    /// Runs `role` until SIGINT or SIGTERM, then shuts down gracefully: the HTTP server stops accepting,
    /// workers finish the batch in hand, and the database closes last.
    public func run(role: Role) async throws {
        var system = self
        if let es = elasticsearch, let info = try? await es.client.info() {
            system.engine.names.search = info.dialect.rawValue  // else "elasticsearch" until it answers
        }
        try await system.runServices(role: role)
    }

    func runServices(role: Role) async throws {
        var services: [any Service] = [DatabaseService(database: database, logger: logger, reportEvery: settings.sqliteStatsInterval)]
        if let search = engine.search as? SQLiteSearchIndex {
            services.append(PeriodicTask(name: "search refresh", interval: .seconds(1), logger: logger) { try await search.refresh() })
        }
        if let redisQueue {
            services.append(RedisService(queue: redisQueue, logger: logger))
        }
        #if MongoDB
        if let mongoStore {
            services.append(MongoService(store: mongoStore, logger: logger))
        }
        #endif
        services += backgroundServices(role: role)
        if role == .all || role == .router {
            services.append(application())
        }
        let group = ServiceGroup(configuration: .init(services: services.map { .init(service: $0) }, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            await shutdownProviders()
            throw error
        }
        await shutdownProviders()
    }
}

/// Keeps the database open while the other services run and closes it after they stopped (a service group
/// shuts its services down in reverse order, so this one, listed first, goes last).
public struct DatabaseService: Service {
    let database: SQLiteDatabase
    let logger: Logger
    /// When set, the writer's group-commit statistics are logged at this interval (`SWITCHBOARD_SQLITE_STATS`).
    let reportEvery: Duration?

    public init(database: SQLiteDatabase, logger: Logger, reportEvery: Duration? = nil) {
        self.database = database
        self.logger = logger
        self.reportEvery = reportEvery
    }

    public func run() async throws {
        if let every = reportEvery {
            var last = database.writerStatistics
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                await pause(for: every)
                let now = database.writerStatistics
                let groups = now.groups - last.groups, writes = now.writes - last.writes, pages = now.pages - last.pages
                logger.notice("sqlite writer", metadata: [
                    "commits": "\(groups)", "writes": "\(writes)", "writesPerCommit": "\(groups > 0 ? writes / groups : 0)",
                    "pagesPerCommit": "\(groups > 0 ? pages / groups : 0)", "syncs": "\(now.syncs - last.syncs)",
                    "busy": "\(Int((now.busy - last.busy) / every * 100))%", "cpu": "\(Int((now.cpu - last.cpu) / every * 100))%",
                ])
                last = now
            }
        }
        try? await gracefulShutdown()
        await database.close()
        logger.info("database closed")
    }
}

/// Runs `body` every `interval` until shutdown; failures are logged and retried at the next tick.
public struct PeriodicTask: Service {
    let name: String
    let interval: Duration
    let logger: Logger
    let body: @Sendable () async throws -> Void

    public init(name: String, interval: Duration, logger: Logger, body: @escaping @Sendable () async throws -> Void) {
        self.name = name
        self.interval = interval
        self.logger = logger
        self.body = body
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            await pause(for: interval)
            do { try await body() } catch { logger.warning("\(name) failed", metadata: ["error": "\(error)"]) }
        }
    }
}

/// Keeps the Redis connections open while the services that use them run, and closes them after those stopped
/// (listed right after `DatabaseService`, it shuts down after every pipeline service and before the database).
public struct RedisService: Service {
    let queue: RedisStreamQueue
    let logger: Logger

    public init(queue: RedisStreamQueue, logger: Logger) {
        self.queue = queue
        self.logger = logger
    }

    public func run() async throws {
        do {
            try await queue.ping()
            logger.info("redis reachable")
        } catch {
            // Not fatal: the router accepts into the outbox and the workers retry until Redis is back.
            logger.warning("redis unreachable at start; retrying in the background", metadata: ["error": "\(error)"])
        }
        try? await gracefulShutdown()
        await queue.shutdown()
        logger.info("redis connections closed")
    }
}
