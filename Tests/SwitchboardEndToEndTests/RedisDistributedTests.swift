import AsyncHTTPClient
import Foundation
import NIOCore
import Synchronization
import SwitchboardTestSystem
import Testing
import SwitchboardCore
import SwitchboardRedis
import SwitchboardServer
import SwitchboardTestSupport
@testable import SwitchboardSQLite

/// A redis-server with AOF persistence (fsync on every write), as production runs it: a restart on the same
/// port and directory keeps the streams and groups.
func persistentRedis() async throws -> RedisServer {
    try await RedisServer.start(extraArguments: ["--appendonly", "yes", "--appendfsync", "always"])
}

/// A counter shared by concurrent tasks.
final class Counter: Sendable {
    private let value = Mutex(0)
    /// Returns the current value and adds one.
    func next() -> Int { value.withLock { n in defer { n += 1 }; return n } }
}

/// Ids collected by concurrent tasks.
final class IDList: Sendable {
    private let ids = Mutex<[String]>([])
    /// Appends `id`; returns how many there are now.
    func append(_ id: String) -> Int { ids.withLock { $0.append(id); return $0.count } }
    var all: [String] { ids.withLock { $0 } }
}

/// `switchboard` processes sharing one redis-server (the streams) and one SQLite file (store, search, sandbox).
final class Deployment: @unchecked Sendable {
    let redis: RedisServer
    let databasePath: String
    let port: Int
    let env: [String: String]
    /// Generous timeouts: these tests check correctness, and a loaded CI machine may be slow.
    let http: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.timeout.connect = .seconds(30)
        configuration.timeout.read = .seconds(60)
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 32)
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()
    /// A Redis client for looking at the streams.
    let redisClient: RedisClient
    /// Every process started, so that a failing test leaves none behind.
    private var started: [ServiceProcess] = []
    var base: String { "http://127.0.0.1:\(port)" }

    /// Runs `body` on a new deployment with a persistent redis-server; whatever happens, every process is
    /// stopped and the clients are shut down afterwards.
    static func run(extra: [String: String] = [:], _ body: (Deployment) async throws -> Void) async throws {
        let d = try Deployment(redis: try await persistentRedis(), extra: extra)
        do {
            try await body(d)
        } catch {
            await d.cleanup()
            throw error
        }
        await d.cleanup()
    }

    private init(redis: RedisServer, extra: [String: String]) throws {
        self.redis = redis
        redisClient = try RedisClient(url: redis.url)
        databasePath = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-redis-e2e-\(UUID().uuidString)/shared.sqlite").path
        port = try freeLoopbackPortNow()
        env = [
            "REDIS_URL": redis.url, "SWITCHBOARD_DATABASE": databasePath, "PORT": "\(port)", "SWITCHBOARD_LEASE_MS": "1500",
            "SWITCHBOARD_SQLITE_SYNCHRONOUS": "normal", "SWITCHBOARD_LOG_LEVEL": "warning", "SWITCHBOARD_OUTBOX_GRACE_MS": "1500",
            "SWITCHBOARD_SCHEDULER_INTERVAL_MS": "100", "SWITCHBOARD_REDIS_WAIT_MS": "500",
        ].merging(extra) { $1 }
    }

    func start(_ arguments: [String], name: String) throws -> ServiceProcess {
        let p = try ServiceProcess(arguments, environment: env, name: name)
        started.append(p)
        return p
    }

    /// Starts the router and waits until it is ready.
    func startRouter() async throws -> ServiceProcess {
        let router = try start(["router"], name: "router")
        try await eventually("router ready") { (try? await get("/health/ready"))?["status"] == .string("ready") }
        return router
    }

    func get(_ path: String) async throws -> JSONValue {
        let r = try await http.execute(HTTPClientRequest(url: base + path), timeout: .seconds(60))
        return try JSONParser.parse(Array(try await r.body.collect(upTo: 1 << 24).readableBytesView))
    }

    /// Posts one message; returns the HTTP status and the id.
    func post(_ type: MessageChannel, to: String, msg: String) async throws -> (UInt, String?) {
        var request = HTTPClientRequest(url: base + "/api/v1/communication")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(body(type, to: to, msg: msg))
        let response = try await http.execute(request, timeout: .seconds(60))
        let answer = try JSONParser.parse(Array(try await response.body.collect(upTo: 1 << 20).readableBytesView))
        return (response.status.code, answer["id"]?.stringValue)
    }

    /// Posts `count` messages with `parallel` requests in flight; returns the ids (every answer must be 200).
    func postMany(_ count: Int, parallel: Int = 16, type: @escaping @Sendable (Int) -> MessageChannel, during: (@Sendable (Int) async -> Void)? = nil) async throws -> [String] {
        let counter = Counter()
        return try await withThrowingTaskGroup(of: [String].self) { group in
            for _ in 0..<parallel {
                group.addTask {
                    var ids: [String] = []
                    while true {
                        let i = counter.next()
                        guard i < count else { return ids }
                        await during?(i)
                        let t = type(i)
                        let (status, id) = try await self.post(t, to: recipient(t, i), msg: "distributed \(i)")
                        #expect(status == 200, "message \(i) answered \(status)")
                        if let id { ids.append(id) }
                    }
                }
            }
            var all: [String] = []
            for try await ids in group { all += ids }
            return all
        }
    }

    func statusCount(_ status: String) async throws -> Int {
        guard case .number(let n)? = try await get("/api/v1/stats")["communications"]?["byStatus"]?[status] else { return 0 }
        return Int(n)
    }

    /// Every sandbox delivery (one row per provider call), read straight from the shared file.
    func deliveries() async throws -> [String] {
        let db = try SQLiteDatabase(options: SQLiteOptions(path: databasePath, synchronous: .normal))
        let ids = try await db.read { c in
            var ids: [String] = []
            try c.query("SELECT communication_id FROM sandbox_messages") { s in ids.append(s.text(0)) }
            return ids
        }
        await db.close()
        return ids
    }

    /// Stops `processes` gracefully (SIGTERM) and expects each to exit with status 0.
    func stopGracefully(_ processes: [ServiceProcess]) async {
        for p in processes where p.process.isRunning {
            let status = await p.terminate()
            #expect(status == 0, "\(p.name) exited with \(status)")
        }
    }

    private func cleanup() async {
        for p in started where p.process.isRunning {
            p.signal(SIGKILL)
            while p.process.isRunning { try? await Task.sleep(for: .milliseconds(10)) }
        }
        await redisClient.shutdown()
        try? await http.shutdown()
        await redis.stop()
    }
}

