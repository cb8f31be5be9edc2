import CSQLite
import SwitchboardCore

extension SQLiteError: TemporaryFailure {
    /// Set for what passes once an operator or another process acts: a full disk, a lock held past the busy
    /// timeout, an I/O error, a file that cannot be opened or written.
    public var temporaryReason: String? {
        switch code & 0xFF {
        case SQLITE_FULL: "the database's disk is full"
        case SQLITE_BUSY, SQLITE_LOCKED: "the database is locked by another process"
        case SQLITE_IOERR: "the database's disk reported an I/O error"
        case SQLITE_CANTOPEN, SQLITE_READONLY: "the database file cannot be written"
        default: nil
        }
    }
}
