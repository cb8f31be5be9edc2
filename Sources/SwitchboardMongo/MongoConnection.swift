#if MongoDB
import CMongoC
import Logging
import SwitchboardTelemetry
import NIOConcurrencyHelpers
import NIOPosix
import SwitchboardCore

/// An error of the MongoDB store, by kind (never only a string).
public enum MongoError: Error, Sendable, Hashable, CustomStringConvertible, TemporaryFailure {
    /// `MONGODB_URL` could not be parsed. The message never contains the password.
    case invalidURL(String)
    /// No server could be reached or selected, or a connection broke (network, TLS, authentication timeout).
    case connection(String)
    /// A unique index refused a write (server code 11000).
    case duplicateKey(String)
    /// The server answered with an error.
    case server(code: Int, message: String)
    /// An error raised by the driver itself (domain and code of libmongoc).
    case driver(domain: Int, code: Int, message: String)
    /// A document from the server is not what this store writes.
    case malformedDocument(String)
    /// A compare-and-set lost its race more times than it may retry.
    case contention(id: String)
    /// The store was shut down.
    case closed

    /// A request the engine failed (unreachable, a server or driver error): what `switchboard_engine_errors_total`
    /// counts. A duplicate key, a lost race, a malformed document or a closed store are not the engine's failures.
    public var isEngineFailure: Bool {
        switch self {
        case .connection, .server, .driver: true
        default: false
        }
    }

    /// Unreachable servers, a shut-down store and lost compare-and-set races pass; the rest does not.
    public var temporaryReason: String? {
        switch self {
        case .connection: "the MongoDB store does not answer"
        case .closed: "the service is shutting down"
        case .contention: "the message is being changed by many writers at once"
        default: nil
        }
    }

    public var description: String {
        switch self {
        case .invalidURL(let m): "invalid MongoDB URL: \(m)"
        case .connection(let m): "MongoDB unreachable: \(m)"
        case .duplicateKey(let m): "MongoDB duplicate key: \(m)"
        case .server(let code, let m): "MongoDB server error \(code): \(m)"
        case .driver(let domain, let code, let m): "MongoDB driver error (domain \(domain), code \(code)): \(m)"
        case .malformedDocument(let m): "malformed MongoDB document: \(m)"
        case .contention(let id): "MongoDB: too many concurrent updates of \(id)"
        case .closed: "MongoDB store closed"
        }
    }

    /// Classifies a libmongoc error (error API version 2).
    init(_ e: bson_error_t) {
        var copy = e
        let message = withUnsafeBytes(of: &copy.message) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        let domain = Int(e.domain), code = Int(e.code)
        if [11000, 11001, 12582].contains(code) && domain != Int(MONGOC_ERROR_CLIENT.rawValue) {
            self = .duplicateKey(message)
            return
        }
        switch UInt32(domain) {
        case MONGOC_ERROR_STREAM.rawValue, MONGOC_ERROR_SERVER_SELECTION.rawValue:
            self = .connection(message)
        case MONGOC_ERROR_SERVER.rawValue, MONGOC_ERROR_WRITE_CONCERN.rawValue, MONGOC_ERROR_QUERY.rawValue, MONGOC_ERROR_COLLECTION.rawValue:
            self = .server(code: code, message: message)
        default:
            self = .driver(domain: domain, code: code, message: message)
        }
    }
}

/// `mongoc_init` once per process (libmongoc requires it before any other call; `mongoc_cleanup` is never
/// called, as other pools may live until exit), with libmongoc's own log sent to swift-log: warnings and worse
/// only (its debug output is per connection attempt).
private let mongocInitialized: Void = {
    mongoc_init()
    mongoc_log_set_handler({ level, domain, message, _ in
        guard level.rawValue <= MONGOC_LOG_LEVEL_WARNING.rawValue, let message else { return }
        let text = String(cString: message), area = domain.map { String(cString: $0) } ?? "mongoc"
        let swiftLevel: Logger.Level = level == MONGOC_LOG_LEVEL_ERROR ? .error : level == MONGOC_LOG_LEVEL_CRITICAL ? .critical : .warning
        mongocLogger.log(level: swiftLevel, "\(text)", metadata: ["domain": "\(area)"])
    }, nil)
}()

