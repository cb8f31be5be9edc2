import Logging
import Synchronization
import SwitchboardCore
import SwitchboardRedis

/// The `RateLimiter` shared by every router of a deployment (`REDIS_URL`): one token bucket per name in Redis,
/// taken by one atomic script per request, so routers added behind a load balancer do not multiply a key's
/// allowance.
///
/// - **Key.** `ratelimit:{<bucket>}`, a hash with the tokens held (`t`) and when they were counted (`u`,
///   microseconds of the server's clock). The braces make the bucket name the key's hash tag, so the key
///   stays on one slot should the deployment move to Redis Cluster.
/// - **Script.** `EVALSHA` (sent whole with `EVAL` only after `NOSCRIPT`, see `RedisScript`): reads `TIME`,
///   refills the bucket for the time elapsed, takes a token or refuses, writes the bucket back and sets its
///   expiry. Atomic: concurrent requests on different routers never both take the last token.
/// - **Time.** From Redis (`TIME`), never from the routers, so their clocks may disagree. A server clock that
///   goes back (a failover to a replica behind) refills nothing until it has caught up.
/// - **Expiry.** The key expires when the bucket would be full again (plus a second): an idle bucket costs no
///   memory, and one that expired is exactly a full bucket.
/// - **Answer.** The same arithmetic as `RateLimitBucket` and the same `RateDecision(allowed:tokens:limit:)`,
///   so the headers are computed alike on both limiters.
/// - **Redis unreachable** (or refusing the script): the request is decided by `fallback` (the process's own
///   `LocalRateLimiter`), so the API keeps answering, with per-process allowances meanwhile. One warning when
///   the outage begins, one line when Redis answers again with how many requests were decided locally;
///   during the outage Redis is tried again at most every `retryInterval` (one request pays the connection
///   wait, not every request).
public final class RedisRateLimiter: RateLimiter {
    /// The Redis client (shared with the stream queue in a deployment; not shut down by the limiter).
    public let client: RedisClient
    /// What decides while Redis does not answer.
    public let fallback: any RateLimiter
    /// How long after a failure Redis is tried again.
    public let retryInterval: Duration
    let logger: Logger

    struct Outage {
        var since: ContinuousClock.Instant?
        var retryAt: ContinuousClock.Instant?
        var decidedLocally = 0
    }

    private let outage = Mutex(Outage())

    /// The key of bucket `name`.
    public static func key(_ name: String) -> String { "ratelimit:{\(name)}" }

    /// The token bucket, as one script. KEYS[1]: the bucket; ARGV[1]: rate (tokens per second, > 0);
    /// ARGV[2]: burst (≥ 1). Returns `{allowed (0/1), tokens left (text)}`.
    public static let script = RedisScript(
        """
        if redis.replicate_commands then redis.replicate_commands() end
        local rate = tonumber(ARGV[1])
        local burst = tonumber(ARGV[2])
        local clock = redis.call('TIME')
        local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
        local held = redis.call('HMGET', KEYS[1], 't', 'u')
        local tokens = tonumber(held[1])
        local updated = tonumber(held[2])
        if tokens == nil or updated == nil then
          tokens = burst
          updated = now
        elseif now > updated then
          tokens = math.min(burst, tokens + (now - updated) * rate / 1000000)
          updated = now
        else
          tokens = math.min(tokens, burst)
        end
        local allowed = 0
        if tokens >= 1 then
          tokens = tokens - 1
          allowed = 1
        end
        redis.call('HSET', KEYS[1], 't', tostring(tokens), 'u', string.format('%.0f', updated))
        local ttl = math.min(math.ceil((burst - tokens) / rate * 1000) + 1000, 31536000000)
        redis.call('PEXPIRE', KEYS[1], string.format('%.0f', ttl))
        return {allowed, tostring(tokens)}
        """)

    /// - Parameters:
    ///   - client: the Redis client (the stream queue's in a deployment).
    ///   - fallback: decides while Redis is unreachable (the process's `LocalRateLimiter`).
    ///   - retryInterval: how long after a failure Redis is tried again.
    ///   - logger: where the outage is told.
    public init(client: RedisClient, fallback: any RateLimiter, retryInterval: Duration = .seconds(1), logger: Logger = Logger(label: "switchboard.ratelimit")) {
        self.client = client
        self.fallback = fallback
        self.retryInterval = retryInterval
        self.logger = logger
    }

    public func take(_ bucket: String, limit: RateLimit) async throws -> RateDecision {
        let now = ContinuousClock.now
        let tryRedis = outage.withLock { o -> Bool in
            guard let retryAt = o.retryAt else { return true }
            guard now >= retryAt else { return false }
            o.retryAt = now + retryInterval  // this request probes; the others keep deciding locally meanwhile
            return true
        }
        if tryRedis {
            do throws(RedisError) {
                let decision = try await shared(bucket, limit: limit)
                recovered()
                return decision
            } catch .cancelled {
                throw CancellationError()
            } catch {
                failed(error)
            }
        }
        outage.withLock { $0.decidedLocally += 1 }
        return try await fallback.take(bucket, limit: limit)
    }

    /// One run of the script.
    func shared(_ bucket: String, limit: RateLimit) async throws(RedisError) -> RateDecision {
        let (rate, burst) = RateLimitBucket.sanitized(limit)
        let reply = try await client.run(Self.script, keys: [Self.key(bucket)], arguments: [String(rate), String(Int(burst))])
        guard let items = reply.array, items.count == 2, let allowed = items[0].int, let tokens = items[1].string.flatMap(Double.init) else {
            throw RedisError.unexpectedReply(command: "EVALSHA", reply: "\(reply)")
        }
        return RateDecision(allowed: allowed == 1, tokens: tokens, limit: limit)
    }

    private func failed(_ error: RedisError) {
        let now = ContinuousClock.now
        let began = outage.withLock { o -> Bool in
            o.retryAt = now + retryInterval
            guard o.since == nil else { return false }
            o.since = now
            o.decidedLocally = 0
            return true
        }
        if began {
            logger.warning("rate limits: Redis does not answer; each router limits on its own until it does", metadata: ["error": "\(error)"])
        }
    }

    private func recovered() {
        let ended = outage.withLock { o -> (Duration, Int)? in
            guard let since = o.since else { return nil }
            defer { o = Outage() }
            return (ContinuousClock.now - since, o.decidedLocally)
        }
        if let ended {
            logger.notice("rate limits: Redis answers again; limits are shared again", metadata: ["outage": "\(ended.0)", "decidedLocally": "\(ended.1)"])
        }
    }

    /// Whether requests are being decided locally because Redis did not answer (for tests and health).
    public var isFallingBack: Bool { outage.withLock { $0.since != nil } }
}
