// redis-xadd-bench: measures the XADD rate of SwitchboardRedis against a server.
//
// Usage: redis-xadd-bench [--url URL] [-n REQUESTS] [-c CLIENTS] [-P DEPTH]
//                         [--stream KEY] [--mode both|unpipelined|pipelined]
//
// "unpipelined" runs CLIENTS concurrent callers, each sending one XADD at a time
// through a RedisClient whose pool has CLIENTS connections (like redis-benchmark -P 1).
// "pipelined" runs CLIENTS callers that each send batches of DEPTH XADDs in one write
// (like redis-benchmark -P DEPTH).

import NIOCore
import SwitchboardRedis

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

struct BenchOptions {
    var url = "redis://127.0.0.1:6379"
    var requests = 200_000
    var clients = 50
    var depth = 16
    var stream = "benchstream"
    var mode = "both"
}

func usage() -> Never {
    print(
        """
        usage: redis-xadd-bench [--url URL] [-n REQUESTS] [-c CLIENTS] [-P DEPTH] [--stream KEY] [--mode both|unpipelined|pipelined]
        """
    )
    exit(2)
}

func parseOptions() -> BenchOptions {
    var options = BenchOptions()
    var arguments = CommandLine.arguments.dropFirst()
    func next() -> String {
        guard let value = arguments.popFirst() else { usage() }
        return value
    }
    func nextInt() -> Int {
        guard let value = Int(next()), value > 0 else { usage() }
        return value
    }
    while let argument = arguments.popFirst() {
        switch argument {
        case "--url": options.url = next()
        case "-n", "--requests": options.requests = nextInt()
        case "-c", "--clients": options.clients = nextInt()
        case "-P", "--pipeline": options.depth = nextInt()
        case "--stream": options.stream = next()
        case "--mode": options.mode = next()
        case "-h", "--help": usage()
        default: usage()
        }
    }
    guard ["both", "unpipelined", "pipelined"].contains(options.mode) else { usage() }
    return options
}

func measure(_ label: String, requests: Int, _ body: () async throws -> Void) async throws {
    let clock = ContinuousClock()
    let elapsed = try await clock.measure {
        try await body()
    }
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    let rate = Double(requests) / seconds
    print(
        "\(label): \(requests) requests in \((seconds * 100).rounded() / 100) s, "
            + "\(Int(rate.rounded())) requests per second"
    )
}

/// Splits `total` into `parts` near-equal shares.
func shares(_ total: Int, _ parts: Int) -> [Int] {
    (0..<parts).map { total / parts + ($0 < total % parts ? 1 : 0) }
}

let options = parseOptions()
let client: RedisClient
do {
    client = try RedisClient(
        url: options.url,
        options: .init(maximumConnections: options.clients, maximumBlockingConnections: 1)
    )
} catch {
    print("error: \(error)")
    exit(1)
}
let fields = [StreamField("f", "v")]

do {
    // Open the connections up front so that connecting is not measured.
    try await withThrowingTaskGroup(of: Void.self) { group in
        for _ in 0..<options.clients {
            group.addTask { _ = try await client.send(command: ["PING"]) }
        }
        try await group.waitForAll()
    }
    print("redis-xadd-bench: \(client.configuration), clients=\(options.clients), requests=\(options.requests)")

    if options.mode != "pipelined" {
        try await measure("XADD unpipelined (-P 1, \(options.clients) clients)", requests: options.requests) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for share in shares(options.requests, options.clients) {
                    group.addTask {
                        for _ in 0..<share {
                            try await client.xadd(options.stream, fields: fields)
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
    }

    if options.mode != "unpipelined" {
        let command = RedisCommands.xadd(options.stream, fields: fields)
        try await measure(
            "XADD pipelined (-P \(options.depth), \(options.clients) clients)",
            requests: options.requests
        ) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for share in shares(options.requests, options.clients) {
                    group.addTask {
                        var remaining = share
                        while remaining > 0 {
                            let batch = min(options.depth, remaining)
                            let replies = try await client.pipeline(Array(repeating: command, count: batch))
                            for reply in replies where reply.errorMessage != nil {
                                throw RedisError(serverMessage: reply.errorMessage!)
                            }
                            remaining -= batch
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
    }
} catch {
    print("error: \(error)")
    await client.shutdown()
    exit(1)
}
await client.shutdown()
