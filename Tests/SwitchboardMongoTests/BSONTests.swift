#if MongoDB
import Testing
import SwitchboardCore
@testable import SwitchboardMongo

@Suite("BSON codec")
struct BSONTests {
    @Test("encodes the BSON specification's examples byte for byte")
    func specExamples() throws {
        let hello: BSONDocument = ["hello": .string("world")]
        let helloBytes: [UInt8] = [0x16, 0, 0, 0, 0x02] + Array("hello".utf8) + [0, 0x06, 0, 0, 0] + Array("world".utf8) + [0, 0]
        #expect(hello.encoded() == helloBytes)
        let awesome: BSONDocument = ["BSON": .array([.string("awesome"), .double(5.05), .int32(1986)])]
        let awesomeBytes: [UInt8] = [
            0x31, 0, 0, 0, 0x04, 0x42, 0x53, 0x4f, 0x4e, 0, 0x26, 0, 0, 0, 0x02, 0x30, 0, 0x08, 0, 0, 0,
            0x61, 0x77, 0x65, 0x73, 0x6f, 0x6d, 0x65, 0, 0x01, 0x31, 0, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x14, 0x40,
            0x10, 0x32, 0, 0xc2, 0x07, 0, 0, 0, 0,
        ]
        #expect(awesome.encoded() == awesomeBytes)
        #expect(try BSONDocument(bytes: awesomeBytes) == awesome)
        #expect(try BSONDocument(bytes: [5, 0, 0, 0, 0]).isEmpty)
    }

    @Test("every type round-trips, keys keep their order")
    func roundTrip() throws {
        let doc: BSONDocument = [
            "z": .double(-0.5), "s": .string("Olá — 你好 👋 \"q\"\n"), "empty": .string(""),
            "doc": .document(["b": .int32(2), "a": .int32(1)]), "arr": .array([.null, .bool(true), .array([]), .document([:])]),
            "bin": .binary(subtype: 4, bytes: Array(0..<16)), "oid": .objectID(Array(1...12)), "f": .bool(false),
            "date": .datetime(1_700_000_000_123), "neg": .datetime(-1), "null": .null, "i32": .int32(.min), "ts": .timestamp(UInt64(7) << 32 | 1),
            "i64": .int64(.max), "dec": .decimal128(Array(repeating: 9, count: 16)), "min": .minKey, "max": .maxKey,
        ]
        let decoded = try BSONDocument(bytes: doc.encoded())
        #expect(decoded == doc)
        #expect(decoded.keys == ["z", "s", "empty", "doc", "arr", "bin", "oid", "f", "date", "neg", "null", "i32", "ts", "i64", "dec", "min", "max"])
        #expect(decoded["doc"]?.documentValue?.keys == ["b", "a"])
    }

    @Test("subscript sets, replaces and removes in place")
    func subscripts() {
        var d: BSONDocument = ["a": .int32(1), "b": .int32(2)]
        d["a"] = .string("x")
        d["c"] = .null
        d["b"] = nil
        #expect(d.keys == ["a", "c"] && d["a"] == .string("x"))
        #expect(BSON.int32(3).intValue == 3 && BSON.double(4).intValue == 4 && BSON.double(4.5).intValue == nil && BSON.string("4").intValue == nil)
    }

    @Test("malformed input is refused with a typed error, never read past its end")
    func malformed() {
        let good = BSONDocument(["k": .string("value")]).encoded()
        #expect(throws: BSONDecodingError.self) { try BSONDocument(bytes: good.dropLast()) }  // truncated
        #expect(throws: BSONDecodingError.self) { try BSONDocument(bytes: good + [0]) }  // trailing byte
        #expect(throws: BSONDecodingError.self) { try BSONDocument(bytes: [4, 0, 0, 0]) }  // too short
        #expect(throws: BSONDecodingError.self) { try BSONDocument(bytes: [0xff, 0xff, 0, 0, 0]) }  // length beyond the data
        var badString = good
        badString[7] = 0x7f  // string length far beyond the document
        #expect(throws: BSONDecodingError.self) { try BSONDocument(bytes: badString) }
        let unknownType: [UInt8] = [8, 0, 0, 0, 0x0B, 0x61, 0, 0]  // regex, unsupported
        #expect(throws: BSONDecodingError.self) { try BSONDocument(bytes: unknownType) }
        let badBool: [UInt8] = [9, 0, 0, 0, 0x08, 0x61, 0, 2, 0]
        #expect(throws: BSONDecodingError.self) { try BSONDocument(bytes: badBool) }
        var deep = BSONDocument()
        for _ in 0..<150 { deep = ["d": .document(deep)] }
        #expect(throws: BSONDecodingError.self) { try BSONDocument(bytes: deep.encoded()) }
    }

    @Test("JSON data maps to BSON and back")
    func json() {
        let data: JSONValue = .object(["to": .string("+1555"), "n": .number(2.5), "list": .array([.bool(true), .null]), "t": .object(["name": .string("x")])])
        let bson = MongoDocuments.bson(data)
        #expect(bson.documentValue?.keys == ["list", "n", "t", "to"])
        #expect(MongoDocuments.json(bson) == data)
        #expect(MongoDocuments.json(.int64(7)) == .number(7))
    }
}

extension BSONDocument {
    init(_ d: BSONDocument) { self = d }
}
#endif
