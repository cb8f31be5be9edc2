import HTTPTypes
import Hummingbird
import NIOCore
import SwitchboardApp
import SwitchboardCore

// MARK: POST /api/v1/dead-letters/redrive

extension API {
    /// The largest body a redrive takes: 1000 ids with room to spare.
    static let maxRedriveBody = 256 * 1024

    /// What a redrive asks for: messages by id, or the failed messages a filter finds.
    enum RedriveRequest: Equatable {
        case ids([String])
        case filter(FailedQuery)
    }

    /// Redrives dead-lettered (`failed`) messages, listed by id or found by a filter (`Redrive`): each goes back on
    /// its stream with a fresh attempt budget, by the key that asked; anything not `failed` is reported and left
    /// alone, so repeating a redrive never sends twice.
    ///
    /// Scope `send`, as cancel: a redrive only sends again what was accepted for sending and then failed — what a
    /// sender does with its own failures after fixing their cause — and grants nothing a `send` key could not do by
    /// posting the message again (which would send it under a new id, with no history of the failure). `admin`
    /// stays for managing keys.
    func redrive(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let body = try await Self.jsonBody(request, limit: Self.maxRedriveBody)
        let redrive = Redrive(adapters: adapters, logger: logger)
        let report: Redrive.Report
        switch try Self.redriveRequest(body) {
        case .ids(let ids): report = try await redrive.redrive(ids: ids, by: context.identity?.id)
        case .filter(let query): report = try await redrive.redrive(query, by: context.identity?.id)
        }
        return .json(Self.render(report))
    }

    /// Reads a redrive's body: `{"ids": [...]}` or `{"filter": {"stream", "since", "until", "error"}, "limit": n}`.
    static func redriveRequest(_ body: JSONValue) throws -> RedriveRequest {
        guard case .object(let o) = body else { throw APIError(.badRequest, code: "invalid_body", message: "The body must be a JSON object.") }
        if let unknown = o.keys.sorted().first(where: { !["ids", "filter", "limit"].contains($0) }) {
            throw APIError(.badRequest, code: "unknown_field", message: "Unknown field \"\(unknown.prefix(64))\"; allowed: filter, ids, limit.", field: String(unknown.prefix(64)))
        }
        let max = Redrive.maxMessages
        switch (o["ids"], o["filter"]) {
        case (nil, nil):
            throw APIError(.badRequest, code: "invalid_body", message: "Give ids (the communications to redrive) or filter (which failed ones to find).")
        case (.some, .some):
            throw APIError(.badRequest, code: "invalid_body", message: "Give ids or filter, not both.", field: "filter")
        case (let ids?, nil):
            if o["limit"] != nil { throw APIError(.badRequest, code: "invalid_field", message: "limit goes with filter; ids are redriven all.", field: "limit") }
            guard case .array(let items) = ids, (1...max).contains(items.count) else {
                throw APIError(.badRequest, code: "invalid_field", message: "ids must be a list of 1 to \(max) communication ids.", field: "ids")
            }
            return .ids(try items.map { item in
                guard case .string(let id) = item, (1...100).contains(id.unicodeScalars.count), !id.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
                    throw APIError(.badRequest, code: "invalid_field", message: "Each of ids must be a communication id: a string of 1 to 100 characters, no control characters.", field: "ids")
                }
                return id
            })
        case (nil, let filter?):
            guard case .object(let f) = filter else { throw APIError(.badRequest, code: "invalid_field", message: "filter must be an object: stream, since, until, error.", field: "filter") }
            if let unknown = f.keys.sorted().first(where: { !["stream", "since", "until", "error"].contains($0) }) {
                throw APIError(.badRequest, code: "unknown_field", message: "Unknown filter field \"\(unknown.prefix(64))\"; allowed: error, since, stream, until.", field: "filter.\(unknown.prefix(64))")
            }
            let streams = MessageChannel.allCases.map(\.stream)
            guard case .string(let stream)? = f["stream"], let channel = MessageChannel.allCases.first(where: { $0.stream == stream }) else {
                throw APIError(.badRequest, code: "invalid_field", message: "filter.stream is required: one of \(streams.joined(separator: ", ")).", field: "filter.stream")
            }
            func time(_ name: String) throws -> Timestamp? {
                guard let v = f[name] else { return nil }
                guard case .string(let text) = v, let t = Timestamp(parsing: text) else {
                    throw APIError(.badRequest, code: "invalid_field", message: "filter.\(name) must be an RFC 3339 time (2026-01-31T12:00:00Z) or epoch milliseconds, as a string.", field: "filter.\(name)")
                }
                return t
            }
            let since = try time("since"), until = try time("until")
            if let since, let until, since >= until {
                throw APIError(.badRequest, code: "invalid_field", message: "filter.until must be after filter.since.", field: "filter.until")
            }
            var code: String?
            if let e = f["error"] {
                guard case .string(let text) = e, (1...200).contains(text.unicodeScalars.count) else {
                    throw APIError(.badRequest, code: "invalid_field", message: "filter.error must be a provider error code: a string of 1 to 200 characters (21211, SANDBOX_REJECTED).", field: "filter.error")
                }
                code = text
            }
            var limit = 100
            if let l = o["limit"] {
                guard case .number(let n) = l, n.rounded() == n, n >= 1, n <= Double(max) else {
                    throw APIError(.badRequest, code: "invalid_field", message: "limit must be a whole number from 1 to \(max).", field: "limit")
                }
                limit = Int(n)
            }
            return .filter(FailedQuery(channel: channel, since: since, until: until, errorCode: code, limit: limit))
        }
    }

    /// The answer: each message's outcome in the order asked, and the counts.
    static func render(_ report: Redrive.Report) -> JSONValue {
        var counts = ["redriven": 0, "not_failed": 0, "not_found": 0]
        let items = report.outcomes.map { outcome -> JSONValue in
            switch outcome {
            case .redriven(let c):
                counts["redriven", default: 0] += 1
                return .object(["id": .string(c.id), "outcome": .string("redriven"), "status": .string(c.status.rawValue)])
            case .notFailed(let id, let status):
                counts["not_failed", default: 0] += 1
                return .object(["id": .string(id), "outcome": .string("not_failed"), "status": .string(status.rawValue)])
            case .notFound(let id):
                counts["not_found", default: 0] += 1
                return .object(["id": .string(id), "outcome": .string("not_found")])
            }
        }
        return .object([
            "items": .array(items), "count": .number(Double(items.count)),
            "counts": .object(counts.mapValues { .number(Double($0)) }), "deadLettersRemoved": .number(Double(report.deadLettersRemoved)),
        ])
    }
}
