import SwitchboardCore

/// How a parsed request body becomes a request to store: the one path `POST /api/v1/communication` and every
/// item of `POST /api/v1/communications/batch` take, so that a batch item is judged exactly as a single request.
///
/// In order:
/// 0. a template (`data.templateId`) is rendered into `data.msg` (`applyTemplate`, TemplateRoutes.swift);
/// 1. validation (`RequestValidator`): the body's shape, addresses, lengths;
/// 2. the message's own callback URL (`data.callbackUrl`) needs a default webhook endpoint for the key.
///
/// A client's problem is a `.failure` with its HTTP status (400, 422); a fault of the server (the store does not
/// answer) is thrown, and fails the whole request.
extension API {
    /// The request to store for `body`, sent with the key `keyID` (nil: the API is open), or the client's problem.
    func admit(_ body: JSONValue, keyID: String?) async throws -> Result<CommunicationRequest, APIError> {
        let rendered: JSONValue
        switch try await applyTemplate(body) {
        case .failure(let e): return .failure(e)
        case .success(let r): rendered = r
        }
        let validation = dispatcher.tracing.startSpanInCurrentContext("validate")
        let validated: CommunicationRequest
        switch RequestValidator.validate(rendered) {
        case .failure(let e):
            validation?.fail(e.code)
            validation?.end()
            return .failure(APIError(e))
        case .success(let r):
            validation?.end()
            validated = r
        }
        do {
            try await checkMessageCallback(validated, keyID: keyID)
        } catch let e as APIError {
            return .failure(e)
        }
        return .success(validated)
    }
}
