import SwitchboardBackoff

/// The rules of status callbacks that need no I/O: which URLs may be called, what an answer means for the
/// delivery, and the `Retry-After` header. The sender (App) and the API (HTTP) both use them.
public enum CallbackRules {
    /// Longest callback URL accepted.
    public static let maxURLLength = 2048

    /// The parts of an absolute http(s) URL the rules need.
    public struct Target: Sendable, Hashable {
        public var scheme: String
        /// Lowercased, without the brackets of an IPv6 literal.
        public var host: String
        public var port: Int
    }

    /// Parses an absolute `http://` or `https://` URL with a host; a `RequestError` (field `field`) otherwise.
    public static func target(_ url: String, field: String = "url") -> Result<Target, RequestError> {
        func bad(_ why: String) -> Result<Target, RequestError> {
            .failure(RequestError(code: "invalid_url", message: "\(field) must be an absolute http(s) URL of at most \(maxURLLength) characters: \(why).", field: field))
        }
        guard !url.isEmpty else { return bad("it is empty") }
        guard url.utf8.count <= maxURLLength else { return bad("it has \(url.utf8.count) characters") }
        guard url.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else { return bad("it holds spaces, control or non-ASCII characters (percent-encode them)") }
        let lower = url.lowercased()
        let scheme: String
        if lower.hasPrefix("http://") { scheme = "http" } else if lower.hasPrefix("https://") { scheme = "https" } else { return bad("the scheme is not http or https") }
        let rest = lower.dropFirst(scheme.count + 3)
        var authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        var host: Substring
        var portText: Substring = ""
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return bad("an IPv6 host lacks its \"]\"") }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { return bad("junk after the IPv6 host") }
                portText = after.dropFirst()
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
        } else {
            host = authority
        }
        guard !host.isEmpty else { return bad("it has no host") }
        var port = scheme == "https" ? 443 : 80
        if !portText.isEmpty {
            guard let p = Int(portText), (1...65535).contains(p) else { return bad("the port is not a number from 1 to 65535") }
            port = p
        }
        if host.hasSuffix(".") { host = host.dropLast() }
        return .success(Target(scheme: scheme, host: String(host), port: port))
    }

    /// Why callbacks may not go to `host` (a name or an IP literal), or nil when they may. Only what can be told
    /// without DNS: names of this machine and of cloud metadata services, and literal addresses (`refusal(address:)`).
    public static func refusal(host: String) -> String? {
        let h = host.lowercased()
        if h == "localhost" || h.hasSuffix(".localhost") { return "\(host) is this machine (loopback)" }
        if h == "metadata.google.internal" || h == "metadata" || h == "metadata.goog" { return "\(host) is a cloud metadata service" }
        if let a = IPAddress(parsing: h) { return refusal(address: a) }
        return nil
    }

    /// Why callbacks may not go to `address`, or nil: loopback, private (RFC 1918, fc00::/7, 100.64/10), link-local
    /// (169.254/16, fe80::/10), unspecified, multicast, broadcast, and the metadata addresses (169.254.169.254,
    /// fd00:ec2::254). An IPv4-mapped IPv6 address is judged as its IPv4 address.
    public static func refusal(address: IPAddress) -> String? {
        switch address {
        case .v4(let b):
            let (a, c) = (b[0], b[1])
            if b == [169, 254, 169, 254] { return "\(address) is a cloud metadata address" }
            if a == 127 { return "\(address) is a loopback address" }
            if a == 10 || (a == 172 && (16...31).contains(c)) || (a == 192 && c == 168) { return "\(address) is a private address (RFC 1918)" }
            if a == 100 && (64...127).contains(c) { return "\(address) is a shared (carrier-grade NAT) address" }
            if a == 169 && c == 254 { return "\(address) is a link-local address" }
            if a == 0 { return "\(address) is an unspecified address" }
            if a >= 224 { return "\(address) is a multicast or reserved address" }
            return nil
        case .v6(let b):
            if b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xFF && b[11] == 0xFF {
                return refusal(address: .v4(Array(b[12..<16])))
            }
            if b[0..<15].allSatisfy({ $0 == 0 }) && b[15] == 1 { return "\(address) is the loopback address" }
            if b.allSatisfy({ $0 == 0 }) { return "\(address) is the unspecified address" }
            if b == [0xFD, 0x00, 0x0E, 0xC2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54] { return "\(address) is a cloud metadata address" }
            if b[0] & 0xFE == 0xFC { return "\(address) is a unique local (private) address" }
            if b[0] == 0xFE && b[1] & 0xC0 == 0x80 { return "\(address) is a link-local address" }
            if b[0] == 0xFF { return "\(address) is a multicast address" }
            return nil
        }
    }

    /// What one attempt's answer means.
    public enum Answer: Sendable, Hashable {
        /// An HTTP status, with its `Retry-After` header if any.
        case status(Int, retryAfter: String?)
        /// No answer: refused connection, DNS failure, timeout, TLS failure; or a refused address (`retryable: false`).
        case noAnswer(String, retryable: Bool)
    }

    /// The delivery's state after attempt number `attempt` got `answer` at `now`: 2xx delivered; 408, 429, 5xx and
    /// no answer retried after `backoff` (or the 429/503's `Retry-After`, if longer) while the next attempt still
    /// falls within `horizon` of `since`, else failed; any other status (other 4xx, 1xx, a 3xx redirect, which is
    /// not followed) failed at once.
    public static func decide(attempt: Int, answer: Answer, since: Timestamp, now: Timestamp, horizon: Duration, backoff: Backoff, using generator: inout some RandomNumberGenerator) -> (state: CallbackDeliveryState, next: Timestamp, error: String?) {
        var retryAfter: Duration?
        switch answer {
        case .status(let code, _) where (200...299).contains(code):
            return (.delivered, now, nil)
        case .status(let code, let header) where code == 408 || code == 429 || (500...599).contains(code):
            if code == 429 || code == 503, let header { retryAfter = Self.retryAfter(header, now: now) }
        case .status(let code, _):
            let why = (300...399).contains(code) ? "answered \(code): redirects are not followed" : "answered \(code): not retried"
            return (.failed, now, why)
        case .noAnswer(let why, let retryable):
            if !retryable { return (.failed, now, why) }
        }
        var wait = backoff.delay(afterFailures: max(1, attempt), using: &generator)
        if let retryAfter, retryAfter > wait { wait = retryAfter }
        let next = now.adding(wait)
        let error: String?
        switch answer {
        case .status(let code, _): error = "answered \(code)"
        case .noAnswer(let why, _): error = why
        }
        if next > since.adding(horizon) {
            return (.failed, now, (error ?? "") + "; retries stopped: \(horizon) since the first attempt")
        }
        return (.pending, next, error)
    }

    /// A `Retry-After` value as a wait from `now`: delay-seconds, or an HTTP date (IMF-fixdate,
    /// `Sun, 06 Nov 1994 08:49:37 GMT`); nil when unreadable. Capped at a day.
    public static func retryAfter(_ value: String, now: Timestamp) -> Duration? {
        let v = value.trimmingSpaces
        if let s = Int64(v) { return s >= 0 ? .seconds(min(s, 86_400)) : nil }
        // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
        let parts = v.split(separator: " ")
        guard parts.count == 6, parts[5] == "GMT", let day = Int(parts[1]), let year = Int(parts[3]) else { return nil }
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        guard let month = months.firstIndex(of: String(parts[2])) else { return nil }
        let hms = parts[4].split(separator: ":").compactMap { Int($0) }
        guard hms.count == 3 else { return nil }
        let ms = Int64(daysFromCivil(year: year, month: month + 1, day: day)) * 86_400_000 + Int64(hms[0] * 3600 + hms[1] * 60 + hms[2]) * 1000
        let wait = ms - now.milliseconds
        return .milliseconds(min(max(0, wait), 86_400_000))
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The body of a callback: `{"type": "communication.<status>", "timestamp": <RFC 3339>, "data": <change>}`, where
    /// `data` is the change as the event endpoints render it (`eventJSON`).
    public static func payload(_ r: LogRecord, data eventJSON: String) -> String {
        "{\"data\":\(eventJSON),\"timestamp\":\(JSONValue.string(r.timestamp.iso8601).canonicalText),\"type\":\(JSONValue.string(eventType(r)).canonicalText)}"
    }

    public static func eventType(_ r: LogRecord) -> String { "communication.\(r.status?.rawValue ?? "unknown")" }
}

