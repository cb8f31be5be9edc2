import Foundation
import SwitchboardCore
import SwitchboardProviders
import SwitchboardSMTP

/// A delivery provider a channel can use.
public enum ProviderKind: String, Sendable, CaseIterable, Hashable {
    case sandbox
    case smtp
    case twilio
    /// Meta's WhatsApp Cloud API (also accepted as `whatsapp` in lists).
    case meta

    /// The channels this provider serves.
    public var channels: Set<MessageChannel> {
        switch self {
        case .sandbox: Set(MessageChannel.allCases)
        case .smtp: [.email]
        case .twilio: [.sms]
        case .meta: [.whatsapp]
        }
    }
}

/// Real provider credentials, failover order, circuit breakers and rate limits, from the environment.
/// Secrets are never part of `summary` or any description.
public struct ProviderSettings: Sendable {
    /// SMTP submission (`SWITCHBOARD_SMTP_*`), or nil.
    public var smtp: SMTPConfiguration?
    /// Twilio (the seed's `ACCOUNTSID`, `AUTHTOKEN`, `MSG_ID`), or nil.
    public var twilio: TwilioConfiguration?
    /// Meta WhatsApp Cloud API (`SWITCHBOARD_WHATSAPP_*`), or nil.
    public var whatsApp: WhatsAppConfiguration?
    /// Token Meta echoes in the webhook verification (`SWITCHBOARD_WHATSAPP_VERIFY_TOKEN`).
    public var whatsAppVerifyToken: String?
    /// App secret that signs Meta's webhook notifications (`SWITCHBOARD_WHATSAPP_APP_SECRET`).
    public var whatsAppAppSecret: String?
    /// Public base URL of this server (`SWITCHBOARD_PUBLIC_URL`): status callbacks and signature checks.
    public var publicURL: String?
    /// Explicit failover order per channel (`SWITCHBOARD_<CHANNEL>_PROVIDERS`); missing: the configured
    /// real provider, else the sandbox.
    public var explicitOrder: [MessageChannel: [ProviderKind]] = [:]
    /// Circuit breaker of every provider (`SWITCHBOARD_BREAKER_THRESHOLD`, `SWITCHBOARD_BREAKER_COOLDOWN_MS`).
    public var breaker = CircuitBreakerStateMachine.Configuration(failureThreshold: 5, coolDown: .seconds(30))
    /// Messages per second per provider (`SWITCHBOARD_<PROVIDER>_RATE`); WhatsApp defaults to 80.
    public var rates: [ProviderKind: Double] = [.meta: 80]

    /// No provider configured: every channel on the sandbox.
    public init() {}

