/// Every metric Switchboard exports, in one place: Prometheus names under the `switchboard_` prefix with the
/// unit in the name, and the labels each one carries (a name is always exported with the same label names;
/// the Prometheus registry refuses anything else). The README's metrics table is this list.
///
/// The code records through the swift-metrics API (`Counter`, `Timer`, `Recorder`, `Meter`, `Gauge`) with these
/// names; the process bootstraps swift-prometheus as the backend (`SwitchboardServer`), so nothing here
/// knows about the exposition format.
public enum MetricName {
    // MARK: HTTP (recorded by `HTTPMetricsMiddleware`)

    /// Counter {method, route, status}: requests answered, by route template (`/api/v1/communication/{id}`).
    public static let httpRequests = "switchboard_http_requests_total"
    /// Histogram {method, route, status}: time to answer.
    public static let httpRequestDuration = "switchboard_http_request_duration_seconds"
    /// Counter {method, route, error}: requests answered with a server error (5xx; `error` is the status).
    public static let httpRequestErrors = "switchboard_http_request_errors_total"
    /// Gauge {method}: requests being answered now.
    public static let httpActiveRequests = "switchboard_http_active_requests"

    // MARK: Messages

    /// Counter {channel}: messages accepted (stored durably and answered `queued`).
    public static let messagesAccepted = "switchboard_messages_accepted_total"
    /// Counter {channel, status}: status changes recorded (each applied once; replays are not counted).
    public static let statusTransitions = "switchboard_status_transitions_total"
    /// Histogram {channel, provider}: from accept to `sent`.
    public static let deliveryDuration = "switchboard_message_delivery_duration_seconds"
    /// Histogram {channel}: delivery attempts a message took, observed when it ends (`sent` or `failed`).
    public static let messageAttempts = "switchboard_message_attempts"

    // MARK: Providers

    /// Counter {provider, outcome}: provider calls by outcome (`sent`, `retryable`, `permanent`).
    public static let providerCalls = "switchboard_provider_calls_total"
    /// Histogram {provider}: duration of one provider call (HTTP request or SMTP dialogue).
    public static let providerCallDuration = "switchboard_provider_call_duration_seconds"
    /// Gauge {provider}: circuit breaker state, 0 closed, 1 half-open, 2 open.
    public static let providerCircuitState = "switchboard_provider_circuit_state"
    /// Counter {provider}: calls refused by the provider's local rate limit (not sent to the provider).
    public static let providerRateLimited = "switchboard_provider_rate_limited_total"
    /// Counter {provider}: calls refused because the circuit was open (not sent to the provider).
    public static let providerCircuitRejected = "switchboard_provider_circuit_rejected_total"

    // MARK: Queues (sampled when scraped)

    /// Gauge {stream}: entries in the stream.
    public static let queueLength = "switchboard_queue_length"
    /// Gauge {stream}: entries delivered to a consumer and not yet acknowledged.
    public static let queuePending = "switchboard_queue_pending"
    /// Gauge {stream}: age of the oldest pending entry, 0 when none is pending.
    public static let queueOldestPendingAge = "switchboard_queue_oldest_pending_age_seconds"
    /// Gauge {stream}: entries in the stream's dead-letter stream.
    public static let queueDeadLetters = "switchboard_queue_dead_letters"
    /// Gauge: messages the outbox has due for (re)publication now.
    public static let outboxDue = "switchboard_outbox_due_messages"

    // MARK: Engines

    /// Histogram {engine}: duration of one store commit (SQLite: one group commit).
    public static let storeCommitDuration = "switchboard_store_commit_duration_seconds"
    /// Histogram {engine}: transactions in one group commit.
    public static let storeCommitBatchSize = "switchboard_store_commit_batch_size"
    /// Gauge {pool}: Redis connections open in the process's pools (`pool`: `commands`, or `blocking` for the
    /// blocking reads' pool).
    public static let redisPoolConnections = "switchboard_redis_pool_connections"
    /// Gauge {pool}: Redis connections lent out now.
    public static let redisPoolConnectionsInUse = "switchboard_redis_pool_connections_in_use"
    /// Counter {pool}: borrowers that had to wait for a Redis connection.
    public static let redisPoolWaits = "switchboard_redis_pool_waits_total"
    /// Gauge: age of the oldest log record waiting to be indexed when the logging service last indexed.
    public static let searchIndexingLag = "switchboard_search_indexing_lag_seconds"
    /// Counter: documents a bulk request failed to index.
    public static let searchBulkFailures = "switchboard_search_bulk_failures_total"
    /// Counter {engine}: requests to an engine that failed (connection or server error).
    public static let engineErrors = "switchboard_engine_errors_total"
    /// Gauge {engine, role}: 1 when the engine answered its health check at the last scrape, else 0.
    public static let engineUp = "switchboard_engine_up"

    // MARK: Logs

    /// Counter {level}: log lines this process wrote, by level (`error`, `warning`, …).
    public static let logMessages = "switchboard_log_messages_total"

    // MARK: Process (the standard names of Prometheus' client libraries)

    public static let processResidentMemory = "process_resident_memory_bytes"
    public static let processVirtualMemory = "process_virtual_memory_bytes"
    public static let processCPUSeconds = "process_cpu_seconds_total"
    public static let processOpenFDs = "process_open_fds"
    public static let processMaxFDs = "process_max_fds"
    public static let processStartTime = "process_start_time_seconds"
}

/// Histogram buckets, by metric name (the defaults of swift-prometheus suit none of these).
public enum MetricBuckets {
    /// Seconds: HTTP answers and provider calls (1 ms … 30 s).
    public static let request: [Duration] = [
        .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5),
        .seconds(10), .seconds(30),
    ]
    /// Seconds: accept to sent, retries included (10 ms … 24 h).
    public static let delivery: [Duration] = [
        .milliseconds(10), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
        .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30), .seconds(60), .seconds(300), .seconds(900),
        .seconds(3600), .seconds(14400), .seconds(86400),
    ]
    /// Seconds: one store commit (50 µs … 5 s).
    public static let commit: [Duration] = [
        .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1),
        .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .seconds(1), .seconds(5),
    ]
    /// Attempts per message.
    public static let attempts: [Double] = [1, 2, 3, 4, 5, 6, 8, 10, 15]
    /// Transactions per group commit.
    public static let batchSize: [Double] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]

    /// Duration buckets by (Prometheus) name.
    public static let durations: [String: [Duration]] = [
        MetricName.httpRequestDuration: request,
        MetricName.providerCallDuration: request,
        MetricName.deliveryDuration: delivery,
        MetricName.storeCommitDuration: commit,
    ]
    /// Value buckets by (Prometheus) name.
    public static let values: [String: [Double]] = [
        MetricName.messageAttempts: attempts,
        MetricName.storeCommitBatchSize: batchSize,
    ]
}