/// An IP address, parsed without I/O.
public enum IPAddress: Sendable, Hashable, CustomStringConvertible {
    case v4([UInt8])
    case v6([UInt8])

    /// Parses dotted IPv4 (four decimal parts) or textual IPv6 (with `::`, an embedded IPv4 tail, no zone).
    public init?(parsing text: String) {
        if let v4 = Self.parseV4(Substring(text)) {
            self = .v4(v4)
            return
        }
        guard text.contains(":"), let v6 = Self.parseV6(text) else { return nil }
        self = .v6(v6)
    }

    static func parseV4(_ s: Substring) -> [UInt8]? {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var out: [UInt8] = []
        for p in parts {
            guard !p.isEmpty, p.count <= 3, p.allSatisfy({ $0.isASCII && $0.isNumber }), let n = UInt8(p) else { return nil }
            out.append(n)
        }
        return out
    }

    static func parseV6(_ text: String) -> [UInt8]? {
        var s = Substring(text)
        if let percent = s.firstIndex(of: "%") { s = s[..<percent] }
        let halves = s.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ part: Substring, allowV4: Bool) -> [UInt8]? {
            if part.isEmpty { return [] }
            var out: [UInt8] = []
            let items = part.split(separator: ":", omittingEmptySubsequences: false)
            for (i, item) in items.enumerated() {
                if allowV4, i == items.count - 1, item.contains(".") {
                    guard let v4 = parseV4(item) else { return nil }
                    out += v4
                } else {
                    guard !item.isEmpty, item.count <= 4, let n = UInt16(item, radix: 16) else { return nil }
                    out += [UInt8(n >> 8), UInt8(n & 0xFF)]
                }
            }
            return out
        }
        if halves.count == 1 {
            guard let all = groups(halves[0], allowV4: true), all.count == 16 else { return nil }
            return all
        }
        guard let head = groups(halves[0], allowV4: false), let tail = groups(halves[1], allowV4: true), head.count + tail.count <= 14 else { return nil }
        return head + Array(repeating: 0, count: 16 - head.count - tail.count) + tail
    }

    public var description: String {
        switch self {
        case .v4(let b): return b.map(String.init).joined(separator: ".")
        case .v6(let b):
            var groups: [String] = []
            for i in stride(from: 0, to: 16, by: 2) { groups.append(String(UInt16(b[i]) << 8 | UInt16(b[i + 1]), radix: 16)) }
            return groups.joined(separator: ":")
        }
    }
}

extension Substring {
    fileprivate func components(separatedBy separator: String) -> [Substring] {
        var out: [Substring] = []
        var rest = self[...]
        while let r = rest.firstRange(of: separator) {
            out.append(rest[..<r.lowerBound])
            rest = rest[r.upperBound...]
        }
        out.append(rest)
        return out
    }
}

extension String {
    fileprivate var trimmingSpaces: Substring {
        let s = self[...]
        let start = s.firstIndex { $0 != " " && $0 != "\t" } ?? s.endIndex
        let end = s.lastIndex { $0 != " " && $0 != "\t" }.map { s.index(after: $0) } ?? start
        return start < end ? s[start..<end] : ""
    }
}
