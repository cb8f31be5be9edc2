// Typed commands, available on every RedisCommandExecutor.

/// Builders of command argument arrays, for use with ``RedisCommandExecutor/pipeline(_:)``.
public enum RedisCommands {
    /// Builds the arguments of an `XADD` command, for use with ``RedisCommandExecutor/pipeline(_:)``.
    /// - Parameters:
    ///   - key: The stream key.
    ///   - id: The entry ID or `"*"`.
    ///   - fields: The field/value pairs.
    ///   - trim: Optional trimming.
    /// - Returns: The command arguments.
    public static func xadd(_ key: String, id: String = "*", fields: [StreamField], trim: StreamTrim? = nil) -> [String] {
        var command: [String] = []
        command.reserveCapacity(3 + (trim == nil ? 0 : 3) + fields.count * 2)
        command.append("XADD")
        command.append(key)
        if let trim {
            command.append(contentsOf: trim.arguments)
        }
        command.append(id)
        for field in fields {
            command.append(field.name)
            command.append(field.value)
        }
        return command
    }
}

extension RedisCommandExecutor {
    // MARK: Server

    /// `PING [message]`.
    /// - Parameter message: An optional message for the server to echo.
    /// - Returns: `"PONG"`, or the echoed message.
    /// - Throws: ``RedisError``.
    @discardableResult
    public func ping(_ message: String? = nil) async throws(RedisError) -> String {
        let reply = try await self.send(command: message.map { ["PING", $0] } ?? ["PING"])
        return try ReplyDecoding.string(reply, "PING")
    }

    /// `INFO [section]`.
    /// - Parameter section: A section such as `"server"` or `"memory"`, or `nil` for the default set.
    /// - Returns: The raw INFO text (`# Section` headers and `key:value` lines).
    /// - Throws: ``RedisError``.
    public func info(_ section: String? = nil) async throws(RedisError) -> String {
        let reply = try await self.send(command: section.map { ["INFO", $0] } ?? ["INFO"])
        return try ReplyDecoding.string(reply, "INFO")
    }

    /// `DEL key [key …]`.
    /// - Parameter keys: The keys to delete.
    /// - Returns: The number of keys that existed and were deleted.
    /// - Throws: ``RedisError``.
    @discardableResult
    public func del(_ keys: [String]) async throws(RedisError) -> Int {
        guard !keys.isEmpty else { return 0 }
        return try ReplyDecoding.int(try await self.send(command: ["DEL"] + keys), "DEL")
    }

    /// `DEL key`.
    /// - Parameter key: The key to delete.
    /// - Returns: 1 if the key existed, 0 otherwise.
    /// - Throws: ``RedisError``.
    @discardableResult
    public func del(_ key: String) async throws(RedisError) -> Int {
        try await self.del([key])
    }

    // MARK: Streams: producing

    /// `XADD key [MAXLEN|MINID [~|=] threshold] id field value [field value …]`.
    /// - Parameters:
    ///   - key: The stream key (created if missing).
    ///   - id: The entry ID; `"*"` (the default) lets the server choose.
    ///   - fields: The field/value pairs, in order. Must not be empty.
    ///   - trim: Optional trimming, for example `.maxLength(10_000)` for `MAXLEN ~ 10000`.
    /// - Returns: The ID of the added entry.
    /// - Throws: ``RedisError``.
    @discardableResult
    public func xadd(
        _ key: String,
        id: String = "*",
        fields: [StreamField],
        trim: StreamTrim? = nil
    ) async throws(RedisError) -> String {
        let reply = try await self.send(command: RedisCommands.xadd(key, id: id, fields: fields, trim: trim))
        return try ReplyDecoding.string(reply, "XADD")
    }

    /// `XADD` with fields given as `(name, value)` tuples.
    /// - Parameters:
    ///   - key: The stream key (created if missing).
    ///   - id: The entry ID; `"*"` (the default) lets the server choose.
    ///   - fields: The field/value pairs, in order. Must not be empty.
    ///   - trim: Optional trimming, for example `.maxLength(10_000)` for `MAXLEN ~ 10000`.
    /// - Returns: The ID of the added entry.
    /// - Throws: ``RedisError``.
    @discardableResult
    public func xadd(
        _ key: String,
        id: String = "*",
        fields: [(String, String)],
        trim: StreamTrim? = nil
    ) async throws(RedisError) -> String {
        try await self.xadd(key, id: id, fields: fields.map { StreamField($0.0, $0.1) }, trim: trim)
    }

