import CoreMetrics

/// The engines' metrics, for the adapters to record: each adapter makes the handles it needs once.
public enum EngineMetrics {
    /// One store commit's duration (`engine`: `sqlite`, `mongodb`).
    public static func commitDuration(engine: String, factory: any MetricsFactory = MetricsSystem.factory) -> Timer {
        Timer(label: MetricName.storeCommitDuration, dimensions: [("engine", engine)], factory: factory)
    }

    /// Transactions in one group commit.
    public static func commitBatchSize(engine: String, factory: any MetricsFactory = MetricsSystem.factory) -> Recorder {
        Recorder(label: MetricName.storeCommitBatchSize, dimensions: [("engine", engine)], aggregate: true, factory: factory)
    }

    /// Failed requests to an engine (`engine`: `redis`, `mongodb`, `elasticsearch`, `sqlite`).
    public static func errors(engine: String, factory: any MetricsFactory = MetricsSystem.factory) -> Counter {
        Counter(label: MetricName.engineErrors, dimensions: [("engine", engine)], factory: factory)
    }

    public static func redisPoolConnections(factory: any MetricsFactory = MetricsSystem.factory) -> Gauge {
        Gauge(label: MetricName.redisPoolConnections, factory: factory)
    }

    public static func redisPoolConnectionsInUse(factory: any MetricsFactory = MetricsSystem.factory) -> Gauge {
        Gauge(label: MetricName.redisPoolConnectionsInUse, factory: factory)
    }

    public static func redisPoolWaits(factory: any MetricsFactory = MetricsSystem.factory) -> Counter {
        Counter(label: MetricName.redisPoolWaits, factory: factory)
    }

    public static func searchIndexingLag(factory: any MetricsFactory = MetricsSystem.factory) -> Gauge {
        Gauge(label: MetricName.searchIndexingLag, factory: factory)
    }

    public static func searchBulkFailures(factory: any MetricsFactory = MetricsSystem.factory) -> Counter {
        Counter(label: MetricName.searchBulkFailures, factory: factory)
    }
}
