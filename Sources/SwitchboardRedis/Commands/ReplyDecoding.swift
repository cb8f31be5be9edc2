/// Turns raw replies into the typed results of the stream commands. Handles both the
/// RESP2 and the RESP3 shapes of each reply.
enum ReplyDecoding {
    static func unexpected(_ command: String, _ reply: RESPValue) -> RedisError {
        let text = reply.description
        return .unexpectedReply(command: command, reply: text.count > 200 ? String(text.prefix(200)) + "…" : text)
    }

    static func string(_ value: RESPValue, _ command: String) throws(RedisError) -> String {
        guard let string = value.string else { throw unexpected(command, value) }
        return string
    }

    static func optionalString(_ value: RESPValue?) -> String? {
        guard let value, !value.isNull else { return nil }
        return value.string
    }

    static func int(_ value: RESPValue, _ command: String) throws(RedisError) -> Int {
        guard let int = value.int else { throw unexpected(command, value) }
        return int
    }

    /// One entry: `[id, [field, value, …]]`; the field list is null for deleted entries.
    static func entry(_ value: RESPValue, _ command: String) throws(RedisError) -> StreamEntry {
        guard let pair = value.array, pair.count == 2, let id = pair[0].string else {
            throw unexpected(command, value)
        }
        if pair[1].isNull {
            return StreamEntry(id: id, fields: [], isDeleted: true)
        }
        // The field list is a flat array; a server in RESP3 could also send it as a map.
        guard let entries = pair[1].mapEntries else { throw unexpected(command, value) }
        var fields: [StreamField] = []
        fields.reserveCapacity(entries.count)
        for entry in entries {
            guard let name = entry.key.string, let fieldValue = entry.value.string else {
                throw unexpected(command, value)
            }
            fields.append(StreamField(name, fieldValue))
        }
        return StreamEntry(id: id, fields: fields)
    }

    static func entries(_ value: RESPValue, _ command: String) throws(RedisError) -> [StreamEntry] {
        if value.isNull { return [] }
        guard let list = value.array else { throw unexpected(command, value) }
        var result: [StreamEntry] = []
        result.reserveCapacity(list.count)
        for element in list {
            result.append(try entry(element, command))
        }
        return result
    }

    /// `XREAD`/`XREADGROUP`: RESP2 `[[stream, entries], …]`, RESP3 `{stream: entries, …}`,
    /// or null when a blocking read timed out.
    static func streams(_ value: RESPValue, _ command: String) throws(RedisError) -> [(stream: String, entries: [StreamEntry])] {
        let value = value.withoutAttributes
        if value.isNull { return [] }
        var pairs: [RESPMapEntry]
        switch value {
        case .map(let entries):
            pairs = entries
        case .array(let list):
            pairs = []
            pairs.reserveCapacity(list.count)
            for element in list {
                guard let pair = element.array, pair.count == 2 else { throw unexpected(command, value) }
                pairs.append(RESPMapEntry(key: pair[0], value: pair[1]))
            }
        default:
            throw unexpected(command, value)
        }
        var result: [(stream: String, entries: [StreamEntry])] = []
        result.reserveCapacity(pairs.count)
        for pair in pairs {
            guard let name = pair.key.string else { throw unexpected(command, value) }
            result.append((name, try entries(pair.value, command)))
        }
        return result
    }

    /// `XAUTOCLAIM`: `[cursor, entries, deleted-ids]` (the last element since Redis 7).
    static func autoClaim(_ value: RESPValue) throws(RedisError) -> StreamAutoClaimResult {
        guard let parts = value.array, parts.count >= 2, let cursor = parts[0].string else {
            throw unexpected("XAUTOCLAIM", value)
        }
        let claimed = try entries(parts[1], "XAUTOCLAIM")
        var deleted: [String] = []
        if parts.count >= 3 {
            guard let list = parts[2].array else { throw unexpected("XAUTOCLAIM", value) }
            for element in list {
                deleted.append(try string(element, "XAUTOCLAIM"))
            }
        }
        return StreamAutoClaimResult(nextCursor: cursor, entries: claimed, deletedIDs: deleted)
    }

