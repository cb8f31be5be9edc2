import SwitchboardCore

/// The `communication_counts` table kept up to date by the writes themselves: each write transaction notes how
/// many communications of a channel entered or left a status (`Connection.countStatus`), and the changes are
/// written once per key, just before the transaction commits, rather than once per row (the writer commits
/// dozens of writes at a time). A hook on the write connection (`SQLiteDatabase` attaches it at open).
final class StatusCounter: TransactionHook {
    struct Key: Hashable {
        var channel: MessageChannel
        var status: CommunicationStatus
    }

    /// Changes noted by the open transaction's writes, not yet written.
    private var changes: [Key: Int64] = [:]

    func count(_ channel: MessageChannel, _ status: CommunicationStatus, _ delta: Int64) {
        changes[Key(channel: channel, status: status), default: 0] += delta
    }

    func beforeCommit(_ connection: Connection) throws {
        defer { changes = [:] }
        for (key, delta) in changes where delta != 0 {
            try connection.run(
                "INSERT INTO communication_counts (type, status, n) VALUES (?, ?, ?) ON CONFLICT (type, status) DO UPDATE SET n = n + excluded.n",
                [.text(key.channel.rawValue), .text(key.status.rawValue), .int(delta)])
        }
    }

    func rolledBack() {
        changes = [:]
    }
}

extension Connection {
    /// Notes that the open transaction added `delta` communications of `channel` in `status` (negative:
    /// removed them); written with the transaction's COMMIT (`StatusCounter`). Only on the write connection.
    func countStatus(_ channel: MessageChannel, _ status: CommunicationStatus, _ delta: Int64) {
        guard let counter = transactionHook(StatusCounter.self) else {
            preconditionFailure("status counted on a connection without the StatusCounter hook (not the database's write connection)")
        }
        counter.count(channel, status, delta)
    }
}
