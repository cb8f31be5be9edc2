/// Thrown for work submitted after `close()`.
public struct DatabaseClosed: Error, CustomStringConvertible, Sendable {
    public var description: String { "the database is closed" }
}
