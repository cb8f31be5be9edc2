import Hummingbird
import NIOCore
import SwitchboardApp
import SwitchboardCore

// MARK: POST /api/v1/communications/batch

extension API {
    /// Most items in one batch.
    static let maxBatchItems = 1000
    /// Largest batch body: 1,000 requests of the usual size with room to spare.
    static let maxBatchBodySize = 16 << 20

    /// Accepts up to 1,000 requests at once. Each item is judged on its own, exactly as `POST
    /// /api/v1/communication` judges one (`admit`); the valid ones are stored together (one `Pipeline.accept`:
    /// one transaction and one commit on the embedded engine), the others answered with their error. The answer
    /// lists every item in order. One `Idempotency-Key` covers the batch: item `i` is stored under `<key>#<i>`, so
    /// the same batch sent again is answered as the first time (`Idempotent-Replayed: true`) and nothing is
    /// stored twice, while the key sent with another batch is a 409 that stores nothing.
    func batch(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let key = try Self.idempotencyKey(request)
        let body = try await Self.jsonBody(request, limit: Self.maxBatchBodySize)
        guard case .object(let top) = body else {
            throw APIError(.badRequest, code: "invalid_body", message: "The body must be a JSON object: {\"items\": [{\"type\": …, \"data\": {…}}, …]}.")
        }
        for name in top.keys.sorted() where name != "items" {
            throw APIError(.badRequest, code: "unknown_field", message: "Unknown field \"\(name)\"; a batch takes \"items\".", field: name)
        }
        guard let itemsValue = top["items"] else {
            throw APIError(.badRequest, code: "missing_field", message: "\"items\" is required: an array of 1 to \(Self.maxBatchItems) requests, each as POST /api/v1/communication takes it.", field: "items")
        }
        guard case .array(let items) = itemsValue else {
            throw APIError(.badRequest, code: "invalid_field_type", message: "\"items\" must be an array, not \(itemsValue.typeName).", field: "items")
        }
        guard (1...Self.maxBatchItems).contains(items.count) else {
            throw APIError(.badRequest, code: "invalid_batch_size", message: "\"items\" holds \(items.count) requests; a batch takes 1 to \(Self.maxBatchItems).", field: "items")
        }

        // Each item on its own; an item's error names its place (`items[3].data.to`).
        let keyID = context.identity?.id
        var results: [Result<CommunicationRequest, APIError>] = []
        results.reserveCapacity(items.count)
        let validation = dispatcher.tracing.startSpanInCurrentContext("validate batch")
        validation?.set("switchboard.batch_size", items.count)
        for (i, item) in items.enumerated() {
            switch try await admit(item, keyID: keyID, traced: false, checkSuppression: false) {
            case .success(let r): results.append(.success(r))
            case .failure(var e):
                e.field = "items[\(i)]" + (e.field.map { "." + $0 } ?? "")
                results.append(.failure(e))
            }
        }
        validation?.set("switchboard.batch_rejected", results.filter { if case .failure = $0 { true } else { false } }.count)
        validation?.end()
        var valid: [(index: Int, item: Dispatcher.Item)] = []
        for (i, r) in results.enumerated() {
            if case .success(let request) = r { valid.append((i, Dispatcher.Item(request, idempotencyKey: key.map { "\($0)#\(i)" }))) }
        }

        // The suppression list: every valid item's recipient in one store call.
        let hits = valid.isEmpty ? [] : try await suppressed(valid.map(\.item.request))

        // The key used before: only the same batch is a replay (every valid item stored under its key, with the
        // same request, but for items whose recipient is suppressed: refused the first time, or now); anything else
        // stores nothing.
        var replayed = false
        var stored: Set<String> = []
        if let key, !valid.isEmpty {
            let found = try await adapters.store.communications(idempotencyKeys: valid.compactMap(\.item.idempotencyKey))
            if !found.isEmpty {
                // A shorter batch under the key is another batch too: nothing may be stored past its last item.
                let beyond = items.count < Self.maxBatchItems
                    ? try await adapters.store.communications(idempotencyKeys: (items.count..<Self.maxBatchItems).map { "\(key)#\($0)" }) : [:]
                let same = beyond.isEmpty && zip(valid, hits).allSatisfy { v, hit in
                    guard let c = v.item.idempotencyKey.flatMap({ found[$0] }) else { return hit != nil }
                    return c.request.channel == v.item.request.channel && c.request.data == v.item.request.data
                }
                guard same else {
                    throw APIError(.conflict, code: "idempotency_conflict", message: "Idempotency-Key \(key.prefix(64)) was already used with a different batch; nothing was stored.", field: "Idempotency-Key")
                }
                replayed = true
                stored = Set(found.keys)
            }
        }

        // A suppressed recipient's item is refused (422, as a single POST), unless a replay finds it stored: a replay
        // answers as the first time did, even for a recipient suppressed since.
        var kept: [(index: Int, item: Dispatcher.Item)] = []
        for (v, hit) in zip(valid, hits) {
            if let hit, !(v.item.idempotencyKey.map(stored.contains) ?? false) {
                var e = Self.suppressedError(hit)
                e.field = "items[\(v.index)].data.to"
                results[v.index] = .failure(e)
            } else {
                kept.append(v)
            }
        }
        valid = kept

        let trace = dispatcher.tracing.currentTraceParent() ?? request.headers[Self.traceparent].flatMap { TraceParent(parsing: $0) }
        let outcomes = try await dispatcher.accept(valid.map(\.item), keyID: keyID, test: context.identity?.test ?? false, trace: trace)
        if !outcomes.isEmpty { writes.stored() }
        var answers = results.enumerated().map { i, r -> JSONValue in
            guard case .failure(let e) = r else { return .null }
            return .object(["index": .number(Double(i)), "status": .string("rejected"), "httpStatus": .number(Double(e.status.code)), "error": e.body["error"] ?? .null])
        }
        for (v, outcome) in zip(valid, outcomes) {
            switch outcome {
            case .accepted(let id, let stored, let status, _, _):
                answers[v.index] = .object(["index": .number(Double(v.index)), "id": .string(id), "status": .string(status.rawValue), "stream": .string(stored.channel.stream)])
            case .conflict(let existing):
                // Another request took this item's key between the check and the write.
                let e = APIError(.conflict, code: "idempotency_conflict", message: "Idempotency-Key \(v.item.idempotencyKey ?? "") was already used with a different request (communication \(existing)).", field: "items[\(v.index)]")
                answers[v.index] = .object(["index": .number(Double(v.index)), "status": .string("rejected"), "httpStatus": .number(409), "error": e.body["error"] ?? .null])
            }
        }
        let accepted = answers.filter { $0["id"] != nil }.count
        return .json(
            .object(["items": .array(answers), "accepted": .number(Double(accepted)), "rejected": .number(Double(items.count - accepted))]),
            headers: replayed ? [Self.replayed: "true"] : [:])
    }

    /// The request's `Idempotency-Key`, checked: 1 to 255 visible ASCII characters.
    static func idempotencyKey(_ request: Request) throws -> String? {
        try request.headers[Self.idempotencyKey].map { k in
            guard !k.isEmpty, k.utf8.count <= 255, k.unicodeScalars.allSatisfy({ $0.value >= 0x21 && $0.value < 0x7F }) else {
                throw APIError(.badRequest, code: "invalid_idempotency_key", message: "Idempotency-Key must be 1 to 255 visible ASCII characters.", field: "Idempotency-Key")
            }
            return k
        }
    }
}
