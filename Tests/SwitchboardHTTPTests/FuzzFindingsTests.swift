import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
import SwitchboardCore
@testable import SwitchboardHTTP
@testable import SwitchboardSQLite

/// Inputs schemathesis (scripts/fuzz.sh) found answered as server faults, kept as regressions.
@Suite("Fuzz findings")
struct FuzzFindingsTests {
    @Test("a NUL in a full-text query is a word separator, not a 503 search_unavailable", arguments: ["/api/v1/communications", "/api/v1/logs"])
    func nulInQuery(path: String) async throws {
        #expect(SQLiteSearchIndex.ftsQuery("parcel\0late") == #""parcel" "late""#)
        #expect(SQLiteSearchIndex.ftsQuery("\0\0") == nil)
        let f = try APIFixture()
        try await f.app.test(.router) { client in
            let body = #"{"type":"sms","data":{"from":"+1234567890","to":"+0987654321","msg":"your parcel is late"}}"#
            #expect(try await client.execute(uri: "/api/v1/communication", method: .post, headers: jsonHeaders, body: buffer(body)).status == .ok)
            // A client's input: answered (or refused as a 400 invalid_parameter, should the API refuse control
            // characters in queries), never as a search outage.
            var answered = true
            for q in ["%00", "parcel%00late", "%00parcel", "a%00%22b"] {
                let r = try await client.execute(uri: "\(path)?q=\(q)", method: .get)
                let code = try errorCode(r)
                let refused = r.status == .badRequest && code == "invalid_parameter"
                #expect(r.status == .ok || refused, "q=\(q): \(r.status) \(String(buffer: r.body))")
                answered = answered && r.status == .ok
            }
            // (No logging service runs here, so only the communications are searchable right away.)
            guard path == "/api/v1/communications", answered else { return }
            let found = try json(try await client.execute(uri: "\(path)?q=parcel%00late", method: .get))
            guard case .number(let count)? = found["count"] else { Issue.record("no count"); return }
            #expect(count >= 1, "the words on both sides of the NUL are searched")
        }
    }
}