@Suite("Distributed on Redis Streams: separate processes", .serialized, .timeLimit(.minutes(3)))
struct RedisDistributedTests {
    @Test("3,000 SMS messages split over 3 worker processes: all sent, none twice, the seed's stream names")
    func threeWorkers() async throws {
        // A long lease: no worker is killed here, and a batch slowed down by a loaded machine must not be
        // taken over (and delivered twice) by another worker.
        try await Deployment.run(extra: ["SWITCHBOARD_LEASE_MS": "15000"]) { d in try await threeWorkers(d) }
    }

    func threeWorkers(_ d: Deployment) async throws {
        let router = try await d.startRouter()
        let workers = try (0..<3).map { try d.start(["worker", "--channel", "sms", "--concurrency", "32"], name: "sms-\($0)") }
        let logger = try d.start(["logger"], name: "logger")

        let ids = try await d.postMany(3000, type: { _ in .sms })
        #expect(ids.count == 3000)
        try await eventually(timeout: .seconds(90), "3000 sent") { try await d.statusCount("sent") == 3000 }
        let delivered = try await d.deliveries()
        #expect(delivered.count == 3000, "\(delivered.count - Set(delivered).count) sent twice")
        #expect(Set(delivered) == Set(ids))

        let redis = d.redisClient
        // The three workers shared the stream through one group; nothing is left pending or in the stream.
        let consumers = try await redis.send("XINFO", "CONSUMERS", "sms_stream", "workers")
        #expect(consumers.array?.count == 3)
        let info = try await d.get("/api/v1/stats")
        #expect(info["communications"]?["total"] == .number(3000))
        try await eventually("stream drained") { try await redis.xpending("sms_stream", group: "workers").count == 0 }
        #expect(try await redis.xlen("sms_stream") == 0)
        #expect(try await redis.xinfoGroups("log_stream").map(\.name) == ["logger"])
        try await eventually("log_stream drained") {
            let length = try await redis.xlen("log_stream")
            let pending = try await redis.xpending("log_stream", group: "logger").count
            return length == 0 && pending == 0
        }
        // Every status change reached communication-logs (`queued`, recorded after the answer, may be overtaken
        // by the worker's `processing` and is then not a change).
        for id in [ids[0], ids[1500], ids[2999]] {
            guard case .array(let logs)? = try await d.get("/api/v1/logs?communicationId=\(id)")["items"] else { Issue.record("no logs"); continue }
            let statuses = Set(logs.compactMap { $0["status"]?.stringValue })
            #expect(statuses.isSuperset(of: ["pending", "processing", "sent"]), "\(id): \(statuses)")
        }
        await d.stopGracefully(workers + [logger, router])
    }

