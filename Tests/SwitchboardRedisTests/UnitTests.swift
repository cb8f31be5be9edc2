import Logging
import NIOCore
import NIOEmbedded
import Testing

@testable import SwitchboardRedis

private func parse(_ text: String) throws -> RESPValue {
    var parser = RESPParser()
    var buffer = ByteBuffer(string: text)
    let value = try parser.parse(&buffer)
    return try #require(value)
}

@Suite("Configuration")
struct ConfigurationTests {
    @Test func plainURL() throws {
        let configuration = try RedisConfiguration(url: "redis://example.com")
        #expect(configuration.host == "example.com")
        #expect(configuration.port == 6379)
        #expect(configuration.username == nil)
        #expect(configuration.password == nil)
        #expect(configuration.database == 0)
        #expect(configuration.tls == nil)
        #expect(configuration.protocolVersion == .resp3)
    }

    @Test func fullURL() throws {
        let configuration = try RedisConfiguration(
            url: "rediss://alice:p%40ss%3Aword@cache.internal:6380/4?connectTimeout=250&commandTimeout=2s&protocol=2&clientName=switchboard&caFile=/etc/ca.pem&serverName=redis.internal"
        )
        #expect(configuration.host == "cache.internal")
        #expect(configuration.port == 6380)
        #expect(configuration.username == "alice")
        #expect(configuration.password == "p@ss:word")
        #expect(configuration.database == 4)
        #expect(configuration.tls?.caFile == "/etc/ca.pem")
        #expect(configuration.tls?.serverName == "redis.internal")
        #expect(configuration.tls?.verifyCertificates == true)
        #expect(configuration.connectTimeout == .milliseconds(250))
        #expect(configuration.commandTimeout == .seconds(2))
        #expect(configuration.protocolVersion == .resp2)
        #expect(configuration.clientName == "switchboard")
    }

    @Test func passwordOnlyAndIPv6() throws {
        let configuration = try RedisConfiguration(url: "redis://:secret@[::1]:7000/2?commandTimeout=0")
        #expect(configuration.host == "::1")
        #expect(configuration.port == 7000)
        #expect(configuration.username == nil)
        #expect(configuration.password == "secret")
        #expect(configuration.database == 2)
        #expect(configuration.commandTimeout == nil)
        #expect(configuration.description == "redis://:***@[::1]:7000/2")
    }

    @Test func descriptionNeverShowsThePassword() throws {
        let configuration = try RedisConfiguration(url: "rediss://bob:hunter2@10.0.0.1:6379/1")
        #expect(configuration.description == "rediss://bob:***@10.0.0.1:6379/1")
        #expect(!"\(configuration)".contains("hunter2"))
        let noPassword = RedisConfiguration(host: "localhost", port: 1234)
        #expect(noPassword.description == "redis://localhost:1234")
    }

    @Test(
        "invalid URLs are rejected",
        arguments: [
            "http://host", "redis://", "redis://host:0", "redis://host:70000", "redis://host:abc", "redis://host/x",
            "redis://host?protocol=4", "redis://host?bogus=1", "redis://host?caFile=/x", "redis://[::1",
            "redis://us%zzer:pw@host", "rediss://host?verifyPeer=maybe", "redis://host?commandTimeout=soon",
        ]
    )
    func invalid(url: String) {
        #expect(throws: RedisError.self) { try RedisConfiguration(url: url) }
    }

    @Test func invalidURLErrorsDoNotLeakThePassword() {
        do {
            _ = try RedisConfiguration(url: "redis://user:topsecret@host:99999")
            Issue.record("expected an error")
        } catch {
            #expect(!"\(error)".contains("topsecret"))
        }
    }
}

