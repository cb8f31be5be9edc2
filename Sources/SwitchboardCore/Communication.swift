/// One entry of a communication's status history.
public struct StatusChange: Sendable, Hashable, Codable {
    public var status: CommunicationStatus
    public var at: Timestamp
    /// The delivery attempt this change belongs to (0 before the first attempt).
    public var attempt: Int
    /// The service that made the change (`router`, `sms`, `webhook`, …).
    public var service: String
    /// The provider involved, if any.
    public var provider: String?
    /// The error or reason, if any.
    public var detail: String?

    public init(status: CommunicationStatus, at: Timestamp, attempt: Int, service: String, provider: String? = nil, detail: String? = nil) {
        self.status = status
        self.at = at
        self.attempt = attempt
        self.service = service
        self.provider = provider
        self.detail = detail
    }
}

/// A communication as the store holds it: the source of truth.
public struct Communication: Sendable, Hashable {
    public var id: String
    public var request: CommunicationRequest
    public var status: CommunicationStatus
    public var attempts: Int
    public var dispatchSeq: Int
    /// When the outbox must (re)publish it; nil when nothing is due.
    public var dispatchAt: Timestamp?
    public var provider: String?
    public var providerMessageID: String?
    public var lastError: ProviderError?
    public var idempotencyKey: String?
    public var createdAt: Timestamp
    public var updatedAt: Timestamp
    /// Every status change, oldest first. Stores may leave it empty where a caller did not ask for it.
    public var history: [StatusChange]
    /// The id of the API key that created it (never the secret); nil when the API was open.
    public var keyID: String?
    /// Created with a test key: delivered by the sandbox whatever providers are configured.
    public var test: Bool
    /// The message's trace context (W3C `traceparent`): its trace id, and the router's span every later span of
    /// the message (deliveries, retries, indexing) descends from. Nil on records stored before traces existed.
    public var traceParent: TraceParent?

    public init(id: String, request: CommunicationRequest, status: CommunicationStatus, attempts: Int = 0, dispatchSeq: Int = 1, dispatchAt: Timestamp? = nil, provider: String? = nil, providerMessageID: String? = nil, lastError: ProviderError? = nil, idempotencyKey: String? = nil, createdAt: Timestamp, updatedAt: Timestamp, history: [StatusChange] = [], keyID: String? = nil, test: Bool = false, traceParent: TraceParent? = nil) {
        self.id = id
        self.request = request
        self.status = status
        self.attempts = attempts
        self.dispatchSeq = dispatchSeq
        self.dispatchAt = dispatchAt
        self.provider = provider
        self.providerMessageID = providerMessageID
        self.lastError = lastError
        self.idempotencyKey = idempotencyKey
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.history = history
        self.keyID = keyID
        self.test = test
        self.traceParent = traceParent
    }

    public var channel: MessageChannel { request.channel }

    /// The state the status machine reads.
    public var dispatchState: DispatchState { DispatchState(status: status, dispatchSeq: dispatchSeq, attempts: attempts) }

    /// This communication after `effect`, changed by `service` at `at`, with the history entry it adds.
    public func applying(_ effect: TransitionEffect, at: Timestamp, service: String) -> (Communication, StatusChange) {
        var c = self
        c.status = effect.status
        c.dispatchSeq = effect.dispatchSeq
        c.attempts = effect.attempts
        switch effect.dispatchAt {
        case .keep: break
        case .clear: c.dispatchAt = nil
        case .set(let t): c.dispatchAt = t
        }
        if let p = effect.provider { c.provider = p }
        if let id = effect.providerMessageID { c.providerMessageID = id }
        if let e = effect.lastError { c.lastError = e }
        c.updatedAt = at
        let change = StatusChange(status: effect.status, at: at, attempt: effect.attempts, service: service, provider: effect.provider, detail: effect.detail ?? effect.lastError?.description)
        c.history.append(change)
        return (c, change)
    }
}

