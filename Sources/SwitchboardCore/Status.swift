/// Where a communication is in its life.
///
/// ```
///   ┌──▶ scheduled ──┐
///   │                ▼
/// pending ─────────▶ queued ─▶ processing ─▶ sent ─▶ delivered ─▶ read
///    │                 │        │  ▲   │       ├──▶ undelivered
///    └─────────────────┴──────▶ │  │   │       └──▶ failed
///                               ▼  │   └──────────▶ failed
///                             retrying
/// ```
///
/// A message with a send time (`data.sendAt`) goes from `pending` to `scheduled` at accept and stays there, in
/// no stream, until the outbox publishes it at that time (`scheduled` → `queued`).
/// `pending`, `scheduled`, `queued` and `retrying` can also end in `cancelled` (`POST /api/v1/communication/{id}/cancel`).
/// `failed` is left only by a redrive (`POST /api/v1/dead-letters/redrive`): back to `pending` as a new dispatch.
public enum CommunicationStatus: String, Sendable, CaseIterable, Codable, Hashable {
    /// Stored, not yet on its stream.
    case pending
    /// Stored with a send time in the future (`data.sendAt`): the outbox publishes it then (`dispatchAt`).
    case scheduled
    /// Published to its channel stream.
    case queued
    /// A worker holds it and is calling a provider.
    case processing
    /// A retryable failure; another attempt is scheduled (`dispatchAt`).
    case retrying
    /// The provider accepted it.
    case sent
    /// The provider reported delivery to the handset or mailbox.
    case delivered
    /// The recipient read it (WhatsApp, some SMS routes).
    case read
    /// The provider reported that it could not be delivered after being sent.
    case undelivered
    /// Delivery failed for good (permanent error, retries exhausted, or a provider report).
    case failed
    /// Cancelled before a provider had it: never delivered.
    case cancelled

    /// True once no more delivery attempts will be made (the provider has it, or it failed).
    public var isPastDispatch: Bool {
        switch self {
        case .pending, .scheduled, .queued, .processing, .retrying: false
        case .sent, .delivered, .read, .undelivered, .failed, .cancelled: true
        }
    }

    /// True when nothing can change this status any more.
    public var isFinal: Bool {
        switch self {
        case .read, .undelivered, .failed, .cancelled: true
        default: false
        }
    }

    /// Order of the statuses a provider reports after `sent`.
    var reportRank: Int {
        switch self {
        case .sent: 3
        case .delivered, .undelivered, .failed: 4
        case .read: 5
        default: 0
        }
    }
}

/// An error as a provider reported it: its own code and text, kept verbatim.
public struct ProviderError: Error, Sendable, Hashable, Codable, CustomStringConvertible {
    /// The provider's error code (Twilio `21211`, SMTP `550 5.1.1`, Meta `131056`), if any.
    public var code: String?
    /// The provider's message.
    public var message: String

    public init(code: String? = nil, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { code.map { "\($0): \(message)" } ?? message }
}

/// Something that happened to a communication. The state machine decides whether it moves the status.
public enum StatusEvent: Sendable, Hashable {
    /// Accepted with a send time in the future: kept out of its stream until `sendAt`, when the outbox
    /// publishes it (`queued`). Only from `pending`, at accept.
    case scheduled(sendAt: Timestamp)
    /// Published to its stream as dispatch number `dispatchSeq`.
    case queued(dispatchSeq: Int)
    /// A worker took the stream entry of dispatch `dispatchSeq`; `redelivery` when the entry was delivered
    /// before (the previous holder's lease ran out).
    case processing(dispatchSeq: Int, redelivery: Bool)
    /// The provider accepted the message.
    case sent(provider: String, providerMessageID: String?)
    /// A retryable failure; try again at `nextAttemptAt`.
    case retrying(error: ProviderError, provider: String?, nextAttemptAt: Timestamp)
    /// Delivery failed for good. `dispatchSeq`, when given, is the dispatch whose entry failed: an event of an
    /// earlier dispatch is stale (a leftover entry given up after `maxDeliveries`, arriving after a retry or a
    /// redrive started a new dispatch) and changes nothing.
    case failed(error: ProviderError, provider: String?, dispatchSeq: Int? = nil)
    /// A provider's status report (webhook): delivered, read, undelivered or failed.
    case reported(status: CommunicationStatus, error: ProviderError?)
    /// Dispatch `dispatchSeq` made no progress (queued or processing past its watchdog, e.g. its stream entry
    /// was lost with a Redis that restarted empty): back to `pending` as a new dispatch, for the outbox to
    /// publish again. Entries of the old dispatch are then stale and acknowledged without sending.
    /// `seen`, when given, is the status the outbox claimed it in: if it has moved on since (a worker took it
    /// between the claim and this event), nothing changes — a message being delivered is never redispatched
    /// because of a claim that came a moment before.
    case redispatch(dispatchSeq: Int, reason: String, seen: CommunicationStatus? = nil)
    /// Cancelled by a client (`by`: its API key id, nil when the API is open): only before a worker takes it
    /// (`pending`, `queued`, `retrying`). A stream entry read afterwards is acknowledged without sending.
    case cancelled(by: String?)
    /// A dead-lettered message put back on its way by a client (`by`: its API key id, nil when the API is open):
    /// only from `failed`, the one move out of a final status. It goes back to `pending` as a new dispatch with a
    /// fresh attempt budget, due in the outbox at `due` (now), which publishes it as it publishes a retry; entries
    /// of the failed dispatch are stale. A second redrive finds it no longer `failed` and changes nothing.
    case redriven(by: String?, due: Timestamp)