    /// The variables read here, by channel, for `switchboard help config`.
    public static let variableGroups: [Settings.VariableGroup] = [
        .init(title: "Providers: every channel", variables: [
            .init(name: "SWITCHBOARD_PUBLIC_URL", meaning: "public base URL of this server (Twilio StatusCallback and webhook signatures)", defaultValue: "unset"),
            .init(name: "SWITCHBOARD_BREAKER_THRESHOLD", meaning: "consecutive retryable failures that open a provider's circuit", defaultValue: "5"),
            .init(name: "SWITCHBOARD_BREAKER_COOLDOWN_MS", meaning: "how long an open circuit waits before one probe", defaultValue: "30000"),
        ]),
        .init(title: "Providers: email (SMTP)", variables: [
            .init(name: "SWITCHBOARD_EMAIL_PROVIDERS", meaning: "failover order for email: smtp, sandbox", defaultValue: "smtp if configured, else sandbox"),
            .init(name: "SWITCHBOARD_SMTP_HOST", meaning: "SMTP server; setting it enables email over SMTP", defaultValue: "unset"),
            .init(name: "SWITCHBOARD_SMTP_PORT", meaning: "SMTP port", defaultValue: "587 (starttls), 465 (tls), 25 (none)"),
            .init(name: "SWITCHBOARD_SMTP_USER", meaning: "SMTP AUTH user", defaultValue: "unset"),
            .init(name: "SWITCHBOARD_SMTP_PASSWORD", meaning: "SMTP AUTH password (secret)", defaultValue: "unset"),
            .init(name: "SWITCHBOARD_SMTP_TLS", meaning: "starttls, tls (implicit) or none", defaultValue: "starttls"),
            .init(name: "SWITCHBOARD_SMTP_CA_FILE", meaning: "PEM file of CAs to trust instead of the system store", defaultValue: "unset"),
            .init(name: "SWITCHBOARD_SMTP_FROM", meaning: "From address of every email (the request's from becomes Reply-To)", defaultValue: "the request's from"),
            .init(name: "SWITCHBOARD_SMTP_HELO", meaning: "EHLO name", defaultValue: "localhost"),
            .init(name: "SWITCHBOARD_SMTP_ALLOW_INSECURE_AUTH", meaning: "true: allow AUTH without TLS (tls=none, trusted networks only)", defaultValue: "false"),
            .init(name: "SWITCHBOARD_SMTP_RATE", meaning: "emails per second through SMTP", defaultValue: "unlimited"),
        ]),
        .init(title: "Providers: SMS (Twilio)", variables: [
            .init(name: "SWITCHBOARD_SMS_PROVIDERS", meaning: "failover order for SMS: twilio, sandbox", defaultValue: "twilio if configured, else sandbox"),
            .init(name: "ACCOUNTSID", meaning: "Twilio account SID; with AUTHTOKEN enables SMS through Twilio", defaultValue: "unset"),
            .init(name: "AUTHTOKEN", meaning: "Twilio auth token (secret)", defaultValue: "unset"),
            .init(name: "MSG_ID", meaning: "Twilio messaging service SID (sent as MessagingServiceSid instead of From)", defaultValue: "unset"),
            .init(name: "SWITCHBOARD_TWILIO_BASE_URL", meaning: "Twilio API base URL", defaultValue: "https://api.twilio.com"),
            .init(name: "SWITCHBOARD_TWILIO_RATE", meaning: "SMS per second through Twilio", defaultValue: "unlimited"),
        ]),
        .init(title: "Providers: WhatsApp (Meta Cloud API)", variables: [
            .init(name: "SWITCHBOARD_WHATSAPP_PROVIDERS", meaning: "failover order for WhatsApp: meta, sandbox", defaultValue: "meta if configured, else sandbox"),
            .init(name: "SWITCHBOARD_WHATSAPP_TOKEN", meaning: "Meta access token (secret); with the phone number id enables WhatsApp", defaultValue: "unset"),
            .init(name: "SWITCHBOARD_WHATSAPP_PHONE_NUMBER_ID", meaning: "WhatsApp business phone number id", defaultValue: "unset"),
            .init(name: "SWITCHBOARD_WHATSAPP_API_VERSION", meaning: "Graph API version", defaultValue: "v21.0"),
            .init(name: "SWITCHBOARD_WHATSAPP_BASE_URL", meaning: "Graph API base URL", defaultValue: "https://graph.facebook.com"),
            .init(name: "SWITCHBOARD_WHATSAPP_VERIFY_TOKEN", meaning: "webhook verification token (secret)", defaultValue: "unset"),
            .init(name: "SWITCHBOARD_WHATSAPP_APP_SECRET", meaning: "app secret that signs webhook notifications (secret)", defaultValue: "unset"),
            .init(name: "SWITCHBOARD_WHATSAPP_RATE", meaning: "WhatsApp messages per second", defaultValue: "80"),
        ]),
    ]

    /// The variables read here, in the order of ``variableGroups``.
    public static var variables: [Settings.Variable] { variableGroups.flatMap(\.variables) }

