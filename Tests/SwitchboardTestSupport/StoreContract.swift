import Foundation
import Testing
import SwitchboardCore

/// Behaviour every `CommunicationStore` must show. The SQLite store (`SwitchboardSQLiteTests`) and the MongoDB
/// store (`SwitchboardMongoTests`) run every check, each on an empty store.
public enum StoreContract {
    public static func sms(_ to: String = "+15551234567", msg: String = "hello") -> CommunicationRequest {
        CommunicationRequest(channel: .sms, from: "+15550000000", to: to, msg: msg)
    }

    public static func new(_ id: String, _ req: CommunicationRequest = sms(), key: String? = nil, at: Int64 = 1000) -> NewCommunication {
        NewCommunication(id: id, request: req, idempotencyKey: key, createdAt: Timestamp(milliseconds: at), dispatchAt: Timestamp(milliseconds: at + 10_000))
    }

    /// How many of `outcomes` were applied.
    public static func appliedCount(_ outcomes: [TransitionOutcome]) -> Int {
        outcomes.filter { if case .applied = $0 { true } else { false } }.count
    }

    /// A created communication reads back whole (request with its optional fields, status, outbox time,
    /// history); an unknown id reads as nil.
    public static func createAndRead(_ store: any CommunicationStore) async throws {
        let req = CommunicationRequest(channel: .email, from: "a@example.com", to: "b@example.com", msg: "hi", subject: "Subj", html: "<p>hi</p>")
        let out = try await store.create([new("id1", req)])
        guard case .created(let created) = out.first else { Issue.record("not created: \(out)"); return }
        #expect(created.id == "id1" && created.status == .pending)
        let c = try #require(try await store.communication(id: "id1"))
        #expect(c.request == req)
        #expect(c.status == .pending && c.dispatchSeq == 1 && c.attempts == 0)
        #expect(c.dispatchAt == Timestamp(milliseconds: 11_000))
        #expect(c.createdAt == Timestamp(milliseconds: 1000) && c.updatedAt == Timestamp(milliseconds: 1000))
        #expect(c.history.map(\.status) == [.pending])
        #expect(try await store.communication(id: "missing") == nil)
        let whatsapp = CommunicationRequest(channel: .whatsapp, from: "+15550000000", to: "+15551230000", msg: "hi", template: WhatsAppTemplate(name: "order", language: "en", parameters: ["42", "Olá 👋"]))
        _ = try await store.create([new("id2", whatsapp)])
        #expect(try await store.communication(id: "id2")?.request == whatsapp)
    }

    /// A message accepted `queued` (as the port-by-port pipeline stores it) reads back with both statuses in its
    /// history, due at its outbox time; a confirmed publication moves that time to the watchdog, only while it
    /// is still `queued` in that dispatch (a confirmation that comes after the worker changes nothing).
    public static func acceptedQueuedAndConfirmed(_ store: any CommunicationStore) async throws {
        var item = new("q1")
        item.queued = true
        item.service = "router"
        guard case .created(let created) = try await store.create([item]).first else { Issue.record("not created"); return }
        #expect(created.status == .queued && created.history.map(\.status) == [.pending, .queued])
        var c = try #require(try await store.communication(id: "q1"))
        #expect(c.status == .queued && c.dispatchSeq == 1 && c.dispatchAt == Timestamp(milliseconds: 11_000))
        #expect(c.history.map(\.status) == [.pending, .queued] && c.history.allSatisfy { $0.service == "router" })
        #expect(try await store.statusCounts() == [StatusCount(channel: .sms, status: .queued, count: 1)])
        // A confirmation of another dispatch changes nothing; the right one sets the watchdog.
        try await store.confirmPublished([Publication(id: "q1", dispatchSeq: 2)], due: Timestamp(milliseconds: 600_000))
        #expect(try await store.communication(id: "q1")?.dispatchAt == Timestamp(milliseconds: 11_000))
        try await store.confirmPublished([Publication(id: "q1", dispatchSeq: 1), Publication(id: "missing", dispatchSeq: 1)], due: Timestamp(milliseconds: 600_000))
        c = try #require(try await store.communication(id: "q1"))
        #expect(c.dispatchAt == Timestamp(milliseconds: 600_000) && c.history.count == 2)
        // A worker took it: a late confirmation leaves the worker's due time alone.
        _ = try await store.apply([StatusTransition(id: "q1", event: .processing(dispatchSeq: 1, redelivery: false), at: Timestamp(milliseconds: 2000), service: "sms", watchdog: Timestamp(milliseconds: 900_000))])
        try await store.confirmPublished([Publication(id: "q1", dispatchSeq: 1)], due: nil)
        c = try #require(try await store.communication(id: "q1"))
        #expect(c.status == .processing && c.dispatchAt == Timestamp(milliseconds: 900_000))
        #expect(c.history.map(\.status) == [.pending, .queued, .processing])
    }

