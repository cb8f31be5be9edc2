import Foundation
import Hummingbird
import Logging
import NIOSSL
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
import SwitchboardTelemetry
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
    case worker(MessageChannel)
    /// The logging service.
    case logger

    /// The name of its command (`serve`, `router`, `worker`, `logger`): the default tracing service name is
    /// `switchboard-<this>`.
    public var serviceName: String {
        switch self {
        case .all: "serve"
        case .router: "router"
        case .worker: "worker"
        case .logger: "logger"
        }
    }
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
    /// The adapters and the write path over them.
    public private(set) var adapters: Adapters
    /// The suppression list's keys in this process (`SuppressionCache`), reloaded by the router's services.
    let suppressionCache: SuppressionCache?
    /// The API keys (in the store's engine) as the router sees them, with `SWITCHBOARD_ADMIN_KEY` if set.
    public let keyCache: KeyCache
    /// The API keys' rate limiter: one bucket per key in Redis (shared by every router) when `REDIS_URL` is
    /// set, else per process (`Composition.rateLimiter`).
    public let rateLimiter: any RateLimiter
    /// `redis` or `local`.
    public let rateLimiterName: String
    /// Failed authentication per client address (per process).
    public let authFailures: AuthFailureLimiter?
    /// The audit trail (process log and logs index, service `auth`); its service runs with the router.
    public let auditLog: AuditLog
    /// The services the adapters bring: those that keep an engine open (started first, stopped last), and
    /// those that work beside the role's services (the Elasticsearch indexer, the port-by-port pipeline's
    /// confirmations, the search refresh).
    var engineServices: [any Service]
    var adapterServices: [any Service]
    public let logger: Logger
    /// Observability services the executable adds (the OTLP span exporter): started first, stopped last, so the
    /// spans of every other service's shutdown are still exported.
    public var telemetryServices: [any Service] = []
    let clock: @Sendable () -> Timestamp
    /// The SMTP provider, shared by every email worker of the process (one connection pool).
    let smtp: SMTPProvider?
    /// The providers, one instance per kind (so a circuit and a rate limit are shared by the channel
    /// workers of this process): real ones behind a `ResilientProvider`, the sandbox as it is.
    let providerInstances: [ProviderKind: any DeliveryProvider]
    /// The router's TLS configuration (`SWITCHBOARD_TLS_CERT_FILE` / `SWITCHBOARD_TLS_KEY_FILE`), read at start.
    let tls: TLSConfiguration?
    /// Where this system's metrics go and how they are rendered (`GET /metrics`).
    public let metrics: PrometheusExposition
    /// The message counters, shared by every pipeline this system builds.
    let messageMetrics: MessageMetrics
    /// The gauges read when scraped: each stream's backlog, the outbox, whether each engine answers.
    let backlogCollector: QueueMetricsCollector
    /// The router's fan-out of the status feed (SSE, WebSocket); nil without a feed.
    public let events: EventHub?
    /// Status callbacks to clients: the endpoints (in the store's engine) as the router sees them.
    public let callbacks: CallbackDirectory
    /// Message templates (in the store's engine), their versions read at most every 5 s.
    public let templates: TemplateLibrary

    /// Opens the engines named by `settings` and builds the configured providers. A TLS certificate or key
    /// that cannot be used stops it first, with a message naming the file and the reason.
    ///
    /// - Parameter metrics: where the system's metrics go; the process's (swift-metrics' backend) by default. A
    ///   test that counts passes its own.
    public init(settings: Settings, logger: Logger, clock: @escaping @Sendable () -> Timestamp = SystemTime.now, metrics: PrometheusExposition = .process) throws {
        self.settings = settings
        self.metrics = metrics
        let messageMetrics = MeteredPipeline.messageMetrics(factory: metrics.factory)
        self.messageMetrics = messageMetrics
        self.logger = logger
        self.clock = clock
        if let certificate = settings.tlsCertificateFile, let key = settings.tlsKeyFile {
            do {
                tls = try HTTPServerSetup.tlsConfiguration(certificateFile: certificate, keyFile: key)
            } catch {
                throw SettingsError("SWITCHBOARD_TLS_CERT_FILE / SWITCHBOARD_TLS_KEY_FILE: \(error); the router serves HTTPS only with a readable PEM certificate and its key")
            }
        } else {
            tls = nil
        }
        let p = settings.providers
        var smtpLogger = logger
        smtpLogger[metadataKey: "provider"] = "smtp"
        let smtpClient: SMTPClient?
        do {
            smtpClient = try p.smtp.map { try SMTPClient(configuration: $0, logger: smtpLogger) }
        } catch {
            throw SettingsError("SMTP settings are unusable: \(error)")
        }
        let picked = try Composition(settings: settings, logger: logger, clock: clock, metrics: metrics.factory)
        // The SMTP provider reads the attachments' bytes from the store's engine.
        let smtp = smtpClient.map { SMTPProvider(client: $0, attachments: picked.adapters.attachments) }
        self.smtp = smtp
        database = picked.database
        redisQueue = picked.redisQueue
        elasticsearch = picked.elasticsearch
        #if MongoDB
        mongoStore = picked.mongoStore
        #endif
        var adapters = picked.adapters
        adapters.pipeline = MeteredPipeline(adapters.pipeline, metrics: messageMetrics, clock: clock)
        // The router's copy of the list's keys (reloaded by `backgroundServices`): an accept reads the store only
        // for a recipient on the list. Without the reload running (a worker), it reads the store as before.
        suppressionCache = adapters.suppressions.map { SuppressionCache($0, logger: logger) }
        if let suppressionCache { adapters.suppressions = suppressionCache }
        self.adapters = adapters
        keyCache = KeyCache(store: picked.keyStore, bootstrap: settings.adminKey.map { KeyCache.bootstrapRecord(secret: $0, at: clock()) }, clock: clock)
        rateLimiter = picked.rateLimiter.adapter
        rateLimiterName = picked.rateLimiter.name
        authFailures = settings.authFailuresPerMinute == 0
            ? nil : AuthFailureLimiter(limit: RateLimit(rate: Double(settings.authFailuresPerMinute) / 60, burst: settings.authFailuresPerMinute))
        auditLog = AuditLog(index: picked.adapters.search, logger: logger, clock: clock)
        engineServices = picked.engineServices
        adapterServices = picked.adapterServices
        // The sandbox is never wrapped: its failures are simulated per recipient, not an outage.
        let factory = metrics.factory
        var instances: [ProviderKind: any DeliveryProvider] = [.sandbox: MeteredProvider(SandboxProvider(mailbox: adapters.mailbox!, clock: clock), factory: factory)]
        func wrap(_ kind: ProviderKind, _ base: any DeliveryProvider, _ counts: @escaping @Sendable (ProviderError) -> Bool = { _ in true }) {
            let rate = p.rates[kind].map { TokenBucketStateMachine.Configuration(ratePerSecond: $0, burst: max(1, $0), maxWait: .seconds(2)) }
            instances[kind] = ResilientProvider(MeteredProvider(base, factory: factory), breaker: p.breaker, rateLimit: rate, logger: logger, countsAgainstCircuit: counts, metricsFactory: factory)
        }
        if let smtp { wrap(.smtp, smtp, SMTPProvider.countsAgainstCircuit) }
        if let t = p.twilio { wrap(.twilio, TwilioProvider(configuration: t)) }
        if let w = p.whatsApp { wrap(.meta, WhatsAppProvider(configuration: w)) }
        providerInstances = instances
        callbacks = CallbackDirectory(store: picked.callbackStore, settings: settings.callbacks)
        templates = TemplateLibrary(store: picked.templateStore)
        // Heartbeats (SSE comments, WebSocket pings) within half the idle timeout, so a quiet stream is never closed as idle.
        var eventSettings = settings.events
        if let idle = settings.httpIdleTimeout, eventSettings.heartbeat > idle / 2 { eventSettings.heartbeat = idle / 2 }
        events = adapters.feed.map { EventHub(feed: $0, settings: eventSettings, logger: logger, clock: clock) }
        backlogCollector = QueueMetricsCollector(
            adapters: adapters,
            gauges: BacklogGauges(streams: StreamNames.all, engines: [("store", adapters.names.store), ("queue", adapters.names.queue), ("search", adapters.names.search)], factory: factory),
            timeout: .seconds(2), clock: clock)
    }

    /// Replaces the embedded engine's one-transaction pipeline with the port-by-port one, as other engines run
    /// it (for tests of that path on the embedded engine).
    public mutating func usePortByPortPipeline() {
        let a = adapters
        var (portByPort, pipeline) = Adapters.portByPort(store: a.store, queue: a.queue, search: a.search, mailbox: a.mailbox, feed: a.feed, options: Composition.options(settings, portByPort: true), names: a.names, logger: logger, clock: clock)
        portByPort.pipeline = MeteredPipeline(pipeline, metrics: messageMetrics, clock: clock)
        portByPort.attachments = a.attachments
        portByPort.suppressions = a.suppressions
        adapters = portByPort
        adapterServices.append(pipeline)
    }

    /// The pipeline options in effect: the stall watchdog runs only when the streams can lose entries on their
    /// own (the port-by-port pipeline, i.e. Redis streams or a store apart from the streams).
    public var pipelineOptions: PipelineOptions {
        Composition.options(settings, portByPort: adapters.writePath is PortByPortPipeline)
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
    public func providers(for channel: MessageChannel) -> [any DeliveryProvider] {
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

    /// Who may call the API: the keys, enforced unless `SWITCHBOARD_AUTH=off`.
    public var access: AccessControl {
        AccessControl(mode: settings.auth, keys: keyCache, rateLimiter: rateLimiter, defaultLimit: settings.defaultKeyRateLimit, failures: authFailures, audit: auditLog)
    }

    /// Whether `host` is a loopback address (only this machine can connect).
    public static func isLoopback(_ host: String) -> Bool {
        let h = host.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        if h == "localhost" || h == "::1" || h == "0:0:0:0:0:0:0:1" { return true }
        let parts = h.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }

    /// How the API admits requests at start.
    public enum AccessState: Sendable, Hashable {
        /// Keys are required (some key exists, or `SWITCHBOARD_ADMIN_KEY` is set).
        case keysRequired
        /// Open: no key yet, and the router listens on loopback only. Keys are required as soon as one exists.
        case openOnLoopback
        /// Open on purpose: `SWITCHBOARD_AUTH=off`.
        case openByChoice
    }

    /// The start check of a router: reads the keys and says how the API admits requests, with a warning when it
    /// is open. With keys on (`SWITCHBOARD_AUTH`), no key at all and a non-loopback address, it throws: anyone who
    /// can reach the port could send messages on the operator's accounts.
    public func checkAccess() async throws -> AccessState {
        let listen = "\(settings.host):\(settings.port)"
        let howTo = "create one with `switchboard keys create --name admin --scope admin` (same --database / MONGODB_URL as the router) or set SWITCHBOARD_ADMIN_KEY"
        if settings.auth == .off {
            logger.warning("SWITCHBOARD_AUTH=off: the API is open to anyone who can reach \(listen), without a key")
            return .openByChoice
        }
        let required: Bool
        do {
            required = try await keyCache.keysRequired()
        } catch {
            // The keys cannot be read yet (MongoDB down): requests will read them first, and get 503 meanwhile.
            logger.warning("API keys cannot be read at start; keyed requests wait for the key store", metadata: ["error": "\(error)"])
            return .keysRequired
        }
        if required {
            logger.info("API keys required on /api/v1", metadata: ["listen": "\(listen)"])
            return .keysRequired
        }
        guard Self.isLoopback(settings.host) else {
            throw SettingsError(
                "refusing to listen on \(listen) with no API key: anyone who can reach it could send messages and read them all. First \(howTo); or set SWITCHBOARD_AUTH=off to run open on purpose.")
        }
        logger.warning("the API is open: no API key exists yet, and the router listens on loopback only (\(listen)). Keys are required as soon as one exists: \(howTo)")
        return .openOnLoopback
    }

    /// The HTTP application (router API): HTTPS when TLS is configured, at most `maxConnections` connections
    /// (see ``Settings/effectiveMaxConnections(openFileLimit:)``), malformed requests answered with JSON errors.
    public func application() throws -> Application<RouterResponder<APIRequestContext>> {
        let api = API(
            adapters: adapters, dispatcher: Dispatcher(adapters: adapters, options: pipelineOptions, clock: clock), logger: logger, webhooks: webhooks,
            access: access, cors: settings.corsOrigins, warningInterval: settings.logRepeatInterval, metrics: metricsEndpoint, events: events,
            callbacks: callbacks, templates: templates)
        return Application(
            router: api.router(),
            server: try HTTPServerSetup.server(
                idleTimeout: settings.httpIdleTimeout, tls: tls, log: api.refusals, webSockets: events == nil ? nil : api.webSocketRouter(), ping: events?.settings.heartbeat ?? .seconds(15)),
            configuration: .init(
                address: .hostname(settings.host, port: settings.port), serverName: "switchboard",
                availableConnectionsDelegate: ConnectionCap(maximum: maxConnections, log: api.refusals)),
            logger: logger)
    }

    /// `GET /metrics` of this system: the exposition, after the gauges read when scraped are sampled.
    public var metricsEndpoint: MetricsEndpoint {
        let metrics = self.metrics
        let collector = backlogCollector
        return MetricsEndpoint(token: settings.metricsToken, factory: metrics.factory) { await metrics.scrape(sampling: { await collector.refresh() }) }
    }

    /// The listener of `GET /metrics` for a process without the API (a worker, the logging service), on
    /// `SWITCHBOARD_HOST`:`SWITCHBOARD_METRICS_PORT`.
    func metricsApplication(port: Int) -> some Service {
        let logger = self.logger
        return Application(
            router: metricsEndpoint.router(),
            configuration: .init(address: .hostname(settings.host, port: port), serverName: "switchboard-metrics"),
            onServerRunning: { channel in
                logger.info("metrics listening", metadata: ["address": "\(settings.host)", "port": "\(channel.localAddress?.port ?? port)"])
            },
            logger: logger)
    }

    /// The connection cap in effect: ``Settings/effectiveMaxConnections(openFileLimit:)`` for this process's limit.
    public var maxConnections: Int {
        settings.effectiveMaxConnections(openFileLimit: FileDescriptorLimit.current).value
    }

    /// What the retention service purges: the engines that can (`Purging`). Elasticsearch indices are left
    /// to the cluster's own lifecycle policies (ILM / ISM), as the README says.
    public var retentionTargets: [RetentionService.Target] {
        var targets: [RetentionService.Target] = []
        if let p = adapters.store as? any Purging { targets.append(.init(name: "store", purging: p)) }
        if let p = adapters.queue as? any Purging { targets.append(.init(name: "dead letters", purging: p)) }
        if let p = adapters.search as? any Purging { targets.append(.init(name: "search index", purging: p)) }
        if let p = adapters.mailbox as? any Purging { targets.append(.init(name: "sandbox", purging: p)) }
        if let p = callbacks.store as? any Purging { targets.append(.init(name: "callback deliveries", purging: p)) }
        // After the store's: the files that no message left names.
        if let p = adapters.attachments as? any Purging { targets.append(.init(name: "attachments", purging: p)) }
        return targets
    }

    /// The services of `role`, without the HTTP application and the engines' keep-open services.
    public func backgroundServices(role: Role) -> [any Service] {
        // First, so that they stop last: the Elasticsearch indexer flushes what the others indexed, the
        // pipeline writes the last confirmations.
        var services: [any Service] = adapterServices
        let options = pipelineOptions
        if let es = elasticsearch, role != .logger {
            // The catch-up runs wherever communications are indexed (not in a logging-only process).
            services.append(SearchCatchUp(store: adapters.store, index: es, margin: settings.elasticsearch?.catchUpMargin ?? .seconds(300), interval: settings.elasticsearch?.catchUpInterval ?? .seconds(1), logger: logger, clock: clock))
        }
        // Before the pipeline services, so it stops after them: its final attempt writes what they spooled.
        services.append(LogSpoolService(adapters: adapters, logger: logger))
        if role == .all || role == .router {
            services.append(keyCache.service(logger: logger))
            if let suppressionCache { services.append(suppressionCache) }
            // After the adapter services, so it stops before them: its last failures reach the search index.
            services.append(auditLog)
            services.append(OutboxScheduler(adapters: adapters, options: options, logger: logger, clock: clock))
            services += callbackServices
            if let period = settings.retention {
                services.append(RetentionService(period: period, targets: retentionTargets, logger: logger, clock: clock))
            }
        }
        for channel in MessageChannel.allCases where role == .all || role == .worker(channel) {
            services.append(ChannelWorker(channel: channel, adapters: adapters, providers: providers(for: channel), testProvider: providerInstances[.sandbox], options: options, consumer: Self.consumerName(channel.rawValue), logger: logger, clock: clock))
        }
        if role == .all || role == .logger {
            services.append(LogIndexer(adapters: adapters, options: options, consumer: Self.consumerName("logger"), logger: logger, lag: IndexingLagMetrics(factory: metrics.factory), clock: clock))
        }
        return services
    }

    /// The router's status-callback services: the dispatcher (status feed → deliveries) and the sender (deliveries →
    /// HTTP, on its own client that follows no redirect). None without a status feed.
    public var callbackServices: [any Service] {
        guard let feed = adapters.feed else { return [] }
        let settings = self.settings.callbacks
        return [
            CallbackDispatcher(feed: feed, communications: adapters.store, directory: callbacks, audit: auditLog, logger: logger, clock: clock),
            CallbackSender(
                transport: {
                    let client = HTTPCallbackTransport.makeClient()
                    return (HTTPCallbackTransport(client: client, timeout: settings.timeout, allowPrivate: settings.allowPrivate), { try? await client.shutdown() })
                }, directory: callbacks, logger: logger, clock: clock),
        ]
    }

    /// The router's live-status service (the `EventHub`), run after the HTTP application so it stops before it.
    public func liveServices(role: Role) -> [any Service] {
        guard role == .all || role == .router, let events else { return [] }
        return [events]
    }

    /// Runs `role` until SIGINT or SIGTERM, then shuts down gracefully: the HTTP server stops accepting,
    /// workers finish the batch in hand, and the database closes last.
    public func run(role: Role) async throws {
        var system = self
        if let es = elasticsearch {
            // Asked once, briefly: a cluster that accepts connections and answers nothing must not hold the start
            // up for its request timeout (the index's own service prepares it in the background).
            let info = await withTaskGroup(of: (dialect: SearchDialect, version: String)?.self) { probes in
                probes.addTask { try? await es.client.info() }
                probes.addTask {
                    try? await Task.sleep(for: .seconds(2))
                    return nil
                }
                let first = await probes.next() ?? nil
                probes.cancelAll()
                return first
            }
            if let info { system.adapters.names.search = info.dialect.rawValue }  // else "elasticsearch" until it answers
        }
        try await system.runServices(role: role)
    }

    func runServices(role: Role) async throws {
        if role == .all || role == .router {
            do {
                _ = try await checkAccess()
            } catch {
                await close()
                throw error
            }
        }
        var services = telemetryServices + engineServices + backgroundServices(role: role)
        if role == .all || role == .router {
            services.append(try application())
            // After the HTTP server, so it stops first: its open event streams end, and the server can drain.
            services += liveServices(role: role)
        } else if let port = settings.metricsPort {
            services.append(metricsApplication(port: port))
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