    /// Adds many entries to one stream with pipelined `XADD`s written in one flush.
    /// - Parameters:
    ///   - key: The stream key.
    ///   - entries: The entries' fields, one array per entry.
    ///   - trim: Optional trimming applied by every `XADD`.
    /// - Returns: The new IDs, in order.
    /// - Throws: ``RedisError``; if any `XADD` was rejected, the first such error (the
    ///   other entries may have been added).
    @discardableResult
    public func xaddBatch(
        _ key: String,
        entries: [[StreamField]],
        trim: StreamTrim? = nil
    ) async throws(RedisError) -> [String] {
        let commands = entries.map { RedisCommands.xadd(key, id: "*", fields: $0, trim: trim) }
        let replies = try await self.pipeline(commands)
        var ids: [String] = []
        ids.reserveCapacity(replies.count)
        for reply in replies {
            ids.append(try ReplyDecoding.string(try reply.throwingIfError(), "XADD"))
        }
        return ids
    }

    /// `XLEN key`.
    /// - Parameter key: The stream key.
    /// - Returns: The number of entries (0 if the key does not exist).
    /// - Throws: ``RedisError``.
    public func xlen(_ key: String) async throws(RedisError) -> Int {
        try ReplyDecoding.int(try await self.send(command: ["XLEN", key]), "XLEN")
    }

    /// `XDEL key id [id …]`.
    /// - Parameters:
    ///   - key: The stream key.
    ///   - ids: The entry IDs to delete.
    /// - Returns: The number of entries deleted.
    /// - Throws: ``RedisError``.
    @discardableResult
    public func xdel(_ key: String, ids: [String]) async throws(RedisError) -> Int {
        guard !ids.isEmpty else { return 0 }
        return try ReplyDecoding.int(try await self.send(command: ["XDEL", key] + ids), "XDEL")
    }

    // MARK: Streams: consumer groups

    /// `XGROUP CREATE key group id [MKSTREAM]`.
    /// - Parameters:
    ///   - key: The stream key.
    ///   - group: The group name.
    ///   - startID: The last-delivered ID to start from: `"$"` (the default) for new entries
    ///     only, `"0"` for the whole stream.
    ///   - makeStream: Create the stream if it does not exist (`MKSTREAM`). `true` by default.
    ///   - ignoreExisting: Treat `BUSYGROUP` (the group already exists) as success.
    /// - Returns: `true` if the group was created, `false` if it existed and `ignoreExisting` is set.
    /// - Throws: ``RedisError``, including ``RedisError/busyGroup(message:)`` unless `ignoreExisting`.
    @discardableResult
    public func xgroupCreate(
        _ key: String,
        group: String,
        startID: String = "$",
        makeStream: Bool = true,
        ignoreExisting: Bool = false
    ) async throws(RedisError) -> Bool {
        var command = ["XGROUP", "CREATE", key, group, startID]
        if makeStream {
            command.append("MKSTREAM")
        }
        do {
            _ = try await self.send(command: command)
            return true
        } catch RedisError.busyGroup where ignoreExisting {
            return false
        }
    }

    /// `XGROUP DESTROY key group`.
    /// - Parameters:
    ///   - key: The stream key.
    ///   - group: The group name.
    /// - Returns: Whether the group existed.
    /// - Throws: ``RedisError``.
    @discardableResult
    public func xgroupDestroy(_ key: String, group: String) async throws(RedisError) -> Bool {
        try ReplyDecoding.int(try await self.send(command: ["XGROUP", "DESTROY", key, group]), "XGROUP") == 1
    }

    /// `XGROUP DELCONSUMER key group consumer`.
    /// - Parameters:
    ///   - key: The stream key.
    ///   - group: The group name.
    ///   - consumer: The consumer to remove.
    /// - Returns: The number of pending entries the consumer had (they are no longer pending).
    /// - Throws: ``RedisError``.
    @discardableResult
    public func xgroupDeleteConsumer(_ key: String, group: String, consumer: String) async throws(RedisError) -> Int {
        try ReplyDecoding.int(try await self.send(command: ["XGROUP", "DELCONSUMER", key, group, consumer]), "XGROUP")
    }

    /// `XREADGROUP GROUP group consumer [COUNT n] [BLOCK ms] [NOACK] STREAMS stream id`.
    ///
    /// With a `block` duration the command waits on the server for new entries; the
    /// command timeout is extended by that duration (`block: .zero` waits forever and
    /// disables the timeout), and ``RedisClient`` runs it on its blocking pool.
    /// - Parameters:
    ///   - group: The consumer group.
    ///   - consumer: The consumer name (created on first use).
    ///   - stream: The stream key.
    ///   - id: `">"` (the default) for never-delivered entries; `"0"` or another ID to
    ///     re-read this consumer's pending entries.
    ///   - count: The most entries to return.
    ///   - block: How long to wait for entries, or `nil` not to block.
    ///   - noAck: Do not add the entries to the pending list (`NOACK`).
    /// - Returns: The entries, in order; empty when a blocking read timed out.
    /// - Throws: ``RedisError``, such as ``RedisError/noGroup(message:)``.
    public func xreadgroup(
        group: String,
        consumer: String,
        stream: String,
        id: String = ">",
        count: Int? = nil,
        block: Duration? = nil,
        noAck: Bool = false
    ) async throws(RedisError) -> [StreamEntry] {
        var command = ["XREADGROUP", "GROUP", group, consumer]
        if let count {
            command += ["COUNT", String(count)]
        }
        var options = RedisCommandOptions.default
        if let block {
            let milliseconds = max(0, block.wholeMilliseconds)
            command += ["BLOCK", String(milliseconds)]
            options.isBlocking = true
            options.timeout = milliseconds == 0 ? .none : .defaultPlus(block)
        }
        if noAck {
            command.append("NOACK")
        }
        command += ["STREAMS", stream, id]
        let reply = try await self.send(command: command, options: options)
        let streams = try ReplyDecoding.streams(reply, "XREADGROUP")
        return streams.first { $0.stream == stream }?.entries ?? streams.first?.entries ?? []
    }