/// Where libmongoc's own messages go.
private let mongocLogger = Logger(label: "mongoc")

/// A `mongoc_client_pool_t` and the threads its blocking calls run on.
///
/// libmongoc blocks the calling thread for every round trip, so no call is made on a NIO event loop or on
/// Swift's cooperative pool: each operation is handed to a dedicated `NIOThreadPool` and its result comes
/// back through `async`/`await`. The client pool is thread-safe; each operation pops a client, uses it on its
/// thread and pushes it back.
public final class MongoConnection: @unchecked Sendable {
    // @unchecked: `pool` is a thread-safe libmongoc object, destroyed once in `shutdown` after the threads
    // that use it stopped; `state` is behind a lock.
    private let pool: OpaquePointer
    private let threads: NIOThreadPool
    private let state = NIOLockedValueBox(State.open)
    private enum State { case open, closed }
    /// The database named in the URL's path, else `communication-aggregator` (the seed's).
    public let databaseName: String
    /// Where failed requests are counted (connection, server and driver errors).
    let metrics: StoreEngineMetrics

    /// Parses `url` (passed to `mongoc_uri_new_with_error` untouched: replica sets, TLS, auth and every other
    /// option of the MongoDB URI format) and creates the client pool. Does not connect: the first operation does.
    /// - Parameter threads: blocking calls in flight at once (also the number of pooled clients in use).
    /// - Parameter metrics: where failed requests are counted (`switchboard_engine_errors_total{engine="mongodb"}`).
    public init(url: String, defaultDatabase: String = "communication-aggregator", threads: Int = 8, metrics: StoreEngineMetrics = StoreEngineMetrics(engine: "mongodb")) throws(MongoError) {
        _ = mongocInitialized
        self.metrics = metrics
        var error = bson_error_t()
        guard let uri = mongoc_uri_new_with_error(url, &error) else {
            throw .invalidURL(Self.scrub(MongoError(error).description, url: url))
        }
        defer { mongoc_uri_destroy(uri) }
        if let db = mongoc_uri_get_database(uri), db.pointee != 0 {
            databaseName = String(cString: db)
        } else {
            databaseName = defaultDatabase
        }
        guard let pool = mongoc_client_pool_new(uri) else { throw .invalidURL("libmongoc refused the URL (TLS options without TLS support?)") }
        mongoc_client_pool_set_error_api(pool, Int32(MONGOC_ERROR_API_VERSION_2))
        if mongoc_uri_get_appname(uri) == nil { _ = mongoc_client_pool_set_appname(pool, "switchboard") }
        self.pool = pool
        self.threads = NIOThreadPool(numberOfThreads: max(1, threads))
        self.threads.start()
    }

    /// Checks that libmongoc parses `url`, without creating a pool.
    public static func validate(url: String) throws(MongoError) {
        _ = mongocInitialized
        var error = bson_error_t()
        guard let uri = mongoc_uri_new_with_error(url, &error) else { throw .invalidURL(scrub(MongoError(error).description, url: url)) }
        mongoc_uri_destroy(uri)
    }

    /// Removes the password of `url` from `message`, should a driver message quote the URL.
    static func scrub(_ message: String, url: String) -> String {
        guard let scheme = url.firstRange(of: "://") else { return message }
        let rest = url[scheme.upperBound...]
        let hostEnd = rest.firstIndex(of: "/") ?? rest.firstIndex(of: "?") ?? rest.endIndex
        guard let at = rest[..<hostEnd].lastIndex(of: "@"), let colon = rest[..<at].firstIndex(of: ":") else { return message }
        let password = String(rest[rest.index(after: colon)..<at])
        guard !password.isEmpty else { return message }
        return message.replacingAll(password, with: "****")
    }

