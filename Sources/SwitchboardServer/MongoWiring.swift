import Logging
#if MongoDB
import SwitchboardMongo
#endif

extension Settings {
    /// Whether this build has the MongoDB store (the `MongoDB` package trait).
    public static var mongoDBAvailable: Bool {
        #if MongoDB
        true
        #else
        false
        #endif
    }

    /// Checks that `mongoURL`, if set, can be used: this build has the MongoDB store and libmongoc parses the URL
    /// (the error never shows the password).
    public func validateMongoURL() throws {
        guard let mongoURL else { return }
        #if MongoDB
        do {
            try MongoConnection.validate(url: mongoURL)
        } catch {
            throw SettingsError("MONGODB_URL=\(Self.mask(mongoURL)): \(error)")
        }
        #else
        throw SettingsError("MONGODB_URL is set, but this build has no MongoDB store. Build with the MongoDB trait (swift build -c release --traits MongoDB; needs libmongoc-dev), or unset MONGODB_URL to keep the store on SQLite.")
        #endif
    }
}
