@_exported import SwitchboardLifecycle
import Logging
import SwitchboardCore

/// The adapters a process runs on: one per port, and the write path over them.
public struct Adapters: Sendable {
    public var store: any CommunicationStore
    public var queue: any MessageQueue
    public var search: any SearchIndex
    /// Present when the sandbox provider records into this engine.
    public var mailbox: (any SandboxMailbox)?
    /// The write path: the embedded engine's one transaction per step, or the port-by-port one.
    public var pipeline: any Pipeline
    /// Names of the engines, for logs and health (`sqlite`, `redis`, …).
    public var names: (store: String, queue: String, search: String)
    /// `log_stream` entries waiting for the queue to come back (shared by every copy of these adapters).
    public let logSpool: LogSpool
    /// The status feed (`status_stream`) the pipeline writes and the router's `EventHub` reads: on the queue's
    /// engine. Nil: no live events (some tests).
    public var feed: (any StatusFeed)?
    /// The bytes of email attachments, beside the communications (nil: a request with attachments is refused).
    public var attachments: (any AttachmentStore)?
    /// The suppression list, with the store: checked at accept, written after a provider's opt-out or bounce.
    /// Nil: no list (some tests): nothing is refused or suppressed.
    public var suppressions: (any SuppressionStore)?

    public init(store: any CommunicationStore, queue: any MessageQueue, search: any SearchIndex, mailbox: (any SandboxMailbox)?, pipeline: any Pipeline, logSpool: LogSpool, feed: (any StatusFeed)? = nil, names: (store: String, queue: String, search: String)) {
        self.feed = feed
        self.store = store
        self.queue = queue
        self.search = search
        self.mailbox = mailbox
        self.pipeline = pipeline
        self.logSpool = logSpool
        self.names = names
    }

    /// Adapters whose write path is the port-by-port one (`PortByPortPipeline`), built on these ports with
    /// `options`; run the returned pipeline as a service (it writes the publications' confirmations).
    public static func portByPort(store: any CommunicationStore, queue: any MessageQueue, search: any SearchIndex, mailbox: (any SandboxMailbox)?, feed: (any StatusFeed)? = nil, options: PipelineOptions, names: (store: String, queue: String, search: String), logger: Logger, clock: @escaping @Sendable () -> Timestamp = SystemTime.now) -> (Adapters, PortByPortPipeline) {
        let spool = LogSpool()
        let pipeline = PortByPortPipeline(store: store, queue: queue, search: search, spool: spool, feed: feed, options: options, logger: logger, clock: clock)
        return (Adapters(store: store, queue: queue, search: search, mailbox: mailbox, pipeline: pipeline, logSpool: spool, feed: feed, names: names), pipeline)
    }
}