    /// Runs `body` with a pooled client on one of the connection's threads.
    public func withClient<T: Sendable>(_ body: @escaping @Sendable (Client) throws(MongoError) -> T) async throws(MongoError) -> T {
        guard state.withLockedValue({ $0 == .open }) else { throw .closed }
        let pool = UnsafePool(pointer: self.pool)
        let result: Result<T, MongoError>
        do {
            result = try await threads.runIfActive { () -> Result<T, MongoError> in
                guard let client = mongoc_client_pool_pop(pool.pointer) else { return .failure(.closed) }
                defer { mongoc_client_pool_push(pool.pointer, client) }
                do throws(MongoError) {
                    return .success(try body(Client(pointer: client)))
                } catch {
                    return .failure(error)
                }
            }
        } catch {
            throw .closed
        }
        if case .failure(let error) = result, error.isEngineFailure { metrics.failed() }
        return try result.get()
    }

    /// Waits for the operations in flight, stops the threads and destroys the pool. Later calls fail with `closed`.
    public func shutdown() async {
        let wasOpen = state.withLockedValue { s in
            defer { s = .closed }
            return s == .open
        }
        guard wasOpen else { return }
        try? await threads.shutdownGracefully()
        mongoc_client_pool_destroy(pool)
    }

    struct UnsafePool: @unchecked Sendable {
        let pointer: OpaquePointer
    }

    /// A client popped from the pool, valid only inside `withClient`'s body, on its thread.
    public struct Client {
        let pointer: OpaquePointer

        /// A collection handle; destroyed after `body`.
        func collection<T>(_ database: String, _ name: String, _ body: (Collection) throws(MongoError) -> T) throws(MongoError) -> T {
            guard let c = mongoc_client_get_collection(pointer, database, name) else { throw .driver(domain: 0, code: 0, message: "no collection handle") }
            defer { mongoc_collection_destroy(c) }
            return try body(Collection(pointer: c))
        }

        /// Runs a command on `database` and returns the server's reply.
        func command(_ database: String, _ command: BSONDocument) throws(MongoError) -> BSONDocument {
            try withBSON(command) { cmd throws(MongoError) in
                try withReply { reply, error in mongoc_client_command_simple(pointer, database, cmd, nil, reply, error) }
            }
        }
    }

    /// A collection handle, valid only inside `Client.collection`'s body.
    struct Collection {
        let pointer: OpaquePointer

        func insertOne(_ doc: BSONDocument) throws(MongoError) {
            _ = try withBSON(doc) { d throws(MongoError) in
                try withReply { reply, error in mongoc_collection_insert_one(pointer, d, nil, reply, error) }
            }
        }

        /// Updates the first document matching `filter`; returns how many matched (0 or 1).
        func updateOne(_ filter: BSONDocument, _ update: BSONDocument) throws(MongoError) -> Int {
            let reply = try withBSON(filter) { f throws(MongoError) in
                try withBSON(update) { u throws(MongoError) in
                    try withReply { reply, error in mongoc_collection_update_one(pointer, f, u, nil, reply, error) }
                }
            }
            return Int(reply["matchedCount"]?.intValue ?? 0)
        }

        /// `findAndModify`: updates the first document matching `query` in `sort` order and returns it as it
        /// was before, projected by `fields`; nil when none matched.
        func findOneAndUpdate(_ query: BSONDocument, sort: BSONDocument, update: BSONDocument, fields: BSONDocument) throws(MongoError) -> BSONDocument? {
            let reply = try withBSON(query) { q throws(MongoError) in
                try withBSON(sort) { s throws(MongoError) in
                    try withBSON(update) { u throws(MongoError) in
                        try withBSON(fields) { f throws(MongoError) in
                            try withReply { reply, error in mongoc_collection_find_and_modify(pointer, q, s, u, f, false, false, false, reply, error) }
                        }
                    }
                }
            }
            return reply["value"]?.documentValue
        }

