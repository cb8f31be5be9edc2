/// The service extensions a server announced in its `EHLO` reply (RFC 5321 §4.1.1.1).
public struct SMTPCapabilities: Sendable, Hashable {
    /// The greeting text on the first `EHLO` reply line (usually the server's domain).
    public var serverDomain: String
    /// Every extension keyword (upper-cased) with its parameters, e.g. `"SIZE": ["35882577"]`.
    public var extensions: [String: [String]]
    /// `true` if the session fell back to `HELO` (no extensions at all).
    public var isLegacyHELO: Bool

    /// Creates an empty capability set (what a `HELO` session has).
    public init(serverDomain: String = "", extensions: [String: [String]] = [:], isLegacyHELO: Bool = false) {
        self.serverDomain = serverDomain
        self.extensions = extensions
        self.isLegacyHELO = isLegacyHELO
    }

    /// Parses the lines of a `250` reply to `EHLO`: the first line is the server's
    /// domain and greeting, every further line an extension keyword with parameters.
    ///
    /// - Parameter reply: The server's positive `EHLO` reply.
    public init(ehloReply reply: SMTPReply) {
        var extensions: [String: [String]] = [:]
        for line in reply.lines.dropFirst() {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard let keyword = words.first?.uppercased(), !keyword.isEmpty else { continue }
            // Some servers also list the pre-standard "AUTH=LOGIN PLAIN" form.
            if keyword.hasPrefix("AUTH=") {
                let mechanisms = [String(keyword.dropFirst(5))] + words.dropFirst()
                extensions["AUTH", default: []].append(contentsOf: mechanisms.map { $0.uppercased() })
                continue
            }
            let parameters = Array(words.dropFirst())
            if keyword == "AUTH" {
                extensions["AUTH", default: []].append(contentsOf: parameters.map { $0.uppercased() })
            } else {
                extensions[keyword] = parameters
            }
        }
        self.init(
            serverDomain: reply.lines.first.map { String($0.prefix { $0 != " " }) } ?? "",
            extensions: extensions
        )
    }

    /// Whether an extension keyword (case-insensitive) was announced.
    public func supports(_ keyword: String) -> Bool {
        extensions[keyword.uppercased()] != nil
    }

    /// `STARTTLS` (RFC 3207).
    public var supportsStartTLS: Bool { supports("STARTTLS") }
    /// `8BITMIME` (RFC 6152).
    public var supports8BitMIME: Bool { supports("8BITMIME") }
    /// `SMTPUTF8` (RFC 6531).
    public var supportsSMTPUTF8: Bool { supports("SMTPUTF8") }
    /// `PIPELINING` (RFC 2920).
    public var supportsPipelining: Bool { supports("PIPELINING") }
    /// `ENHANCEDSTATUSCODES` (RFC 2034).
    public var supportsEnhancedStatusCodes: Bool { supports("ENHANCEDSTATUSCODES") }
    /// `SIZE` was announced (RFC 1870), with or without a limit.
    public var supportsSize: Bool { supports("SIZE") }

    /// The `SIZE` limit in octets, if the server announced a non-zero one.
    public var maximumMessageSize: Int? {
        guard let value = extensions["SIZE"]?.first, let size = Int(value), size > 0 else { return nil }
        return size
    }

    /// The SASL mechanisms offered with `AUTH` (RFC 4954), upper-cased, without duplicates.
    public var authMechanisms: [String] {
        var seen = Set<String>()
        return (extensions["AUTH"] ?? []).filter { seen.insert($0).inserted }
    }
}
