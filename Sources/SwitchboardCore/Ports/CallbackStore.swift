/// Status callbacks to the client (Standard Webhooks): the endpoints a client registered, the deliveries made
/// for them from the status feed, and the dispatcher's place in that feed. One port, so that an engine keeps them
/// beside each other (and, on the embedded engine, a page of deliveries and the cursor that moved past it are one
/// transaction).
///
/// A delivery is made once per endpoint and status-feed event: its id is built from both (`CallbackDelivery.id`),
/// so a page read again after a crash, or by a second router, inserts nothing new.
public protocol CallbackStore: Sendable {
    // MARK: endpoints

    func createEndpoint(_ endpoint: CallbackEndpoint) async throws
    /// Every endpoint, oldest first.
    func endpoints() async throws -> [CallbackEndpoint]
    func endpoint(id: String) async throws -> CallbackEndpoint?
    /// Replaces the stored endpoint of the same id (its secret and creation time are kept); false when none.
    func updateEndpoint(_ endpoint: CallbackEndpoint) async throws -> Bool
    /// Deletes the endpoint and its deliveries; false when none.
    func deleteEndpoint(id: String) async throws -> Bool

    // MARK: the dispatcher's cursor

    /// Where the dispatcher stopped in the status feed; nil before its first start.
    func cursor() async throws -> FeedPosition?
    /// Inserts `deliveries` (those whose id exists already are skipped) and moves the cursor to `cursor` unless it
    /// is past it already. One transaction where the engine has them; else the deliveries first, so a crash in
    /// between only makes the next read insert nothing.
    func enqueue(_ deliveries: [CallbackDelivery], cursor: FeedPosition) async throws

    // MARK: sending

    /// Up to `limit` pending deliveries due by `now`, oldest due first, each leased: its due time moves to
    /// `now + lease`, so another sender does not take it meanwhile (a sender that dies leaves it due again then).
    func claimDue(now: Timestamp, lease: Duration, limit: Int) async throws -> [CallbackDelivery]
    /// Records an attempt: the delivery's new state, and the endpoint's `failingSince` (cleared by a success, set
    /// by the first failure after one).
    func record(_ attempt: CallbackAttemptRecord) async throws

    /// The deliveries of an endpoint, newest first; `cursor` is the `nextCursor` of the previous page.
    func deliveries(endpointID: String, limit: Int, cursor: String?) async throws -> Page<CallbackDelivery>
    func delivery(endpointID: String, id: String) async throws -> CallbackDelivery?
    /// Puts a `failed` delivery back in the queue, due `now`, its retry horizon starting again; returns it as
    /// stored after the change (nil: no such delivery). A delivery in another state is returned unchanged.
    func retry(endpointID: String, id: String, now: Timestamp) async throws -> CallbackDelivery?
}

/// A client's callback endpoint.
public struct CallbackEndpoint: Sendable, Hashable {
    public var id: String
    public var url: String
    /// The statuses it wants (empty: all).
    public var events: Set<CommunicationStatus>
    /// The channels it wants (empty: all).
    public var types: Set<MessageChannel>
    /// Only messages sent with this API key (nil: every message).
    public var keyID: String?
    /// The key's default endpoint: its secret signs the per-message `data.callbackUrl` deliveries of that key.
    public var isDefault: Bool
    public var description: String?
    public var enabled: Bool
    /// `whsec_` + base64 of random bytes. Stored because it signs; shown once, at creation.
    public var secret: String
    public var createdAt: Timestamp
    public var updatedAt: Timestamp
    /// Since when every attempt has failed (nil: the last one succeeded, or none was made).
    public var failingSince: Timestamp?
    /// Why it was disabled by the server (failing too long); nil when enabled or disabled by a client.
    public var disabledReason: String?

    public init(id: String, url: String, events: Set<CommunicationStatus> = [], types: Set<MessageChannel> = [], keyID: String? = nil, isDefault: Bool = false, description: String? = nil, enabled: Bool = true, secret: String, createdAt: Timestamp, updatedAt: Timestamp? = nil, failingSince: Timestamp? = nil, disabledReason: String? = nil) {
        self.id = id
        self.url = url
        self.events = events
        self.types = types
        self.keyID = keyID
        self.isDefault = isDefault
        self.description = description
        self.enabled = enabled
        self.secret = secret
        self.createdAt = createdAt
        self.updatedAt = updatedAt ?? createdAt
        self.failingSince = failingSince
        self.disabledReason = disabledReason
    }

    /// Whether a status change is for this endpoint (enabled or not: the caller checks that).
    public func matches(_ r: LogRecord) -> Bool {
        guard let status = r.status, let type = r.type else { return false }
        if !events.isEmpty, !events.contains(status) { return false }
        if !types.isEmpty, !types.contains(type) { return false }
        if let keyID, r.keyID != keyID { return false }
        return true
    }
}

/// Where a delivery stands.
public enum CallbackDeliveryState: String, Sendable, Hashable, CaseIterable {
    /// Waiting for its (next) attempt.
    case pending
    /// Answered 2xx.
    case delivered
    /// Given up: a 4xx other than 408/429, a redirect, the retry horizon passed, or the endpoint went away.
    case failed
}