    /// `XPENDING key group`: `[count, smallest, greatest, [[consumer, count], …]]`,
    /// with nulls when nothing is pending.
    static func pendingSummary(_ value: RESPValue) throws(RedisError) -> StreamPendingSummary {
        guard let parts = value.array, parts.count == 4 else { throw unexpected("XPENDING", value) }
        let count = try int(parts[0], "XPENDING")
        var consumers: [StreamConsumerPendingCount] = []
        if !parts[3].isNull {
            guard let list = parts[3].array else { throw unexpected("XPENDING", value) }
            for element in list {
                guard let pair = element.array, pair.count == 2, let name = pair[0].string,
                    let pending = pair[1].int
                else { throw unexpected("XPENDING", value) }
                consumers.append(StreamConsumerPendingCount(name: name, pending: pending))
            }
        }
        return StreamPendingSummary(
            count: count,
            smallestID: optionalString(parts[1]),
            greatestID: optionalString(parts[2]),
            consumers: consumers
        )
    }

    /// Extended `XPENDING`: `[[id, consumer, idle-ms, delivery-count], …]`.
    static func pendingEntries(_ value: RESPValue) throws(RedisError) -> [StreamPendingEntry] {
        if value.isNull { return [] }
        guard let list = value.array else { throw unexpected("XPENDING", value) }
        var result: [StreamPendingEntry] = []
        result.reserveCapacity(list.count)
        for element in list {
            guard let parts = element.array, parts.count == 4, let id = parts[0].string,
                let consumer = parts[1].string, let idle = parts[2].int64, let deliveries = parts[3].int
            else { throw unexpected("XPENDING", value) }
            result.append(StreamPendingEntry(id: id, consumer: consumer, idleMilliseconds: idle, deliveryCount: deliveries))
        }
        return result
    }

    /// `XINFO GROUPS`: a list of maps (RESP3) or flat key/value arrays (RESP2).
    static func groups(_ value: RESPValue) throws(RedisError) -> [StreamGroupInfo] {
        guard let list = value.array else { throw unexpected("XINFO GROUPS", value) }
        var result: [StreamGroupInfo] = []
        result.reserveCapacity(list.count)
        for element in list {
            guard let fields = element.stringKeyedMap,
                let name = fields["name"]?.string,
                let consumers = fields["consumers"]?.int,
                let pending = fields["pending"]?.int,
                let lastDelivered = fields["last-delivered-id"]?.string
            else { throw unexpected("XINFO GROUPS", value) }
            result.append(
                StreamGroupInfo(
                    name: name,
                    consumers: consumers,
                    pending: pending,
                    lastDeliveredID: lastDelivered,
                    entriesRead: fields["entries-read"]?.int,
                    lag: fields["lag"]?.int
                )
            )
        }
        return result
    }

    /// `XINFO CONSUMERS`: an array of maps (RESP3) or flat key/value arrays (RESP2).
    static func consumers(_ value: RESPValue) throws(RedisError) -> [StreamConsumerInfo] {
        guard let list = value.array else { throw unexpected("XINFO CONSUMERS", value) }
        var result: [StreamConsumerInfo] = []
        result.reserveCapacity(list.count)
        for element in list {
            guard let fields = element.stringKeyedMap, let name = fields["name"]?.string, let pending = fields["pending"]?.int,
                let idle = fields["idle"]?.int
            else { throw unexpected("XINFO CONSUMERS", value) }
            result.append(StreamConsumerInfo(name: name, pending: pending, idleMilliseconds: idle, inactiveMilliseconds: fields["inactive"]?.int))
        }
        return result
    }

    /// `XINFO STREAM`: a map (RESP3) or flat key/value array (RESP2).
    static func streamInfo(_ value: RESPValue) throws(RedisError) -> StreamInfo {
        guard let fields = value.stringKeyedMap,
            let length = fields["length"]?.int,
            let lastGenerated = fields["last-generated-id"]?.string,
            let groups = fields["groups"]?.int
        else { throw unexpected("XINFO STREAM", value) }
        func optionalEntry(_ key: String) throws(RedisError) -> StreamEntry? {
            guard let raw = fields[key], !raw.isNull else { return nil }
            return try entry(raw, "XINFO STREAM")
        }
        return StreamInfo(
            length: length,
            radixTreeKeys: fields["radix-tree-keys"]?.int ?? 0,
            radixTreeNodes: fields["radix-tree-nodes"]?.int ?? 0,
            lastGeneratedID: lastGenerated,
            maxDeletedEntryID: optionalString(fields["max-deleted-entry-id"]),
            entriesAdded: fields["entries-added"]?.int,
            recordedFirstEntryID: optionalString(fields["recorded-first-entry-id"]),
            groups: groups,
            firstEntry: try optionalEntry("first-entry"),
            lastEntry: try optionalEntry("last-entry")
        )
    }
}