        /// Documents matching `filter`; `options` as for the `find` command (`sort`, `projection`, `limit`).
        func find(_ filter: BSONDocument, options: BSONDocument = [:]) throws(MongoError) -> [BSONDocument] {
            try withBSON(filter) { f throws(MongoError) in
                try withBSON(options) { o throws(MongoError) in
                    try drain(mongoc_collection_find_with_opts(pointer, f, o, nil))
                }
            }
        }

        func aggregate(_ pipeline: [BSON]) throws(MongoError) -> [BSONDocument] {
            try withBSON(["pipeline": .array(pipeline)]) { p throws(MongoError) in
                try drain(mongoc_collection_aggregate(pointer, MONGOC_QUERY_NONE, p, nil, nil))
            }
        }

        /// Runs a write command (such as `createIndexes`) on the collection's database.
        func writeCommand(_ command: BSONDocument) throws(MongoError) -> BSONDocument {
            try withBSON(command) { c throws(MongoError) in
                try withReply { reply, error in mongoc_collection_write_command_with_opts(pointer, c, nil, reply, error) }
            }
        }

        private func drain(_ cursor: OpaquePointer?) throws(MongoError) -> [BSONDocument] {
            guard let cursor else { throw .driver(domain: 0, code: 0, message: "no cursor") }
            defer { mongoc_cursor_destroy(cursor) }
            var out: [BSONDocument] = []
            var doc: OpaquePointer?
            while mongoc_cursor_next(cursor, &doc) {
                guard let doc else { continue }
                out.append(try read(doc))
            }
            var error = bson_error_t()
            if mongoc_cursor_error(cursor, &error) { throw MongoError(error) }
            return out
        }
    }
}

/// Hands `doc` to libbson as a `bson_t` (a heap copy of its bytes), destroyed after `body`.
func withBSON<T>(_ doc: BSONDocument, _ body: (OpaquePointer) throws(MongoError) -> T) throws(MongoError) -> T {
    let bytes = doc.encoded()
    guard let b = bytes.withUnsafeBufferPointer({ bson_new_from_data($0.baseAddress, $0.count) }) else {
        throw .driver(domain: 0, code: 0, message: "libbson refused a document of \(bytes.count) bytes")
    }
    defer { bson_destroy(b) }
    return try body(b)
}

/// Calls a libmongoc function that fills a reply and an error, and returns the reply as a document.
///
/// `bson_t` is 128-byte aligned, so Swift imports it as an opaque type: the reply's storage is allocated here,
/// with libbson's size and alignment, and initialised by libbson.
func withReply(_ call: (OpaquePointer, UnsafeMutablePointer<bson_error_t>) -> Bool) throws(MongoError) -> BSONDocument {
    let raw = UnsafeMutableRawPointer.allocate(byteCount: bsonTSize, alignment: bsonTSize)
    defer { raw.deallocate() }
    let reply = OpaquePointer(raw)
    bson_init(reply)
    defer { bson_destroy(reply) }
    var error = bson_error_t()
    let ok = call(reply, &error)
    guard ok else { throw MongoError(error) }
    return try read(reply)
}

/// `sizeof(bson_t)` and its alignment (libbson's `BSON_ALIGNED_BEGIN(128)`; checked by a static assertion in libbson).
let bsonTSize = 128

/// Copies a libbson document into a `BSONDocument`. Its length is the document's own first four bytes.
func read(_ b: OpaquePointer) throws(MongoError) -> BSONDocument {
    guard let data = bson_get_data(b) else { return [:] }
    let length = Int(UInt32(data[0]) | UInt32(data[1]) << 8 | UInt32(data[2]) << 16 | UInt32(data[3]) << 24)
    do throws(BSONDecodingError) {
        return try BSONDocument(pointer: data, length: length)
    } catch {
        throw .malformedDocument(error.description)
    }
}

extension String {
    func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var out = "", rest = self[...]
        while let r = rest.firstRange(of: target) {
            out += rest[..<r.lowerBound] + replacement
            rest = rest[r.upperBound...]
        }
        return out + rest
    }
}
#endif
