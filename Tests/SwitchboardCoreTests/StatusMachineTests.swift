import Testing
@testable import SwitchboardCore

@Suite("Status state machine")
struct StatusMachineTests {
    let err = ProviderError(code: "E", message: "boom")
    let later = Timestamp(milliseconds: 5000)

    func state(_ s: CommunicationStatus, seq: Int = 1, attempts: Int = 0) -> DispatchState {
        DispatchState(status: s, dispatchSeq: seq, attempts: attempts)
    }

    func applied(_ d: TransitionDecision) -> TransitionEffect? {
        if case .apply(let e) = d { return e }
        return nil
    }

    @Test("the happy path: pending → queued → processing → sent → delivered → read")
    func happyPath() throws {
        let q = try #require(applied(StatusMachine.decide(state(.pending), .queued(dispatchSeq: 1))))
        #expect(q.status == .queued && q.dispatchAt == .clear)
        let p = try #require(applied(StatusMachine.decide(state(.queued), .processing(dispatchSeq: 1, redelivery: false))))
        #expect(p.status == .processing && p.attempts == 1)
        let s = try #require(applied(StatusMachine.decide(state(.processing, attempts: 1), .sent(provider: "sandbox", providerMessageID: "x"))))
        #expect(s.status == .sent && s.provider == "sandbox" && s.providerMessageID == "x")
        #expect(applied(StatusMachine.decide(state(.sent), .reported(status: .delivered, error: nil)))?.status == .delivered)
        #expect(applied(StatusMachine.decide(state(.delivered), .reported(status: .read, error: nil)))?.status == .read)
    }

    @Test("scheduled: only from pending, due at its send time; the outbox's queued takes it on; nothing a worker or provider reports moves it first")
    func scheduled() throws {
        let sendAt = Timestamp(milliseconds: 86_400_000)
        let e = try #require(applied(StatusMachine.decide(state(.pending), .scheduled(sendAt: sendAt))))
        #expect(e.status == .scheduled && e.dispatchAt == .set(sendAt) && e.dispatchSeq == 1 && e.attempts == 0)
        #expect(!CommunicationStatus.scheduled.isPastDispatch && !CommunicationStatus.scheduled.isFinal)
        for from in CommunicationStatus.allCases where from != .pending {
            #expect(applied(StatusMachine.decide(state(from), .scheduled(sendAt: sendAt))) == nil, "\(from)")
        }
        let q = try #require(applied(StatusMachine.decide(state(.scheduled), .queued(dispatchSeq: 1), watchdog: later)))
        #expect(q.status == .queued && q.dispatchAt == .set(later))
        #expect(applied(StatusMachine.decide(state(.scheduled), .queued(dispatchSeq: 2))) == nil)
        // A stray entry's processing, a provider's report and the stall watchdog leave it scheduled.
        for event: StatusEvent in [.processing(dispatchSeq: 1, redelivery: false), .sent(provider: "p", providerMessageID: nil), .reported(status: .delivered, error: nil), .redispatch(dispatchSeq: 1, reason: "stalled")] {
            #expect(applied(StatusMachine.decide(state(.scheduled), event)) == nil, "\(event)")
        }
    }

