/// The embedded engine's tables, created or upgraded at open (`PRAGMA user_version` is the schema version).
///
/// A new file gets `v1` and then every upgrade in turn (`upgrades[n]` takes version n + 1 to n + 2), so new
/// and upgraded files have the same tables.
enum Schema {
    static var version: Int64 { Int64(1 + upgrades.count) }

    static let v1 = """
        CREATE TABLE communications (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            type TEXT NOT NULL,
            sender TEXT NOT NULL,
            recipient TEXT NOT NULL,
            msg TEXT NOT NULL,
            data TEXT NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            dispatch_seq INTEGER NOT NULL DEFAULT 1,
            dispatch_at INTEGER,
            provider TEXT,
            provider_message_id TEXT,
            error_code TEXT,
            error_message TEXT,
            idempotency_key TEXT UNIQUE,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            -- The status history, one JSON object a line, appended by each transition's own UPDATE.
            history TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX communications_dispatch ON communications(dispatch_at) WHERE dispatch_at IS NOT NULL;
        CREATE INDEX communications_provider_message ON communications(provider_message_id) WHERE provider_message_id IS NOT NULL;

        CREATE TABLE stream_entries (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            stream TEXT NOT NULL,
            fields TEXT NOT NULL,
            created_at INTEGER NOT NULL
        );
        CREATE INDEX stream_entries_stream ON stream_entries(stream, id);
        CREATE TABLE stream_groups (
            stream TEXT NOT NULL,
            grp TEXT NOT NULL,
            last_id INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (stream, grp)
        ) WITHOUT ROWID;
        CREATE TABLE stream_pending (
            stream TEXT NOT NULL,
            grp TEXT NOT NULL,
            entry_id INTEGER NOT NULL,
            consumer TEXT NOT NULL,
            lease_until INTEGER NOT NULL,
            deliveries INTEGER NOT NULL,
            PRIMARY KEY (stream, grp, entry_id)
        ) WITHOUT ROWID;
        -- No secondary indexes: a group's pending list is short (what its consumers hold), and every index
        -- here would be written twice per entry.

        CREATE TABLE search_communications (
            rowid INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            type TEXT NOT NULL,
            sender TEXT NOT NULL,
            recipient TEXT NOT NULL,
            msg TEXT NOT NULL,
            status TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        );
        CREATE INDEX search_communications_recipient ON search_communications(recipient);
        CREATE INDEX search_communications_created ON search_communications(created_at);
        CREATE VIRTUAL TABLE search_communications_fts USING fts5(
            msg, sender, recipient, content='search_communications', content_rowid='rowid', tokenize='unicode61'
        );

        CREATE TABLE search_logs (
            rowid INTEGER PRIMARY KEY,
            communication_id TEXT NOT NULL,
            service TEXT NOT NULL,
            status TEXT NOT NULL,
            type TEXT NOT NULL,
            sender TEXT NOT NULL,
            recipient TEXT NOT NULL,
            msg TEXT NOT NULL,
            error TEXT,
            attempt INTEGER NOT NULL,
            provider TEXT,
            timestamp INTEGER NOT NULL
        );
        CREATE INDEX search_logs_communication ON search_logs(communication_id);
        -- Only `error` is indexed here: a log's msg is its communication's, found through search_communications_fts.
        CREATE VIRTUAL TABLE search_logs_fts USING fts5(
            error, content='search_logs', content_rowid='rowid', tokenize='unicode61'
        );
        -- The FTS indexes are filled in sets by SQLiteSearchIndex.refresh, not per row: how far each got.
        CREATE TABLE search_fts_state (name TEXT PRIMARY KEY, last_rowid INTEGER NOT NULL) WITHOUT ROWID;
        INSERT INTO search_fts_state VALUES ('communications', 0), ('logs', 0);

        CREATE TABLE sandbox_messages (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            communication_id TEXT NOT NULL,
            channel TEXT NOT NULL,
            sender TEXT NOT NULL,
            recipient TEXT NOT NULL,
            msg TEXT NOT NULL,
            subject TEXT,
            attempt INTEGER NOT NULL,
            provider_message_id TEXT NOT NULL,
            at INTEGER NOT NULL
        );
        """

    /// Version 2: the embedded search index can read the store's own rows (`SQLiteSearchIndex.Documents.storeRows`)
    /// instead of a copy per message: `communications` gets the indexes the copy had (recipient, creation time)
    /// and a full-text index of its own, filled in sets like the others. Adds indexes only: no table is rebuilt.
    static let v2 = """
        CREATE INDEX communications_recipient ON communications(recipient);
        CREATE INDEX communications_created ON communications(created_at);
        CREATE VIRTUAL TABLE communications_fts USING fts5(
            msg, sender, recipient, content='communications', content_rowid='seq', tokenize='unicode61'
        );
        INSERT INTO search_fts_state VALUES ('store', 0);
        """

