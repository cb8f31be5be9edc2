/// The seed's two Elasticsearch indices and their mappings, in one place: the index templates created at start
/// and the Kibana saved objects (`deploy/kibana`) are both checked against these.
public enum IndexMappings {
    /// A field of an index and its Elasticsearch type.
    public struct Field: Sendable, Hashable {
        public var name: String
        /// `keyword`, `text`, `date`, `integer` or `boolean`.
        public var type: String

        public init(_ name: String, _ type: String) {
            self.name = name
            self.type = type
        }
    }

    /// The seed's index of communications.
    public static let communicationsIndex = "communications"
    /// The seed's index of log records.
    public static let logsIndex = "communication-logs"

    /// `communications`: one document per communication (id = communicationId), updated on each change.
    public static let communications: [Field] = [
        Field("communicationId", "keyword"), Field("type", "keyword"), Field("stream", "keyword"),
        Field("from", "keyword"), Field("to", "keyword"), Field("msg", "text"), Field("status", "keyword"),
        Field("createdAt", "date"), Field("timestamp", "date"),
        // Added with API keys: the id of the key that created the message (`GET /api/v1/communications?key=`).
        Field("keyId", "keyword"),
        // Added with metadata: `data.metadata` as `key=value` keywords (`GET /api/v1/communications?metadata.<key>=`).
        Field("metadata", "keyword"),
    ]

    /// `communication-logs`: one document per log record.
    public static let logs: [Field] = [
        Field("communicationId", "keyword"), Field("service", "keyword"), Field("status", "keyword"), Field("type", "keyword"),
        Field("from", "keyword"), Field("to", "keyword"), Field("msg", "text"), Field("error", "text"),
        Field("attempt", "integer"), Field("provider", "keyword"), Field("timestamp", "date"),
        // Added for the Elasticsearch adapter: the record's deterministic id, the unique tie-breaker of the sort.
        Field("logId", "keyword"),
        // Added with test keys: present (true) on the records of a test key's message.
        Field("test", "boolean"),
        // Added with tracing: the message's trace id (the `traceId` of its record and of its spans in the tracing
        // backend) and its whole W3C trace context, on the records of communications that have one.
        Field("traceId", "keyword"), Field("traceparent", "keyword"),
    ]

    /// The fields of `index` (either name above), or nil.
    public static func fields(of index: String) -> [Field]? {
        switch index {
        case communicationsIndex: communications
        case logsIndex: logs
        default: nil
        }
    }
}