    @Test("cancel: from pending, queued or retrying to cancelled (final, due time cleared, who asked in the detail); never from processing or later")
    func cancel() throws {
        for from in [CommunicationStatus.pending, .scheduled, .queued, .retrying] {
            let e = try #require(applied(StatusMachine.decide(state(from, seq: 2, attempts: 1), .cancelled(by: "key_abc"))))
            #expect(e.status == .cancelled && e.dispatchAt == .clear && e.detail == "cancelled by key_abc" && e.dispatchSeq == 2 && e.attempts == 1)
        }
        #expect(applied(StatusMachine.decide(state(.pending), .cancelled(by: nil)))?.detail == "cancelled")
        for from in [CommunicationStatus.processing, .sent, .delivered, .read, .undelivered, .failed, .cancelled] {
            #expect(applied(StatusMachine.decide(state(from), .cancelled(by: nil))) == nil, "\(from)")
        }
        // Nothing moves a cancelled message: a worker's entry read afterwards, the outbox, a provider's report.
        let events: [StatusEvent] = [
            .queued(dispatchSeq: 1), .processing(dispatchSeq: 1, redelivery: false), .processing(dispatchSeq: 1, redelivery: true),
            .sent(provider: "p", providerMessageID: nil), .retrying(error: err, provider: nil, nextAttemptAt: later), .failed(error: err, provider: nil),
            .reported(status: .delivered, error: nil), .redispatch(dispatchSeq: 1, reason: "stall"),
        ]
        for event in events {
            #expect(applied(StatusMachine.decide(state(.cancelled), event)) == nil, "\(event)")
        }
        #expect(CommunicationStatus.cancelled.isFinal && CommunicationStatus.cancelled.isPastDispatch)
    }

    @Test("redrive: only from failed, to pending as a new dispatch with a fresh attempt budget, due now, who asked in the detail")
    func redrive() throws {
        let now = Timestamp(milliseconds: 7000)
        let e = try #require(applied(StatusMachine.decide(state(.failed, seq: 3, attempts: 5), .redriven(by: "key_abc", due: now))))
        #expect(e.status == .pending && e.dispatchSeq == 4 && e.attempts == 0 && e.dispatchAt == .set(now) && e.detail == "redriven by key_abc")
        // The error it failed with is kept (nil: keep), so is the provider.
        #expect(e.lastError == nil && e.provider == nil)
        #expect(applied(StatusMachine.decide(state(.failed), .redriven(by: nil, due: now)))?.detail == "redriven")
        // Never from anything else: a second redrive finds it pending (or further on) and changes nothing.
        for from in CommunicationStatus.allCases where from != .failed {
            #expect(StatusMachine.decide(state(from), .redriven(by: "key_abc", due: now)) == .ignore(reason: "not failed (\(from.rawValue))"), "\(from)")
        }
    }

    @Test("after a redrive, the failed dispatch's late events are stale; the new dispatch runs as any other and may fail again")
    func redriveKeepsMonotonic() throws {
        let now = Timestamp(milliseconds: 7000)
        let redriven = state(.pending, seq: 3, attempts: 0)
        #expect(try #require(applied(StatusMachine.decide(state(.failed, seq: 2, attempts: 3), .redriven(by: nil, due: now)))).dispatchSeq == redriven.dispatchSeq)
        // An entry of the failed dispatch (a duplicate, a redelivery) or its outbox claim moves nothing.
        let stale: [StatusEvent] = [
            .queued(dispatchSeq: 2), .processing(dispatchSeq: 2, redelivery: false), .processing(dispatchSeq: 2, redelivery: true),
            .redispatch(dispatchSeq: 2, reason: "stall"), .sent(provider: "p", providerMessageID: nil),
            .retrying(error: err, provider: nil, nextAttemptAt: later), .reported(status: .delivered, error: nil), .reported(status: .failed, error: err),
            .failed(error: err, provider: nil, dispatchSeq: 2),
        ]
        for event in stale {
            #expect(applied(StatusMachine.decide(redriven, event)) == nil, "\(event)")
        }
        // The new dispatch: queued by the outbox, taken as attempt 1, and it may fail (and be redriven) again.
        #expect(applied(StatusMachine.decide(redriven, .queued(dispatchSeq: 3)))?.status == .queued)
        let taken = try #require(applied(StatusMachine.decide(state(.queued, seq: 3), .processing(dispatchSeq: 3, redelivery: false))))
        #expect(taken.status == .processing && taken.attempts == 1)
        #expect(applied(StatusMachine.decide(state(.processing, seq: 3, attempts: 1), .failed(error: err, provider: "p", dispatchSeq: 3)))?.status == .failed)
        // A failure that names no dispatch (as before) still ends the message wherever it is in flight.
        #expect(applied(StatusMachine.decide(redriven, .failed(error: err, provider: nil)))?.status == .failed)
        // The other final statuses stay final: a redrive does not resend a sent, delivered, undelivered, read or cancelled message.
        for from in [CommunicationStatus.sent, .delivered, .read, .undelivered, .cancelled] {
            #expect(applied(StatusMachine.decide(state(from), .redriven(by: nil, due: now))) == nil, "\(from)")
        }
        #expect(StatusEvent.redriven(by: nil, due: now).targetStatus == .pending)
    }

