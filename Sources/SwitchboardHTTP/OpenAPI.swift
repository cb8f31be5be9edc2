import HTTPTypes
import Hummingbird
import NIOCore

/// `GET /openapi.json`: the API's OpenAPI 3.1 document, unauthenticated.
///
/// The one source is `docs/openapi.json`; `scripts/openapi-embed.py` copies it byte for byte into
/// ``OpenAPIDocument`` (so the binary needs no resource bundle at run time), and the HTTP tests fail when the
/// served document and the committed file differ, or when a route of ``API/routes()`` is missing from it.
extension API {
    /// The document's bytes, built once.
    static let openAPIBody = ByteBuffer(string: OpenAPIDocument.text)

    /// The document's endpoint (part of ``routes()``).
    func documentRoutes() -> [Route] {
        [
            Route(.get, "/openapi.json") { _, _ in
                Response(status: .ok, headers: [.contentType: "application/json; charset=utf-8"], body: ResponseBody(byteBuffer: Self.openAPIBody))
            },
        ]
    }
}