/// One callback: an event for an endpoint (or for a message's own `callbackUrl`, signed with the key's default
/// endpoint's secret), and its attempts so far.
public struct CallbackDelivery: Sendable, Hashable {
    /// `<endpoint id>_<feed position, zero-padded>` (+ `_m` for the message's own callbackUrl): unique per
    /// endpoint and event, ordered like the feed within an endpoint. Also the `webhook-id` header: the same on
    /// every attempt.
    public var id: String
    public var endpointID: String
    public var position: FeedPosition
    /// Where it is POSTed: the endpoint's URL, or the message's `data.callbackUrl`.
    public var url: String
    /// The JSON body, made once, so every attempt sends the same bytes.
    public var payload: String
    /// `communication.<status>`.
    public var eventType: String
    public var communicationID: String
    public var state: CallbackDeliveryState
    public var attempts: Int
    /// When the next attempt is due (pending), or when it was leased until.
    public var nextAttemptAt: Timestamp
    /// Where the retry horizon starts: creation, or a retry by hand.
    public var since: Timestamp
    public var createdAt: Timestamp
    public var updatedAt: Timestamp
    public var lastStatusCode: Int?
    public var lastDurationMs: Int?
    public var lastError: String?
    /// The last `CallbackAttempt.kept` attempts, oldest first.
    public var history: [CallbackAttempt]

    public init(id: String, endpointID: String, position: FeedPosition, url: String, payload: String, eventType: String, communicationID: String, state: CallbackDeliveryState = .pending, attempts: Int = 0, nextAttemptAt: Timestamp, since: Timestamp? = nil, createdAt: Timestamp, updatedAt: Timestamp? = nil, lastStatusCode: Int? = nil, lastDurationMs: Int? = nil, lastError: String? = nil, history: [CallbackAttempt] = []) {
        self.history = history
        self.id = id
        self.endpointID = endpointID
        self.position = position
        self.url = url
        self.payload = payload
        self.eventType = eventType
        self.communicationID = communicationID
        self.state = state
        self.attempts = attempts
        self.nextAttemptAt = nextAttemptAt
        self.since = since ?? createdAt
        self.createdAt = createdAt
        self.updatedAt = updatedAt ?? createdAt
        self.lastStatusCode = lastStatusCode
        self.lastDurationMs = lastDurationMs
        self.lastError = lastError
    }

    /// The id of the delivery of the event at `position` to `endpointID` (`perMessage`: to the message's own
    /// callbackUrl). Fixed-width numbers, so that ids sort like positions.
    public static func id(endpointID: String, position: FeedPosition, perMessage: Bool = false) -> String {
        func pad(_ n: UInt64, _ width: Int) -> String {
            let s = String(n)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(endpointID)_\(pad(position.major, 20))_\(pad(position.minor, 6))\(perMessage ? "_m" : "")"
    }
}

/// One attempt as a delivery keeps it: when, the answer's code (nil: none), how long it took, why it failed.
public struct CallbackAttempt: Sendable, Hashable {
    /// Attempts kept per delivery (the count of all is `CallbackDelivery.attempts`).
    public static let kept = 10

    public var at: Timestamp
    public var statusCode: Int?
    public var durationMs: Int
    public var error: String?

    public init(at: Timestamp, statusCode: Int?, durationMs: Int, error: String?) {
        self.at = at
        self.statusCode = statusCode
        self.durationMs = durationMs
        self.error = error
    }

    /// As JSON (`{"at", "statusCode", "durationMs", "error"}`): the SQLite column's items and the API's.
    public var json: JSONValue {
        .object(["at": .string(at.iso8601), "statusCode": statusCode.map { .number(Double($0)) } ?? .null, "durationMs": .number(Double(durationMs)), "error": error.map(JSONValue.string) ?? .null])
    }

    public init?(json: JSONValue) {
        guard case .string(let at)? = json["at"], let t = Timestamp(parsing: at), case .number(let d)? = json["durationMs"] else { return nil }
        var code: Int?
        if case .number(let c)? = json["statusCode"] { code = Int(c) }
        self.init(at: t, statusCode: code, durationMs: Int(d), error: json["error"]?.stringValue)
    }
}

/// The outcome of one attempt, as `CallbackStore.record` stores it.
public struct CallbackAttemptRecord: Sendable, Hashable {
    public var deliveryID: String
    public var endpointID: String
    public var at: Timestamp
    /// The delivery's state after it; `nextAttemptAt` is read when `pending`.
    public var state: CallbackDeliveryState
    public var nextAttemptAt: Timestamp
    public var statusCode: Int?
    public var durationMs: Int
    public var error: String?

    public init(deliveryID: String, endpointID: String, at: Timestamp, state: CallbackDeliveryState, nextAttemptAt: Timestamp, statusCode: Int?, durationMs: Int, error: String?) {
        self.deliveryID = deliveryID
        self.endpointID = endpointID
        self.at = at
        self.state = state
        self.nextAttemptAt = nextAttemptAt
        self.statusCode = statusCode
        self.durationMs = durationMs
        self.error = error
    }

    /// Whether the attempt succeeded (it clears the endpoint's `failingSince`).
    public var succeeded: Bool { state == .delivered }

    /// The attempt as the delivery's history keeps it.
    public var attempt: CallbackAttempt { CallbackAttempt(at: at, statusCode: statusCode, durationMs: durationMs, error: error) }
}

/// Thrown by a `CallbackStore` for an endpoint id that exists already.
public struct DuplicateCallbackEndpoint: Error, Sendable, Hashable {
    public var id: String
    public init(id: String) { self.id = id }
}

/// Sends one callback over HTTP, signed (Standard Webhooks): the sender's only way out. An adapter refuses an
/// address `CallbackRules.refusal(address:)` names (after DNS resolution, unless private addresses are allowed),
/// follows no redirect, reads at most a small part of the answer, and gives up after its timeout.
public protocol CallbackTransport: Sendable {
    /// POSTs `delivery.payload` to `delivery.url` with the `webhook-id` (the delivery's id), `webhook-timestamp`
    /// (`at`, in seconds) and `webhook-signature` headers, signed with `secret`.
    func send(_ delivery: CallbackDelivery, secret: String, at: Timestamp) async -> CallbackRules.Answer
}