    @Test("a worker may overtake the router's queued record")
    func processingFromPending() {
        #expect(applied(StatusMachine.decide(state(.pending), .processing(dispatchSeq: 1, redelivery: false)))?.status == .processing)
        #expect(StatusMachine.decide(state(.processing, attempts: 1), .queued(dispatchSeq: 1)) == .ignore(reason: "already processing"))
    }

    @Test("duplicate entries are skipped, redeliveries take over")
    func duplicates() {
        if case .apply = StatusMachine.decide(state(.processing, attempts: 1), .processing(dispatchSeq: 1, redelivery: false)) { Issue.record("duplicate applied") }
        let takeover = applied(StatusMachine.decide(state(.processing, attempts: 1), .processing(dispatchSeq: 1, redelivery: true)))
        #expect(takeover?.attempts == 2)
    }

    @Test("nothing moves a message backwards", arguments: [CommunicationStatus.sent, .delivered, .read, .undelivered, .failed])
    func noBackwards(from: CommunicationStatus) {
        let events: [StatusEvent] = [
            .queued(dispatchSeq: 1), .processing(dispatchSeq: 1, redelivery: true), .sent(provider: "p", providerMessageID: nil),
            .retrying(error: err, provider: nil, nextAttemptAt: later), .failed(error: err, provider: nil),
        ]
        for e in events {
            if case .apply(let effect) = StatusMachine.decide(state(from), e) {
                Issue.record("\(e) moved \(from) to \(effect.status)")
            }
        }
    }

    @Test("provider reports are monotonic")
    func reports() {
        func r(_ from: CommunicationStatus, _ to: CommunicationStatus) -> CommunicationStatus? {
            applied(StatusMachine.decide(state(from), .reported(status: to, error: nil)))?.status
        }
        #expect(r(.sent, .read) == .read)  // read without delivered is fine
        #expect(r(.read, .delivered) == nil)
        #expect(r(.delivered, .delivered) == nil)
        #expect(r(.delivered, .undelivered) == nil)
        #expect(r(.sent, .undelivered) == .undelivered)
        #expect(r(.sent, .failed) == .failed)
        #expect(r(.processing, .delivered) == .delivered)  // a webhook overtaking our own sent commit
        #expect(r(.queued, .delivered) == nil)
        #expect(r(.failed, .delivered) == nil)
        #expect(r(.sent, .processing) == nil)
    }

    @Test("a retry bumps the dispatch; stale entries are ignored")
    func retries() throws {
        let e = try #require(applied(StatusMachine.decide(state(.processing, seq: 1, attempts: 1), .retrying(error: err, provider: "p", nextAttemptAt: later))))
        #expect(e.status == .retrying && e.dispatchSeq == 2 && e.dispatchAt == .set(later) && e.lastError == err)
        let after = state(.retrying, seq: 2, attempts: 1)
        #expect(applied(StatusMachine.decide(after, .processing(dispatchSeq: 1, redelivery: true))) == nil)
        #expect(applied(StatusMachine.decide(after, .queued(dispatchSeq: 1))) == nil)
        #expect(applied(StatusMachine.decide(after, .queued(dispatchSeq: 2)))?.status == .queued)
        #expect(applied(StatusMachine.decide(after, .processing(dispatchSeq: 2, redelivery: false)))?.attempts == 2)
    }

