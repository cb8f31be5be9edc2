import Foundation
import Logging
import SwitchboardCore
import SwitchboardSMTP
import Testing
@testable import SwitchboardProviders

/// What the API accepts as an email address is what the SMTP client can send: an address accepted at the door
/// must never fail for ever in the provider for its syntax, and one the provider cannot send is a 400 at the door.
@Suite("Email addresses: accepted at the door exactly when the SMTP provider can send them")
struct EmailAcceptanceTests {
    static let addresses = [
        "ada@example.com", "first.last+tag@sub.example.co.uk", "x@localhost", "o'brien@example.ie", "a!#$%&'*+-/=?^_`{|}~b@example.com",
        "üser@exämple.de", "ada@bücher.de", "用户@例子.广告",
        "\"quoted local\"@example.com", "\"ada\"@example.com", "\"a\\\"b\"@example.com",
        "user@[192.0.2.1]", "user@[IPv6:2001:db8::1]", "user@[192.0.2.1;x]",
        "a b@example.com", "a..b@example.com", ".a@example.com", "a@-example.com", "a@example..com", "Ada <ada@example.com>",
        String(repeating: "a", count: 64) + "@example.com", String(repeating: "a", count: 65) + "@example.com",
    ]

    /// Renders the message the provider would send for `from` → `to`, as it builds it for an attempt.
    func render(from: String, to: String, defaultFrom: String?) throws {
        let provider = try SMTPProvider(
            configuration: SMTPConfiguration(host: "127.0.0.1", port: 2525, tlsMode: .none, defaultFrom: defaultFrom.map { EmailAddress($0) }),
            logger: Logger(label: "test"))
        let message = OutboundMessage(id: "691ff0a2c1d7e64b0a000001", request: CommunicationRequest(channel: .email, from: from, to: to, msg: "Hello"), attempt: 1)
        _ = try provider.email(for: message).render()
    }

    @Test("an address the validator accepts renders, as sender and as recipient, with and without SWITCHBOARD_SMTP_FROM", arguments: addresses)
    func acceptedAddressesRender(address: String) throws {
        guard Address.isValidEmail(address) else { return }
        for defaultFrom in [nil, "noreply@example.com"] {
            try render(from: address, to: "bob@example.org", defaultFrom: defaultFrom)
            try render(from: "ada@example.com", to: address, defaultFrom: defaultFrom)
        }
    }

    @Test("quoted local parts and address literals are a 400 naming the field, with the reason")
    func refusedAtTheDoor() throws {
        let cases: [(String, String)] = [
            ("\"quoted local\"@example.com", "quoted local parts"), ("\"ada\"@example.com", "quoted local parts"),
            ("user@[192.0.2.1]", "address literals"), ("user@[IPv6:2001:db8::1]", "address literals"),
        ]
        for (address, reason) in cases {
            for field in ["from", "to"] {
                var data: [String: JSONValue] = ["from": .string("ada@example.com"), "to": .string("bob@example.org"), "msg": .string("x")]
                data[field] = .string(address)
                guard case .failure(let e) = RequestValidator.validate(.object(["type": .string("email"), "data": .object(data)])) else {
                    Issue.record("\(address) as \(field) was accepted")
                    continue
                }
                #expect(e.code == "invalid_email")
                #expect(e.field == "data.\(field)")
                #expect(e.message.contains(reason), "\(e.message)")
            }
        }
    }

    @Test("every address the SMTP client refuses is refused by the validator too")
    func refusedBySMTPIsRefusedAtTheDoor() throws {
        for address in Self.addresses {
            let sendable = (try? render(from: "ada@example.com", to: address, defaultFrom: nil)) != nil
            if !sendable { #expect(!Address.isValidEmail(address), "\(address) is accepted but the SMTP client cannot send to it") }
        }
    }
}