    /// The API key that created a message (its id) and whether it is a test message are kept with it: read back,
    /// and on the communication a status change returns (the worker routes a test message by it).
    public static func attribution(_ store: any CommunicationStore) async throws {
        var keyed = new("k1")
        keyed.keyID = "key_0123456789abcdef"
        keyed.test = true
        _ = try await store.create([keyed, new("k2")])
        let c = try #require(try await store.communication(id: "k1"))
        #expect(c.keyID == "key_0123456789abcdef" && c.test)
        let plain = try #require(try await store.communication(id: "k2"))
        #expect(plain.keyID == nil && !plain.test)
        let outcomes = try await store.apply([StatusTransition(id: "k1", event: .queued(dispatchSeq: 1), at: Timestamp(milliseconds: 2000), service: "router")])
        guard case .applied(let applied, _)? = outcomes.first else { Issue.record("not applied: \(outcomes)"); return }
        #expect(applied.keyID == "key_0123456789abcdef" && applied.test)
        #expect(try await store.communications(createdSince: Timestamp(milliseconds: 0), after: nil, limit: 10).map(\.keyID) == ["key_0123456789abcdef", nil])
    }

    /// The trace context is kept with the message: read back, on the communication a status change returns, on
    /// what the outbox claims (a retry republished an hour later stays in the trace) and in a catch-up page.
    public static func traceContext(_ store: any CommunicationStore) async throws {
        let trace = try #require(TraceParent(parsing: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
        var traced = new("t1")
        traced.traceParent = trace
        _ = try await store.create([traced, new("t2")])
        #expect(try await store.communication(id: "t1")?.traceParent == trace)
        #expect(try await store.communication(id: "t2")?.traceParent == nil)
        let due = try await store.claimDue(now: Timestamp(milliseconds: 1_000_000), lease: .seconds(30), limit: 10)
        #expect(due.count == 2 && due.first { $0.id == "t1" }?.traceParent == trace)
        let outcomes = try await store.apply([StatusTransition(id: "t1", event: .queued(dispatchSeq: 1), at: Timestamp(milliseconds: 2000), service: "router")])
        guard case .applied(let applied, _)? = outcomes.first else { Issue.record("not applied: \(outcomes)"); return }
        #expect(applied.traceParent == trace)
        #expect(try await store.communications(createdSince: Timestamp(milliseconds: 0), after: nil, limit: 10).map(\.traceParent) == [trace, nil])
    }

    /// Two messages to one recipient are two communications (a recipient is not a key).
    public static func sameRecipientTwice(_ store: any CommunicationStore) async throws {
        let out = try await store.create([new("r1", sms("+15557654321", msg: "one")), new("r2", sms("+15557654321", msg: "two"))])
        #expect(out.allSatisfy { if case .created = $0 { true } else { false } })
        #expect(try await store.communication(id: "r2")?.request.msg == "two")
    }

