/// A value bound to or read from a statement.
enum SQLValue: Sendable {
    case null
    case int(Int64)
    case text(String)
    case blob([UInt8])
}