    /// `XREAD [COUNT count] [BLOCK ms] STREAMS key id`: entries after `id` without a consumer group (nothing is
    /// claimed or acknowledged; every reader sees every entry).
    /// - Parameters:
    ///   - stream: The stream key.
    ///   - id: Entries with a greater ID are returned (`"0-0"` for all, `"$"` for new ones only).
    ///   - count: At most this many entries.
    ///   - block: How long to wait for entries, or `nil` not to block.
    /// - Returns: The entries, in order; empty when a blocking read timed out.
    /// - Throws: ``RedisError``.
    public func xread(stream: String, after id: String, count: Int? = nil, block: Duration? = nil) async throws(RedisError) -> [StreamEntry] {
        var command = ["XREAD"]
        if let count {
            command += ["COUNT", String(count)]
        }
        var options = RedisCommandOptions.default
        if let block {
            let milliseconds = max(1, block.wholeMilliseconds)
            command += ["BLOCK", String(milliseconds)]
            options.isBlocking = true
            options.timeout = .defaultPlus(block)
        }
        command += ["STREAMS", stream, id]
        let reply = try await self.send(command: command, options: options)
        let streams = try ReplyDecoding.streams(reply, "XREAD")
        return streams.first { $0.stream == stream }?.entries ?? streams.first?.entries ?? []
    }

    /// `XACK key group id [id …]`.
    /// - Parameters:
    ///   - key: The stream key.
    ///   - group: The group name.
    ///   - ids: The entry IDs to acknowledge.
    /// - Returns: The number of entries acknowledged (that were pending).
    /// - Throws: ``RedisError``.
    @discardableResult
    public func xack(_ key: String, group: String, ids: [String]) async throws(RedisError) -> Int {
        guard !ids.isEmpty else { return 0 }
        return try ReplyDecoding.int(try await self.send(command: ["XACK", key, group] + ids), "XACK")
    }

    /// `XAUTOCLAIM key group consumer min-idle-time start [COUNT n]`: takes over pending
    /// entries idle for at least `minIdleTime`.
    /// - Parameters:
    ///   - key: The stream key.
    ///   - group: The group name.
    ///   - consumer: The consumer that claims the entries.
    ///   - minIdleTime: Only entries idle at least this long are claimed.
    ///   - start: The cursor: `"0-0"` (the default) to start, then the returned ``StreamAutoClaimResult/nextCursor``.
    ///   - count: The most entries to claim (the server's default is 100).
    /// - Returns: The next cursor, the claimed entries and IDs of deleted entries.
    /// - Throws: ``RedisError``.
    public func xautoclaim(
        _ key: String,
        group: String,
        consumer: String,
        minIdleTime: Duration,
        start: String = "0-0",
        count: Int? = nil
    ) async throws(RedisError) -> StreamAutoClaimResult {
        var command = ["XAUTOCLAIM", key, group, consumer, String(max(0, minIdleTime.wholeMilliseconds)), start]
        if let count {
            command += ["COUNT", String(count)]
        }
        return try ReplyDecoding.autoClaim(try await self.send(command: command))
    }

    /// `XPENDING key group`: the summary of a group's pending entries.
    /// - Parameters:
    ///   - key: The stream key.
    ///   - group: The group name.
    /// - Returns: The count, ID range and per-consumer counts.
    /// - Throws: ``RedisError``, such as ``RedisError/noGroup(message:)``.
    public func xpending(_ key: String, group: String) async throws(RedisError) -> StreamPendingSummary {
        try ReplyDecoding.pendingSummary(try await self.send(command: ["XPENDING", key, group]))
    }