    /// Version 3: the count of communications per channel and status, kept by the writer (one change per
    /// status and transaction, `Connection.countStatus`), so that the statistics read a few rows instead of
    /// counting the whole table (an upgraded file's counts are taken once, here); and each stream entry's
    /// number of field sets.
    static let v3 = """
        CREATE TABLE communication_counts (
            type TEXT NOT NULL,
            status TEXT NOT NULL,
            n INTEGER NOT NULL,
            PRIMARY KEY (type, status)
        ) WITHOUT ROWID;
        INSERT INTO communication_counts (type, status, n) SELECT type, status, count(*) FROM communications GROUP BY type, status;
        -- How many sets of fields an entry holds (see SQLiteQueue), so that a stream's length is a sum over its
        -- index, not a parse of every entry. (The table holds backlogs and dead letters only: a quick rebuild.)
        ALTER TABLE stream_entries ADD COLUMN sets INTEGER NOT NULL DEFAULT 1;
        UPDATE stream_entries SET sets = max(1, json_array_length(fields)) WHERE substr(fields, 1, 1) = '[' AND json_valid(fields);
        DROP INDEX stream_entries_stream;
        CREATE INDEX stream_entries_stream ON stream_entries(stream, id, sets);
        """

    /// Version 4: API keys (`SQLiteKeyStore`: only each secret's hash is kept), and attribution: each
    /// communication records the key that created it and whether it is a test message (a test key's), in the
    /// store's rows, the search copy and the log records.
    static let v4 = """
        CREATE TABLE api_keys (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            -- The scopes, comma-separated (send, read, admin).
            scopes TEXT NOT NULL,
            rate REAL,
            burst INTEGER,
            test INTEGER NOT NULL DEFAULT 0,
            -- Lowercase hex SHA-256 of the whole key; the key itself is never stored.
            secret_hash TEXT NOT NULL UNIQUE,
            created_at INTEGER NOT NULL,
            last_used_at INTEGER,
            revoked_at INTEGER
        ) WITHOUT ROWID;
        ALTER TABLE communications ADD COLUMN key_id TEXT;
        ALTER TABLE communications ADD COLUMN test INTEGER NOT NULL DEFAULT 0;
        -- No index on communications.key_id: `?key=` is answered from search_communications; one index less
        -- to maintain per keyed message on the single writer.
        ALTER TABLE search_communications ADD COLUMN key_id TEXT;
        CREATE INDEX search_communications_key ON search_communications(key_id) WHERE key_id IS NOT NULL;
        ALTER TABLE search_logs ADD COLUMN test INTEGER NOT NULL DEFAULT 0;
        """

    /// Version 5: tracing. Each communication keeps its trace context (W3C `traceparent`: the trace id every span,
    /// log line and log record of the message carries, and the router's span later spans descend from, so a retry
    /// an hour later joins the same trace); the embedded `communication-logs` keeps it with each record.
    static let v5 = """
        ALTER TABLE communications ADD COLUMN traceparent TEXT;
        ALTER TABLE search_logs ADD COLUMN traceparent TEXT;
        """

    /// Version 6: redrive. The failed messages by the time they failed (their last change), in an index of their
    /// own: `POST /api/v1/dead-letters/redrive` with a filter reads them without scanning every other message.
    static let v6 = """
        CREATE INDEX communications_failed ON communications(updated_at) WHERE status = 'failed';
        """

    /// Version 7: the status feed (`StatusFeed`, `status_stream`). Each row holds the status-change records of one
    /// transaction (a JSON array, like `log_stream`'s entries); a record's place is (row id, index). Rows are never
    /// consumed, only trimmed by age: AUTOINCREMENT, so an id is never handed out twice even once the feed is empty.
    static let v7 = """
        CREATE TABLE status_events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at INTEGER NOT NULL,
            sets INTEGER NOT NULL,
            records TEXT NOT NULL
        );
        """

    /// Version 8: status callbacks to clients (`SQLiteCallbackStore`, Standard Webhooks). Endpoints (with the secret
    /// that signs: it must be kept to sign, and is shown only once), one delivery per endpoint and status-feed event
    /// (the id holds both, so a page of the feed read twice inserts nothing twice), and the dispatcher's place in
    /// the feed, written in the transaction that inserts the deliveries it read.
    static let v8 = """
        CREATE TABLE callback_endpoints (
            id TEXT PRIMARY KEY,
            url TEXT NOT NULL,
            -- Comma-separated statuses and channels; '' = all.
            events TEXT NOT NULL,
            types TEXT NOT NULL,
            key_id TEXT,
            is_default INTEGER NOT NULL DEFAULT 0,
            description TEXT,
            enabled INTEGER NOT NULL DEFAULT 1,
            secret TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            failing_since INTEGER,
            disabled_reason TEXT
        ) WITHOUT ROWID;
        CREATE TABLE callback_deliveries (
            id TEXT PRIMARY KEY,
            endpoint_id TEXT NOT NULL,
            position TEXT NOT NULL,
            url TEXT NOT NULL,
            payload TEXT NOT NULL,
            event_type TEXT NOT NULL,
            communication_id TEXT NOT NULL,
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at INTEGER NOT NULL,
            since INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            last_status_code INTEGER,
            last_duration_ms INTEGER,
            last_error TEXT,
            -- The last attempts (CallbackAttempt.kept), a JSON array, oldest first.
            attempt_log TEXT NOT NULL DEFAULT '[]'
        ) WITHOUT ROWID;
        -- The sender's claims: only pending deliveries are in it.
        CREATE INDEX callback_deliveries_due ON callback_deliveries(next_attempt_at) WHERE state = 'pending';
        -- Retention (SWITCHBOARD_RETENTION_DAYS) deletes finished deliveries by their last change.
        CREATE INDEX callback_deliveries_done ON callback_deliveries(updated_at) WHERE state != 'pending';
        -- The list of an endpoint's deliveries is a range of the primary key (ids start with the endpoint's id).
        CREATE TABLE callback_cursor (
            name TEXT PRIMARY KEY,
            major INTEGER NOT NULL,
            minor INTEGER NOT NULL
        ) WITHOUT ROWID;
        """

