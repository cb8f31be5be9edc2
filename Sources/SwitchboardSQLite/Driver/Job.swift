/// A job for a connection thread.
final class Job {
    /// Runs the work; false when it threw (its transaction is then rolled back). May run more than once.
    let run: (Connection) -> Bool
    /// Resumes the caller: with the commit's error, or with what `run` produced.
    let finish: ((any Error)?) -> Void
    /// A write whose caller waits for the commit's sync (`SQLiteDatabase.write(durable:_:)`).
    let durable: Bool

    init(durable: Bool = true, run: @escaping (Connection) -> Bool, finish: @escaping ((any Error)?) -> Void) {
        self.durable = durable
        self.run = run
        self.finish = finish
    }

    /// A job running `body` and resuming `continuation` with its result when finished.
    static func make<T: Sendable>(durable: Bool, _ body: @escaping @Sendable (Connection) throws -> T, resuming continuation: CheckedContinuation<T, any Error>) -> Job {
        var result: Result<T, any Error>?
        return Job(
            durable: durable,
            run: { connection in
                do {
                    result = .success(try body(connection))
                    return true
                } catch {
                    result = .failure(error)
                    return false
                }
            },
            finish: { commitError in
                if let commitError { continuation.resume(throwing: commitError); return }
                continuation.resume(with: result ?? .failure(DatabaseClosed()))
            })
    }
}
