/// Work that a connection's owner attaches to every write transaction of that connection
/// (`Connection.addTransactionHook`): what a transaction's writes noted can be written once, just before it
/// commits, and forgotten when it is rolled back. The driver calls the hooks and knows nothing of what they do.
protocol TransactionHook: AnyObject {
    /// Called inside the open transaction, just before COMMIT; what it throws fails the commit.
    func beforeCommit(_ connection: Connection) throws
    /// Called after the open transaction was rolled back (a write threw, or COMMIT failed).
    func rolledBack()
}