    /// Same key and same request returns the first; a different request with that key conflicts; neither is stored.
    public static func idempotency(_ store: any CommunicationStore) async throws {
        _ = try await store.create([new("a", sms(msg: "one"), key: "k1")])
        let again = try await store.create([new("b", sms(msg: "one"), key: "k1")])
        guard case .existing(let c) = again[0] else { Issue.record("expected existing, got \(again)"); return }
        #expect(c.id == "a" && c.request == sms(msg: "one"))
        let other = try await store.create([new("c", sms(msg: "two"), key: "k1")])
        #expect(other[0] == .conflict(existingID: "a"))
        #expect(try await store.communication(id: "b") == nil)
        #expect(try await store.communication(id: "c") == nil)
        // Within one batch too.
        let batch = try await store.create([new("d", sms(msg: "three"), key: "k2"), new("e", sms(msg: "three"), key: "k2")])
        guard case .created = batch[0], case .existing(let first) = batch[1] else { Issue.record("batch: \(batch)"); return }
        #expect(first.id == "d")
    }

    /// Communications are found by their idempotency keys in one call; unknown keys are absent.
    public static func idempotencyKeys(_ store: any CommunicationStore) async throws {
        #expect(try await store.communications(idempotencyKeys: []).isEmpty)
        _ = try await store.create((0..<600).map { new("m\($0)", sms(msg: "n\($0)"), key: "batch#\($0)") } + [new("plain", sms())])
        let keys = (0..<600).map { "batch#\($0)" } + ["batch#600", "other"]
        let found = try await store.communications(idempotencyKeys: keys)
        #expect(found.count == 600)
        #expect(found["batch#599"]?.id == "m599" && found["batch#599"]?.request.msg == "n599" && found["batch#0"]?.status == .pending)
        #expect(found["batch#600"] == nil && found["other"] == nil)
    }

    /// A message with a send time is stored `scheduled`, due at that time (not the outbox grace), claimed then
    /// and not before, and cancellable.
    public static func scheduled(_ store: any CommunicationStore) async throws {
        var item = new("s1", at: 1000)
        item.sendAt = Timestamp(milliseconds: 60_000)
        var other = new("s2", sms(msg: "two"), at: 1000)
        other.sendAt = Timestamp(milliseconds: 60_000)
        _ = try await store.create([item, other])
        let c = try #require(try await store.communication(id: "s1"))
        #expect(c.status == .scheduled && c.dispatchAt == Timestamp(milliseconds: 60_000) && c.history.map(\.status) == [.pending, .scheduled])
        #expect(try await store.claimDue(now: Timestamp(milliseconds: 59_999), lease: .seconds(30), limit: 10).isEmpty)
        #expect(try await store.outboxDue(now: Timestamp(milliseconds: 60_000)) == 2)
        let cancelled = try await store.apply([StatusTransition(id: "s2", event: .cancelled(by: nil), at: Timestamp(milliseconds: 2000), service: "router")])
        #expect(appliedCount(cancelled) == 1)
        let due = try await store.claimDue(now: Timestamp(milliseconds: 60_000), lease: .seconds(30), limit: 10)
        #expect(due.map(\.id) == ["s1"] && due.first?.status == .scheduled)
        let queued = try await store.apply([StatusTransition(id: "s1", event: .queued(dispatchSeq: 1), at: Timestamp(milliseconds: 60_001), service: "scheduler")])
        #expect(appliedCount(queued) == 1)
        #expect(try await store.communication(id: "s1")?.status == .queued)
    }

    /// Concurrent creates with one key store one communication; the others get it back.
    public static func idempotencyRace(_ store: any CommunicationStore) async throws {
        let outcomes = try await withThrowingTaskGroup(of: CreateOutcome.self) { group in
            for i in 0..<8 {
                group.addTask { try await store.create([new("race\(i)", sms(msg: "same"), key: "race-key")])[0] }
            }
            return try await group.reduce(into: [CreateOutcome]()) { $0.append($1) }
        }
        var created: [String] = [], existing: [String] = []
        for o in outcomes {
            switch o {
            case .created(let c): created.append(c.id)
            case .existing(let c): existing.append(c.id)
            case .conflict: Issue.record("conflict for the same request")
            }
        }
        #expect(created.count == 1)
        #expect(existing.count == 7 && Set(existing) == Set(created))
        #expect(try await store.statusCounts() == [StatusCount(channel: .sms, status: .pending, count: 1)])
    }

