import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
import SwitchboardApp
import SwitchboardCore
@testable import SwitchboardHTTP
@testable import SwitchboardSQLite

let apiKeyHeader = HTTPField.Name("X-API-Key")!

func bearer(_ key: String, json: Bool = false) -> HTTPFields {
    var h: HTTPFields = [.authorization: "Bearer \(key)"]
    if json { h[.contentType] = "application/json" }
    return h
}

/// Creates a key through `POST /api/v1/keys` (with `admin`'s key, or none while the API is open); returns (id, key).
func createKey(_ client: some TestClientProtocol, admin: String? = nil, _ body: String) async throws -> (id: String, key: String) {
    var headers: HTTPFields = [.contentType: "application/json"]
    if let admin { headers[.authorization] = "Bearer \(admin)" }
    let r = try await client.execute(uri: "/api/v1/keys", method: .post, headers: headers, body: ByteBuffer(string: body))
    #expect(r.status == .created, "\(String(buffer: r.body))")
    let j = try json(r)
    return (try #require(j["id"]?.stringValue), try #require(j["key"]?.stringValue))
}

/// The answer is the documented 401: code `unauthorized`, `WWW-Authenticate: Bearer`.
func expectUnauthorized(_ r: TestResponse, _ mentioning: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws {
    #expect(r.status == .unauthorized, sourceLocation: sourceLocation)
    #expect(r.headers[.wwwAuthenticate] == "Bearer", sourceLocation: sourceLocation)
    #expect(try errorCode(r) == "unauthorized", sourceLocation: sourceLocation)
    if let mentioning {
        let message = try json(r)["error"]?["message"]?.stringValue ?? ""
        #expect(message.contains(mentioning), "\(message)", sourceLocation: sourceLocation)
    }
}

@Suite("API keys over HTTP")
struct AuthTests {
    let seedBody = #"{"type":"sms","data":{"from":"+1234567890","to":"+0987654321","msg":"Hello"}}"#

    @Test("keys are made in the format promised: prefix, 256 random bits in base64url, a hex SHA-256 stored")
    func keyFormat() throws {
        var random = SystemRandomNumberGenerator()
        let live = APIKeySecret.generate(test: false, using: &random)
        let test = APIKeySecret.generate(test: true, using: &random)
        #expect(live.hasPrefix("sb_live_") && live.count == 8 + 43 && APIKeySecret.isWellFormed(live))
        #expect(test.hasPrefix("sb_test_") && APIKeySecret.isTest(test) && APIKeySecret.isWellFormed(test))
        #expect(live != APIKeySecret.generate(test: false, using: &random))
        #expect(!APIKeySecret.isWellFormed("sb_live_short") && !APIKeySecret.isWellFormed("xx_live_" + String(live.dropFirst(8))))
        #expect(!APIKeySecret.isWellFormed(String(live.dropLast()) + "+"))
        // RFC 4648 test vectors, base64url without padding.
        #expect(APIKeySecret.base64url(Array("foobar".utf8)) == "Zm9vYmFy" && APIKeySecret.base64url(Array("fooba".utf8)) == "Zm9vYmE" && APIKeySecret.base64url(Array("foob".utf8)) == "Zm9vYg")
        #expect(APIKeySecret.base64url([0xFB, 0xFF]) == "-_8")
        // SHA-256 of "abc" (FIPS 180-2).
        #expect(KeyIssuer.hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(APIKeySecret.constantTimeEquals("abc", "abc") && !APIKeySecret.constantTimeEquals("abc", "abd") && !APIKeySecret.constantTimeEquals("abc", "ab"))
    }

    @Test("no key in the store: open (loopback); the first key, made over HTTP, closes the API at once")
    func openUntilTheFirstKey() async throws {
        let f = try APIFixture(auth: true)
        try await f.app.test(.router) { client in
            #expect(try await client.execute(uri: "/api/v1/stats", method: .get).status == .ok)
            let (id, admin) = try await createKey(client, #"{"name":"first admin","scopes":["admin"]}"#)
            #expect(id.hasPrefix("key_") && admin.hasPrefix("sb_live_"))
            try expectUnauthorized(try await client.execute(uri: "/api/v1/stats", method: .get), "API key is required")
            #expect(try await client.execute(uri: "/api/v1/stats", method: .get, headers: bearer(admin)).status == .ok)
            #expect(try await client.execute(uri: "/api/v1/stats", method: .get, headers: [apiKeyHeader: admin]).status == .ok)
            #expect(try await client.execute(uri: "/api/v1/stats", method: .get, headers: [.authorization: "bearer \(admin)"]).status == .ok)
        }
    }

    @Test("missing, malformed, unknown and revoked keys, and another scheme: 401 unauthorized with WWW-Authenticate: Bearer")
    func unauthorized() async throws {
        let f = try APIFixture(auth: true)
        try await f.app.test(.router) { client in
            let (_, admin) = try await createKey(client, #"{"name":"admin","scopes":["admin"]}"#)
            let (sendID, send) = try await createKey(client, admin: admin, #"{"name":"sender"}"#)
            var random = SystemRandomNumberGenerator()
            let stranger = APIKeySecret.generate(test: false, using: &random)
            for uri in ["/api/v1/communications", "/api/v1/stats", "/api/v1/keys", "/api/v1/no-such-thing"] {
                try expectUnauthorized(try await client.execute(uri: uri, method: .get), "API key is required")
                try expectUnauthorized(try await client.execute(uri: uri, method: .get, headers: bearer(stranger)), "not known")
            }
            try expectUnauthorized(try await client.execute(uri: "/api/v1/communication", method: .post, headers: jsonHeaders, body: buffer(seedBody)))
            try expectUnauthorized(try await client.execute(uri: "/api/v1/stats", method: .get, headers: bearer("sb_live_tooshort")), "not one Switchboard issued")
            try expectUnauthorized(try await client.execute(uri: "/api/v1/stats", method: .get, headers: [.authorization: "Basic YWRtaW46YWRtaW4="]), "Bearer")
            // Revoked: the key stops working at once on the router that revoked it.
            let revoked = try await client.execute(uri: "/api/v1/keys/\(sendID)", method: .delete, headers: bearer(admin))
            #expect(try revoked.status == .ok && json(revoked)["revokedAt"]?.stringValue != nil)
            var headers = bearer(send)
            headers[.contentType] = "application/json"
            try expectUnauthorized(try await client.execute(uri: "/api/v1/communication", method: .post, headers: headers, body: buffer(seedBody)), "revoked")
            // A known key on an unknown path: the router's 404.
            #expect(try await client.execute(uri: "/api/v1/no-such-thing", method: .get, headers: bearer(admin)).status == .notFound)
        }
    }

    @Test("a key without the route's scope: 403 forbidden naming it; admin grants every scope")
    func scopes() async throws {
        let f = try APIFixture(auth: true)
        try await f.app.test(.router) { client in
            let (_, admin) = try await createKey(client, #"{"name":"admin","scopes":["admin"]}"#)
            let (_, send) = try await createKey(client, admin: admin, #"{"name":"sender","scopes":["send"]}"#)
            let (_, read) = try await createKey(client, admin: admin, #"{"name":"reader","scopes":["read"]}"#)
            func forbidden(_ r: TestResponse, _ scope: String) throws {
                #expect(r.status == .forbidden)
                #expect(try errorCode(r) == "forbidden")
                #expect((try json(r)["error"]?["message"]?.stringValue ?? "").contains("\(scope) scope"))
            }
            try forbidden(try await client.execute(uri: "/api/v1/communication", method: .post, headers: bearer(read, json: true), body: buffer(seedBody)), "send")
            for uri in ["/api/v1/communications", "/api/v1/stats", "/api/v1/logs", "/api/v1/sandbox/messages", "/api/v1/dead-letters?stream=sms_stream", "/api/v1/communication/000000000000000000000000"] {
                try forbidden(try await client.execute(uri: uri, method: .get, headers: bearer(send)), "read")
            }
            try forbidden(try await client.execute(uri: "/api/v1/keys", method: .get, headers: bearer(read)), "admin")
            try forbidden(try await client.execute(uri: "/api/v1/keys", method: .post, headers: bearer(send, json: true), body: buffer(#"{"name":"x"}"#)), "admin")
            try forbidden(try await client.execute(uri: "/api/v1/keys/key_0000", method: .delete, headers: bearer(read)), "admin")
            #expect(try await client.execute(uri: "/api/v1/communication", method: .post, headers: bearer(send, json: true), body: buffer(seedBody)).status == .ok)
            #expect(try await client.execute(uri: "/api/v1/stats", method: .get, headers: bearer(read)).status == .ok)
            #expect(try await client.execute(uri: "/api/v1/communication", method: .post, headers: bearer(admin, json: true), body: buffer(seedBody)).status == .ok)
            #expect(try await client.execute(uri: "/api/v1/communications", method: .get, headers: bearer(admin)).status == .ok)
            // Health and the provider webhooks never ask for a key.
            #expect(try await client.execute(uri: "/health/live", method: .get).status == .ok)
            #expect(try await client.execute(uri: "/health/ready", method: .get).status == .ok)
            let webhook = try await client.execute(uri: "/webhooks/twilio/status", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"], body: buffer("MessageSid=SM1"))
            #expect(try errorCode(webhook) == "webhook_not_configured")
        }
    }

    @Test("key endpoints: the key once at creation, never in lists; bad bodies are 4xx naming the field")
    func keyEndpoints() async throws {
        let f = try APIFixture(auth: true)
        try await f.app.test(.router) { client in
            let created = try await client.execute(uri: "/api/v1/keys", method: .post, headers: jsonHeaders, body: buffer(#"{"name":"ops","scopes":["admin","read"],"rate":5,"burst":20}"#))
            #expect(created.status == .created && created.headers[.cacheControl] == "no-store")
            let c = try json(created)
            let admin = try #require(c["key"]?.stringValue)
            #expect(c["scopes"] == .array([.string("read"), .string("admin")]) && c["rate"] == .number(5) && c["burst"] == .number(20) && c["test"] == .bool(false))
            let (testID, testKey) = try await createKey(client, admin: admin, #"{"name":"ci","scopes":["send","read"],"test":true}"#)
            #expect(testKey.hasPrefix("sb_test_"))
            let list = try await client.execute(uri: "/api/v1/keys", method: .get, headers: bearer(admin))
            let text = String(buffer: list.body)
            #expect(list.status == .ok && !text.contains(admin) && !text.contains(testKey) && !text.contains(KeyIssuer.hash(admin)) && !text.lowercased().contains("hash"))
            guard case .array(let items)? = try json(list)["items"] else { Issue.record("no items"); return }
            #expect(items.count == 2 && items.first { $0["id"]?.stringValue == testID }?["test"] == .bool(true))
            for (body, field) in [
                (#"{"scopes":["send"]}"#, "name"), (#"{"name":"  "}"#, "name"), (#"{"name":"x","scopes":["write"]}"#, "scopes"), (#"{"name":"x","scopes":[]}"#, "scopes"),
                (#"{"name":"x","rate":0}"#, "rate"), (#"{"name":"x","burst":1.5}"#, "burst"), (#"{"name":"x","test":"yes"}"#, "test"), (#"{"name":"x","owner":"y"}"#, "owner"),
            ] {
                let r = try await client.execute(uri: "/api/v1/keys", method: .post, headers: bearer(admin, json: true), body: buffer(body))
                #expect(r.status == .badRequest, "\(body)")
                #expect(try json(r)["error"]?["field"]?.stringValue == field, "\(body)")
            }
            #expect(try await client.execute(uri: "/api/v1/keys", method: .post, headers: bearer(admin, json: true), body: buffer("{")).status == .badRequest)
            #expect(try await client.execute(uri: "/api/v1/keys", method: .post, headers: bearer(admin), body: buffer(#"{"name":"x"}"#)).status == .unsupportedMediaType)
            let missing = try await client.execute(uri: "/api/v1/keys/key_doesnotexist", method: .delete, headers: bearer(admin))
            #expect(try missing.status == .notFound && errorCode(missing) == "not_found")
            #expect(try await client.execute(uri: "/api/v1/keys/\(testID)", method: .delete, headers: bearer(admin)).status == .ok)
            // Revoking again answers the same record (the first revocation time).
            let again = try await client.execute(uri: "/api/v1/keys/\(testID)", method: .delete, headers: bearer(admin))
            #expect(try again.status == .ok && json(again)["revokedAt"] != .null)
            let wrongMethod = try await client.execute(uri: "/api/v1/keys/\(testID)", method: .get, headers: bearer(admin))
            #expect(wrongMethod.status == .methodNotAllowed && wrongMethod.headers[.allow] == "DELETE")
        }
    }

    @Test("each message records its key's id (never the secret); ?key= filters by it; a test key's message is marked test")
    func attribution() async throws {
        let f = try APIFixture(auth: true)
        try await f.app.test(.router) { client in
            let (_, admin) = try await createKey(client, #"{"name":"admin","scopes":["admin"]}"#)
            let (aID, a) = try await createKey(client, admin: admin, #"{"name":"a","scopes":["send"]}"#)
            let (bID, b) = try await createKey(client, admin: admin, #"{"name":"b","scopes":["send"],"test":true}"#)
            var ids: [String: String] = [:]
            for (name, key) in [("a1", a), ("a2", a), ("b1", b)] {
                let r = try await client.execute(uri: "/api/v1/communication", method: .post, headers: bearer(key, json: true), body: buffer(#"{"type":"sms","data":{"from":"+1234567890","to":"+0987654321","msg":"\#(name)"}}"#))
                #expect(r.status == .ok)
                ids[name] = try json(r)["id"]?.stringValue
            }
            let shown = try json(try await client.execute(uri: "/api/v1/communication/\(ids["a1"]!)", method: .get, headers: bearer(admin)))
            #expect(shown["keyId"] == .string(aID) && shown["test"] == .bool(false))
            #expect(!String(describing: shown).contains(a))
            let testShown = try json(try await client.execute(uri: "/api/v1/communication/\(ids["b1"]!)", method: .get, headers: bearer(admin)))
            #expect(testShown["keyId"] == .string(bID) && testShown["test"] == .bool(true))
            func listed(_ query: String) async throws -> [String] {
                let r = try await client.execute(uri: "/api/v1/communications\(query)", method: .get, headers: bearer(admin))
                guard case .array(let items)? = try json(r)["items"] else { return [] }
                return items.compactMap { $0["msg"]?.stringValue }
            }
            #expect(try await listed("?key=\(aID)") == ["a2", "a1"])
            #expect(try await listed("?key=\(bID)&type=sms") == ["b1"])
            #expect(try await listed("?key=key_nobody").isEmpty)
            let bad = try await client.execute(uri: "/api/v1/communications?key=sb_live_secret", method: .get, headers: bearer(admin))
            #expect(try bad.status == .badRequest && json(bad)["error"]?["field"] == .string("key"))
            // The log entries of the test message say so (the logging service, not running here, indexes them).
            let entries = try await f.adapters.queue.entries(stream: StreamNames.log, limit: 100)
            let testEntries = entries.filter { $0.fields["communicationId"] == ids["b1"] }
            #expect(!testEntries.isEmpty && testEntries.allSatisfy { $0.fields["test"] == "true" })
            #expect(entries.filter { $0.fields["communicationId"] == ids["a1"] }.allSatisfy { $0.fields["test"] == nil })
        }
    }

    @Test("a key revoked through one router stops working on another over the same file within 5 s")
    func revocationReachesAnotherRouter() async throws {
        let first = try APIFixture(auth: true)
        let second = try APIFixture(auth: true, path: first.database.options.path)
        try await first.app.test(.router) { one in
            try await second.app.test(.router) { two in
                let (_, admin) = try await createKey(one, #"{"name":"admin","scopes":["admin"]}"#)
                let (id, reader) = try await createKey(one, admin: admin, #"{"name":"reader","scopes":["read"]}"#)
                // The other router knows the new key at once (an unknown key reads the list again).
                #expect(try await two.execute(uri: "/api/v1/stats", method: .get, headers: bearer(reader)).status == .ok)
                #expect(try await one.execute(uri: "/api/v1/keys/\(id)", method: .delete, headers: bearer(admin)).status == .ok)
                let revokedAt = ContinuousClock.now
                var refusedAfter: Duration?
                while ContinuousClock.now - revokedAt < .seconds(10) {
                    let r = try await two.execute(uri: "/api/v1/stats", method: .get, headers: bearer(reader))
                    if r.status == .unauthorized {
                        refusedAfter = ContinuousClock.now - revokedAt
                        try expectUnauthorized(r, "revoked")
                        break
                    }
                    #expect(r.status == .ok)
                    try await Task.sleep(for: .milliseconds(100))
                }
                let after = try #require(refusedAfter, "the second router still accepts the revoked key after 10 s")
                #expect(after < .seconds(5))
            }
        }
    }

    @Test("the bootstrap admin key (SWITCHBOARD_ADMIN_KEY) closes the API by itself and cannot be revoked over HTTP")
    func bootstrapKey() async throws {
        var random = SystemRandomNumberGenerator()
        let adminKey = APIKeySecret.generate(test: false, using: &random)
        let f = try APIFixture(auth: true, adminKey: adminKey)
        try await f.app.test(.router) { client in
            try expectUnauthorized(try await client.execute(uri: "/api/v1/stats", method: .get))
            #expect(try await client.execute(uri: "/api/v1/stats", method: .get, headers: bearer(adminKey)).status == .ok)
            let (_, made) = try await createKey(client, admin: adminKey, #"{"name":"made by bootstrap","scopes":["read"]}"#)
            #expect(try await client.execute(uri: "/api/v1/stats", method: .get, headers: bearer(made)).status == .ok)
            let r = try await client.execute(uri: "/api/v1/keys/key_bootstrap", method: .delete, headers: bearer(adminKey))
            #expect(try r.status == .conflict && errorCode(r) == "bootstrap_key")
            // It is not stored: the store holds the one key made with it.
            #expect(try await SQLiteKeyStore(database: f.database).keys().map(\.name) == ["made by bootstrap"])
        }
    }
}
