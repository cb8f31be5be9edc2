import Logging
import NIOHTTP1
import ServiceLifecycle
import SwitchboardCore
import SwitchboardLifecycle

/// One `index` action of a `_bulk` request.
public struct BulkAction: Sendable, Hashable {
    /// The target index.
    public var index: String
    /// The document's `_id`.
    public var id: String
    /// When set, the action uses external versioning (`version_type=external_gte`): the cluster keeps the
    /// document with the highest version, so a late older update does not overwrite a newer one.
    public var version: Int64?
    /// The document, as JSON text.
    public var source: String
    /// The communication's creation time, for the catch-up when the action is dropped or fails for good.
    public var createdAt: Timestamp?

    public init(index: String, id: String, version: Int64? = nil, source: String, createdAt: Timestamp? = nil) {
        self.index = index
        self.id = id
        self.version = version
        self.source = source
        self.createdAt = createdAt
    }

    /// The two NDJSON lines of the action.
    var ndjson: String {
        var meta: [String: JSONValue] = ["_index": .string(index), "_id": .string(id)]
        if let version {
            meta["version"] = .number(Double(version))
            meta["version_type"] = .string("external_gte")
        }
        return JSONValue.object(["index": .object(meta)]).canonicalText + "\n" + source + "\n"
    }

    var size: Int { source.utf8.count + index.utf8.count + id.utf8.count + 80 }
}

/// Counters of a bulk indexer since it started.
public struct BulkStatistics: Sendable, Hashable {
    /// Actions the cluster confirmed.
    public var indexed = 0
    /// Actions ignored because the cluster held a newer version of the document.
    public var superseded = 0
    /// Items the cluster rejected for good (item errors other than 409, 429 and 5xx).
    public var failed = 0
    /// Actions dropped because the buffer was full.
    public var dropped = 0
    /// Buffered actions whose batch still failed after its retries (left to the catch-up).
    public var givenUp = 0
    /// Retries of a batch or of some of its items.
    public var retries = 0
    /// `_bulk` requests sent.
    public var requests = 0

    /// All zero.
    public init() {}
}

