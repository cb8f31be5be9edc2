import CoreMetrics
import HTTPTypes
import Hummingbird
import Synchronization
import SwitchboardTelemetry

/// The HTTP metrics (`switchboard_http_*`: requests and their duration by method, route template and status;
/// server errors — a 5xx answer, or an error no inner middleware turned into one —; requests in flight),
/// recorded when the handler returns.
///
/// Hummingbird's own `MetricsMiddleware` records the same after the body is written, by wrapping every answer's
/// body in a closure: that takes the answer off Hummingbird's path for a buffered body (head, body and end in one
/// write) and costs a second write per answer on the hot path. Every answer here is a buffer, so the time until
/// the handler returns is the time to answer less that one write. Same metric names and labels as the
/// Hummingbird middleware's, after `MetricName.hummingbirdRenames`.
struct HTTPMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let cache: HTTPMetricsCache

    init(factory: any MetricsFactory) {
        cache = HTTPMetricsCache(factory: factory)
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        let active = cache.active(request.method)
        active.increment()
        defer { active.decrement() }
        do {
            let response = try await next(request, context)
            let metrics = cache.endpoint(route: context.endpointPath ?? "NotFound", method: request.method, status: response.status.code)
            metrics.record(since: started)
            if response.status.code >= 500 { metrics.errors.increment() }
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status.code ?? 500
            let metrics = cache.endpoint(route: context.endpointPath ?? "NotFound", method: request.method, status: status)
            metrics.record(since: started)
            metrics.errors.increment()
            throw error
        }
    }
}

/// The handles of each (route, method, status) seen, made the first time: a lookup under a lock per request.
final class HTTPMetricsCache: Sendable {
    struct Key: Hashable {
        let route: String
        let method: HTTPRequest.Method
        let status: Int
    }

    struct Endpoint: Sendable {
        let requests: Counter
        let duration: Timer
        let errors: Counter

        func record(since started: ContinuousClock.Instant) {
            requests.increment()
            duration.recordNanoseconds(SwitchboardTelemetry.nanoseconds(ContinuousClock.now - started))
        }
    }

    let factory: any MetricsFactory
    let endpoints = Mutex<[Key: Endpoint]>([:])
    let methods = Mutex<[HTTPRequest.Method: Meter]>([:])

    init(factory: any MetricsFactory) {
        self.factory = factory
    }

    func endpoint(route: String, method: HTTPRequest.Method, status: Int) -> Endpoint {
        let key = Key(route: route, method: method, status: status)
        return endpoints.withLock { cache in
            if let e = cache[key] { return e }
            let labels = [("method", method.rawValue), ("route", route), ("status", String(status))]
            let e = Endpoint(
                requests: Counter(label: MetricName.httpRequests, dimensions: labels, factory: factory),
                duration: Timer(label: MetricName.httpRequestDuration, dimensions: labels, factory: factory),
                errors: Counter(label: MetricName.httpRequestErrors, dimensions: [("method", method.rawValue), ("route", route), ("error", String(status))], factory: factory))
            cache[key] = e
            return e
        }
    }

    func active(_ method: HTTPRequest.Method) -> Meter {
        methods.withLock { cache in
            if let m = cache[method] { return m }
            let m = Meter(label: MetricName.httpActiveRequests, dimensions: [("method", method.rawValue)], factory: factory)
            cache[method] = m
            return m
        }
    }
}
