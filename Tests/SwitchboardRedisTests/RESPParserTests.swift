import NIOCore
import Testing

@testable import SwitchboardRedis

private func b(_ string: String) -> RESPValue { .bulkString(string) }
private func pair(_ key: RESPValue, _ value: RESPValue) -> RESPMapEntry { RESPMapEntry(key: key, value: value) }

/// Recorded replies (mostly captured from redis-server 7.0) and the values they must parse to.
enum Fixtures {
    static let xreadgroupRESP2 =
        "*1\r\n*2\r\n$1\r\nt\r\n*2\r\n*2\r\n$3\r\n1-1\r\n*-1\r\n*2\r\n$3\r\n1-2\r\n*4\r\n$1\r\nf\r\n$1\r\nw\r\n$1\r\nx\r\n$1\r\ny\r\n"
    static let xreadgroupRESP3 =
        "%1\r\n$1\r\nt\r\n*2\r\n*2\r\n$3\r\n1-1\r\n_\r\n*2\r\n$3\r\n1-2\r\n*4\r\n$1\r\nf\r\n$1\r\nw\r\n$1\r\nx\r\n$1\r\ny\r\n"
    static let xpendingSummary =
        "*4\r\n:1\r\n$15\r\n1795239181019-0\r\n$15\r\n1795239181019-0\r\n*1\r\n*2\r\n$2\r\nc2\r\n$1\r\n1\r\n"
    static let xpendingEmpty = "*4\r\n:0\r\n$-1\r\n$-1\r\n*-1\r\n"
    static let xpendingExtended = "*1\r\n*4\r\n$15\r\n1795239181019-0\r\n$2\r\nc2\r\n:3368\r\n:2\r\n"
    static let xinfoGroupsRESP2 =
        "*1\r\n*12\r\n$4\r\nname\r\n$1\r\ng\r\n$9\r\nconsumers\r\n:2\r\n$7\r\npending\r\n:1\r\n$17\r\nlast-delivered-id\r\n$15\r\n1795239181019-0\r\n$12\r\nentries-read\r\n:1\r\n$3\r\nlag\r\n:0\r\n"
    static let xinfoGroupsRESP3 =
        "*1\r\n%6\r\n$4\r\nname\r\n$1\r\ng\r\n$9\r\nconsumers\r\n:3\r\n$7\r\npending\r\n:1\r\n$17\r\nlast-delivered-id\r\n$15\r\n1795239181019-0\r\n$12\r\nentries-read\r\n:1\r\n$3\r\nlag\r\n:0\r\n"
    static let xautoclaim =
        "*3\r\n$3\r\n0-0\r\n*1\r\n*2\r\n$3\r\n1-2\r\n*4\r\n$1\r\nf\r\n$1\r\nw\r\n$1\r\nx\r\n$1\r\ny\r\n*1\r\n$3\r\n1-1\r\n"
    static let xinfoStreamRESP3 =
        "%10\r\n$6\r\nlength\r\n:1\r\n$15\r\nradix-tree-keys\r\n:1\r\n$16\r\nradix-tree-nodes\r\n:2\r\n$17\r\nlast-generated-id\r\n$15\r\n1795239181019-0\r\n$20\r\nmax-deleted-entry-id\r\n$3\r\n0-0\r\n$13\r\nentries-added\r\n:1\r\n$23\r\nrecorded-first-entry-id\r\n$15\r\n1795239181019-0\r\n$6\r\ngroups\r\n:1\r\n$11\r\nfirst-entry\r\n*2\r\n$15\r\n1795239181019-0\r\n*4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n$10\r\nlast-entry\r\n*2\r\n$15\r\n1795239181019-0\r\n*4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n"
    static let hello3 =
        "%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:13\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n"

    static let xreadgroupEntries: RESPValue = .array([
        .array([b("1-1"), .null]),
        .array([b("1-2"), .array([b("f"), b("w"), b("x"), b("y")])]),
    ])

    static let groupFieldsRESP2: [RESPValue] = [
        b("name"), b("g"), b("consumers"), .integer(2), b("pending"), .integer(1),
        b("last-delivered-id"), b("1795239181019-0"), b("entries-read"), .integer(1), b("lag"), .integer(0),
    ]

    static let entryAB: RESPValue = .array([b("1795239181019-0"), .array([b("a"), b("1"), b("b"), b("2")])])