    /// Transitions go through the status machine (duplicates and late events ignored) and land in the history.
    public static func transitions(_ store: any CommunicationStore) async throws {
        _ = try await store.create([new("m")])
        func t(_ e: StatusEvent, _ at: Int64) -> StatusTransition { StatusTransition(id: "m", event: e, at: Timestamp(milliseconds: at), service: "test") }
        let r = try await store.apply([
            t(.queued(dispatchSeq: 1), 2000), t(.processing(dispatchSeq: 1, redelivery: false), 3000),
            t(.processing(dispatchSeq: 1, redelivery: false), 3001),  // duplicate: ignored
            t(.sent(provider: "sandbox", providerMessageID: "pm-1"), 4000), t(.queued(dispatchSeq: 1), 5000),  // late: ignored
        ])
        #expect(r.map { if case .applied = $0 { true } else { false } } == [true, true, false, true, false])
        if case .applied(let after, let change) = r[3] {
            #expect(after.status == .sent && after.history.isEmpty && change.status == .sent && change.provider == "sandbox")
        }
        if case .ignored(let now, let reason) = r[4] { #expect(now.status == .sent && !reason.isEmpty) }
        let c = try #require(try await store.communication(id: "m"))
        #expect(c.status == .sent && c.attempts == 1 && c.provider == "sandbox" && c.providerMessageID == "pm-1" && c.dispatchAt == nil)
        #expect(c.updatedAt == Timestamp(milliseconds: 4000))
        #expect(c.history.map(\.status) == [.pending, .queued, .processing, .sent])
        #expect(c.history.map(\.at.milliseconds) == [1000, 2000, 3000, 4000])
        #expect(c.history.map(\.service) == ["router", "test", "test", "test"])
        #expect(try await store.communication(providerMessageID: "pm-1")?.id == "m")
        #expect(try await store.communication(providerMessageID: "pm-2") == nil)
        #expect(try await store.apply([StatusTransition(id: "nope", event: .queued(dispatchSeq: 1), at: Timestamp(milliseconds: 1), service: "x")]) == [.notFound(id: "nope")])
    }

    /// A retry keeps the provider's error and schedules the next dispatch; a failure is final.
    public static func retryAndFailure(_ store: any CommunicationStore) async throws {
        _ = try await store.create([new("f")])
        func t(_ e: StatusEvent, _ at: Int64) -> StatusTransition { StatusTransition(id: "f", event: e, at: Timestamp(milliseconds: at), service: "sms") }
        let err = ProviderError(code: "30003", message: "Unreachable handset")
        _ = try await store.apply([
            t(.processing(dispatchSeq: 1, redelivery: false), 2000),
            t(.retrying(error: err, provider: "twilio", nextAttemptAt: Timestamp(milliseconds: 9000)), 2100),
        ])
        let retrying = try #require(try await store.communication(id: "f"))
        #expect(retrying.status == .retrying && retrying.dispatchSeq == 2 && retrying.dispatchAt == Timestamp(milliseconds: 9000))
        #expect(retrying.lastError == err && retrying.provider == "twilio")
        #expect(retrying.history.last?.detail == err.description)
        _ = try await store.apply([t(.failed(error: ProviderError(message: "gave up"), provider: nil), 3000)])
        let failed = try #require(try await store.communication(id: "f"))
        #expect(failed.status == .failed && failed.dispatchAt == nil && failed.lastError == ProviderError(message: "gave up"))
        #expect(try await store.statusCounts() == [StatusCount(channel: .sms, status: .failed, count: 1)])
    }

    /// Cancel: from queued to cancelled (due time cleared, who asked in the history); afterwards a worker's entry,
    /// a retry or a report changes nothing; a message being delivered is not cancelled.
    public static func cancel(_ store: any CommunicationStore) async throws {
        _ = try await store.create([new("c"), new("d")])
        func t(_ id: String, _ e: StatusEvent, _ at: Int64) -> StatusTransition { StatusTransition(id: id, event: e, at: Timestamp(milliseconds: at), service: "router") }
        let r = try await store.apply([
            t("c", .queued(dispatchSeq: 1), 2000), t("c", .cancelled(by: "key_contract"), 2500), t("c", .processing(dispatchSeq: 1, redelivery: false), 3000),
            t("c", .failed(error: ProviderError(message: "x"), provider: nil), 3100), t("c", .cancelled(by: nil), 3200),
            t("d", .processing(dispatchSeq: 1, redelivery: false), 2000), t("d", .cancelled(by: "key_contract"), 2100),
        ])
        #expect(r.map { if case .applied = $0 { true } else { false } } == [true, true, false, false, false, true, false])
        let c = try #require(try await store.communication(id: "c"))
        #expect(c.status == .cancelled && c.dispatchAt == nil && c.attempts == 0)
        #expect(c.history.map(\.status) == [.pending, .queued, .cancelled])
        #expect(c.history.last?.detail == "cancelled by key_contract" && c.history.last?.service == "router")
        #expect(try await store.communication(id: "d")?.status == .processing)
        #expect(try await store.statusCounts().contains(StatusCount(channel: .sms, status: .cancelled, count: 1)))
    }

    /// Redrive: `failed` finds the failed messages by channel, failure time (`since` inclusive, `until` exclusive)
    /// and error code, oldest failure first, at most `limit`; a redrive moves one back to `pending` as a new
    /// dispatch with a fresh attempt budget, due now, who asked in the history, its error kept; a second redrive
    /// and the failed dispatch's late events change nothing; the new dispatch runs as any other.
    public static func redrive(_ store: any CommunicationStore) async throws {
        let email = CommunicationRequest(channel: .email, from: "a@example.com", to: "b@example.com", msg: "hi")
        _ = try await store.create([new("a"), new("b"), new("c"), new("d"), new("f", email)])
        func t(_ id: String, _ e: StatusEvent, _ at: Int64) -> StatusTransition { StatusTransition(id: id, event: e, at: Timestamp(milliseconds: at), service: "sms") }
        func fail(_ id: String, _ code: String, at: Int64) -> [StatusTransition] {
            [t(id, .processing(dispatchSeq: 1, redelivery: false), at - 500), t(id, .failed(error: ProviderError(code: code, message: "no"), provider: "p"), at)]
        }
        _ = try await store.apply(fail("c", "E1", at: 5000) + fail("a", "E1", at: 3000) + fail("b", "E2", at: 4000) + fail("f", "E1", at: 3500) + [
            t("d", .processing(dispatchSeq: 1, redelivery: false), 2000), t("d", .sent(provider: "p", providerMessageID: nil), 2100),
        ])
        func ids(_ q: FailedQuery) async throws -> [String] { try await store.failed(q).map(\.id) }
        #expect(try await ids(FailedQuery(channel: .sms, limit: 100)) == ["a", "b", "c"])
        #expect(try await ids(FailedQuery(limit: 100)) == ["a", "f", "b", "c"])
        #expect(try await ids(FailedQuery(channel: .sms, since: Timestamp(milliseconds: 4000), limit: 100)) == ["b", "c"])
        #expect(try await ids(FailedQuery(channel: .sms, until: Timestamp(milliseconds: 4000), limit: 100)) == ["a"])
        #expect(try await ids(FailedQuery(channel: .sms, errorCode: "E1", limit: 100)) == ["a", "c"])
        #expect(try await ids(FailedQuery(channel: .sms, since: Timestamp(milliseconds: 3000), until: Timestamp(milliseconds: 5001), errorCode: "E1", limit: 1)) == ["a"])
        #expect(try await ids(FailedQuery(channel: .whatsapp, limit: 100)) == [])
        #expect(try await ids(FailedQuery(channel: .sms, errorCode: "nope", limit: 100)) == [])
        let found = try #require(try await store.failed(FailedQuery(channel: .sms, limit: 1)).first)
        #expect(found.status == .failed && found.lastError == ProviderError(code: "E1", message: "no") && found.updatedAt == Timestamp(milliseconds: 3000))

        let due = Timestamp(milliseconds: 6000)
        let r = try await store.apply([
            StatusTransition(id: "a", event: .redriven(by: "key_contract", due: due), at: due, service: "router"),
            StatusTransition(id: "a", event: .redriven(by: "key_contract", due: due), at: Timestamp(milliseconds: 6001), service: "router"),
            StatusTransition(id: "d", event: .redriven(by: nil, due: due), at: due, service: "router"),
            // The failed dispatch's late events: stale.
            t("a", .processing(dispatchSeq: 1, redelivery: true), 6100), t("a", .failed(error: ProviderError(message: "late"), provider: nil, dispatchSeq: 1), 6200),
        ])
        #expect(r.map { if case .applied = $0 { true } else { false } } == [true, false, false, false, false])
        if case .ignored(let c, _) = r[1] { #expect(c.status == .pending) } else { Issue.record("second redrive: \(r[1])") }
        let a = try #require(try await store.communication(id: "a"))
        #expect(a.status == .pending && a.dispatchSeq == 2 && a.attempts == 0 && a.dispatchAt == due)
        #expect(a.lastError == ProviderError(code: "E1", message: "no") && a.updatedAt == due)
        #expect(a.history.map(\.status) == [.pending, .processing, .failed, .pending])
        #expect(a.history.last?.detail == "redriven by key_contract" && a.history.last?.service == "router" && a.history.last?.attempt == 0)
        #expect(try await store.communication(id: "d")?.status == .sent)
        // No longer failed: the filter skips it; the outbox has it due now.
        #expect(try await ids(FailedQuery(channel: .sms, limit: 100)) == ["b", "c"])
        #expect(try await store.claimDue(now: due, lease: .seconds(30), limit: 10).map(\.id) == ["a"])
        #expect(try await store.statusCounts().contains(StatusCount(channel: .sms, status: .failed, count: 2)))
        // The new dispatch: published, taken as attempt 1, delivered.
        let next = try await store.apply([
            StatusTransition(id: "a", event: .queued(dispatchSeq: 2), at: Timestamp(milliseconds: 6300), service: "scheduler"),
            t("a", .processing(dispatchSeq: 2, redelivery: false), 6400), t("a", .sent(provider: "p", providerMessageID: "pm-a"), 6500),
        ])
        #expect(appliedCount(next) == 3)
        let sent = try #require(try await store.communication(id: "a"))
        #expect(sent.status == .sent && sent.attempts == 1 && sent.history.map(\.status) == [.pending, .processing, .failed, .pending, .queued, .processing, .sent])
    }

    /// Retention (`Purging`): the communications past dispatch whose last change is before the cutoff are
    /// deleted, with their idempotency keys; one still on its way is kept however old, and so is one created
    /// long ago but changed since (a late delivery report). Over a page of rows (`SQLiteRetention.chunk`), so
    /// that paging is exercised too.
    public static func purge(_ store: any CommunicationStore) async throws {
        let purging = try #require(store as? any Purging, "the store does not purge")
        func t(_ id: String, _ e: StatusEvent, _ at: Int64) -> StatusTransition { StatusTransition(id: id, event: e, at: Timestamp(milliseconds: at), service: "test") }
        func deliver(_ id: String, _ at: Int64) -> [StatusTransition] {
            [t(id, .queued(dispatchSeq: 1), at), t(id, .processing(dispatchSeq: 1, redelivery: false), at), t(id, .sent(provider: "sandbox", providerMessageID: "pm-\(id)"), at)]
        }
        // 600 old and sent, created before the others so that a page of them comes first.
        _ = try await store.create((0..<600).map { new("old\($0)", at: 1000) })
        for start in stride(from: 0, to: 600, by: 100) {
            _ = try await store.apply((start..<start + 100).flatMap { deliver("old\($0)", 2000) })
        }
        _ = try await store.create([
            new("oldFailed", at: 1000), new("oldKeyed", key: "key-1", at: 1000), new("stuckQueued", at: 1000), new("stuckRetrying", at: 1000),
            new("lateReport", at: 1000), new("recentSent", at: 50_000), new("recentPending", at: 50_000),
        ])
        _ = try await store.apply([
            t("oldFailed", .processing(dispatchSeq: 1, redelivery: false), 2000), t("oldFailed", .failed(error: ProviderError(message: "no"), provider: "sandbox"), 2000),
            t("stuckQueued", .queued(dispatchSeq: 1), 2000),
            t("stuckRetrying", .processing(dispatchSeq: 1, redelivery: false), 2000),
            t("stuckRetrying", .retrying(error: ProviderError(message: "later"), provider: "sandbox", nextAttemptAt: Timestamp(milliseconds: 3000)), 2000),
            t("lateReport", .processing(dispatchSeq: 1, redelivery: false), 2000), t("lateReport", .sent(provider: "sandbox", providerMessageID: "pm-late"), 2000),
            t("lateReport", .reported(status: .delivered, error: nil), 60_000),
        ] + deliver("oldKeyed", 2000) + deliver("recentSent", 55_000))

        let deleted = try await purging.purge(before: Timestamp(milliseconds: 40_000))
        #expect(deleted == 602)
        for gone in ["old0", "old599", "oldFailed", "oldKeyed"] {
            #expect(try await store.communication(id: gone) == nil, "\(gone) was kept")
        }
        for kept in ["stuckQueued", "stuckRetrying", "lateReport", "recentSent", "recentPending"] {
            #expect(try await store.communication(id: kept) != nil, "\(kept) was deleted")
        }
        #expect(try await store.communication(providerMessageID: "pm-old0") == nil)
        // The idempotency key went with its message.
        guard case .created? = try await store.create([new("reused", key: "key-1", at: 70_000)]).first else {
            Issue.record("the idempotency key of a deleted message still answers"); return
        }
        #expect(try await store.statusCounts().reduce(0) { $0 + $1.count } == 6)
        #expect(try await purging.purge(before: Timestamp(milliseconds: 40_000)) == 0, "a second purge found more")
    }

    /// Communications created since a time come in creation order, in pages, without history.
    public static func createdSince(_ store: any CommunicationStore) async throws {
        _ = try await store.create((0..<7).map { new("s\($0)", at: Int64(1000 * $0)) })
        let first = try await store.communications(createdSince: Timestamp(milliseconds: 2000), after: nil, limit: 3)
        #expect(first.map(\.id) == ["s2", "s3", "s4"])
        #expect(first[0].request == sms() && first[0].status == .pending)
        let second = try await store.communications(createdSince: Timestamp(milliseconds: 2000), after: "s4", limit: 3)
        #expect(second.map(\.id) == ["s5", "s6"])
        #expect(try await store.communications(createdSince: Timestamp(milliseconds: 9000), after: nil, limit: 3).isEmpty)
        #expect(try await store.communications(createdSince: .init(milliseconds: 0), after: nil, limit: 0).isEmpty)
    }

    /// Counts per channel and status.
    public static func statusCounts(_ store: any CommunicationStore) async throws {
        #expect(try await store.statusCounts().isEmpty)
        let email = CommunicationRequest(channel: .email, from: "a@example.com", to: "b@example.com", msg: "hi")
        _ = try await store.create([new("x1"), new("x2"), new("x3", email)])
        _ = try await store.apply([StatusTransition(id: "x1", event: .queued(dispatchSeq: 1), at: Timestamp(milliseconds: 2000), service: "router")])
        let counts = Set(try await store.statusCounts())
        #expect(counts == [StatusCount(channel: .sms, status: .pending, count: 1), StatusCount(channel: .sms, status: .queued, count: 1), StatusCount(channel: .email, status: .pending, count: 1)])
        try await store.ping()
    }

    /// Eight workers race to move the same 50 messages to processing: each moves exactly once.
    public static func concurrentTransitions(_ store: any CommunicationStore) async throws {
        _ = try await store.create((0..<50).map { new("c\($0)") })
        let applied = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    Self.appliedCount(try await store.apply((0..<50).map { StatusTransition(id: "c\($0)", event: .processing(dispatchSeq: 1, redelivery: false), at: Timestamp(milliseconds: 2), service: "w") }))
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(applied == 50)
        for i in [0, 25, 49] {
            let c = try #require(try await store.communication(id: "c\(i)"))
            #expect(c.attempts == 1 && c.history.map(\.status) == [.pending, .processing])
        }
    }

    /// The outbox leases due messages: a leased one is not due again until its lease ran out; a queued one never.
    public static func claimDue(_ store: any CommunicationStore) async throws {
        _ = try await store.create([new("d1", at: 0), new("d2", at: 100_000)])
        let now = Timestamp(milliseconds: 20_000)
        let first = try await store.claimDue(now: now, lease: .seconds(30), limit: 10)
        #expect(first.map(\.id) == ["d1"])
        #expect(try await store.claimDue(now: now, lease: .seconds(30), limit: 10).isEmpty)
        #expect(try await store.claimDue(now: Timestamp(milliseconds: 50_001), lease: .seconds(30), limit: 10).map(\.id) == ["d1"])
        _ = try await store.apply([StatusTransition(id: "d1", event: .queued(dispatchSeq: 1), at: now, service: "s")])
        #expect(try await store.claimDue(now: Timestamp(milliseconds: 90_000), lease: .seconds(30), limit: 10).isEmpty)
    }

    /// Concurrent schedulers never take the same due message.
    public static func concurrentClaims(_ store: any CommunicationStore) async throws {
        _ = try await store.create((0..<40).map { new("o\($0)", at: 0) })
        let now = Timestamp(milliseconds: 20_000)
        let taken = try await withThrowingTaskGroup(of: [String].self) { group in
            for _ in 0..<6 {
                group.addTask {
                    var mine: [String] = []
                    while true {
                        let got = try await store.claimDue(now: now, lease: .seconds(60), limit: 3)
                        if got.isEmpty { return mine }
                        mine += got.map(\.id)
                    }
                }
            }
            return try await group.reduce(into: [String]()) { $0 += $1 }
        }
        #expect(taken.count == 40 && Set(taken).count == 40)
    }

    /// The outbox's due count: what `claimDue` would take at that time (the due time itself included), a leased
    /// message only once its lease ran out, a queued one never.
    public static func outboxDue(_ store: any CommunicationStore) async throws {
        #expect(try await store.outboxDue(now: Timestamp(milliseconds: 1_000_000)) == 0)
        _ = try await store.create([new("e1", at: 0), new("e2", at: 100_000), new("e3", at: 0)])  // due at 10 s, 110 s, 10 s
        #expect(try await store.outboxDue(now: Timestamp(milliseconds: 9_999)) == 0)
        #expect(try await store.outboxDue(now: Timestamp(milliseconds: 10_000)) == 2)
        #expect(try await store.outboxDue(now: Timestamp(milliseconds: 110_000)) == 3)
        let now = Timestamp(milliseconds: 20_000)
        let claimed = try await store.claimDue(now: now, lease: .seconds(30), limit: 1)
        #expect(claimed.count == 1)
        #expect(try await store.outboxDue(now: now) == 1)
        #expect(try await store.outboxDue(now: Timestamp(milliseconds: 50_000)) == 2)
        _ = try await store.apply(["e1", "e3"].map { StatusTransition(id: $0, event: .queued(dispatchSeq: 1), at: now, service: "s") })
        #expect(try await store.outboxDue(now: Timestamp(milliseconds: 90_000)) == 0)
        #expect(try await store.outboxDue(now: Timestamp(milliseconds: 200_000)) == 1)
    }
}
