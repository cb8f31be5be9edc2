import Foundation
import Logging
import SwitchboardApp
import SwitchboardCore
import SwitchboardElasticsearch
import SwitchboardHTTP
import SwitchboardProviders
import SwitchboardRedis
import SwitchboardSMTP
import SwitchboardSQLite
import SwitchboardTelemetry

/// A setting that could not be read.
public struct SettingsError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Everything a process is configured with. Read from the environment (the seed's `PORT`, everything else
/// under `SWITCHBOARD_`), then overridden by command-line flags.
public struct Settings: Sendable {
    public var host = "127.0.0.1"
    public var port = 3001
    public var databasePath = "./data/switchboard.sqlite"
    public var synchronous = SQLiteSynchronous.full
    public var pipeline = PipelineOptions()
    public var lease: Duration = .seconds(30)
    public var pollInterval: Duration = .milliseconds(100)
    public var logLevel = Logger.Level.info
    /// How long an HTTP connection may sit idle (nothing read or written) before the router closes it
    /// (`SWITCHBOARD_HTTP_IDLE_TIMEOUT_MS`; 0 = never): idle keep-alive connections cannot pile up.
    public var httpIdleTimeout: Duration? = .seconds(60)
    /// `SWITCHBOARD_TLS_CERT_FILE` and `SWITCHBOARD_TLS_KEY_FILE` (PEM; the certificate file may hold a chain):
    /// when set, the router serves HTTPS only, TLS 1.2 or later. Both or neither.
    public var tlsCertificateFile: String?
    public var tlsKeyFile: String?
    /// The most connections the router holds at once (`SWITCHBOARD_MAX_CONNECTIONS`); nil: half the open-file
    /// limit (raised to its hard limit at start), at most 16,384 (see ``effectiveMaxConnections(openFileLimit:)``).
    public var maxConnections: Int?
    /// The browser origins allowed to call the API (`SWITCHBOARD_CORS_ORIGINS`, comma-separated; none by default).
    public var corsOrigins = CORSPolicy.none
    /// How long repeated per-request warnings of one kind (refused or malformed requests, the connection cap)
    /// are counted before one line gives their count (`SWITCHBOARD_LOG_REPEAT_INTERVAL_MS`).
    public var logRepeatInterval: Duration = .seconds(10)
    /// Real providers and failover (all unset: every channel on the sandbox).
    public var providers = ProviderSettings()
    /// Live status (SSE, WebSocket): how long the status feed keeps events, how often a router looks for events
    /// other processes wrote to the embedded feed, the heartbeat, and how many events a subscriber may fall
    /// behind before it is disconnected.
    public var events = EventSettings()
    /// Status callbacks to clients (Standard Webhooks): the private-address rule, the attempt's timeout, retries and
    /// when a failing endpoint is disabled (`SWITCHBOARD_CALLBACK_*`).
    public var callbacks = CallbackSettings()
    /// The seed's `REDIS_URL`: when set, the four streams live in Redis (the store and search stay SQLite).
    public var redisURL: String?
    /// How long a Redis command keeps trying to reach a Redis that is down before it fails
    /// (`SWITCHBOARD_REDIS_WAIT_MS`). Bounds how long a request waits on publication while Redis is down.
    public var redisUnavailableWait: Duration = .seconds(1)
    /// How long a message may stay queued or processing before the outbox redispatches it, when the streams
    /// are not in the store's transactions (Redis): `SWITCHBOARD_STALL_TIMEOUT_MS`, 0 = never.
    public var stallTimeout: Duration? = .seconds(600)
    /// The seed's `ELASTICSEARCH_NODE` (with auth and tuning): when set, search runs on Elasticsearch / OpenSearch.
    public var elasticsearch: ElasticsearchConfiguration?
    /// The seed's `MONGODB_URL`: when set, the store is MongoDB (queue and search stay as they are). Needs a
    /// build with the `MongoDB` trait.
    public var mongoURL: String?
    /// How long finished messages, log records, dead letters and sandbox messages are kept (`SWITCHBOARD_RETENTION_DAYS`);
    /// nil (0, the default): kept until deleted by hand.
    public var retention: Duration?
    /// When set, the SQLite writer's group-commit statistics are logged at this interval (`SWITCHBOARD_SQLITE_STATS`).
    public var sqliteStatsInterval: Duration?
    /// `SWITCHBOARD_AUTH`: `on` (API keys required as soon as one exists; a router on a non-loopback address
    /// refuses to start without one) or `off` (the API is open on purpose).
    public var auth = AccessControl.Mode.on
    /// `SWITCHBOARD_ADMIN_KEY`: a bootstrap `admin` key (for containers), hashed at start, never logged.
    public var adminKey: String?
    /// Requests per second an API key may make unless the key sets its own (`SWITCHBOARD_KEY_RATE`).
    public var keyRate: Double = 100
    /// Largest burst of requests of an API key unless the key sets its own (`SWITCHBOARD_KEY_BURST`).
    public var keyBurst = 200
    /// Failed authentications one client address may make per minute (and at once) before it is answered 429
    /// (`SWITCHBOARD_AUTH_FAILURES_PER_MINUTE`); 0: no limit (behind a proxy every client has its address).
    public var authFailuresPerMinute = 10
    /// The port a worker or the logging service serves `GET /metrics` on (`SWITCHBOARD_METRICS_PORT`,
    /// `--metrics-port`); nil: none. The router and `serve` serve it on their HTTP port whatever this says.
    public var metricsPort: Int?
    /// The bearer token `GET /metrics` asks for (`SWITCHBOARD_METRICS_TOKEN`); nil: open.
    public var metricsToken: String?
    // Observability (issue 17: tracing and log format).
    /// `SWITCHBOARD_LOG_FORMAT`: `line` (the default, `LogLineHandler`'s line) or `json` (one object a line).
    public var logFormat = LogLineHandler.Format.line
    /// Span export, from the `OTEL_*` variables (off unless configured).
    public var tracing = TracingSettings(environment: [:])

    /// The rate limit of `key`: its own rate and burst, else the deployment's defaults.
    public func rateLimit(of key: APIKeyRecord) -> RateLimit {
        key.rateLimit(default: defaultKeyRateLimit)
    }

    /// The deployment's default rate limit of a key (`SWITCHBOARD_KEY_RATE`, `SWITCHBOARD_KEY_BURST`).
    public var defaultKeyRateLimit: RateLimit { RateLimit(rate: keyRate, burst: keyBurst) }

    public init() {}

    /// One documented environment variable.
    public struct Variable: Sendable {
        public var name: String
        public var meaning: String
        public var defaultValue: String
    }

    /// The variables of one concern, under a title.
    public struct VariableGroup: Sendable {
        public var title: String
        public var variables: [Variable]
    }

    /// Every variable this version reads, by concern: what `switchboard help config` prints, and the names an
    /// unknown `SWITCHBOARD_*` variable is checked against at start (one list, so they cannot drift apart).
    public static let variableGroups: [VariableGroup] = [
        VariableGroup(title: "HTTP (the router)", variables: [
            Variable(name: "PORT", meaning: "HTTP port of the router", defaultValue: "3001"),
            Variable(name: "SWITCHBOARD_HOST", meaning: "address the router listens on", defaultValue: "127.0.0.1"),
            Variable(name: "SWITCHBOARD_HTTP_IDLE_TIMEOUT_MS", meaning: "an HTTP connection idle this long (nothing read or written) is closed; 0 = never", defaultValue: "60000"),
            Variable(name: "SWITCHBOARD_TLS_CERT_FILE", meaning: "PEM certificate (then its intermediates) of the router: with SWITCHBOARD_TLS_KEY_FILE, the router serves HTTPS only, TLS 1.2 or later", defaultValue: "unset (plain HTTP)"),
            Variable(name: "SWITCHBOARD_TLS_KEY_FILE", meaning: "PEM private key of SWITCHBOARD_TLS_CERT_FILE (unencrypted)", defaultValue: "unset"),
            Variable(name: "SWITCHBOARD_MAX_CONNECTIONS", meaning: "most HTTP connections held at once; beyond it new ones wait in the listen backlog. The open-file limit is raised to its hard limit at start", defaultValue: "half the open-file limit, at most 16384"),
            Variable(name: "SWITCHBOARD_CORS_ORIGINS", meaning: "browser origins allowed to call the API, comma-separated (https://app.example.com,http://localhost:5173), or * for any", defaultValue: "none"),
            Variable(name: "SWITCHBOARD_LOG_REPEAT_INTERVAL_MS", meaning: "repeated warnings of one kind (refused or malformed requests, the connection cap) are logged once per interval with their count", defaultValue: "10000"),
        ]),
        VariableGroup(title: "Access control (API keys)", variables: [
            Variable(name: "SWITCHBOARD_AUTH", meaning: "on: every /api/v1 request needs an API key as soon as one exists (a router listening beyond loopback refuses to start without one); off: the API is open on purpose (logged at every start)", defaultValue: "on"),
            Variable(name: "SWITCHBOARD_ADMIN_KEY", meaning: "a bootstrap admin key (sb_live_ and 43 base64url characters, e.g. from `switchboard keys generate`), for containers; hashed at start, never logged or stored", defaultValue: "unset"),
        ]),
        VariableGroup(title: "Metrics (Prometheus)", variables: [
            Variable(name: "SWITCHBOARD_METRICS_PORT", meaning: "port a worker or the logging service serves GET /metrics on, at SWITCHBOARD_HOST (the router and serve answer it on their HTTP port); 0 picks a free port", defaultValue: "unset (none)"),
            Variable(name: "SWITCHBOARD_METRICS_TOKEN", meaning: "GET /metrics then needs Authorization: Bearer <token>", defaultValue: "unset (open)"),
        ]),
        VariableGroup(title: "Engines: the embedded SQLite file (store, streams, search, sandbox mailbox)", variables: [
            Variable(name: "SWITCHBOARD_DATABASE", meaning: "SQLite file of the embedded engine", defaultValue: "./data/switchboard.sqlite"),
            Variable(name: "SWITCHBOARD_SQLITE_SYNCHRONOUS", meaning: "full (fsync each commit) or normal (fsync at checkpoints)", defaultValue: "full"),
            Variable(name: "SWITCHBOARD_POLL_MS", meaning: "how often an idle reader checks for entries written by other processes", defaultValue: "100"),
            Variable(name: "SWITCHBOARD_SQLITE_STATS", meaning: "set (to anything): the writer logs its group-commit statistics every second", defaultValue: "unset"),
        ]),
        VariableGroup(title: "Live status (Server-Sent Events, WebSocket)", variables: [
            Variable(name: "SWITCHBOARD_EVENTS_RETENTION_SECONDS", meaning: "how long the status feed (status_stream) keeps events: how far back Last-Event-ID can resume", defaultValue: "3600"),
            Variable(name: "SWITCHBOARD_EVENTS_POLL_MS", meaning: "embedded engine: how often a router with subscribers looks for events written by other processes", defaultValue: "20"),
            Variable(name: "SWITCHBOARD_EVENTS_HEARTBEAT_MS", meaning: "an idle event stream gets a heartbeat (an SSE comment, a WebSocket ping) this often", defaultValue: "15000"),
            Variable(name: "SWITCHBOARD_EVENTS_BUFFER", meaning: "events a subscriber may fall behind before it is disconnected (an SSE client then resumes with Last-Event-ID)", defaultValue: "1000"),
            Variable(name: "SWITCHBOARD_EVENTS_STREAM_MAX_SECONDS", meaning: "an SSE stream is closed after this long (the client reconnects with Last-Event-ID, spreading clients over routers); 0 = never", defaultValue: "0"),
        ]),
        VariableGroup(title: "Status callbacks (webhooks to clients)", variables: [
            Variable(name: "SWITCHBOARD_CALLBACK_ALLOW_PRIVATE", meaning: "true: callbacks may go to loopback, private, link-local and metadata addresses (tests, closed networks); else such URLs are refused at registration and at each attempt", defaultValue: "false"),
            Variable(name: "SWITCHBOARD_CALLBACK_TIMEOUT_MS", meaning: "one callback attempt's limit (connect, send, answer)", defaultValue: "10000"),
            Variable(name: "SWITCHBOARD_CALLBACK_RETRY_HORIZON_SECONDS", meaning: "how long a callback is retried (timeouts, connection errors, 408, 429, 5xx) before it is failed", defaultValue: "86400"),
            Variable(name: "SWITCHBOARD_CALLBACK_RETRY_BASE_MS", meaning: "the wait before a callback's second attempt, doubling after each failure (half of it random; Retry-After honoured)", defaultValue: "5000"),
            Variable(name: "SWITCHBOARD_CALLBACK_RETRY_MAX_MS", meaning: "the longest wait between two attempts of a callback", defaultValue: "3600000"),
            Variable(name: "SWITCHBOARD_CALLBACK_DISABLE_AFTER_SECONDS", meaning: "an endpoint whose callbacks have all failed this long is disabled (audit record callback_endpoint_disabled)", defaultValue: "432000"),
            Variable(name: "SWITCHBOARD_CALLBACK_CONCURRENCY", meaning: "callback attempts in flight at once per router", defaultValue: "16"),
        ]),
        VariableGroup(title: "Rate limits of API keys", variables: [
            Variable(name: "SWITCHBOARD_KEY_RATE", meaning: "requests per second a key may make, unless it has its own rate (a decimal above 0); with REDIS_URL one allowance shared by every router, else per process", defaultValue: "100"),
            Variable(name: "SWITCHBOARD_KEY_BURST", meaning: "requests a key may make at once (its bucket's size), unless it has its own burst", defaultValue: "200"),
            Variable(name: "SWITCHBOARD_AUTH_FAILURES_PER_MINUTE", meaning: "failed authentications a client address may make per minute (and at once) before 429; 0 = no limit (behind a proxy all clients share its address)", defaultValue: "10"),
        ]),
        VariableGroup(title: "Redis (the streams)", variables: [
            Variable(name: "REDIS_URL", meaning: "streams in Redis: redis://[[user]:password@]host[:port][/db] or rediss://… (unset: SQLite streams)", defaultValue: "unset"),
            Variable(name: "SWITCHBOARD_REDIS_WAIT_MS", meaning: "how long a Redis call waits for an unreachable Redis before failing", defaultValue: "1000"),
            Variable(name: "SWITCHBOARD_STALL_TIMEOUT_MS", meaning: "with Redis streams: a message queued or processing this long is redispatched (its entry presumed lost); 0 = never", defaultValue: "600000"),
        ]),
        VariableGroup(title: "MongoDB (the store)", variables: [
            Variable(name: "MONGODB_URL", meaning: "store in MongoDB: mongodb://[user:password@]host[:port][,host…]/[database][?options] (build with --traits MongoDB; unset: SQLite store)", defaultValue: "unset"),
        ]),
        VariableGroup(title: "Elasticsearch / OpenSearch (search)", variables: elasticsearchVariables),
    ] + ProviderSettings.variableGroups + [
        VariableGroup(title: "Pipeline: retries, workers, outbox", variables: [
            Variable(name: "SWITCHBOARD_RETRY_MAX_ATTEMPTS", meaning: "delivery attempts in all", defaultValue: "5"),
            Variable(name: "SWITCHBOARD_RETRY_BASE_MS", meaning: "backoff before the 2nd attempt, doubled each time", defaultValue: "1000"),
            Variable(name: "SWITCHBOARD_RETRY_MAX_MS", meaning: "longest backoff", defaultValue: "300000"),
            Variable(name: "SWITCHBOARD_RETRY_JITTER", meaning: "random fraction of each backoff (0 to 1)", defaultValue: "0.5"),
            Variable(name: "SWITCHBOARD_LEASE_MS", meaning: "how long a worker holds a stream entry before another may take it", defaultValue: "30000"),
            Variable(name: "SWITCHBOARD_MAX_DELIVERIES", meaning: "deliveries of one stream entry before it is dead-lettered", defaultValue: "5"),
            Variable(name: "SWITCHBOARD_WORKER_CONCURRENCY", meaning: "deliveries in flight per channel worker", defaultValue: "64"),
            Variable(name: "SWITCHBOARD_BATCH_SIZE", meaning: "stream entries a worker reads at once", defaultValue: "128"),
            Variable(name: "SWITCHBOARD_OUTBOX_GRACE_MS", meaning: "age at which an unconfirmed publication is redone by the outbox", defaultValue: "10000"),
            Variable(name: "SWITCHBOARD_SCHEDULER_INTERVAL_MS", meaning: "how often the outbox looks for due messages and retries", defaultValue: "500"),
        ]),
        VariableGroup(title: "Retention", variables: [
            Variable(name: "SWITCHBOARD_RETENTION_DAYS", meaning: "days a message past dispatch (sent, delivered, read, undelivered, failed, cancelled) is kept after its last change; log records, dead letters and sandbox copies are kept as long; purged hourly by the router; 0 = kept for ever", defaultValue: "0"),
        ]),
        VariableGroup(title: "Logging", variables: [
            Variable(name: "SWITCHBOARD_LOG_LEVEL", meaning: "trace, debug, info, notice, warning, error, critical", defaultValue: "info"),
            Variable(name: "SWITCHBOARD_LOG_FORMAT", meaning: "line: `<time> <level> <label> : <key=value …> [<source>] <message>`; json: one JSON object a line (time, level, label, message, source, metadata, trace_id and span_id when the line concerns a traced message), for log shippers", defaultValue: "line"),
        ]),
        VariableGroup(title: "Tracing (OpenTelemetry over OTLP/HTTP; read by swift-otel)", variables: TracingSettings.variables),
        VariableGroup(title: "Test suite (read by the tests of scripts/test.sh, not by switchboard)", variables: [
            Variable(name: "SWITCHBOARD_TEST_SECANTUS_SERVERS", meaning: "MongoDB emulators running at once during the tests", defaultValue: "2"),
            Variable(name: "SWITCHBOARD_SMTP_SCRIPTS", meaning: "folder of the SMTP test scripts", defaultValue: "the package's scripts/"),
            Variable(name: "SWITCHBOARD_NOIDA_DB", meaning: "the Elasticsearch emulator's executable", defaultValue: "found through its pip package"),
            Variable(name: "SWITCHBOARD_OSMEM_SERVER", meaning: "the OpenSearch emulator's executable", defaultValue: "found through its pip package"),
        ]),
    ]

    /// Every variable, in the order of ``variableGroups``.
    public static var variables: [Variable] { variableGroups.flatMap(\.variables) }

    /// The variables of `env` named like Switchboard's (`SWITCHBOARD_` and a name) that no version reads — a typo,
    /// or a setting that was renamed —, in name order, each with the known name it most likely meant, if any.
    public static func unknownVariables(in env: [String: String]) -> [(name: String, suggestion: String?)] {
        let known = variables.map(\.name)
        let unknown = env.keys.filter { $0.hasPrefix("SWITCHBOARD_") && !known.contains($0) }.sorted()
        return unknown.map { name in (name, nearestName(to: name, among: known)) }
    }

    /// The name of `names` closest to `name` in edits, if close enough to be what it meant (a fifth of its
    /// letters, at least two).
    static func nearestName(to name: String, among names: [String]) -> String? {
        var best: (name: String, distance: Int)?
        for candidate in names.sorted() {
            let distance = editDistance(name, candidate)
            if best == nil || distance < best!.distance { best = (candidate, distance) }
        }
        guard let best, best.distance <= max(2, name.count / 5) else { return nil }
        return best.name
    }

    /// Logs a warning for each unknown `SWITCHBOARD_*` variable of `env` (see ``unknownVariables(in:)``).
    public static func warnAboutUnknownVariables(in env: [String: String] = ProcessInfo.processInfo.environment, logger: Logger) {
        for (name, suggestion) in unknownVariables(in: env) {
            logger.warning(
                "unknown environment variable \(name), ignored\(suggestion.map { " (did you mean \($0)?)" } ?? ""); `switchboard help config` lists the settings")
        }
    }

    /// The number of single-character insertions, deletions and substitutions that turn `a` into `b`.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a.utf8), b = Array(b.utf8)
        var previous = Array(0...b.count)
        for (i, x) in a.enumerated() {
            var current = [i + 1]
            for (j, y) in b.enumerated() {
                current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (x == y ? 0 : 1)))
            }
            previous = current
        }
        return previous[b.count]
    }

    /// The settings page (`switchboard help config`): every variable by concern, its name whole on a line of
    /// its own, then its meaning and default, wrapped to `width` columns.
    public static func configurationHelp(width: Int = 78) -> String {
        var lines = wrap(
            "Settings are read from the environment at start; the few flags a command has override them. A "
                + "SWITCHBOARD_* variable that is not listed here is warned about at start (a typo never goes unnoticed).",
            width: width, indent: "")
        for group in variableGroups {
            lines.append("")
            lines.append(group.title + ":")
            for variable in group.variables {
                lines.append("  " + variable.name)
                lines += wrap("\(variable.meaning) (default: \(variable.defaultValue))", width: width, indent: "      ")
            }
        }
        return lines.joined(separator: "\n")
    }

    /// `text` in lines of at most `width` columns (a longer word gets a line of its own), each after `indent`.
    static func wrap(_ text: String, width: Int, indent: String) -> [String] {
        var lines: [String] = [], line = ""
        for word in text.split(separator: " ") {
            if !line.isEmpty, indent.count + line.count + 1 + word.count > width {
                lines.append(indent + line)
                line = ""
            }
            line += (line.isEmpty ? "" : " ") + word
        }
        if !line.isEmpty { lines.append(indent + line) }
        return lines
    }

    /// Reads the environment.
    public static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) throws -> Settings {
        var s = Settings()
        let reader = EnvironmentReader(env: env)
        let value = reader.value, int = reader.int, millis = reader.millis

        if let v = try int("PORT", 0...65535) { s.port = v }
        if let v = value("SWITCHBOARD_HOST") { s.host = v }
        if let v = try int("SWITCHBOARD_METRICS_PORT", 0...65535) { s.metricsPort = v }
        s.metricsToken = value("SWITCHBOARD_METRICS_TOKEN")
        if let v = try millis("SWITCHBOARD_HTTP_IDLE_TIMEOUT_MS") { s.httpIdleTimeout = v == .zero ? nil : v }
        s.tlsCertificateFile = value("SWITCHBOARD_TLS_CERT_FILE")
        s.tlsKeyFile = value("SWITCHBOARD_TLS_KEY_FILE")
        switch (s.tlsCertificateFile, s.tlsKeyFile) {
        case (nil, nil), (.some, .some): break
        case (.some, nil): throw SettingsError("SWITCHBOARD_TLS_CERT_FILE is set without SWITCHBOARD_TLS_KEY_FILE: set both (PEM files) for HTTPS, or neither")
        case (nil, .some): throw SettingsError("SWITCHBOARD_TLS_KEY_FILE is set without SWITCHBOARD_TLS_CERT_FILE: set both (PEM files) for HTTPS, or neither")
        }
        if let v = try int("SWITCHBOARD_MAX_CONNECTIONS", 1...1_000_000) { s.maxConnections = v }
        if let v = value("SWITCHBOARD_CORS_ORIGINS") {
            do {
                s.corsOrigins = try CORSPolicy.parse(v)
            } catch {
                throw SettingsError("SWITCHBOARD_CORS_ORIGINS: \(error)")
            }
        }
        if let v = try int("SWITCHBOARD_LOG_REPEAT_INTERVAL_MS", 1...3_600_000) { s.logRepeatInterval = .milliseconds(v) }
        if let v = value("SWITCHBOARD_DATABASE") { s.databasePath = v }
        if let v = value("SWITCHBOARD_SQLITE_SYNCHRONOUS") {
            guard let sync = SQLiteSynchronous(rawValue: v.lowercased()) else { throw SettingsError("SWITCHBOARD_SQLITE_SYNCHRONOUS=\(v): use full or normal") }
            s.synchronous = sync
        }
        var retry = s.pipeline.retry
        if let v = try int("SWITCHBOARD_RETRY_MAX_ATTEMPTS", 1...100) { retry.maxAttempts = v }
        if let v = try millis("SWITCHBOARD_RETRY_BASE_MS") { retry.baseDelay = v }
        if let v = try millis("SWITCHBOARD_RETRY_MAX_MS") { retry.maxDelay = v }
        if let v = value("SWITCHBOARD_RETRY_JITTER") {
            guard let j = Double(v), (0...1).contains(j) else { throw SettingsError("SWITCHBOARD_RETRY_JITTER=\(v) is not a number from 0 to 1") }
            retry.jitter = j
        }
        s.pipeline.retry = retry
        if let v = try millis("SWITCHBOARD_LEASE_MS") { s.lease = v }
        if let v = try int("SWITCHBOARD_MAX_DELIVERIES", 1...1000) { s.pipeline.maxDeliveries = v }
        if let v = try int("SWITCHBOARD_WORKER_CONCURRENCY", 1...10_000) { s.pipeline.concurrency = v }
        if let v = try int("SWITCHBOARD_BATCH_SIZE", 1...10_000) { s.pipeline.batchSize = v }
        if let v = try millis("SWITCHBOARD_OUTBOX_GRACE_MS") { s.pipeline.outboxGrace = v }
        if let v = try millis("SWITCHBOARD_SCHEDULER_INTERVAL_MS") { s.pipeline.schedulerInterval = v }
        if let v = try millis("SWITCHBOARD_POLL_MS") { s.pollInterval = v }
        if let v = try int("SWITCHBOARD_EVENTS_RETENTION_SECONDS", 60...2_592_000) { s.events.retention = .seconds(v) }
        if let v = try int("SWITCHBOARD_EVENTS_POLL_MS", 1...10_000) { s.events.pollInterval = .milliseconds(v) }
        if let v = try int("SWITCHBOARD_EVENTS_HEARTBEAT_MS", 100...300_000) { s.events.heartbeat = .milliseconds(v) }
        if let v = try int("SWITCHBOARD_EVENTS_BUFFER", 10...1_000_000) { s.events.buffer = v }
        if let v = try int("SWITCHBOARD_EVENTS_STREAM_MAX_SECONDS", 0...86_400) { s.events.streamLimit = v == 0 ? nil : .seconds(v) }
        if let v = value("SWITCHBOARD_CALLBACK_ALLOW_PRIVATE") {
            switch v.lowercased() {
            case "true", "1", "yes": s.callbacks.allowPrivate = true
            case "false", "0", "no": s.callbacks.allowPrivate = false
            default: throw SettingsError("SWITCHBOARD_CALLBACK_ALLOW_PRIVATE=\(v): use true or false")
            }
        }
        if let v = try int("SWITCHBOARD_CALLBACK_TIMEOUT_MS", 100...600_000) { s.callbacks.timeout = .milliseconds(v) }
        if let v = try int("SWITCHBOARD_CALLBACK_RETRY_HORIZON_SECONDS", 1...2_592_000) { s.callbacks.horizon = .seconds(v) }
        if let v = try int("SWITCHBOARD_CALLBACK_RETRY_BASE_MS", 1...86_400_000) { s.callbacks.baseDelay = .milliseconds(v) }
        if let v = try int("SWITCHBOARD_CALLBACK_RETRY_MAX_MS", 1...86_400_000) { s.callbacks.maxDelay = .milliseconds(v) }
        if let v = try int("SWITCHBOARD_CALLBACK_DISABLE_AFTER_SECONDS", 1...31_536_000) { s.callbacks.disableAfter = .seconds(v) }
        if let v = try int("SWITCHBOARD_CALLBACK_CONCURRENCY", 1...1000) { s.callbacks.concurrency = v }
        if let v = value("SWITCHBOARD_LOG_LEVEL") {
            guard let level = Logger.Level(rawValue: v.lowercased()) else { throw SettingsError("SWITCHBOARD_LOG_LEVEL=\(v): use trace, debug, info, notice, warning, error or critical") }
            s.logLevel = level
        }
        if let v = value("SWITCHBOARD_LOG_FORMAT") {
            guard let format = LogLineHandler.Format(rawValue: v.lowercased()) else { throw SettingsError("SWITCHBOARD_LOG_FORMAT=\(v): use line or json") }
            s.logFormat = format
        }
        s.tracing = TracingSettings(environment: env)
        s.pipeline.tracing = MessageTracing(enabled: s.tracing.enabled)
        s.providers = try ProviderSettings.fromEnvironment(env)
        if let v = value("REDIS_URL") { s.redisURL = v }
        if let v = try millis("SWITCHBOARD_REDIS_WAIT_MS") { s.redisUnavailableWait = v }
        if let v = try millis("SWITCHBOARD_STALL_TIMEOUT_MS") { s.stallTimeout = v == .zero ? nil : v }
        try s.validateRedisURL()
        s.elasticsearch = try elasticsearchConfiguration(reader)
        if let v = value("MONGODB_URL") { s.mongoURL = v }
        if let v = try int("SWITCHBOARD_RETENTION_DAYS", 0...36_500) { s.retention = v == 0 ? nil : .seconds(v * 86_400) }
        if value("SWITCHBOARD_SQLITE_STATS") != nil { s.sqliteStatsInterval = .seconds(1) }
        if let v = value("SWITCHBOARD_AUTH") {
            guard let mode = AccessControl.Mode(rawValue: v.lowercased()) else { throw SettingsError("SWITCHBOARD_AUTH=\(v.prefix(20)): use on or off") }
            s.auth = mode
        }
        if let v = value("SWITCHBOARD_ADMIN_KEY") {
            // The value is a secret: never repeated in the error.
            guard APIKeySecret.isWellFormed(v) else {
                throw SettingsError("SWITCHBOARD_ADMIN_KEY does not look like an API key: it must be sb_live_ (or sb_test_) and 43 base64url characters (`switchboard keys generate` makes one)")
            }
            s.adminKey = v
        }
        if let v = value("SWITCHBOARD_KEY_RATE") {
            guard let r = Double(v), r.isFinite, r > 0, r <= 1_000_000 else { throw SettingsError("SWITCHBOARD_KEY_RATE=\(v) is not a number of requests per second above 0 (at most 1000000)") }
            s.keyRate = r
        }
        if let v = try int("SWITCHBOARD_KEY_BURST", 1...1_000_000) { s.keyBurst = v }
        if let v = try int("SWITCHBOARD_AUTH_FAILURES_PER_MINUTE", 0...1_000_000) { s.authFailuresPerMinute = v }
        try s.validateMongoURL()
        return s
    }

    /// Checks that `redisURL`, if set, is a usable `redis://` or `rediss://` URL (the error never shows the password).
    public func validateRedisURL() throws {
        guard let redisURL else { return }
        do {
            _ = try RedisConfiguration(url: redisURL)
        } catch {
            throw SettingsError("REDIS_URL=\(Self.mask(redisURL)): \(error)")
        }
    }

    /// The effective configuration, one `name=value` per entry, secrets masked.
    public var summary: [(String, String)] {
        [
            ("listen", "\(host):\(port)"), ("tls", tlsCertificateFile.map { "on (TLS 1.2+), certificate \($0), key \(tlsKeyFile ?? "?")" } ?? "off (plain HTTP)"),
            ("cors", corsOrigins.origins.isEmpty ? "off" : corsOrigins.origins.sorted().joined(separator: ",")),
            ("httpIdleTimeout", httpIdleTimeout.map { "\($0)" } ?? "off"), ("store", mongoURL.map { "mongodb \(Self.mask($0))" } ?? "sqlite \(databasePath)"),
            ("queue", redisURL.map { "redis streams \(Self.mask($0)) (unavailable wait \(redisUnavailableWait))" } ?? "sqlite streams"), ("search", elasticsearch.map { "elasticsearch/opensearch \($0.description)" } ?? "sqlite fts5"),
            ("sqlite.synchronous", synchronous.rawValue),
            ("providers", MessageChannel.allCases.map { "\($0.rawValue)=\(providers.order(for: $0).map(\.rawValue).joined(separator: ","))" }.joined(separator: " ")),
            ("retry", "attempts=\(pipeline.retry.maxAttempts) base=\(pipeline.retry.baseDelay) max=\(pipeline.retry.maxDelay) jitter=\(pipeline.retry.jitter)"),
            ("lease", "\(lease)"), ("maxDeliveries", "\(pipeline.maxDeliveries)"), ("concurrency", "\(pipeline.concurrency)"), ("batchSize", "\(pipeline.batchSize)"),
            ("outboxGrace", "\(pipeline.outboxGrace)"), ("stallTimeout", redisURL == nil ? "off (embedded streams)" : stallTimeout.map { "\($0)" } ?? "off"), ("schedulerInterval", "\(pipeline.schedulerInterval)"), ("poll", "\(pollInterval)"),
            ("retention", retention.map { "\(Int($0.components.seconds / 86_400)) days" } ?? "off (kept for ever)"),
            ("auth", auth == .off ? "off (the API is open)" : adminKey == nil ? "on" : "on (bootstrap admin key set)"),
            ("metrics", "GET /metrics" + (metricsPort.map { " on port \($0) (workers, logger)" } ?? "") + (metricsToken == nil ? ", open" : ", bearer token")),
            ("keyRateLimit", "rate=\(keyRate)/s burst=\(keyBurst) (\(redisURL == nil ? "per process" : "shared through redis"))"),
            ("tracing", tracing.enabled ? "otlp/http \(Self.mask(tracing.endpoint))" : "off (trace ids only)"), ("logFormat", logFormat.rawValue),
        ] + providers.summary
    }

    /// The default connection cap's ceiling, however high the open-file limit.
    public static let maxConnectionsCeiling = 16_384
    /// File descriptors always left to the rest of the process (database, engines' connections, the runtime).
    public static let reservedFileDescriptors = 128

    /// The connection cap for a process whose open-file limit is `openFileLimit`: `SWITCHBOARD_MAX_CONNECTIONS`,
    /// lowered so that at least ``reservedFileDescriptors`` stay free (then `lowered` says so), or by default half
    /// the limit, at most ``maxConnectionsCeiling``.
    public func effectiveMaxConnections(openFileLimit: Int) -> (value: Int, lowered: Bool) {
        let room = max(1, openFileLimit - Self.reservedFileDescriptors)
        guard let maxConnections else { return (max(1, min(Self.maxConnectionsCeiling, openFileLimit / 2, room)), false) }
        return maxConnections > room ? (room, true) : (maxConnections, false)
    }

    /// Masks the password in a URL-like value (`redis://user:secret@host` → `redis://user:****@host`).
    public static func mask(_ value: String) -> String {
        // The user info ends at the last "@" before the query, as the Redis client reads it (a password may contain "@").
        guard let scheme = value.range(of: "://") else { return value }
        let end = value[scheme.upperBound...].firstIndex(of: "?") ?? value.endIndex
        guard let at = value[scheme.upperBound..<end].lastIndex(of: "@") else { return value }
        let credentials = value[scheme.upperBound..<at]
        guard let colon = credentials.firstIndex(of: ":") else { return value }
        return String(value[..<credentials.index(after: colon)]) + "****" + String(value[at...])
    }
}
