import CoreMetrics
import Foundation
import Synchronization
import SwitchboardTelemetry
#if canImport(Glibc)
import Glibc
#endif

/// The standard `process_*` metrics of Prometheus' client libraries, read from `/proc/self` when scraped
/// (Linux; elsewhere only the file descriptor limit and the start time are known).
final class ProcessMetrics: Sendable {
    private let resident: Gauge
    private let virtual: Gauge
    /// A counter (the type Prometheus expects of `_total`), advanced by what `/proc` adds between scrapes.
    private let cpu: FloatingPointCounter
    private let cpuSeen: Mutex<Double>
    private let openFDs: Gauge
    private let maxFDs: Gauge
    private let startTime: Gauge
    private let started: Double

    init(factory: any MetricsFactory) {
        resident = Gauge(label: MetricName.processResidentMemory, factory: factory)
        virtual = Gauge(label: MetricName.processVirtualMemory, factory: factory)
        cpu = FloatingPointCounter(label: MetricName.processCPUSeconds, factory: factory)
        cpuSeen = Mutex(0)
        openFDs = Gauge(label: MetricName.processOpenFDs, factory: factory)
        maxFDs = Gauge(label: MetricName.processMaxFDs, factory: factory)
        startTime = Gauge(label: MetricName.processStartTime, factory: factory)
        started = Self.readStartTime() ?? Date().timeIntervalSince1970
        startTime.record(started)
    }

    /// Reads the values now.
    func refresh() {
        maxFDs.record(FileDescriptorLimit.current)
        #if os(Linux)
        if let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            openFDs.record(max(0, fds.count - 1))  // less the descriptor the listing itself opened
        }
        if let stat = Self.stat() {
            let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
            let page = Double(sysconf(Int32(_SC_PAGESIZE)))
            let seconds = (stat.utime + stat.stime) / ticks
            let added = cpuSeen.withLock { seen in
                defer { seen = max(seen, seconds) }
                return max(0, seconds - seen)
            }
            if added > 0 { cpu.increment(by: added) }
            virtual.record(stat.vsize)
            resident.record(stat.rss * page)
        }
        #endif
    }

    /// The fields of `/proc/self/stat` used here (after the command name, which may hold spaces).
    static func stat() -> (utime: Double, stime: Double, startTicks: Double, vsize: Double, rss: Double)? {
        guard let text = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        // Field 3 (state) is the first after ") "; utime is field 14, stime 15, starttime 22, vsize 23, rss 24.
        let fields = text[text.index(after: close)...].split(separator: " ")
        func field(_ n: Int) -> Double? { fields.count > n - 3 ? Double(fields[n - 3]) : nil }
        guard let u = field(14), let s = field(15), let st = field(22), let v = field(23), let r = field(24) else { return nil }
        return (u, s, st, v, r)
    }

    /// Seconds since the epoch the process started: the boot time (`/proc/stat` btime) plus its start ticks.
    static func readStartTime() -> Double? {
        #if os(Linux)
        guard let stat = stat(), let boot = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
            let line = boot.split(separator: "\n").first(where: { $0.hasPrefix("btime ") }),
            let btime = Double(line.dropFirst(6).trimmingCharacters(in: .whitespaces))
        else { return nil }
        return btime + stat.startTicks / Double(sysconf(Int32(_SC_CLK_TCK)))
        #else
        return nil
        #endif
    }
}
