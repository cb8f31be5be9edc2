extension CommunicationRequest {
    /// A request read back from a store: its channel and `data` as they were stored once `RequestValidator`
    /// had accepted them, read without validating again (a store read is not a client's input). The same on
    /// every store: what is missing or of another type in `data` reads as empty (`from`, `to`, `msg`) or
    /// absent (`subject`, `html`, `template`), and `data` itself is kept as stored.
    public init(stored channel: MessageChannel, data: JSONValue) {
        func string(_ key: String) -> String? {
            if case .string(let s)? = data[key] { s } else { nil }
        }
        var template: WhatsAppTemplate?
        if channel == .whatsapp, case .object(let t)? = data["template"] {
            var parameters: [String] = []
            if case .array(let items)? = t["parameters"] {
                for case .string(let p) in items { parameters.append(p) }
            }
            let name: String = if case .string(let n)? = t["name"] { n } else { "" }
            let language: String = if case .string(let l)? = t["language"] { l } else { "en_US" }
            template = WhatsAppTemplate(name: name, language: language, parameters: parameters)
        }
        self.init(
            channel: channel, from: string("from") ?? "", to: string("to") ?? "", msg: string("msg") ?? "",
            subject: channel == .email ? string("subject") : nil, html: channel == .email ? string("html") : nil,
            template: template, sendAt: string("sendAt").flatMap { Timestamp(parsing: $0) }, data: data)
    }
}