@Suite("Errors")
struct RedisErrorTests {
    @Test func prefixes() {
        #expect(RedisError(serverMessage: "NOGROUP No such key 'k'") == .noGroup(message: "No such key 'k'"))
        #expect(RedisError(serverMessage: "BUSYGROUP Consumer Group name already exists") == .busyGroup(message: "Consumer Group name already exists"))
        #expect(RedisError(serverMessage: "WRONGTYPE Operation against a key") == .wrongType(message: "Operation against a key"))
        #expect(RedisError(serverMessage: "NOAUTH Authentication required.") == .noAuth(message: "Authentication required."))
        #expect(RedisError(serverMessage: "WRONGPASS invalid username-password pair") == .wrongPass(message: "invalid username-password pair"))
        #expect(RedisError(serverMessage: "NOPERM this user has no permissions") == .noPerm(message: "this user has no permissions"))
        #expect(RedisError(serverMessage: "LOADING Redis is loading") == .loading(message: "Redis is loading"))
        #expect(RedisError(serverMessage: "READONLY You can't write") == .readOnly(message: "You can't write"))
        #expect(RedisError(serverMessage: "ERR unknown command 'FOO'") == .server(prefix: "ERR", message: "unknown command 'FOO'"))
        #expect(RedisError(serverMessage: "OOPS") == .server(prefix: "OOPS", message: ""))
        #expect(RedisError.noGroup(message: "x").serverPrefix == "NOGROUP")
        #expect(RedisError.timeout.serverPrefix == nil)
        #expect(RedisError.timeout.isConnectionError)
        #expect(!RedisError.wrongType(message: "").isConnectionError)
    }

    @Test func throwingIfError() throws {
        #expect(throws: RedisError.noGroup(message: "gone")) { try RESPValue.error("NOGROUP gone").throwingIfError() }
        #expect(try RESPValue.integer(1).throwingIfError() == .integer(1))
    }
}

@Suite("Reply decoding")
struct ReplyDecodingTests {
    @Test func xreadgroupBothProtocols() throws {
        for fixture in [Fixtures.xreadgroupRESP2, Fixtures.xreadgroupRESP3] {
            let streams = try ReplyDecoding.streams(try parse(fixture), "XREADGROUP")
            #expect(streams.count == 1)
            #expect(streams[0].stream == "t")
            #expect(
                streams[0].entries == [
                    StreamEntry(id: "1-1", fields: [], isDeleted: true),
                    StreamEntry(id: "1-2", fields: [StreamField("f", "w"), StreamField("x", "y")]),
                ]
            )
            #expect(streams[0].entries[1][field: "x"] == "y")
        }
        #expect(try ReplyDecoding.streams(.null, "XREADGROUP").isEmpty)
    }

    @Test func pending() throws {
        let summary = try ReplyDecoding.pendingSummary(try parse(Fixtures.xpendingSummary))
        #expect(summary == StreamPendingSummary(
            count: 1, smallestID: "1795239181019-0", greatestID: "1795239181019-0",
            consumers: [StreamConsumerPendingCount(name: "c2", pending: 1)]))
        let empty = try ReplyDecoding.pendingSummary(try parse(Fixtures.xpendingEmpty))
        #expect(empty == StreamPendingSummary(count: 0, smallestID: nil, greatestID: nil, consumers: []))
        let entries = try ReplyDecoding.pendingEntries(try parse(Fixtures.xpendingExtended))
        #expect(entries == [StreamPendingEntry(id: "1795239181019-0", consumer: "c2", idleMilliseconds: 3368, deliveryCount: 2)])
        #expect(entries[0].idle == .milliseconds(3368))
    }

    @Test func autoclaim() throws {
        let result = try ReplyDecoding.autoClaim(try parse(Fixtures.xautoclaim))
        #expect(result.nextCursor == "0-0")
        #expect(result.entries == [StreamEntry(id: "1-2", fields: [StreamField("f", "w"), StreamField("x", "y")])])
        #expect(result.deletedIDs == ["1-1"])
    }

    @Test func groupsBothProtocols() throws {
        let resp2 = try ReplyDecoding.groups(try parse(Fixtures.xinfoGroupsRESP2))
        #expect(resp2 == [StreamGroupInfo(name: "g", consumers: 2, pending: 1, lastDeliveredID: "1795239181019-0", entriesRead: 1, lag: 0)])
        let resp3 = try ReplyDecoding.groups(try parse(Fixtures.xinfoGroupsRESP3))
        #expect(resp3.first?.consumers == 3)
    }

    @Test func streamInfo() throws {
        let info = try ReplyDecoding.streamInfo(try parse(Fixtures.xinfoStreamRESP3))
        #expect(info.length == 1)
        #expect(info.lastGeneratedID == "1795239181019-0")
        #expect(info.groups == 1)
        #expect(info.entriesAdded == 1)
        #expect(info.maxDeletedEntryID == "0-0")
        #expect(info.firstEntry == StreamEntry(id: "1795239181019-0", fields: [StreamField("a", "1"), StreamField("b", "2")]))
    }

    @Test func unexpectedShapesThrow() {
        #expect(throws: RedisError.self) { try ReplyDecoding.autoClaim(.integer(1)) }
        #expect(throws: RedisError.self) { try ReplyDecoding.pendingSummary(.array([])) }
        #expect(throws: RedisError.self) { try ReplyDecoding.streams(.integer(3), "XREADGROUP") }
    }
}

