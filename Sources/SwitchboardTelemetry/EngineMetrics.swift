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

    /// Connections open in a Redis pool (`pool`: `commands`, `blocking`). A `Meter` (gauge that goes up and
    /// down): every pool of the process adds to its series.
    public static func redisPoolConnections(pool: String, factory: any MetricsFactory = MetricsSystem.factory) -> Meter {
        Meter(label: MetricName.redisPoolConnections, dimensions: [("pool", pool)], factory: factory)
    }

    /// Connections of a Redis pool lent out now.
    public static func redisPoolConnectionsInUse(pool: String, factory: any MetricsFactory = MetricsSystem.factory) -> Meter {
        Meter(label: MetricName.redisPoolConnectionsInUse, dimensions: [("pool", pool)], factory: factory)
    }

    /// Borrowers of a Redis pool that had to wait for a connection.
    public static func redisPoolWaits(pool: String, factory: any MetricsFactory = MetricsSystem.factory) -> Counter {
        Counter(label: MetricName.redisPoolWaits, dimensions: [("pool", pool)], factory: factory)
    }

    public static func searchIndexingLag(factory: any MetricsFactory = MetricsSystem.factory) -> Gauge {
        Gauge(label: MetricName.searchIndexingLag, factory: factory)
    }

    public static func searchBulkFailures(factory: any MetricsFactory = MetricsSystem.factory) -> Counter {
        Counter(label: MetricName.searchBulkFailures, factory: factory)
    }
}