/// Batches index actions into `_bulk` requests: by count, bytes and time; retries 429, 5xx and connection
/// errors with exponential backoff (whole requests, and the items a response marks 429 or 5xx); reports
/// the other item errors. Memory is bounded: past `maxBuffered` actions, new ones are dropped and the
/// earliest `createdAt` among them is kept for the catch-up (`takeDirtySince()`).
public actor BulkIndexer {
    let client: ElasticsearchClient
    let options: BulkOptions
    let logger: Logger
    /// Run before each request until it succeeds once (template installation); reset when the cluster was unreachable.
    let prepare: @Sendable () async throws -> Void
    var prepared = false

    var buffer: [BulkAction] = []
    /// Index of each buffered document in `buffer`, to merge updates of one document.
    var positions: [String: Int] = [:]
    var bufferedBytes = 0
    var oldest: ContinuousClock.Instant?
    var dirtySince: Timestamp?
    var inFlight = 0
    var stopping = false
    var waiter: CheckedContinuation<Void, Never>?
    var timer: Task<Void, Never>?
    public private(set) var statistics = BulkStatistics()

    /// - Parameter prepare: run before the first request and after the cluster was unreachable (templates).
    public init(client: ElasticsearchClient, options: BulkOptions, logger: Logger, prepare: @escaping @Sendable () async throws -> Void = {}) {
        self.client = client
        self.options = options
        self.logger = logger
        self.prepare = prepare
    }

    // MARK: Buffered (fire and forget)

    /// Buffers `actions` for the background flusher and returns at once. An update of a buffered document
    /// replaces it when its version is not older.
    public func enqueue(_ actions: [BulkAction]) {
        for a in actions {
            let key = a.index + "\u{0}" + a.id
            if let i = positions[key] {
                if (a.version ?? .max) >= (buffer[i].version ?? .min) {
                    bufferedBytes += a.size - buffer[i].size
                    buffer[i] = a
                }
                continue
            }
            guard buffer.count < options.maxBuffered else {
                statistics.dropped += 1
                markDirty([a])
                continue
            }
            positions[key] = buffer.count
            buffer.append(a)
            bufferedBytes += a.size
            if oldest == nil { oldest = .now }
        }
        if buffer.count >= options.maxActions || bufferedBytes >= options.maxBytes { wake() }
        if statistics.dropped > 0, statistics.dropped % 1000 == 1 {
            logger.warning("elasticsearch buffer full; documents dropped, the catch-up will index them", metadata: ["dropped": "\(statistics.dropped)"])
        }
    }

    /// The earliest `createdAt` among documents dropped or failed since the last call, and forgets it.
    public func takeDirtySince() -> Timestamp? {
        defer { dirtySince = nil }
        return dirtySince
    }

    /// Remembers `since` again (a catch-up that could not finish).
    public func markDirty(since: Timestamp) {
        dirtySince = min(dirtySince ?? since, since)
    }

    func markDirty(_ actions: [BulkAction]) {
        for a in actions { if let c = a.createdAt { markDirty(since: c) } }
    }

    /// Buffered actions not yet sent.
    public var bufferedCount: Int { buffer.count }

    /// Sends buffered batches until `stop()`, by count, bytes or after `flushInterval`; then sends what is left.
    public func run() async {
        while !stopping {
            if let oldest, buffer.count >= options.maxActions || bufferedBytes >= options.maxBytes || ContinuousClock.now - oldest >= options.flushInterval {
                await sendBatch()
                continue
            }
            let wait = oldest.map { options.flushInterval - (ContinuousClock.now - $0) } ?? options.flushInterval
            await sleep(max(.milliseconds(1), wait))
        }
        await drain()
    }

    /// Stops the flusher after it sent what is buffered (graceful shutdown).
    public func stop() {
        stopping = true
        wake()
    }

    /// Sends everything buffered now and waits until no batch is in flight.
    public func flush() async {
        await drain()
        while inFlight > 0 { try? await Task.sleep(for: .milliseconds(5)) }
    }

    func drain() async {
        // Cancelled: the shutdown's time for the final flush is up (what is left goes to the catch-up).
        while !buffer.isEmpty, !Task.isCancelled { await sendBatch() }
        if Task.isCancelled, !buffer.isEmpty {
            markDirty(buffer)
            statistics.givenUp += buffer.count
        }
    }

    /// Takes one batch off the buffer (up to `maxActions` and `maxBytes`, at least one action).
    func takeBatch() -> [BulkAction] {
        var n = 0, bytes = 0
        while n < buffer.count, n < options.maxActions, n == 0 || bytes + buffer[n].size <= options.maxBytes {
            bytes += buffer[n].size
            n += 1
        }
        let batch = Array(buffer.prefix(n))
        buffer.removeFirst(n)
        bufferedBytes -= bytes
        positions = [:]
        for (i, a) in buffer.enumerated() { positions[a.index + "\u{0}" + a.id] = i }
        oldest = buffer.isEmpty ? nil : .now
        return batch
    }

    func sendBatch() async {
        let batch = takeBatch()
        guard !batch.isEmpty else { return }
        inFlight += 1
        defer { inFlight -= 1 }
        let result = await deliver(batch, giveUpEarly: stopping, callerStops: false)
        if !result.exhausted.isEmpty {
            statistics.givenUp += result.exhausted.count
            client.metrics.bulkFailed(documents: result.exhausted.count)
            markDirty(result.exhausted)
            // Cancelled: the shutdown's time for the last flush ran out, which the index's service says once.
            logger.log(level: Task.isCancelled ? .debug : .error, "elasticsearch bulk batch failed after retries; the catch-up will index it", metadata: ["actions": "\(result.exhausted.count)", "error": "\(result.lastError.map { "\($0)" } ?? "?")"])
        }
    }

    func sleep(_ duration: Duration) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            waiter = c
            timer = Task { [weak self] in
                try? await Task.sleep(for: duration)
                await self?.wake()
            }
        }
    }

    func wake() {
        timer?.cancel()
        timer = nil
        if let w = waiter {
            waiter = nil
            w.resume()
        }
    }

    // MARK: Confirmed

    /// Sends `actions` now (in batches) and returns once the cluster confirmed them. Items rejected for good
    /// (a mapping error, say) are logged and counted, not thrown; when retries run out on 429, 5xx or an
    /// unreachable cluster, the last error is thrown.
    public func submit(_ actions: [BulkAction]) async throws {
        var rest = actions[...]
        while !rest.isEmpty {
            var n = 0, bytes = 0
            while n < rest.count, n < options.maxActions, n == 0 || bytes + rest[rest.startIndex + n].size <= options.maxBytes {
                bytes += rest[rest.startIndex + n].size
                n += 1
            }
            let result = await deliver(Array(rest.prefix(n)), giveUpEarly: false, callerStops: true)
            if !result.exhausted.isEmpty { throw result.lastError ?? ElasticsearchError.connection("bulk request failed") }
            rest = rest.dropFirst(n)
        }
    }

    // MARK: Sending

    struct Delivery {
        /// Actions still failing with a retryable error after the last try.
        var exhausted: [BulkAction] = []
        var lastError: ElasticsearchError?
    }

    /// Runs `prepare` (dialect, templates, indices) unless it succeeded since the cluster was last unreachable.
    /// The start-up preparation and the first request share this, so the cluster is prepared once.
    public func prepareIfNeeded() async throws {
        guard !prepared else { return }
        try await prepare()
        prepared = true
    }

    /// One `_bulk` request per try, retrying the whole request or its retryable items with backoff.
    /// - Parameters:
    ///   - giveUpEarly: after two tries (the final flush at shutdown).
    ///   - callerStops: for a caller of another service (the logging service, the catch-up): when that service is
    ///     asked to stop (graceful shutdown), the request in flight is cancelled and nothing is retried — a
    ///     cluster that does not answer never holds a shutdown up for its request timeout. What was not
    ///     confirmed stays to do (`log_stream` entries unacknowledged, the catch-up's margin at the next start).
    func deliver(_ actions: [BulkAction], giveUpEarly: Bool, callerStops: Bool) async -> Delivery {
        var pending = actions
        var failures = 0
        var lastError: ElasticsearchError?
        while !pending.isEmpty {
            do {
                let batch = pending
                if callerStops {
                    pending = try await cancelWhenGracefulShutdown { try await self.prepareAndPost(batch) }
                } else {
                    pending = try await prepareAndPost(batch)
                }
                if pending.isEmpty { return Delivery() }
                lastError = .http(status: 429, type: "bulk_items_retryable", reason: "\(pending.count) items answered 429 or 5xx")
            } catch let e as ElasticsearchError where e.isRetryable {
                lastError = e
                if e.isUnreachable { prepared = false }
            } catch {
                // The whole request was refused (401, 403, 400): not worth retrying now; the caller keeps the actions.
                let e = (error as? ElasticsearchError) ?? .invalidResponse("\(error)")
                logger.error("elasticsearch bulk request rejected", metadata: ["actions": "\(pending.count)", "error": "\(e)"])
                return Delivery(exhausted: pending, lastError: e)
            }
            failures += 1
            if failures >= options.maxAttempts || (giveUpEarly && failures >= 2) || Task.isCancelled || (callerStops && Task.isShuttingDownGracefully) {
                return Delivery(exhausted: pending, lastError: lastError)
            }
            statistics.retries += 1
            logger.debug("retrying elasticsearch bulk request", metadata: ["actions": "\(pending.count)", "attempt": "\(failures + 1)", "error": "\(lastError.map { "\($0)" } ?? "?")"])
            // Ends at once on the calling service's graceful shutdown (then the next check gives up, or the final
            // flush makes its last try).
            await pause(for: options.backoff.delay(afterFailures: failures))
        }
        return Delivery()
    }

    func prepareAndPost(_ actions: [BulkAction]) async throws -> [BulkAction] {
        try await prepareIfNeeded()
        statistics.requests += 1
        return try await post(actions)
    }

    /// Posts one `_bulk` request; returns the actions to retry (items answered 429 or 5xx).
    func post(_ actions: [BulkAction]) async throws -> [BulkAction] {
        var body: [UInt8] = []
        body.reserveCapacity(actions.reduce(0) { $0 + $1.size })
        for a in actions { body.append(contentsOf: a.ndjson.utf8) }
        let answer = try await client.send(.POST, "/_bulk", json: body, contentType: "application/x-ndjson").decode(BulkAnswer.self)
        guard answer.errors else {
            statistics.indexed += actions.count
            return []
        }
        guard let items = answer.items, items.count == actions.count else {
            throw ElasticsearchError.invalidResponse("_bulk answered errors=true with \(answer.items == nil ? "no" : "a different number of") items")
        }
        var retry: [BulkAction] = []
        for (a, item) in zip(actions, items) {
            let status = item.result.status
            let error = item.result.error
            if (200..<300).contains(status) && error == nil {
                statistics.indexed += 1
            } else if status == 409, error?.type == "version_conflict_engine_exception" {
                statistics.superseded += 1  // the cluster holds a newer version: nothing to do
            } else if status == 429 || status >= 500 {
                retry.append(a)
            } else {
                statistics.failed += 1
                client.metrics.bulkFailed(documents: 1)
                logger.error("elasticsearch rejected a document", metadata: [
                    "index": "\(a.index)", "id": "\(a.id)", "status": "\(status)",
                    "type": "\(error?.type ?? "?")", "reason": "\(error?.reason ?? "?")",
                ])
            }
        }
        return retry
    }
}