    /// (name, bytes, expected value)
    static let all: [(String, String, RESPValue)] = [
        ("XREADGROUP RESP2", xreadgroupRESP2, .array([.array([b("t"), xreadgroupEntries])])),
        ("XREADGROUP RESP3", xreadgroupRESP3, .map([pair(b("t"), xreadgroupEntries)])),
        (
            "XPENDING summary", xpendingSummary,
            .array([
                .integer(1), b("1795239181019-0"), b("1795239181019-0"), .array([.array([b("c2"), b("1")])]),
            ])
        ),
        ("XPENDING empty", xpendingEmpty, .array([.integer(0), .null, .null, .null])),
        (
            "XPENDING extended", xpendingExtended,
            .array([.array([b("1795239181019-0"), b("c2"), .integer(3368), .integer(2)])])
        ),
        ("XINFO GROUPS RESP2", xinfoGroupsRESP2, .array([.array(groupFieldsRESP2)])),
        (
            "XINFO GROUPS RESP3", xinfoGroupsRESP3,
            .array([
                .map([
                    pair(b("name"), b("g")), pair(b("consumers"), .integer(3)), pair(b("pending"), .integer(1)),
                    pair(b("last-delivered-id"), b("1795239181019-0")), pair(b("entries-read"), .integer(1)),
                    pair(b("lag"), .integer(0)),
                ])
            ])
        ),
        (
            "XAUTOCLAIM", xautoclaim,
            .array([
                b("0-0"), .array([.array([b("1-2"), .array([b("f"), b("w"), b("x"), b("y")])])]), .array([b("1-1")]),
            ])
        ),
        (
            "XINFO STREAM RESP3", xinfoStreamRESP3,
            .map([
                pair(b("length"), .integer(1)), pair(b("radix-tree-keys"), .integer(1)),
                pair(b("radix-tree-nodes"), .integer(2)), pair(b("last-generated-id"), b("1795239181019-0")),
                pair(b("max-deleted-entry-id"), b("0-0")), pair(b("entries-added"), .integer(1)),
                pair(b("recorded-first-entry-id"), b("1795239181019-0")), pair(b("groups"), .integer(1)),
                pair(b("first-entry"), entryAB), pair(b("last-entry"), entryAB),
            ])
        ),
        (
            "HELLO 3", hello3,
            .map([
                pair(b("server"), b("redis")), pair(b("version"), b("7.0.15")), pair(b("proto"), .integer(3)),
                pair(b("id"), .integer(13)), pair(b("mode"), b("standalone")), pair(b("role"), b("master")),
                pair(b("modules"), .array([])),
            ])
        ),
        ("BUSYGROUP error", "-BUSYGROUP Consumer Group name already exists\r\n", .error("BUSYGROUP Consumer Group name already exists")),
        ("NOGROUP error", "-NOGROUP No such key 'nokey' or consumer group 'g'\r\n", .error("NOGROUP No such key 'nokey' or consumer group 'g'")),
        ("blob error", "!21\r\nSYNTAX invalid syntax\r\n", .error("SYNTAX invalid syntax")),
        ("null bulk", "$-1\r\n", .null),
        ("null array", "*-1\r\n", .null),
        ("RESP3 null", "_\r\n", .null),
        (
            "nested arrays", "*3\r\n*2\r\n:1\r\n*1\r\n+a\r\n*0\r\n%0\r\n",
            .array([.array([.integer(1), .array([.simpleString("a")])]), .array([]), .map([])])
        ),
        ("verbatim", "=15\r\ntxt:Some string\r\n", .verbatimString(format: "txt", text: "Some string")),
        ("double", ",3.14\r\n", .double(3.14)),
        ("double inf", ",inf\r\n", .double(.infinity)),
        ("double -inf", ",-inf\r\n", .double(-.infinity)),
        ("double exponent", ",1.5e3\r\n", .double(1500)),
        ("true", "#t\r\n", .boolean(true)),
        ("false", "#f\r\n", .boolean(false)),
        (
            "big number", "(3492890328409238509324850943850943825024385\r\n",
            .bigNumber("3492890328409238509324850943850943825024385")
        ),
        ("set", "~2\r\n+a\r\n:1\r\n", .set([.simpleString("a"), .integer(1)])),
        ("push", ">2\r\n$10\r\ninvalidate\r\n*1\r\n$2\r\nzz\r\n", .push([b("invalidate"), .array([b("zz")])])),
        (
            "attribute", "|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n*2\r\n:2039123\r\n:9543892\r\n",
            .attribute(
                attributes: [
                    pair(.simpleString("key-popularity"), .map([pair(b("a"), .double(0.1923)), pair(b("b"), .double(0.0012))]))
                ],
                value: .array([.integer(2_039_123), .integer(9_543_892)])
            )
        ),
        (
            "attribute inside array", "*2\r\n|1\r\n+ttl\r\n:3600\r\n$3\r\nfoo\r\n:1\r\n",
            .array([.attribute(attributes: [pair(.simpleString("ttl"), .integer(3600))], value: b("foo")), .integer(1)])
        ),
        ("empty attribute", "|0\r\n:7\r\n", .attribute(attributes: [], value: .integer(7))),
        ("empty bulk", "$0\r\n\r\n", b("")),
        ("bulk with CRLF inside", "$4\r\na\r\nb\r\n", b("a\r\nb")),
        ("negative integer", ":-42\r\n", .integer(-42)),
        ("min integer", ":-9223372036854775808\r\n", .integer(.min)),
        ("simple string", "+OK\r\n", .simpleString("OK")),
        ("UTF-8 bulk", "$6\r\nh\u{E9}llo\r\n", b("h\u{E9}llo")),
    ]
}

