import Logging
import NIOCore
import NIOPosix
import Synchronization

/// Log lines that can repeat thousands of times a second (a refused request, a malformed one, a connection over
/// the cap) written as one line per kind and interval: the first occurrence of a kind is logged whole, the
/// following ones within `interval` are only counted, and the count is logged when the interval ends
/// (`… (1234 more in the last 10 s)`). A full disk then writes a few lines a minute, not 53,000 in 20 s.
public final class AggregatedLog: Sendable {
    /// How long repeats of a kind are counted before their count is logged.
    public let interval: Duration
    let logger: Logger
    /// Runs the end-of-interval summaries (a scheduled callback: no task outlives the log).
    let eventLoop: any EventLoop
    let windows = Mutex<[String: Window]>([:])

    /// One kind's current interval.
    struct Window {
        var generation: Int
        var start: ContinuousClock.Instant
        var repeats = 0
        var level: Logger.Level
        var message: String
        var metadata: Logger.Metadata
    }

    public init(logger: Logger, interval: Duration = .seconds(10), eventLoop: any EventLoop = MultiThreadedEventLoopGroup.singleton.any()) {
        self.logger = logger
        self.interval = interval
        self.eventLoop = eventLoop
    }

    /// Logs `message` unless a line of `kind` was logged less than `interval` ago; then it is counted, and the
    /// count is logged (with the last occurrence's message and metadata) when the interval ends.
    public func log(_ kind: String, level: Logger.Level, _ message: @autoclosure () -> String, metadata: @autoclosure () -> Logger.Metadata = [:]) {
        guard logger.logLevel <= level else { return }
        let now = ContinuousClock.now
        enum Action { case log(summary: Window?), count(schedule: Int?) }
        let text = message(), meta = metadata()
        let action: Action = windows.withLock { windows in
            if var w = windows[kind], now - w.start < interval {
                w.repeats += 1
                w.level = level
                w.message = text
                w.metadata = meta
                windows[kind] = w
                return .count(schedule: w.repeats == 1 ? w.generation : nil)
            }
            let previous = windows[kind]
            windows[kind] = Window(generation: (previous?.generation ?? 0) + 1, start: now, level: level, message: text, metadata: meta)
            return .log(summary: previous.flatMap { $0.repeats > 0 ? $0 : nil })
        }
        switch action {
        case .log(let summary):
            if let summary { write(kind, summary) }
            var m = meta
            m["kind"] = .string(kind)
            logger.log(level: level, "\(text)", metadata: m)
        case .count(let generation?):
            // The first repeat of this interval: its count is logged when the interval ends, even if no
            // other line of this kind comes to push it out.
            let deadline = NIODeadline.now() + .nanoseconds(Int64(interval.components.seconds) * 1_000_000_000 + interval.components.attoseconds / 1_000_000_000)
            eventLoop.scheduleTask(deadline: deadline) { [self] in self.flush(kind, generation: generation) }
        case .count(nil):
            break
        }
    }

    /// Logs the count of `kind`'s interval `generation`, if it is still the current one and has repeats.
    func flush(_ kind: String, generation: Int) {
        let ended: Window? = windows.withLock { windows in
            guard let w = windows[kind], w.generation == generation else { return nil }
            windows[kind] = nil  // the next occurrence is logged whole again
            return w.repeats > 0 ? w : nil
        }
        if let ended { write(kind, ended) }
    }

    func write(_ kind: String, _ w: Window) {
        var m = w.metadata
        m["kind"] = .string(kind)
        m["repeats"] = .stringConvertible(w.repeats)
        let seconds = Double(interval.components.seconds) + Double(interval.components.attoseconds) / 1e18
        logger.log(level: w.level, "\(w.message) (\(w.repeats) more in the last \(seconds.formatted()) s)", metadata: m)
    }
}

extension Double {
    /// `10` for 10.0, `0.5` for 0.5.
    fileprivate func formatted() -> String {
        self == rounded() ? String(Int(self)) : String(self)
    }
}