    /// The status this event asks for.
    public var targetStatus: CommunicationStatus {
        switch self {
        case .scheduled: .scheduled
        case .queued: .queued
        case .processing: .processing
        case .sent: .sent
        case .retrying: .retrying
        case .failed: .failed
        case .reported(let status, _): status
        case .redispatch: .pending
        case .cancelled: .cancelled
        case .redriven: .pending
        }
    }
}

/// The part of a communication the state machine reads.
public struct DispatchState: Sendable, Hashable {
    public var status: CommunicationStatus
    /// Which dispatch (publication to the stream) is current; bumped for every retry.
    public var dispatchSeq: Int
    /// Delivery attempts started so far.
    public var attempts: Int

    public init(status: CommunicationStatus, dispatchSeq: Int, attempts: Int) {
        self.status = status
        self.dispatchSeq = dispatchSeq
        self.attempts = attempts
    }
}

/// How the outbox due time changes with a transition.
public enum DispatchAtChange: Sendable, Hashable {
    case keep
    case clear
    case set(Timestamp)
}

/// What a store must write for an accepted transition.
public struct TransitionEffect: Sendable, Hashable {
    public var status: CommunicationStatus
    public var dispatchSeq: Int
    public var attempts: Int
    public var dispatchAt: DispatchAtChange
    /// Set the provider that handled the attempt (nil: keep).
    public var provider: String?
    /// Set the provider's message id (nil: keep).
    public var providerMessageID: String?
    /// Set the last error (nil: keep).
    public var lastError: ProviderError?
    /// Why, for the history entry (nil: the error's text, if any).
    public var detail: String?
}

/// The state machine's answer.
public enum TransitionDecision: Sendable, Hashable {
    /// Write this.
    case apply(TransitionEffect)
    /// Change nothing; the event is late, duplicated or out of order.
    case ignore(reason: String)
}

/// The status lifecycle as a pure function: no I/O, no clock. Stores call it inside their compare-and-set.
///
/// Transitions are monotonic: a late or duplicate event never moves a message backwards. Within the
/// dispatch phase the order is (dispatchSeq, pending < queued < processing < retrying); after it, the order
/// of provider reports (sent < delivered | undelivered | failed < read). The one exception is asked for by a
/// client, never by a late event: `redriven` takes a `failed` message to `pending` in a new dispatch, so every
/// event of the failed dispatch is still stale afterwards.
public enum StatusMachine {
    /// Whether a confirmed publication of dispatch `dispatchSeq` moves the outbox due time of a communication in
    /// `state`: only while it is still `queued` in that dispatch (a worker that already took it set its own).
    /// Not a status change: no history entry is written.
    public static func publicationConfirmed(_ state: DispatchState, dispatchSeq: Int) -> Bool {
        state.status == .queued && state.dispatchSeq == dispatchSeq
    }