@Suite("Channel handler")
struct ChannelHandlerTests {
    private func makeChannel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(RedisChannelHandler(logger: Logger(label: "test")))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 6379)).wait()
        return channel
    }

    private func request(
        _ channel: EmbeddedChannel,
        _ command: [String],
        timeout: TimeAmount? = nil
    ) throws -> EventLoopFuture<RESPValue> {
        let promise = channel.eventLoop.makePromise(of: RESPValue.self)
        try channel.writeOutbound(
            RedisRequest(payload: RESPEncoder.encodeCommand(command), responder: .single(promise), timeout: timeout)
        )
        return promise.futureResult
    }

    private func result<Value>(_ future: EventLoopFuture<Value>) -> Result<Value, any Error>? {
        var result: Result<Value, any Error>?
        future.assumeIsolated().whenComplete { result = $0 }
        return result
    }

    @Test func pipelinedRepliesAreMatchedInOrder() throws {
        let channel = try makeChannel()
        let first = try request(channel, ["ECHO", "a"])
        let second = try request(channel, ["ECHO", "b"])
        let batchPromise = channel.eventLoop.makePromise(of: [RESPValue].self)
        var payload = ByteBuffer()
        RESPEncoder.encodeCommand(["PING"], into: &payload)
        RESPEncoder.encodeCommand(["GET", "x"], into: &payload)
        try channel.writeOutbound(RedisRequest(payload: payload, responder: .batch(batchPromise, count: 2), timeout: nil))
        let third = try request(channel, ["ECHO", "c"])

        #expect(try channel.readOutbound(as: ByteBuffer.self).map { String(buffer: $0) } == "*2\r\n$4\r\nECHO\r\n$1\r\na\r\n")

        // Replies split across reads, with a RESP3 push in the middle that must be skipped.
        try channel.writeInbound(ByteBuffer(string: "$1\r\na\r\n$1\r"))
        #expect(try result(first)?.get() == .bulkString("a"))
        #expect(result(second) == nil)
        try channel.writeInbound(ByteBuffer(string: "\nb\r\n>2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nx\r\n+PONG\r\n"))
        #expect(try result(second)?.get() == .bulkString("b"))
        try channel.writeInbound(ByteBuffer(string: "_\r\n$1\r\nc\r\n"))
        #expect(try result(batchPromise.futureResult)?.get() == [.simpleString("PONG"), .null])
        #expect(try result(third)?.get() == .bulkString("c"))
        #expect(channel.isActive)
        _ = try? channel.finish()
    }

    @Test func timeoutFailsTheCommandAndClosesTheConnection() throws {
        let channel = try makeChannel()
        let slow = try request(channel, ["BLPOP", "k", "0"], timeout: .milliseconds(100))
        let after = try request(channel, ["PING"])
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(99))
        #expect(result(slow) == nil)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        #expect(throws: RedisError.timeout) { try result(slow)?.get() }
        #expect(throws: RedisError.connectionClosed) { try result(after)?.get() }
        #expect(!channel.isActive)
    }

    @Test func answeredCommandsDoNotTimeOut() throws {
        let channel = try makeChannel()
        let fast = try request(channel, ["PING"], timeout: .milliseconds(100))
        try channel.writeInbound(ByteBuffer(string: "+PONG\r\n"))
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(try result(fast)?.get() == .simpleString("PONG"))
        #expect(channel.isActive)
        _ = try? channel.finish()
    }

    @Test func closingFailsPendingCommands() throws {
        let channel = try makeChannel()
        let pending = try request(channel, ["PING"])
        try channel.close().wait()
        #expect(throws: RedisError.connectionClosed) { try result(pending)?.get() }
    }

    @Test func protocolErrorsAndUnsolicitedRepliesCloseTheConnection() throws {
        let channel = try makeChannel()
        let pending = try request(channel, ["PING"])
        _ = try? channel.writeInbound(ByteBuffer(string: "?bogus\r\n"))
        #expect(throws: RedisError.protocolError("unknown RESP type byte 0x3f")) { try result(pending)?.get() }
        #expect(!channel.isActive)

        let other = try makeChannel()
        try other.writeInbound(ByteBuffer(string: "+OK\r\n"))
        #expect(!other.isActive)
    }
}