    @Test("kill -9 of a worker holding entries: another worker takes them over and delivers them")
    func killedWorker() async throws {
        try await Deployment.run { d in try await killedWorker(d) }
    }

    func killedWorker(_ d: Deployment) async throws {
        let router = try await d.startRouter()
        let ids = try await d.postMany(1000, type: { _ in .email })
        let redis = d.redisClient
        let victim = try d.start(["worker", "--channel", "email", "--concurrency", "4"], name: "email-victim")
        // Kill it while it holds entries (read, not acknowledged).
        try await eventually("victim holds entries") {
            // (NOGROUP until the worker has created the group.)
            ((try? await redis.xpending("email_stream", group: "workers"))?.count ?? 0) > 0
        }
        // Freeze it at a moment it holds entries (between two batches it may hold none), then kill it.
        for _ in 0..<500 {
            victim.signal(SIGSTOP)
            if try await redis.xpending("email_stream", group: "workers").count > 0 { break }
            victim.signal(SIGCONT)
            try await Task.sleep(for: .milliseconds(5))
        }
        victim.signal(SIGKILL)
        while victim.process.isRunning { try await Task.sleep(for: .milliseconds(10)) }
        let stranded = try await redis.xpending("email_stream", group: "workers")
        #expect(stranded.count > 0, "the victim held nothing when it died")
        // The messages of the stranded entries.
        var strandedMessages: [String] = []
        for p in try await redis.xpending("email_stream", group: "workers", count: 10_000) {
            strandedMessages += try await redis.xrange("email_stream", start: p.id, end: p.id).compactMap { $0[field: "_id"] }
        }
        #expect(strandedMessages.count == stranded.count)

        let rescuer = try d.start(["worker", "--channel", "email", "--concurrency", "32"], name: "email-rescuer")
        try await eventually(timeout: .seconds(60), "1000 sent") { try await d.statusCount("sent") == 1000 }
        let delivered = try await d.deliveries()
        #expect(Set(delivered) == Set(ids))
        // Only an entry the victim delivered but had not yet recorded can be delivered twice.
        #expect(delivered.count - Set(delivered).count <= stranded.count)
        // The stranded entries were taken over and acknowledged.
        try await eventually("all acknowledged") { try await redis.xpending("email_stream", group: "workers").count == 0 }
        #expect(try await redis.xlen("email_stream:dead") == 0)
        for id in strandedMessages {
            #expect(try await d.get("/api/v1/communication/\(id)")["status"] == .string("sent"))
        }
        await d.stopGracefully([rescuer, router])
    }

    @Test("Redis restarted mid-run on the same port: requests keep being accepted, everything ends sent")
    func redisRestart() async throws {
        try await Deployment.run(extra: ["SWITCHBOARD_LEASE_MS": "15000"]) { d in try await redisRestart(d) }
    }

