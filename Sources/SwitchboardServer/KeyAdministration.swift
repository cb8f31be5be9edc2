import Logging
import SwitchboardApp
import SwitchboardCore
import SwitchboardHTTP
import SwitchboardSQLite
#if MongoDB
import SwitchboardMongo
#endif

/// The key store of a deployment, opened on its own for `switchboard keys`: the engine the services would
/// choose for it (MongoDB with `MONGODB_URL`, else the SQLite file of `--database` / `SWITCHBOARD_DATABASE`),
/// without the rest of the system.
public struct KeyAdministration: Sendable {
    public let store: any KeyStore
    private let closer: @Sendable () async -> Void

    /// Opens the key store named by `settings`.
    public init(settings: Settings, logger: Logger) throws {
        #if MongoDB
        if let url = settings.mongoURL {
            let mongo: MongoStore
            do { mongo = try MongoStore(url: url, logger: logger) } catch { throw SettingsError("MONGODB_URL=\(Settings.mask(url)): \(error)") }
            store = MongoKeyStore(connection: mongo.connection)
            closer = { await mongo.shutdown() }
            return
        }
        #else
        try settings.validateMongoURL()
        #endif
        let database = try SQLiteDatabase(options: SQLiteOptions(path: settings.databasePath, synchronous: settings.synchronous), logger: logger)
        store = SQLiteKeyStore(database: database)
        closer = { await database.close() }
    }

    /// Creates a key; returns its secret (to show once) and its record.
    public func create(_ spec: APIKeySpec) async throws -> (secret: String, record: APIKeyRecord) {
        try await KeyIssuer(store: store).create(spec)
    }

    /// Every key, revoked ones included, oldest first.
    public func list() async throws -> [APIKeyRecord] {
        try await store.keys()
    }

    /// Revokes `id`; nil when no key has it.
    public func revoke(id: String) async throws -> APIKeyRecord? {
        try await store.revoke(id: id, at: SystemTime.now())
    }

    /// Closes the engine.
    public func close() async {
        await closer()
    }

    /// A new key in the format Switchboard issues, not stored anywhere (for `SWITCHBOARD_ADMIN_KEY`).
    public static func generateSecret(test: Bool = false) -> String {
        var random = SystemRandomNumberGenerator()
        return APIKeySecret.generate(test: test, using: &random)
    }
}