/// Parses everything in `chunks`, fed one after another into one buffer and one parser.
private func parseChunks(_ chunks: [ArraySlice<UInt8>]) throws -> [RESPValue] {
    var parser = RESPParser()
    var buffer = ByteBuffer()
    var values: [RESPValue] = []
    for chunk in chunks {
        buffer.writeBytes(chunk)
        while let value = try parser.parse(&buffer) {
            values.append(value)
        }
    }
    #expect(buffer.readableBytes == 0)
    #expect(!parser.isMidReply)
    return values
}

@Suite("RESP parser")
struct RESPParserTests {
    @Test("parses each fixture in one piece", arguments: Fixtures.all.indices)
    func wholeFixture(index: Int) throws {
        let (name, text, expected) = Fixtures.all[index]
        let bytes = Array(text.utf8)
        let values = try parseChunks([bytes[...]])
        #expect(values == [expected], "\(name)")
    }

    @Test("same result for every single split point", arguments: Fixtures.all.indices)
    func everySplit(index: Int) throws {
        let (name, text, expected) = Fixtures.all[index]
        let bytes = Array(text.utf8)
        for split in 0...bytes.count {
            let values = try parseChunks([bytes[..<split], bytes[split...]])
            #expect(values == [expected], "\(name) split at \(split)")
        }
    }

    @Test("same result byte by byte", arguments: Fixtures.all.indices)
    func byteByByte(index: Int) throws {
        let (name, text, expected) = Fixtures.all[index]
        let bytes = Array(text.utf8)
        let chunks = bytes.indices.map { bytes[$0...$0] }
        let values = try parseChunks(chunks)
        #expect(values == [expected], "\(name)")
    }