    func redisRestart(_ d: Deployment) async throws {
        let router = try await d.startRouter()
        let workers = try MessageChannel.allCases.map { try d.start(["worker", "--channel", $0.rawValue], name: "worker-\($0.rawValue)") }
        let logger = try d.start(["logger"], name: "logger")
        let restarts = Counter()
        let redis = d.redis
        let ids = try await d.postMany(1500, parallel: 8, type: { MessageChannel.allCases[$0 % 3] }, during: { i in
            // One request takes Redis down for a second, mid-run; the others keep posting meanwhile.
            guard i == 600, restarts.next() == 0 else { return }
            await redis.terminate()
            try? await Task.sleep(for: .seconds(1))
            try? await redis.launch()
        })
        #expect(ids.count == 1500)
        #expect(restarts.next() == 1)
        try await eventually(timeout: .seconds(90), "1500 sent") { try await d.statusCount("sent") == 1500 }
        let delivered = try await d.deliveries()
        #expect(Set(delivered) == Set(ids))
        #expect(delivered.count == Set(delivered).count, "\(delivered.count - Set(delivered).count) sent twice")
        let ready = try await d.get("/api/v1/health")
        #expect(ready["dependencies"]?["queue"]?["engine"] == .string("redis"))
        #expect(ready["status"] == .string("ready"))
        await d.stopGracefully(workers + [logger, router])
    }

    @Test("router killed with SIGKILL right after answering, four times: every answered message has pending and queued in its history and in communication-logs, and is sent once")
    func killedRouter() async throws {
        try await Deployment.run(extra: ["SWITCHBOARD_LEASE_MS": "15000"]) { d in try await killedRouter(d) }
    }

    func killedRouter(_ d: Deployment) async throws {
        let workers = try MessageChannel.allCases.map { try d.start(["worker", "--channel", $0.rawValue], name: "worker-\($0.rawValue)") }
        let logger = try d.start(["logger"], name: "logger")
        var answered: [String] = []
        for round in 0..<4 {
            let router = try await d.startRouter()
            let ids = IDList()
            let killAt = 100 + round * 50
            // 16 clients post until the router is gone; the one whose answer is number `killAt` kills it at once.
            await withTaskGroup(of: Void.self) { group in
                for client in 0..<16 {
                    group.addTask {
                        var i = client
                        while true {
                            let t = MessageChannel.allCases[i % 3]
                            guard let (status, id) = try? await d.post(t, to: recipient(t, i), msg: "round \(round) message \(i)"), status == 200, let id else { return }
                            let n = ids.append(id)
                            if n == killAt { router.signal(SIGKILL) }
                            i += 16
                        }
                    }
                }
            }
            while router.process.isRunning { try await Task.sleep(for: .milliseconds(10)) }
            answered += ids.all
        }
        #expect(answered.count >= 100 + 150 + 200 + 250)
        let router = try await d.startRouter()
        try await eventually(timeout: .seconds(120), "every answered message sent") { try await d.statusCount("sent") >= answered.count }
        let delivered = try await d.deliveries()
        #expect(Set(delivered).isSuperset(of: Set(answered)))
        #expect(delivered.count == Set(delivered).count, "\(delivered.count - Set(delivered).count) sent twice")
        try await eventually(timeout: .seconds(60), "log_stream drained") {
            let length = try await d.redisClient.xlen("log_stream")
            let pending = try await d.redisClient.xpending("log_stream", group: "logger").count
            return length == 0 && pending == 0
        }
        var missing: [String] = []
        for id in answered {
            let c = try await d.get("/api/v1/communication/\(id)")
            guard case .array(let history)? = c["history"] else { missing.append("\(id): no history"); continue }
            let statuses = history.compactMap { $0["status"]?.stringValue }
            if Array(statuses.prefix(2)) != ["pending", "queued"] || statuses.last != "sent" { missing.append("\(id) history \(statuses)") }
            guard case .array(let logs)? = try await d.get("/api/v1/logs?communicationId=\(id)&limit=100")["items"] else { missing.append("\(id): no logs"); continue }
            let logged = Set(logs.compactMap { $0["status"]?.stringValue })
            let expected = Set(statuses)
            if !logged.isSuperset(of: expected) { missing.append("\(id) logs \(logged.sorted()) of \(expected.sorted())") }
        }
        #expect(missing.isEmpty, "\(missing.count) of \(answered.count): \(missing.prefix(5))")
        await d.stopGracefully(workers + [logger, router])
    }
}
