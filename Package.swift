// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "switchboard",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "switchboard", targets: ["switchboard"]),
        .library(name: "SwitchboardCore", targets: ["SwitchboardCore"]),
        .library(name: "SwitchboardRedis", targets: ["SwitchboardRedis"]),
        .executable(name: "redis-xadd-bench", targets: ["redis-xadd-bench"]),
    ],
    // `MongoDB`: the MongoDB store (MONGODB_URL) on libmongoc (`swift build --traits MongoDB`). Off by default,
    // so that the default build needs no system library beyond SQLite.
    traits: [.trait(name: "MongoDB")],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth.git", from: "2.5.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.1"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.30.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.0.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        .package(url: "https://github.com/apple/swift-service-context.git", from: "1.5.1"),
        // OTLP over HTTP only: the gRPC exporter's trait would build grpc-swift for nothing.
        .package(url: "https://github.com/swift-otel/swift-otel.git", from: "1.6.0", traits: ["OTLPHTTP"]),
        // Message templates (Mustache), rendered at accept by SwitchboardApp's TemplateRenderer.
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
    ],
    targets: [
        // Exponential backoff: the one rule every wait after a failure follows. Pure, imports nothing.
        .target(name: "SwitchboardBackoff"),
        // The one way a service loops (pass, pause, backoff, prompt stop on graceful shutdown), for the App
        // services and the adapters' own services alike.
        .target(
            name: "SwitchboardLifecycle",
            dependencies: [
                "SwitchboardBackoff",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Metric names and handles, and trace helpers, on the swift-metrics and swift-distributed-tracing APIs
        // only (no backend): what the services and adapters record with. The backends are chosen by the server.
        .target(
            name: "SwitchboardTelemetry",
            dependencies: [
                "SwitchboardCore",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Instrumentation", package: "swift-distributed-tracing"),
                .product(name: "ServiceContextModule", package: "swift-service-context"),
            ]
        ),
        // The domain and the ports. Imports nothing but the standard library (and the pure backoff): no I/O.
        .target(name: "SwitchboardCore", dependencies: ["SwitchboardBackoff"]),
        // Application services (router pipeline, workers, logger, outbox scheduler) written against the ports.
        .target(
            name: "SwitchboardApp",
            dependencies: [
                "SwitchboardTelemetry",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                "SwitchboardCore",
                "SwitchboardLifecycle",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Mustache", package: "swift-mustache"),
            ]
        ),
        // HTTP API (Hummingbird): the seed's router contract plus read endpoints and health; API keys (Auth/).
        .target(
            name: "SwitchboardHTTP",
            dependencies: [
                "SwitchboardTelemetry",
                .product(name: "Metrics", package: "swift-metrics"),
                "SwitchboardCore",
                "SwitchboardApp",
                "SwitchboardProviders",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdAuth", package: "hummingbird-auth"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // Embedded engine adapter: store, streams, full-text search and sandbox mailbox in one SQLite file.
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .target(
            name: "SwitchboardSQLite",
            dependencies: [
                "SwitchboardTelemetry",
                "SwitchboardCore",
                "SwitchboardLifecycle",
                "CSQLite",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Redis client on SwiftNIO: RESP2/3, pipelining, pool, AUTH, TLS, reconnect, typed stream commands.
        .target(
            name: "SwitchboardRedis",
            dependencies: [
                "SwitchboardTelemetry",
                "SwitchboardBackoff",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // XADD rate of the Redis client (scripts/bench-redis.sh compares it with redis-benchmark).
        .executableTarget(
            name: "redis-xadd-bench",
            dependencies: [
                "SwitchboardRedis",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // Scale-out queue adapter: the MessageQueue port on Redis Streams consumer groups (REDIS_URL).
        .target(
            name: "SwitchboardRedisStreams",
            dependencies: [
                "SwitchboardTelemetry",
                "SwitchboardCore",
                "SwitchboardRedis",
                "SwitchboardLifecycle",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Search adapter: the SearchIndex port on Elasticsearch 8 or OpenSearch (ELASTICSEARCH_NODE), bulk indexer.
        .target(
            name: "SwitchboardElasticsearch",
            dependencies: [
                "SwitchboardTelemetry",
                "SwitchboardCore",
                "SwitchboardLifecycle",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Store adapter: the CommunicationStore port on MongoDB (MONGODB_URL) through libmongoc; trait `MongoDB`.
        .systemLibrary(name: "CMongoC", pkgConfig: "libmongoc-1.0", providers: [.apt(["libmongoc-dev"])]),
        .target(
            name: "SwitchboardMongo",
            dependencies: [
                "SwitchboardTelemetry",
                "SwitchboardCore",
                "SwitchboardLifecycle",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .target(name: "CMongoC", condition: .when(traits: ["MongoDB"])),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Kibana saved objects importer (`switchboard kibana import`): multipart POST to the import API, waits for Kibana.
        .target(
            name: "SwitchboardKibana",
            dependencies: [
                "SwitchboardElasticsearch",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // Sandbox delivery provider (the default while a channel has no credentials).
        .target(name: "SwitchboardSandbox", dependencies: ["SwitchboardCore"]),
        // SMTP submission client on SwiftNIO + NIOSSL (STARTTLS / implicit TLS, AUTH, MIME builder, pool).
        .target(
            name: "SwitchboardSMTP",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Real delivery providers (SMTP, Twilio, Meta WhatsApp Cloud API) and their status webhooks.
        .target(
            name: "SwitchboardProviders",
            dependencies: [
                "SwitchboardTelemetry",
                "SwitchboardCore",
                "SwitchboardSMTP",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Composition root: settings from flags and environment, engines and providers chosen, services built.
        .target(
            name: "SwitchboardServer",
            dependencies: [
                "SwitchboardTelemetry",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "OTel", package: "swift-otel"),
                "SwitchboardCore",
                "SwitchboardApp",
                "SwitchboardHTTP",
                "SwitchboardSQLite",
                "SwitchboardRedis",
                "SwitchboardRedisStreams",
                "SwitchboardSandbox",
                "SwitchboardSMTP",
                "SwitchboardProviders",
                "SwitchboardElasticsearch",
                .target(name: "SwitchboardMongo", condition: .when(traits: ["MongoDB"])),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        .executableTarget(
            name: "switchboard",
            dependencies: [
                "SwitchboardServer",
                "SwitchboardKibana",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Shared by the test targets: the queue contract every MessageQueue passes, and throwaway redis-servers.
        .target(
            name: "SwitchboardTestSupport",
            dependencies: [
                "SwitchboardCore",
                "SwitchboardSQLite",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            path: "Tests/SwitchboardTestSupport"
        ),
        // Shared by the provider and Kibana tests: a scripted local HTTP server that records what it receives.
        .target(
            name: "SwitchboardTestHTTP",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/SwitchboardTestHTTP"
        ),
        // Shared by the whole-system tests: fast settings, running a system's services, polling.
        .target(
            name: "SwitchboardTestSystem",
            dependencies: [
                "SwitchboardCore", "SwitchboardApp", "SwitchboardServer",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/SwitchboardTestSystem"
        ),
        .testTarget(name: "SwitchboardCoreTests", dependencies: ["SwitchboardCore"]),
        .testTarget(name: "SwitchboardAppTests", dependencies: ["SwitchboardApp", "SwitchboardCore", "SwitchboardSQLite", "SwitchboardTestSupport", "SwitchboardTelemetry", .product(name: "MetricsTestKit", package: "swift-metrics")]),
        .testTarget(
            name: "SwitchboardSMTPTests",
            dependencies: [
                "SwitchboardTestSupport",
                "SwitchboardSMTP",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "SwitchboardProvidersTests",
            dependencies: [
                "SwitchboardCore", "SwitchboardApp", "SwitchboardSMTP", "SwitchboardProviders", "SwitchboardHTTP", "SwitchboardServer", "SwitchboardTestHTTP", "SwitchboardTestSystem", "SwitchboardTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "SwitchboardRedisStreamsTests",
            dependencies: ["SwitchboardCore", "SwitchboardRedis", "SwitchboardRedisStreams", "SwitchboardTestSupport"]
        ),
        .testTarget(
            name: "SwitchboardRedisTests",
            dependencies: [
                "SwitchboardRedis",
                "SwitchboardTestSupport",
                "SwitchboardTelemetry",
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "SwitchboardSQLiteTests",
            dependencies: ["SwitchboardCore", "SwitchboardSQLite", "SwitchboardTestSupport", "SwitchboardTelemetry", .product(name: "MetricsTestKit", package: "swift-metrics")]
        ),
        .testTarget(
            name: "SwitchboardMongoTests",
            dependencies: [
                "SwitchboardCore", "SwitchboardTestSupport", "SwitchboardTelemetry", .product(name: "MetricsTestKit", package: "swift-metrics"),
                .target(name: "SwitchboardMongo", condition: .when(traits: ["MongoDB"])),
            ]
        ),
        .testTarget(
            name: "SwitchboardHTTPTests",
            dependencies: [
                "SwitchboardCore", "SwitchboardApp", "SwitchboardHTTP", "SwitchboardSQLite", "SwitchboardSandbox", "SwitchboardTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Elasticsearch / OpenSearch adapter: search contract on SQLite and both emulators, bulk indexer, end to end.
        .testTarget(
            name: "SwitchboardElasticsearchTests",
            dependencies: [
                "SwitchboardCore", "SwitchboardApp", "SwitchboardHTTP", "SwitchboardSQLite", "SwitchboardServer", "SwitchboardElasticsearch", "SwitchboardTestSupport", "SwitchboardTestSystem",
                "SwitchboardTelemetry", .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "SwitchboardKibanaTests",
            dependencies: [
                "SwitchboardKibana", "SwitchboardElasticsearch", "SwitchboardCore", "SwitchboardTestHTTP",
            ]
        ),
        .testTarget(
            name: "SwitchboardEndToEndTests",
            dependencies: [
                "SwitchboardCore", "SwitchboardApp", "SwitchboardHTTP", "SwitchboardSQLite", "SwitchboardSandbox", "SwitchboardServer", "SwitchboardProviders",
                "SwitchboardRedis", "SwitchboardRedisStreams", "SwitchboardTestSupport", "SwitchboardTestSystem", "SwitchboardTelemetry", "SwitchboardTestHTTP",
                .target(name: "SwitchboardMongo", condition: .when(traits: ["MongoDB"])),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ]
        ),
    ]
)