    /// `XPENDING key group [IDLE ms] start end count [consumer]`: pending entries in detail.
    /// - Parameters:
    ///   - key: The stream key.
    ///   - group: The group name.
    ///   - start: The lowest ID, `"-"` (the default) for the lowest possible.
    ///   - end: The highest ID, `"+"` (the default) for the highest possible.
    ///   - count: The most entries to return.
    ///   - consumer: Only this consumer's entries, if given.
    ///   - minIdleTime: Only entries idle at least this long, if given.
    /// - Returns: Each entry's ID, consumer, idle time and delivery count.
    /// - Throws: ``RedisError``.
    public func xpending(
        _ key: String,
        group: String,
        start: String = "-",
        end: String = "+",
        count: Int,
        consumer: String? = nil,
        minIdleTime: Duration? = nil
    ) async throws(RedisError) -> [StreamPendingEntry] {
        var command = ["XPENDING", key, group]
        if let minIdleTime {
            command += ["IDLE", String(max(0, minIdleTime.wholeMilliseconds))]
        }
        command += [start, end, String(count)]
        if let consumer {
            command.append(consumer)
        }
        return try ReplyDecoding.pendingEntries(try await self.send(command: command))
    }

    /// `XPENDING key group id id 1` for each of `ids`, pipelined in one flush: the exact pending
    /// record (owner, idle time, delivery count) of each entry.
    /// - Parameters:
    ///   - key: The stream key.
    ///   - group: The group name.
    ///   - ids: The entry IDs.
    /// - Returns: The records of the entries that are pending, in the order of `ids`; IDs that
    ///   are not pending are left out.
    /// - Throws: ``RedisError``; an error reply (such as `NOGROUP`) is thrown.
    public func xpending(_ key: String, group: String, ids: [String]) async throws(RedisError) -> [StreamPendingEntry] {
        guard !ids.isEmpty else { return [] }
        let replies = try await self.pipeline(ids.map { ["XPENDING", key, group, $0, $0, "1"] })
        var result: [StreamPendingEntry] = []
        result.reserveCapacity(ids.count)
        for reply in replies {
            result += try ReplyDecoding.pendingEntries(try reply.throwingIfError())
        }
        return result
    }

    /// `XRANGE key start end [COUNT n]`: entries in ID order.
    /// - Parameters:
    ///   - key: The stream key.
    ///   - start: The lowest ID, `"-"` (the default) for the lowest possible.
    ///   - end: The highest ID, `"+"` (the default) for the highest possible.
    ///   - count: The most entries to return, or `nil` for all.
    /// - Returns: The entries, oldest first; empty if the key does not exist.
    /// - Throws: ``RedisError``.
    public func xrange(_ key: String, start: String = "-", end: String = "+", count: Int? = nil) async throws(RedisError) -> [StreamEntry] {
        var command = ["XRANGE", key, start, end]
        if let count {
            command += ["COUNT", String(count)]
        }
        return try ReplyDecoding.entries(try await self.send(command: command), "XRANGE")
    }

    /// `XREVRANGE key end start [COUNT count]`: entries newest first.
    /// - Parameters:
    ///   - key: The stream key.
    ///   - end: The highest ID (`"+"`: the newest).
    ///   - start: The lowest ID (`"-"`: the oldest).
    ///   - count: At most this many entries.
    /// - Returns: The entries, newest first.
    /// - Throws: ``RedisError``.
    public func xrevrange(_ key: String, end: String = "+", start: String = "-", count: Int? = nil) async throws(RedisError) -> [StreamEntry] {
        var command = ["XREVRANGE", key, end, start]
        if let count {
            command += ["COUNT", String(count)]
        }
        return try ReplyDecoding.entries(try await self.send(command: command), "XREVRANGE")
    }

    /// `XINFO GROUPS key`.
    /// - Parameter key: The stream key.
    /// - Returns: The stream's consumer groups.
    /// - Throws: ``RedisError``.
    public func xinfoGroups(_ key: String) async throws(RedisError) -> [StreamGroupInfo] {
        try ReplyDecoding.groups(try await self.send(command: ["XINFO", "GROUPS", key]))
    }

    /// `XINFO CONSUMERS key group`.
    /// - Parameters:
    ///   - key: The stream key.
    ///   - group: The group name.
    /// - Returns: The group's consumers with their pending counts and idle times.
    /// - Throws: ``RedisError``, such as ``RedisError/noGroup(message:)``.
    public func xinfoConsumers(_ key: String, group: String) async throws(RedisError) -> [StreamConsumerInfo] {
        try ReplyDecoding.consumers(try await self.send(command: ["XINFO", "CONSUMERS", key, group]))
    }

    /// `XINFO STREAM key`.
    /// - Parameter key: The stream key.
    /// - Returns: Length, IDs, group count and first/last entries.
    /// - Throws: ``RedisError``.
    public func xinfoStream(_ key: String) async throws(RedisError) -> StreamInfo {
        try ReplyDecoding.streamInfo(try await self.send(command: ["XINFO", "STREAM", key]))
    }
}