    /// Email attachments (`SQLiteAttachmentStore`): each file once, under the SHA-256 of its bytes.
    static let attachmentsUpgrade = """
        CREATE TABLE attachments (
            sha256 TEXT PRIMARY KEY,
            size INTEGER NOT NULL,
            bytes BLOB NOT NULL,
            created_at INTEGER NOT NULL
        ) WITHOUT ROWID;
        """

    /// Suppression list and metadata search (issue 19): `suppressions` (`SQLiteSuppressionStore`), one row per channel
    /// and normalised recipient; and each communication's `data.metadata` pairs in a side table indexed on
    /// (key, value), for `GET /api/v1/communications?metadata.<key>=<value>`: `communication_metadata` for the store's
    /// rows (filled by `SQLiteStore.createOne`, the one writer of new rows), `search_metadata` for the search
    /// copy (`search_communications`, written by `SQLiteSearchIndex.upsert`, which also keeps the object whole in
    /// its `metadata` column to render it).
    static let suppressionsAndMetadata = """
        CREATE TABLE suppressions (
            channel TEXT NOT NULL,
            recipient TEXT NOT NULL,
            reason TEXT NOT NULL,
            source TEXT NOT NULL,
            detail TEXT,
            created_at INTEGER NOT NULL,
            key_id TEXT,
            PRIMARY KEY (channel, recipient)
        ) WITHOUT ROWID;
        CREATE TABLE communication_metadata (
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            seq INTEGER NOT NULL,
            PRIMARY KEY (key, value, seq)
        ) WITHOUT ROWID;
        CREATE INDEX communication_metadata_seq ON communication_metadata(seq);
        -- Filled by `SQLiteStore.createOne` for a message that has metadata (no insert trigger: a trigger's WHEN
        -- ran for every message on the single writer and cost 4 % of the accepts).
        CREATE TRIGGER communications_metadata_delete AFTER DELETE ON communications
        WHEN instr(old.data, '"metadata"') > 0
        BEGIN
            DELETE FROM communication_metadata WHERE seq = old.seq;
        END;
        ALTER TABLE search_communications ADD COLUMN metadata TEXT;
        CREATE TABLE search_metadata (
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            rid INTEGER NOT NULL,
            PRIMARY KEY (key, value, rid)
        ) WITHOUT ROWID;
        CREATE INDEX search_metadata_rid ON search_metadata(rid);
        CREATE TRIGGER search_communications_metadata_delete AFTER DELETE ON search_communications
        WHEN old.metadata IS NOT NULL
        BEGIN
            DELETE FROM search_metadata WHERE rid = old.rowid;
        END;
        """

    /// Message templates (`SQLiteTemplateStore`): one row per saved version of a (name, locale), never changed
    /// but for `archived`.
    static let templates = """
        CREATE TABLE templates (
            name TEXT NOT NULL,
            locale TEXT NOT NULL,
            version INTEGER NOT NULL,
            channel TEXT NOT NULL,
            subject TEXT,
            body TEXT NOT NULL,
            html TEXT,
            archived INTEGER NOT NULL DEFAULT 0,
            created_at INTEGER NOT NULL,
            key_id TEXT,
            PRIMARY KEY (name, locale, version)
        ) WITHOUT ROWID;
        """

    /// `upgrades[n]` takes the schema from version n + 1 to n + 2.
    static let upgrades = [v2, v3, v4, v5, v6, v7, v8, attachmentsUpgrade, suppressionsAndMetadata, templates]

    static func migrate(_ c: Connection) throws {
        let current = try c.scalar("PRAGMA user_version") ?? 0
        guard current <= version else {
            throw SQLiteError(code: 1, message: "the database's schema version \(current) is newer than this build's (\(version)); use a newer switchboard")
        }
        guard current < version else { return }
        try c.execute("BEGIN IMMEDIATE")
        do {
            // Re-check under the write lock: another process may have migrated meanwhile.
            let found = try c.scalar("PRAGMA user_version") ?? 0
            if found < 1 { try c.execute(v1) }
            for (i, upgrade) in upgrades.enumerated() where found < Int64(i + 2) {
                try c.execute(upgrade)
            }
            if found < version { try c.execute("PRAGMA user_version = \(version)") }
            try c.execute("COMMIT")
        } catch {
            try? c.execute("ROLLBACK")
            throw error
        }
    }
}
