/// What Meta's Cloud API answers to `POST /{phone-number-id}/messages`: the accepted messages (`messages[0].id`),
/// or an error object (`code`, `error_subcode`, `message`, `error_data.details`, `fbtrace_id`).
struct MetaAnswer: Decodable {
    struct Message: Decodable {
        var id: String?

        enum CodingKeys: String, CodingKey { case id }

        init(from decoder: any Decoder) throws {
            id = try decoder.container(keyedBy: CodingKeys.self).lenient(.id)
        }
    }

    struct Failure: Decodable {
        var code: ProviderCode?
        var subcode: ProviderCode?
        var message: String?
        var details: String?
        var traceID: String?

        enum CodingKeys: String, CodingKey {
            case code, message
            case subcode = "error_subcode"
            case data = "error_data"
            case traceID = "fbtrace_id"
        }

        struct ErrorData: Decodable {
            var details: String?

            enum CodingKeys: String, CodingKey { case details }

            init(from decoder: any Decoder) throws {
                details = try decoder.container(keyedBy: CodingKeys.self).lenient(.details)
            }
        }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            code = c.lenient(.code)
            subcode = c.lenient(.subcode)
            message = c.lenient(.message)
            details = c.lenient(ErrorData.self, .data)?.details
            traceID = c.lenient(.traceID)
        }
    }

    var messages: [Message]?
    var error: Failure?

    enum CodingKeys: String, CodingKey { case messages, error }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        messages = c.lenient(.messages)
        error = c.lenient(.error)
    }
}