    /// Reads the provider variables.
    public static func fromEnvironment(_ env: [String: String]) throws -> ProviderSettings {
        var p = ProviderSettings()
        let reader = EnvironmentReader(env: env)
        let value = reader.value, int = reader.int
        func url(_ name: String) throws -> String? {
            guard let v = value(name) else { return nil }
            guard let u = URL(string: v), let scheme = u.scheme?.lowercased(), scheme == "http" || scheme == "https", u.host != nil else {
                throw SettingsError("\(name)=\(v) is not an http(s) URL")
            }
            var s = v
            while s.hasSuffix("/") { s.removeLast() }
            return s
        }

        p.publicURL = try url("SWITCHBOARD_PUBLIC_URL")

        // SMTP
        if let host = value("SWITCHBOARD_SMTP_HOST") {
            let tls: SMTPTLSMode
            switch value("SWITCHBOARD_SMTP_TLS")?.lowercased() ?? "starttls" {
            case "starttls": tls = .startTLS
            case "tls", "implicit", "ssl": tls = .implicitTLS
            case "none", "plain": tls = .none
            case let other: throw SettingsError("SWITCHBOARD_SMTP_TLS=\(other): use starttls, tls or none")
            }
            let user = value("SWITCHBOARD_SMTP_USER"), password = env["SWITCHBOARD_SMTP_PASSWORD"].flatMap { $0.isEmpty ? nil : $0 }
            if (user == nil) != (password == nil) { throw SettingsError("SWITCHBOARD_SMTP_USER and SWITCHBOARD_SMTP_PASSWORD go together: set both or neither") }
            if let ca = value("SWITCHBOARD_SMTP_CA_FILE"), !FileManager.default.isReadableFile(atPath: ca) {
                throw SettingsError("SWITCHBOARD_SMTP_CA_FILE=\(ca) is not a readable file")
            }
            let allowInsecure: Bool
            switch value("SWITCHBOARD_SMTP_ALLOW_INSECURE_AUTH")?.lowercased() {
            case nil, "false", "0", "no": allowInsecure = false
            case "true", "1", "yes": allowInsecure = true
            case let other?: throw SettingsError("SWITCHBOARD_SMTP_ALLOW_INSECURE_AUTH=\(other): use true or false")
            }
            var from: EmailAddress?
            if let f = value("SWITCHBOARD_SMTP_FROM") {
                guard case .success = RequestValidator.validate(.object(["type": .string("email"), "data": .object(["from": .string(f), "to": .string(f), "msg": .string("x")])])) else {
                    throw SettingsError("SWITCHBOARD_SMTP_FROM=\(f) is not an email address")
                }
                from = EmailAddress(f)
            }
            p.smtp = SMTPConfiguration(
                host: host, port: try int("SWITCHBOARD_SMTP_PORT", 1...65535), tlsMode: tls, username: user, password: password,
                caCertificatePath: value("SWITCHBOARD_SMTP_CA_FILE"), allowInsecureAuthentication: allowInsecure,
                heloName: value("SWITCHBOARD_SMTP_HELO") ?? "localhost", defaultFrom: from)
        } else if let stray = ["SWITCHBOARD_SMTP_USER", "SWITCHBOARD_SMTP_PASSWORD", "SWITCHBOARD_SMTP_FROM"].first(where: { value($0) != nil }) {
            throw SettingsError("\(stray) is set but SWITCHBOARD_SMTP_HOST is not")
        }

        // Twilio (the seed's variables)
        switch (value("ACCOUNTSID"), value("AUTHTOKEN")) {
        case (let sid?, let token?):
            p.twilio = TwilioConfiguration(
                accountSID: sid, authToken: token, messagingServiceSID: value("MSG_ID"),
                baseURL: try url("SWITCHBOARD_TWILIO_BASE_URL") ?? "https://api.twilio.com",
                statusCallback: p.publicURL.map { "\($0)/webhooks/twilio/status" })
        case (nil, nil):
            if value("MSG_ID") != nil { throw SettingsError("MSG_ID is set but ACCOUNTSID and AUTHTOKEN are not") }
        default:
            throw SettingsError("ACCOUNTSID and AUTHTOKEN go together: set both (Twilio) or neither (sandbox)")
        }

        // Meta WhatsApp Cloud API
        switch (value("SWITCHBOARD_WHATSAPP_TOKEN"), value("SWITCHBOARD_WHATSAPP_PHONE_NUMBER_ID")) {
        case (let token?, let phone?):
            let version = value("SWITCHBOARD_WHATSAPP_API_VERSION") ?? "v21.0"
            guard version.first == "v", Double(version.dropFirst()) != nil else { throw SettingsError("SWITCHBOARD_WHATSAPP_API_VERSION=\(version): use a Graph API version such as v21.0") }
            p.whatsApp = WhatsAppConfiguration(accessToken: token, phoneNumberID: phone, apiVersion: version, baseURL: try url("SWITCHBOARD_WHATSAPP_BASE_URL") ?? "https://graph.facebook.com")
        case (nil, nil): break
        default:
            throw SettingsError("SWITCHBOARD_WHATSAPP_TOKEN and SWITCHBOARD_WHATSAPP_PHONE_NUMBER_ID go together: set both (Meta) or neither (sandbox)")
        }
        p.whatsAppVerifyToken = value("SWITCHBOARD_WHATSAPP_VERIFY_TOKEN")
        p.whatsAppAppSecret = value("SWITCHBOARD_WHATSAPP_APP_SECRET")

        // Failover order, breaker, rates
        for channel in MessageChannel.allCases {
            let name = "SWITCHBOARD_\(channel.rawValue.uppercased())_PROVIDERS"
            guard let list = value(name) else { continue }
            var kinds: [ProviderKind] = []
            for item in list.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces).lowercased() }) where !item.isEmpty {
                guard let kind = item == "whatsapp" ? ProviderKind.meta : ProviderKind(rawValue: item) else {
                    throw SettingsError("\(name): unknown provider \(item); use \(ProviderKind.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                guard kind.channels.contains(channel) else { throw SettingsError("\(name): \(kind.rawValue) cannot deliver \(channel.rawValue)") }
                guard !kinds.contains(kind) else { throw SettingsError("\(name): \(kind.rawValue) is listed twice") }
                kinds.append(kind)
            }
            guard !kinds.isEmpty else { throw SettingsError("\(name) is empty") }
            p.explicitOrder[channel] = kinds
        }
        if let n = try int("SWITCHBOARD_BREAKER_THRESHOLD", 1...1000) { p.breaker.failureThreshold = n }
        if let ms = try int("SWITCHBOARD_BREAKER_COOLDOWN_MS", 0...86_400_000) { p.breaker.coolDown = .milliseconds(ms) }
        for kind in [ProviderKind.smtp, .twilio, .meta] {
            let name = "SWITCHBOARD_\(kind == .meta ? "WHATSAPP" : kind.rawValue.uppercased())_RATE"
            guard let v = value(name) else { continue }
            guard let r = Double(v), r >= 0, r.isFinite else { throw SettingsError("\(name)=\(v) is not a number of messages per second (0: unlimited)") }
            p.rates[kind] = r > 0 ? r : nil
        }
        try p.checkOrder()
        return p
    }

    /// Whether `kind` has the credentials it needs.
    public func isConfigured(_ kind: ProviderKind) -> Bool {
        switch kind {
        case .sandbox: true
        case .smtp: smtp != nil
        case .twilio: twilio != nil
        case .meta: whatsApp != nil
        }
    }

    /// The failover order of `channel`.
    public func order(for channel: MessageChannel) -> [ProviderKind] {
        if let explicit = explicitOrder[channel] { return explicit }
        let real = ProviderKind.allCases.first { $0 != .sandbox && $0.channels.contains(channel) && isConfigured($0) }
        return [real ?? .sandbox]
    }

    func checkOrder() throws {
        for (channel, kinds) in explicitOrder {
            for kind in kinds where !isConfigured(kind) {
                throw SettingsError("SWITCHBOARD_\(channel.rawValue.uppercased())_PROVIDERS lists \(kind.rawValue), which is not configured")
            }
        }
    }

    /// Provider settings for the start-up log: no secret appears, only whether it is set.
    public var summary: [(String, String)] {
        func secret(_ s: String?) -> String { s == nil ? "unset" : "****" }
        var out: [(String, String)] = []
        if let s = smtp {
            out.append(("smtp", "\(s.host):\(s.port) tls=\(s.tlsMode) user=\(s.username ?? "none") password=\(secret(s.password)) from=\(s.defaultFrom?.address ?? "request")"))
        }
        if let t = twilio {
            out.append(("twilio", "\(t.baseURL) account=\(t.accountSID.prefix(6))… token=**** messagingService=\(t.messagingServiceSID ?? "none") statusCallback=\(t.statusCallback ?? "none")"))
        }
        if let w = whatsApp {
            out.append(("meta", "\(w.baseURL)/\(w.apiVersion) phoneNumberId=\(w.phoneNumberID) token=**** verifyToken=\(secret(whatsAppVerifyToken)) appSecret=\(secret(whatsAppAppSecret))"))
        }
        out.append(("breaker", "threshold=\(breaker.failureThreshold) coolDown=\(breaker.coolDown)"))
        out.append(("rates", rates.isEmpty ? "none" : rates.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key.rawValue)=\($0.value)/s" }.joined(separator: " ")))
        if let u = publicURL { out.append(("publicURL", u)) }
        return out
    }
}
