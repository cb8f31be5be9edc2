import HTTPTypes
import Hummingbird
import SwitchboardCore

/// The rate-limit fields of keyed answers and the 429 answers, for the auth middleware.
///
/// Every answer to a request made with a key carries the IETF fields of the key's bucket
/// (draft-ietf-httpapi-ratelimit-headers, the three-field form):
/// - `RateLimit-Limit`: the bucket's size (the key's burst);
/// - `RateLimit-Remaining`: whole requests left right now;
/// - `RateLimit-Reset`: seconds until the bucket is full again (0: full).
///
/// A refused request is answered 429 `{"error":{"code":"rate_limited","message":…}}` with `Retry-After`
/// (seconds until one request is allowed) and the same three fields.
public enum RateLimitHeaders {
    public static let limit = HTTPField.Name("RateLimit-Limit")!
    public static let remaining = HTTPField.Name("RateLimit-Remaining")!
    public static let reset = HTTPField.Name("RateLimit-Reset")!

    /// The three `RateLimit-*` fields of `decision`.
    public static func fields(_ decision: RateDecision) -> HTTPFields {
        [limit: String(max(0, decision.limit)), remaining: String(max(0, decision.remaining)), reset: String(max(0, decision.resetSeconds))]
    }

    /// Sets the three fields of `decision` on `response` (replacing any already there).
    public static func apply(_ decision: RateDecision, to response: inout Response) {
        for field in fields(decision) { response.headers[field.name] = field.value }
    }

    /// `response` with the three fields of `decision`.
    public static func applying(_ decision: RateDecision, to response: Response) -> Response {
        var r = response
        apply(decision, to: &r)
        return r
    }

    /// Runs `next` (the rest of the chain) and puts the three fields of `decision` on what it answers: on its
    /// response, or on the API error it throws (rethrown with the fields, for the API's error middleware to
    /// render). Errors of other types are rethrown as they are: a middleware placed outside (before) the API's
    /// error middleware receives every answer as a response, so every keyed answer gets the fields.
    public static func answering(_ decision: RateDecision, _ next: () async throws -> Response) async throws -> Response {
        do {
            return applying(decision, to: try await next())
        } catch var error as APIError {
            for field in fields(decision) { error.headers[field.name] = field.value }
            throw error
        }
    }

    /// The answer to a request over its key's limit: 429 `rate_limited` with `Retry-After` and the three fields.
    public static func rateLimited(_ decision: RateDecision) -> Response {
        overLimit(decision).json
    }

    /// The same answer as an error a middleware or route can throw (the API's error middleware renders it).
    public static func rateLimitedError(_ decision: RateDecision) -> any Error {
        overLimit(decision)
    }

    /// The answer to a request from an address that failed authentication too often: 429 `rate_limited` with
    /// `Retry-After`, without `RateLimit-*` fields (no key is involved).
    public static func tooManyFailures(_ decision: RateDecision) -> Response {
        failures(decision).json
    }

    /// The same answer as an error to throw.
    public static func tooManyFailuresError(_ decision: RateDecision) -> any Error {
        failures(decision)
    }

    static func overLimit(_ decision: RateDecision) -> APIError {
        let retry = retryAfter(decision)
        var headers = fields(decision)
        headers[.retryAfter] = String(retry)
        return APIError(
            .tooManyRequests, code: "rate_limited",
            message: "Too many requests for this API key (at most \(decision.limit) at once); retry after \(retry) second\(retry == 1 ? "" : "s").",
            headers: headers)
    }

    static func failures(_ decision: RateDecision) -> APIError {
        let retry = retryAfter(decision)
        return APIError(
            .tooManyRequests, code: "rate_limited",
            message: "Too many failed authentication attempts from this address; retry after \(retry) second\(retry == 1 ? "" : "s").",
            headers: [.retryAfter: String(retry)])
    }

    /// `Retry-After` of a refusal: at least one second.
    static func retryAfter(_ decision: RateDecision) -> Int {
        max(1, decision.retryAfterSeconds ?? 1)
    }
}
