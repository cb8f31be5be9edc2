import Foundation

extension HTTPAnswer {
    /// The body decoded as `T` (Foundation's `JSONDecoder`), or nil when it is not JSON of that shape.
    func decode<T: Decodable>(_ type: T.Type) -> T? {
        try? JSONDecoder().decode(T.self, from: Data(body))
    }
}

extension KeyedDecodingContainer {
    /// The value at `key` when it is there as a `T`; nil when it is absent, null or of another type (a
    /// provider's answer is read for what it holds, not rejected for one odd field).
    func lenient<T: Decodable>(_ key: Key) -> T? {
        (try? decodeIfPresent(T.self, forKey: key)) ?? nil
    }

    /// `lenient(_:)` with the type spelled out.
    func lenient<T: Decodable>(_ type: T.Type, _ key: Key) -> T? {
        lenient(key)
    }
}

/// A provider's error code, sent as a JSON number (`21211`) or string (`"21211"`).
struct ProviderCode: Decodable, Sendable, Hashable {
    /// The code as text: a whole number without decimals (`21211`), else as sent.
    var text: String
    /// The code as an integer, when it is one.
    var integer: Int?

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let d = try? c.decode(Double.self) {
            let whole = d == d.rounded() && abs(d) < 1e15
            text = whole ? String(Int64(d)) : String(d)
            integer = whole ? Int(d) : nil
        } else {
            let s = try c.decode(String.self)
            text = s
            integer = Int(s)
        }
    }
}