    @Test("applying an effect records history")
    func applying() {
        let req = CommunicationRequest(channel: .sms, from: "+1234567890", to: "+1234567891", msg: "hi")
        let c = NewCommunication(id: "a", request: req, idempotencyKey: nil, createdAt: Timestamp(milliseconds: 1), dispatchAt: Timestamp(milliseconds: 2)).communication
        #expect(c.status == .pending && c.history.count == 1 && c.dispatchAt == Timestamp(milliseconds: 2))
        guard case .apply(let e) = StatusMachine.decide(c.dispatchState, .queued(dispatchSeq: 1)) else { Issue.record("not applied"); return }
        let (next, change) = c.applying(e, at: Timestamp(milliseconds: 3), service: "router")
        #expect(next.status == .queued && next.dispatchAt == nil && next.history.count == 2 && change.service == "router")
    }

    @Test("a watchdog time becomes the due time of queued and processing; without one it is cleared")
    func watchdog() {
        let w = Timestamp(milliseconds: 9000)
        #expect(applied(StatusMachine.decide(state(.pending), .queued(dispatchSeq: 1), watchdog: w))?.dispatchAt == .set(w))
        #expect(applied(StatusMachine.decide(state(.queued), .processing(dispatchSeq: 1, redelivery: false), watchdog: w))?.dispatchAt == .set(w))
        #expect(applied(StatusMachine.decide(state(.queued), .processing(dispatchSeq: 1, redelivery: false)))?.dispatchAt == .clear)
        // Leaving flight clears it (sent) or replaces it (retrying).
        #expect(applied(StatusMachine.decide(state(.processing, attempts: 1), .sent(provider: "p", providerMessageID: nil)))?.dispatchAt == .keep)
        #expect(applied(StatusMachine.decide(state(.processing, attempts: 1), .retrying(error: err, provider: nil, nextAttemptAt: later)))?.dispatchAt == .set(later))
    }

    @Test("a stalled dispatch goes back to pending as a new dispatch; old entries become stale")
    func redispatch() throws {
        for s in [CommunicationStatus.queued, .processing] {
            let e = try #require(applied(StatusMachine.decide(state(s, seq: 2, attempts: 1), .redispatch(dispatchSeq: 2, reason: "lost"))))
            #expect(e.status == .pending && e.dispatchSeq == 3 && e.attempts == 1 && e.dispatchAt == .keep && e.detail == "lost")
        }
        // Claimed while queued, taken by a worker since: not redispatched.
        #expect(applied(StatusMachine.decide(state(.processing), .redispatch(dispatchSeq: 1, reason: "x", seen: .queued))) == nil)
        #expect(applied(StatusMachine.decide(state(.queued), .redispatch(dispatchSeq: 1, reason: "x", seen: .queued))) != nil)
        #expect(StatusMachine.decide(state(.queued, seq: 3), .redispatch(dispatchSeq: 2, reason: "x")) == .ignore(reason: "stale dispatch 2, current is 3"))
        for s in [CommunicationStatus.pending, .retrying, .sent, .failed, .delivered] {
            #expect(applied(StatusMachine.decide(state(s), .redispatch(dispatchSeq: 1, reason: "x"))) == nil, "\(s)")
        }
        // The old dispatch's entry is skipped; the new one is delivered.
        let after = state(.pending, seq: 2, attempts: 1)
        #expect(applied(StatusMachine.decide(after, .processing(dispatchSeq: 1, redelivery: true))) == nil)
        #expect(applied(StatusMachine.decide(after, .queued(dispatchSeq: 2)))?.status == .queued)
        // The history entry says why.
        let c = Communication(id: "x", request: CommunicationRequest(channel: .sms, from: "+15550000000", to: "+15551111111", msg: "m"), status: .queued, createdAt: Timestamp(milliseconds: 0), updatedAt: Timestamp(milliseconds: 0))
        let e = try #require(applied(StatusMachine.decide(c.dispatchState, .redispatch(dispatchSeq: 1, reason: "lost"))))
        #expect(c.applying(e, at: later, service: "scheduler").1.detail == "lost")
    }
}
