import Foundation

/// Reads typed values out of an environment, with errors that name the variable and its value.
struct EnvironmentReader {
    let env: [String: String]

    /// The trimmed value, or nil when unset or empty.
    func value(_ name: String) -> String? {
        guard let v = env[name]?.trimmingCharacters(in: .whitespaces), !v.isEmpty else { return nil }
        return v
    }

    /// A whole number in `range`, or nil when unset.
    func int(_ name: String, _ range: ClosedRange<Int>) throws -> Int? {
        guard let v = value(name) else { return nil }
        guard let n = Int(v), range.contains(n) else { throw SettingsError("\(name)=\(v) is not a whole number from \(range.lowerBound) to \(range.upperBound)") }
        return n
    }

    /// Milliseconds (0 to one day) as a duration, or nil when unset.
    func millis(_ name: String) throws -> Duration? { try int(name, 0...86_400_000).map { .milliseconds($0) } }
}
