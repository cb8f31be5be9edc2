import ArgumentParser
import Foundation
import Logging
import SwitchboardCore
import SwitchboardServer

@main
struct Switchboard: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchboard",
        abstract: "Switchboard: one HTTP request in, a message delivered by email, SMS or WhatsApp out.",
        discussion: """
            Settings come from the environment (PORT, REDIS_URL, MONGODB_URL,
            ELASTICSEARCH_NODE, the providers' credentials, SWITCHBOARD_*); a
            command's flags override them. Every setting, grouped, with its default
            and meaning:
              switchboard help config
            """,
        subcommands: [Serve.self, RouterCommand.self, WorkerCommand.self, LoggerCommand.self, KeysCommand.self, KibanaCommand.self, ConfigCommand.self],
        defaultSubcommand: nil)
}

/// What a service command's help says of the settings.
let settingsPointer = """
    Settings come from the environment. Every setting, grouped, with its default and meaning:
      switchboard help config
    """

/// Flags every service command takes.
struct CommonOptions: ParsableArguments {
    @Option(help: "SQLite file of the embedded engine (SWITCHBOARD_DATABASE).")
    var database: String?

    @Option(help: "Log level (SWITCHBOARD_LOG_LEVEL).")
    var logLevel: String?

    @Option(help: "Redis URL: the streams live in Redis, shared by every process (REDIS_URL).")
    var redisURL: String?

    func settings() throws -> Settings {
        var s = try Settings.fromEnvironment()
        if let database { s.databasePath = database }
        if let redisURL {
            s.redisURL = redisURL
            try s.validateRedisURL()
        }
        if let logLevel {
            guard let level = Logger.Level(rawValue: logLevel.lowercased()) else { throw ValidationError("--log-level \(logLevel): use trace, debug, info, notice, warning, error or critical") }
            s.logLevel = level
        }
        return s
    }
}

/// `GET /metrics` of a process without the API (a worker, the logging service).
struct MetricsOptions: ParsableArguments {
    @Option(help: "Port to serve GET /metrics on, at --host / SWITCHBOARD_HOST (SWITCHBOARD_METRICS_PORT; default none; 0 picks a free port).")
    var metricsPort: Int?

    func validate() throws {
        if let metricsPort, !(0...65535).contains(metricsPort) { throw ValidationError("--metrics-port \(metricsPort): use 0 to 65535") }
    }

    func apply(to s: inout Settings) {
        if let metricsPort { s.metricsPort = metricsPort }
    }
}

struct HTTPOptions: ParsableArguments {
    @Option(help: "HTTP port (PORT, default 3001).")
    var port: Int?

    @Option(help: "Address to listen on (SWITCHBOARD_HOST, default 127.0.0.1).")
    var host: String?

    func apply(to s: inout Settings) {
        if let port { s.port = port }
        if let host { s.host = host }
    }
}

func start(_ settings: Settings, role: Role, name: String) async throws {
    let level = settings.logLevel, format = settings.logFormat
    // Tracing on: log lines written inside a span carry its trace_id and span_id (swift-otel's metadata provider;
    // swift-otel's own logging backend is never bootstrapped).
    let traceMetadata = settings.tracing.enabled ? TracingBootstrap.loggingMetadataProvider() : nil
    // The log lines' counters by level, made on the process's Prometheus registry before the first line.
    let counters = LogLevelCounters(factory: PrometheusExposition.process.factory)
    LoggingSystem.bootstrap { label in LogLineHandler(label: label, level: level, format: format, metadataProvider: traceMetadata, counters: counters) }
    let logger = Logger(label: "switchboard.\(name)")
    // Spans over OTLP/HTTP only when OTEL_* configure it: `OTEL_SERVICE_NAME`, else switchboard-<command>.
    let tracing = try settings.tracing.enabled ? TracingBootstrap.bootstrap(serviceName: "switchboard-\(role.serviceName)", logger: logger) : nil
    Settings.warnAboutUnknownVariables(logger: logger)
    // Every connection takes a file descriptor: the limit is raised as far as allowed, and the connection cap
    // leaves room below it for the database, the engines and the runtime.
    let files = FileDescriptorLimit.raiseToHard()
    var summary = settings.summary
    if role == .all || role == .router {
        let cap = settings.effectiveMaxConnections(openFileLimit: files.after)
        if cap.lowered {
            logger.warning("SWITCHBOARD_MAX_CONNECTIONS=\(settings.maxConnections ?? 0) leaves too few of the \(files.after) file descriptors this process may open; using \(cap.value)")
        }
        summary.append(("connections", "at most \(cap.value) (open-file limit \(files.after), was \(files.before))"))
    }
    logger.info("starting \(name)", metadata: Logger.Metadata(uniqueKeysWithValues: summary.map { ($0.0, .string($0.1)) }))
    var system = try SwitchboardSystem(settings: settings, logger: logger)
    if let tracing { system.telemetryServices.append(tracing) }
    try await system.run(role: role)
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run everything in one process: router, the three channel workers, the logging service and the outbox.",
        discussion: settingsPointer)
    @OptionGroup var common: CommonOptions
    @OptionGroup var http: HTTPOptions
    @Option(help: "Deliveries in flight per channel worker (SWITCHBOARD_WORKER_CONCURRENCY).")
    var concurrency: Int?

    func run() async throws {
        var s = try common.settings()
        http.apply(to: &s)
        if let concurrency { s.pipeline.concurrency = max(1, concurrency) }
        try await start(s, role: .all, name: "serve")
    }
}

struct RouterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "router", abstract: "Run the router: the HTTP API and the outbox scheduler.", discussion: settingsPointer)
    @OptionGroup var common: CommonOptions
    @OptionGroup var http: HTTPOptions

    func run() async throws {
        var s = try common.settings()
        http.apply(to: &s)
        try await start(s, role: .router, name: "router")
    }
}

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "worker", abstract: "Run one channel's worker.", discussion: settingsPointer)
    @OptionGroup var common: CommonOptions
    @OptionGroup var metrics: MetricsOptions
    @Option(help: "email, sms or whatsapp.")
    var channel: String
    @Option(help: "Deliveries in flight (SWITCHBOARD_WORKER_CONCURRENCY).")
    var concurrency: Int?

    func validate() throws {
        guard MessageChannel(rawValue: channel) != nil else { throw ValidationError("--channel \(channel): use email, sms or whatsapp") }
        if let concurrency, concurrency < 1 { throw ValidationError("--concurrency must be at least 1") }
    }

    func run() async throws {
        var s = try common.settings()
        metrics.apply(to: &s)
        if let concurrency { s.pipeline.concurrency = concurrency }
        try await start(s, role: .worker(MessageChannel(rawValue: channel)!), name: "worker-\(channel)")
    }
}

struct LoggerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logger", abstract: "Run the logging service: log_stream into communication-logs.", discussion: settingsPointer)
    @OptionGroup var common: CommonOptions
    @OptionGroup var metrics: MetricsOptions

    func run() async throws {
        var s = try common.settings()
        metrics.apply(to: &s)
        try await start(s, role: .logger, name: "logger")
    }
}

/// `switchboard config` (and `switchboard help config`): every setting, grouped by concern, with its default.
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "The settings: every environment variable, grouped by concern, with its default and meaning.",
        discussion: Settings.configurationHelp())

    func run() {
        print(Settings.configurationHelp())
    }
}
