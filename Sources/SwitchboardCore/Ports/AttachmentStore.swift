/// The bytes of email attachments, content-addressed: each file is stored once under the lowercase hex SHA-256 of
/// its bytes, however many messages (or idempotent replays of one) attach it. A message's `data.attachments` names
/// its files by `sha256`; the email worker reads them back to build the MIME message.
///
/// The API writes the bytes before the message is stored, so a stored message never lacks its files; an accept
/// that fails after the write leaves an unreferenced file behind, which is harmless (the next message with the same
/// bytes uses it, and retention deletes it in time). Both adapters are also `Purging`: retention deletes the files
/// no remaining message names.
public protocol AttachmentStore: Sendable {
    /// Stores `bytes` under `sha256` (the caller computed it); a file already there is left as it is.
    func put(sha256: String, bytes: [UInt8]) async throws
    /// The bytes stored under `sha256`, or nil when there are none.
    func get(sha256: String) async throws -> [UInt8]?
}