    /// Decides what `event` does to a communication in `state`. `watchdog`, when given, becomes the outbox due
    /// time of a message entering `queued` or `processing`: if it is still there then, the outbox redispatches
    /// it (engines whose streams can lose entries independently of the store set it; nil clears the due time).
    public static func decide(_ state: DispatchState, _ event: StatusEvent, watchdog: Timestamp? = nil) -> TransitionDecision {
        let inFlightDue: DispatchAtChange = watchdog.map { .set($0) } ?? .clear
        let s = state.status
        func effect(_ status: CommunicationStatus, dispatchAt: DispatchAtChange = .keep) -> TransitionEffect {
            TransitionEffect(status: status, dispatchSeq: state.dispatchSeq, attempts: state.attempts, dispatchAt: dispatchAt)
        }
        switch event {
        case .scheduled(let sendAt):
            guard s == .pending else { return .ignore(reason: "already \(s.rawValue)") }
            // Due in the outbox at its send time, which then publishes it as it publishes a retry.
            var e = effect(.scheduled, dispatchAt: .set(sendAt))
            e.detail = "send at \(sendAt.iso8601)"
            return .apply(e)

        case .queued(let seq):
            guard !s.isPastDispatch else { return .ignore(reason: "already \(s.rawValue)") }
            guard seq == state.dispatchSeq else { return .ignore(reason: "stale dispatch \(seq), current is \(state.dispatchSeq)") }
            guard s == .pending || s == .scheduled || s == .retrying else { return .ignore(reason: "already \(s.rawValue)") }
            return .apply(effect(.queued, dispatchAt: inFlightDue))

        case .processing(let seq, let redelivery):
            guard !s.isPastDispatch else { return .ignore(reason: "already \(s.rawValue)") }
            guard seq == state.dispatchSeq else { return .ignore(reason: "stale dispatch \(seq), current is \(state.dispatchSeq)") }
            if s == .processing && !redelivery { return .ignore(reason: "already processing (duplicate entry)") }
            // Nothing publishes a scheduled message before its time; an entry seen now is not its dispatch.
            if s == .scheduled { return .ignore(reason: "scheduled: not published yet") }
            var e = effect(.processing, dispatchAt: inFlightDue)
            e.attempts += 1
            return .apply(e)

        case .sent(let provider, let id):
            guard s == .processing else { return .ignore(reason: s.isPastDispatch ? "already \(s.rawValue)" : "not processing (\(s.rawValue))") }
            var e = effect(.sent)
            e.provider = provider
            e.providerMessageID = id
            return .apply(e)

        case .retrying(let error, let provider, let at):
            guard s == .processing else { return .ignore(reason: "not processing (\(s.rawValue))") }
            var e = effect(.retrying, dispatchAt: .set(at))
            e.dispatchSeq += 1
            e.lastError = error
            e.provider = provider
            return .apply(e)

        case .failed(let error, let provider, let seq):
            guard !s.isPastDispatch else { return .ignore(reason: "already \(s.rawValue)") }
            if let seq, seq != state.dispatchSeq { return .ignore(reason: "stale dispatch \(seq), current is \(state.dispatchSeq)") }
            var e = effect(.failed, dispatchAt: .clear)
            e.lastError = error
            e.provider = provider
            return .apply(e)

        case .reported(let target, let error):
            guard [.delivered, .read, .undelivered, .failed].contains(target) else {
                return .ignore(reason: "\(target.rawValue) is not a provider report")
            }
            if s == target { return .ignore(reason: "duplicate \(target.rawValue) report") }
            guard !s.isFinal else { return .ignore(reason: "already \(s.rawValue)") }
            // A report can overtake our own `sent` commit: accept it from processing too.
            guard s == .processing || s.reportRank >= CommunicationStatus.sent.reportRank else {
                return .ignore(reason: "report \(target.rawValue) before dispatch (\(s.rawValue))")
            }
            guard target.reportRank > max(s.reportRank, CommunicationStatus.sent.reportRank - 1) else {
                return .ignore(reason: "\(target.rawValue) is behind \(s.rawValue)")
            }
            var e = effect(target, dispatchAt: .clear)
            e.lastError = error
            return .apply(e)

        case .redispatch(let seq, let reason, let seen):
            guard seq == state.dispatchSeq else { return .ignore(reason: "stale dispatch \(seq), current is \(state.dispatchSeq)") }
            if let seen, seen != s { return .ignore(reason: "\(s.rawValue) since the outbox claimed it \(seen.rawValue)") }
            guard s == .queued || s == .processing else { return .ignore(reason: "not in flight (\(s.rawValue))") }
            // The outbox holds the message under its claim lease (`keep`) and publishes the new dispatch at once.
            var e = effect(.pending)
            e.dispatchSeq += 1
            e.detail = reason
            return .apply(e)

        case .cancelled(let by):
            guard s == .pending || s == .scheduled || s == .queued || s == .retrying else {
                return .ignore(reason: s == .cancelled ? "already cancelled" : "already \(s.rawValue): handed to a provider")
            }
            var e = effect(.cancelled, dispatchAt: .clear)
            e.detail = by.map { "cancelled by \($0)" } ?? "cancelled"
            return .apply(e)

        case .redriven(let by, let due):
            guard s == .failed else { return .ignore(reason: "not failed (\(s.rawValue))") }
            // `pending`, not `queued`: the message is not on its stream until the outbox publishes it (due now), and
            // a `queued` message due in the outbox would be taken for a stalled one and redispatched once more.
            // The attempt budget starts again; `lastError` keeps the error it failed with until another replaces
            // it (as a retry that ends `sent` keeps its last error), and the history keeps every one.
            var e = effect(.pending, dispatchAt: .set(due))
            e.dispatchSeq += 1
            e.attempts = 0
            e.detail = by.map { "redriven by \($0)" } ?? "redriven"
            return .apply(e)
        }
    }
}
