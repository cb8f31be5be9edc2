/// A request rate and the burst above it.
public struct RateLimit: Sendable, Hashable {
    /// Requests per second.
    public var rate: Double
    /// Most requests at once (the bucket's size).
    public var burst: Int

    public init(rate: Double, burst: Int) {
        self.rate = rate
        self.burst = burst
    }
}

/// What a rate limiter decided for one request; the fields of the IETF `RateLimit-*` headers.
public struct RateDecision: Sendable, Hashable {
    /// Whether the request may go ahead (a token was taken).
    public var allowed: Bool
    /// The bucket's size (`RateLimit-Limit`).
    public var limit: Int
    /// Whole tokens left after this request (`RateLimit-Remaining`).
    public var remaining: Int
    /// Seconds until the bucket is full again (`RateLimit-Reset`).
    public var resetSeconds: Int
    /// When refused: seconds until a token is available (`Retry-After`, at least 1).
    public var retryAfterSeconds: Int?

    public init(allowed: Bool, limit: Int, remaining: Int, resetSeconds: Int, retryAfterSeconds: Int? = nil) {
        self.allowed = allowed
        self.limit = limit
        self.remaining = remaining
        self.resetSeconds = resetSeconds
        self.retryAfterSeconds = retryAfterSeconds
    }
}

/// Token buckets by name (an API key's id, a client address): per process, or shared by every router of a
/// deployment (Redis).
public protocol RateLimiter: Sendable {
    /// Takes one token from the bucket `bucket` (created full on first use), or refuses.
    func take(_ bucket: String, limit: RateLimit) async throws -> RateDecision
}
