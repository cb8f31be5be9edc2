/// What Twilio's Messages API answers: the created Message resource (`sid`), or an error (`code`,
/// `message`, `more_info`).
struct TwilioAnswer: Decodable {
    /// The Message resource's id (`SM…`), on success.
    var sid: String?
    var code: ProviderCode?
    var message: String?
    /// The documentation link for `code`.
    var moreInfo: String?

    enum CodingKeys: String, CodingKey {
        case sid, code, message
        case moreInfo = "more_info"
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        sid = c.lenient(.sid)
        code = c.lenient(.code)
        message = c.lenient(.message)
        moreInfo = c.lenient(.moreInfo)
    }
}
