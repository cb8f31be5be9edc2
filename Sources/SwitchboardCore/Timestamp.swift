/// A point in time as milliseconds since the Unix epoch (UTC).
///
/// The core does no I/O, so it never reads a clock: callers pass `now` in.
public struct Timestamp: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    public var milliseconds: Int64

    /// Creates a timestamp from milliseconds since the epoch.
    public init(milliseconds: Int64) { self.milliseconds = milliseconds }

    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool { lhs.milliseconds < rhs.milliseconds }

    /// This time moved by `duration` (rounded to milliseconds).
    public func adding(_ duration: Duration) -> Timestamp {
        let (seconds, attos) = duration.components
        return Timestamp(milliseconds: milliseconds + seconds * 1000 + attos / 1_000_000_000_000_000)
    }

    /// RFC 3339 / ISO 8601 text in UTC with milliseconds, e.g. `2026-11-21T05:29:19.123Z`.
    public var iso8601: String {
        var ms = milliseconds
        var days = ms >= 0 ? ms / 86_400_000 : (ms - 86_399_999) / 86_400_000
        ms -= days * 86_400_000
        let hour = ms / 3_600_000, minute = ms / 60_000 % 60, second = ms / 1000 % 60, milli = ms % 1000
        // Civil-from-days (proleptic Gregorian), after Howard Hinnant's published algorithm.
        days += 719_468
        let era = (days >= 0 ? days : days - 146_096) / 146_097
        let doe = days - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        var out = [UInt8](repeating: 0, count: 24)
        func put(_ v: Int64, at offset: Int, width: Int) {
            var v = v
            for i in stride(from: offset + width - 1, through: offset, by: -1) {
                out[i] = UInt8(truncatingIfNeeded: 48 + v % 10)
                v /= 10
            }
        }
        guard (0...9999).contains(year) else {
            return "\(year)-\(month)-\(day)T\(hour):\(minute):\(second).\(milli)Z"  // outside RFC 3339's range
        }
        put(year, at: 0, width: 4); out[4] = 45
        put(month, at: 5, width: 2); out[7] = 45
        put(day, at: 8, width: 2); out[10] = 84
        put(hour, at: 11, width: 2); out[13] = 58
        put(minute, at: 14, width: 2); out[16] = 58
        put(second, at: 17, width: 2); out[19] = 46
        put(milli, at: 20, width: 3); out[23] = 90
        return String(decoding: out, as: UTF8.self)
    }

    /// Parses RFC 3339 text (`2026-11-21T05:29:19Z`, optional fraction, `Z` or `±hh:mm`) or integer epoch milliseconds.
    public init?(parsing text: String) {
        if let ms = Int64(text) { self.init(milliseconds: ms); return }
        let u = Array(text.utf8)
        func num(_ from: Int, _ count: Int) -> Int64? {
            guard from + count <= u.count else { return nil }
            var v: Int64 = 0
            for i in from..<(from + count) {
                guard u[i] >= 48, u[i] <= 57 else { return nil }
                v = v * 10 + Int64(u[i] - 48)
            }
            return v
        }
        guard u.count >= 10, let y = num(0, 4), u[4] == 45, let mo = num(5, 2), u[7] == 45, let d = num(8, 2),
            (1...12).contains(mo), (1...31).contains(d)
        else { return nil }
        var h: Int64 = 0, mi: Int64 = 0, s: Int64 = 0, frac: Int64 = 0, offset: Int64 = 0
        var i = 10
        if u.count > 10 {
            guard u[10] == 84 || u[10] == 116 || u[10] == 32, let hh = num(11, 2), u.count > 13, u[13] == 58,
                let mm = num(14, 2), u.count > 16, u[16] == 58, let ss = num(17, 2)
            else { return nil }
            h = hh; mi = mm; s = ss; i = 19
            if i < u.count, u[i] == 46 {
                i += 1
                var digits = 0
                while i < u.count, u[i] >= 48, u[i] <= 57 {
                    if digits < 3 { frac = frac * 10 + Int64(u[i] - 48) }
                    digits += 1; i += 1
                }
                guard digits > 0 else { return nil }
                if digits < 3 { for _ in digits..<3 { frac *= 10 } }
            }
            if i < u.count {
                if u[i] == 90 || u[i] == 122 {
                    i += 1
                } else if u[i] == 43 || u[i] == 45, let oh = num(i + 1, 2), i + 3 < u.count, u[i + 3] == 58, let om = num(i + 4, 2) {
                    offset = (oh * 60 + om) * 60_000 * (u[i] == 43 ? 1 : -1)
                    i += 6
                } else { return nil }
            }
            guard i == u.count, h < 24, mi < 60, s < 61 else { return nil }
        }
        // Days-from-civil.
        let yy = mo <= 2 ? y - 1 : y
        let era = (yy >= 0 ? yy : yy - 399) / 400
        let yoe = yy - era * 400
        let mp = mo > 2 ? mo - 3 : mo + 9
        let doy = (153 * mp + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        self.init(milliseconds: days * 86_400_000 + h * 3_600_000 + mi * 60_000 + s * 1000 + frac - offset)
    }

    public var description: String { iso8601 }
}