    @Test("a stream of all fixtures parses the same for every split point and in random chunks")
    func concatenatedStream() throws {
        let bytes = Array(Fixtures.all.map(\.1).joined().utf8)
        let expected = Fixtures.all.map(\.2)
        #expect(try parseChunks([bytes[...]]) == expected)
        for split in stride(from: 0, through: bytes.count, by: 7) {
            #expect(try parseChunks([bytes[..<split], bytes[split...]]) == expected)
        }
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            var chunks: [ArraySlice<UInt8>] = []
            var start = 0
            while start < bytes.count {
                let end = min(bytes.count, start + Int.random(in: 1...40, using: &generator))
                chunks.append(bytes[start..<end])
                start = end
            }
            #expect(try parseChunks(chunks) == expected)
        }
    }

    @Test("incomplete input returns nil and leaves the partial token")
    func incomplete() throws {
        var parser = RESPParser()
        var buffer = ByteBuffer(string: "$5\r\nhel")
        #expect(try parser.parse(&buffer) == nil)
        #expect(buffer.readableBytes == 7)
        buffer.writeString("lo\r")
        #expect(try parser.parse(&buffer) == nil)
        buffer.writeString("\n+OK")
        #expect(try parser.parse(&buffer) == b("hello"))
        #expect(try parser.parse(&buffer) == nil)
        buffer.writeString("\r\n")
        #expect(try parser.parse(&buffer) == .simpleString("OK"))
    }

    @Test(
        "malformed input is a protocol error",
        arguments: [
            "?foo\r\n", ":12a\r\n", "$abc\r\n", "$3\r\nabcd\r\n", "+OK\rX", "#x\r\n", ",nope\r\n", "_x\r\n",
            "*-2\r\n", "$-5\r\n", "=3\r\nabc\r\n", "$?\r\n", "*?\r\n", ":99999999999999999999\r\n", "(12x\r\n",
        ]
    )
    func malformed(input: String) {
        var parser = RESPParser()
        var buffer = ByteBuffer(string: input)
        #expect(throws: RedisError.self) {
            while try parser.parse(&buffer) != nil {}
        }
    }

    @Test("limits are enforced")
    func limits() {
        var parser = RESPParser(limits: .init(maximumBulkLength: 4, maximumNestingDepth: 2))
        var buffer = ByteBuffer(string: "$5\r\nhello\r\n")
        #expect(throws: RedisError.protocolError("invalid bulk length 5")) { try parser.parse(&buffer) }
        parser = RESPParser(limits: .init(maximumNestingDepth: 2))
        buffer = ByteBuffer(string: "*1\r\n*1\r\n*1\r\n:1\r\n")
        #expect(throws: RedisError.self) { try parser.parse(&buffer) }
    }

    @Test("a large reply arriving in small chunks parses in one pass")
    func largeReply() throws {
        var text = "*5000\r\n"
        for i in 0..<5000 {
            let id = "\(i)-0"
            text += "*2\r\n$\(id.utf8.count)\r\n\(id)\r\n*2\r\n$4\r\nbody\r\n$5\r\nvalue\r\n"
        }
        let bytes = Array(text.utf8)
        var chunks: [ArraySlice<UInt8>] = []
        var start = 0
        while start < bytes.count {
            chunks.append(bytes[start..<min(bytes.count, start + 13)])
            start += 13
        }
        let values = try parseChunks(chunks)
        #expect(values.count == 1)
        #expect(values.first?.array?.count == 5000)
        #expect(values.first?.array?.last == .array([b("4999-0"), .array([b("body"), b("value")])]))
    }
}

@Suite("RESP encoder")
struct RESPEncoderTests {
    @Test func encodesArrayOfBulkStrings() {
        let buffer = RESPEncoder.encodeCommand(["SET", "key", "v\u{E9}"])
        #expect(String(buffer: buffer) == "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$3\r\nv\u{E9}\r\n")
    }

    @Test func encodesEmptyArgumentAndLongLengths() {
        let long = String(repeating: "x", count: 12345)
        let buffer = RESPEncoder.encodeCommand(["ECHO", "", long])
        #expect(String(buffer: buffer) == "*3\r\n$4\r\nECHO\r\n$0\r\n\r\n$12345\r\n\(long)\r\n")
    }

    @Test func encodesByteBufferArguments() {
        var buffer = ByteBuffer()
        RESPEncoder.encodeCommand([ByteBuffer(string: "GET"), ByteBuffer(bytes: [0, 13, 10])], into: &buffer)
        #expect(Array(buffer.readableBytesView) == Array("*2\r\n$3\r\nGET\r\n$3\r\n".utf8) + [0, 13, 10, 13, 10])
    }

    @Test("decimal lengths", arguments: [0, 9, 10, 99, 100, 1000, 65535, 1 << 40])
    func decimal(value: Int) {
        var buffer = ByteBuffer()
        RESPEncoder.writeDecimal(value, into: &buffer)
        #expect(String(buffer: buffer) == String(value))
    }

    @Test("encoded commands parse back as arrays of bulk strings")
    func roundTrip() throws {
        let command = ["XADD", "stream", "MAXLEN", "~", "1000", "*", "field", "value with spaces\r\n"]
        var buffer = RESPEncoder.encodeCommand(command)
        var parser = RESPParser()
        let value = try parser.parse(&buffer)
        #expect(value == .array(command.map { b($0) }))
    }
}