/// A communication to create, as the router hands it to the store.
public struct NewCommunication: Sendable, Hashable {
    public var id: String
    public var request: CommunicationRequest
    public var idempotencyKey: String?
    public var createdAt: Timestamp
    /// When the outbox should publish it if its publication is not confirmed first.
    public var dispatchAt: Timestamp
    /// The service that accepts it (named by its first history entries).
    public var service: String
    /// Stored already `queued` (dispatch 1, still due at `dispatchAt` until the publication is confirmed),
    /// as the port-by-port pipeline accepts it; else stored `pending`.
    public var queued: Bool
    /// The id of the API key that sent it, if any.
    public var keyID: String?
    /// Sent with a test key: goes to the sandbox whatever providers are configured.
    public var test: Bool
    /// The message's trace context, stored on the record (see `Communication.traceParent`).
    public var traceParent: TraceParent?
    /// Its send time, when later than its creation: stored `scheduled`, due in the outbox then, and kept out of
    /// its stream until the outbox publishes it (`queued` does not apply). Nil: sent at once.
    public var sendAt: Timestamp?

    public init(id: String, request: CommunicationRequest, idempotencyKey: String?, createdAt: Timestamp, dispatchAt: Timestamp, service: String = "router", queued: Bool = false, keyID: String? = nil, test: Bool = false, traceParent: TraceParent? = nil, sendAt: Timestamp? = nil) {
        self.sendAt = sendAt
        self.id = id
        self.request = request
        self.idempotencyKey = idempotencyKey
        self.createdAt = createdAt
        self.dispatchAt = dispatchAt
        self.service = service
        self.queued = queued
        self.keyID = keyID
        self.test = test
        self.traceParent = traceParent
    }

    /// The stored record: `pending`, dispatch 1, with its first history entry; with a `sendAt`, then
    /// `scheduled` at the same time, due at `sendAt`; else with `queued`, then `queued` at the same time (through
    /// `StatusMachine`, still due at `dispatchAt`).
    public var communication: Communication {
        let pending = Communication(id: id, request: request, status: .pending, attempts: 0, dispatchSeq: 1, dispatchAt: dispatchAt, idempotencyKey: idempotencyKey, createdAt: createdAt, updatedAt: createdAt, history: [StatusChange(status: .pending, at: createdAt, attempt: 0, service: service)], keyID: keyID, test: test, traceParent: traceParent)
        if let sendAt {
            guard case .apply(let effect) = StatusMachine.decide(pending.dispatchState, .scheduled(sendAt: sendAt)) else { return pending }
            return pending.applying(effect, at: createdAt, service: service).0
        }
        return queued ? pending.queued(at: createdAt, service: service, due: dispatchAt) : pending
    }
}

extension Communication {
    /// This `pending` communication after `queued` for its current dispatch, decided by `StatusMachine`, with
    /// `due` as its outbox due time (nil: none, its stream entry is written with it). Unchanged when the
    /// machine refuses (it is not pending).
    public func queued(at: Timestamp, service: String, due: Timestamp?) -> Communication {
        guard case .apply(let effect) = StatusMachine.decide(dispatchState, .queued(dispatchSeq: dispatchSeq), watchdog: due) else { return self }
        return applying(effect, at: at, service: service).0
    }
}

/// What `create` did with one new communication.
public enum CreateOutcome: Sendable, Hashable {
    /// Stored.
    case created(Communication)
    /// The idempotency key was used before with the same request: this is that communication.
    case existing(Communication)
    /// The idempotency key was used before with a different request.
    case conflict(existingID: String)
}

/// A status event addressed to one communication.
public struct StatusTransition: Sendable, Hashable {
    public var id: String
    public var event: StatusEvent
    public var at: Timestamp
    /// The service reporting it (`router`, `email`, `sms`, `whatsapp`, `scheduler`, `webhook`).
    public var service: String
    /// For `queued` and `processing`: when the outbox should redispatch the message if it is still there
    /// (see `StatusMachine.decide`). Nil: no watchdog.
    public var watchdog: Timestamp?

    public init(id: String, event: StatusEvent, at: Timestamp, service: String, watchdog: Timestamp? = nil) {
        self.id = id
        self.event = event
        self.at = at
        self.service = service
        self.watchdog = watchdog
    }
}

/// What `apply` did with one transition.
public enum TransitionOutcome: Sendable, Hashable {
    /// Written: the communication after it (history not loaded) and the history entry added.
    case applied(Communication, StatusChange)
    /// Nothing written; the communication as it is (history not loaded) and why.
    case ignored(Communication, reason: String)
    /// No communication has that id.
    case notFound(id: String)
}
