import Foundation
import Logging
import SwitchboardCore

/// The wall clock as a `Timestamp`.
public enum SystemTime {
    /// Now.
    @Sendable public static func now() -> Timestamp {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Timestamp(milliseconds: Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000)
    }
}
