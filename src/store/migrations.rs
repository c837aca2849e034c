//! Schema migrations, applied in order and tracked with `PRAGMA user_version`.

use rusqlite::Connection;

use super::StoreError;

const MIGRATIONS: &[&str] = &[
    // 1: tenancy, keys, ingest log, idempotency.
    "CREATE TABLE companies (
        id         TEXT PRIMARY KEY,
        name       TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE api_keys (
        id                     TEXT PRIMARY KEY,      -- the public X-API-Key value
        company_id             TEXT NOT NULL REFERENCES companies(id),
        name                   TEXT NOT NULL,
        secret_enc             BLOB NOT NULL,
        previous_secret_enc    BLOB,
        previous_expires_at    INTEGER,
        square_key_enc         BLOB,
        quickbooks_token_enc   BLOB,
        dynamics_key_enc       BLOB,
        body_only_signing      INTEGER NOT NULL DEFAULT 0,
        per_minute             INTEGER,
        per_hour               INTEGER,
        api_token_hash         TEXT UNIQUE,
        created_at             INTEGER NOT NULL,
        revoked_at             INTEGER
    );
    CREATE INDEX api_keys_company ON api_keys(company_id);
    CREATE TABLE ingest_log (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        received_at  INTEGER NOT NULL,               -- unix milliseconds
        request_id   TEXT NOT NULL,
        company_id   TEXT,
        key_id       TEXT,
        client_addr  TEXT,
        source       TEXT,
        event_type   TEXT,
        status       INTEGER NOT NULL,
        error_code   TEXT,
        latency_us   INTEGER NOT NULL,
        event_id     TEXT,
        record_id    TEXT
    );
    CREATE TABLE idempotency (
        key_id      TEXT NOT NULL,
        idem_key    TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        status      INTEGER NOT NULL,
        body        BLOB NOT NULL,              -- the answer, replayed as is
        request_hash TEXT NOT NULL,             -- SHA-256 of the request body it answered
        PRIMARY KEY (key_id, idem_key)
    );",
    // 2: the company's records (one JSON document per record, found by its natural key),
    // skills and work types, counters, and the change log that is also the outbox.
    "CREATE TABLE records (
        company_id   TEXT NOT NULL,
        kind         TEXT NOT NULL,                 -- work_order, project, employee, ...
        natural_key  TEXT NOT NULL,                 -- lower-cased identifying fields
        record_id    TEXT NOT NULL UNIQUE,
        data         TEXT NOT NULL,                 -- canonical JSON
        created_at   INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL,
        created_by   TEXT,
        updated_by   TEXT,
        PRIMARY KEY (company_id, kind, natural_key)
    );
    CREATE TABLE skills (
        company_id  TEXT NOT NULL,
        name        TEXT NOT NULL COLLATE NOCASE,
        created_at  INTEGER NOT NULL,
        PRIMARY KEY (company_id, name)
    );
    CREATE TABLE work_types (
        company_id          TEXT NOT NULL,
        code                TEXT NOT NULL COLLATE NOCASE,
        name                TEXT NOT NULL,
        billable            INTEGER NOT NULL,
        requires_work_order INTEGER NOT NULL,
        multiplier          REAL NOT NULL DEFAULT 1.0,
        is_default          INTEGER NOT NULL DEFAULT 0,
        active              INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (company_id, code)
    );
    CREATE TABLE counters (
        company_id  TEXT NOT NULL,
        name        TEXT NOT NULL,
        value       INTEGER NOT NULL,
        PRIMARY KEY (company_id, name)
    );
    CREATE TABLE events (
        seq            INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id       TEXT NOT NULL UNIQUE,
        company_id     TEXT NOT NULL,
        origin_key_id  TEXT,                        -- the API key whose request caused it
        inbound_event_id TEXT,                      -- the evt_ id of that request
        event_type     TEXT NOT NULL,
        entity         TEXT NOT NULL,
        record_id      TEXT NOT NULL,
        project_code   TEXT,                        -- for subscriptions' project filters
        payload        TEXT NOT NULL,               -- the outbound envelope, as sent
        created_at     INTEGER NOT NULL             -- unix milliseconds
    );
    CREATE INDEX events_company ON events(company_id, seq);
    CREATE INDEX events_record ON events(record_id, seq);",
    // 3: outbound subscriptions and their deliveries (one row per event and subscription,
    // including the echoes skipped), each attempt, and the fan-out cursor.
    "CREATE TABLE subscriptions (
        id                   TEXT PRIMARY KEY,
        company_id           TEXT NOT NULL,
        owner_key_id         TEXT NOT NULL,
        name                 TEXT NOT NULL,
        url                  TEXT NOT NULL,
        events               TEXT NOT NULL,         -- JSON array of patterns
        secret_enc           BLOB NOT NULL,
        payload              TEXT NOT NULL,         -- full | thin
        projects             TEXT,                  -- JSON array of project codes, or NULL
        basic_auth_enc       BLOB,
        rate_limit           REAL,                  -- deliveries per second, or NULL
        verify_url           INTEGER NOT NULL DEFAULT 0,
        status               TEXT NOT NULL,         -- active | failing | disabled
        disabled_reason      TEXT,
        consecutive_failures INTEGER NOT NULL DEFAULT 0,
        created_at           INTEGER NOT NULL,
        updated_at           INTEGER NOT NULL,
        UNIQUE (company_id, name)
    );
    CREATE TABLE deliveries (
        id               TEXT PRIMARY KEY,
        subscription_id  TEXT NOT NULL,
        company_id       TEXT NOT NULL,
        event_seq        INTEGER NOT NULL,
        event_id         TEXT NOT NULL,
        event_type       TEXT NOT NULL,
        record_id        TEXT NOT NULL,
        status           TEXT NOT NULL,             -- pending | in_flight | paused | succeeded | failed | skipped_echo
        attempts         INTEGER NOT NULL DEFAULT 0,
        next_attempt_at  INTEGER,                   -- unix ms
        lease_until      INTEGER,
        last_status_code INTEGER,
        last_error       TEXT,
        last_response_ms INTEGER,
        created_at       INTEGER NOT NULL,
        updated_at       INTEGER NOT NULL
    );
    CREATE INDEX deliveries_due ON deliveries(status, next_attempt_at, event_seq);
    CREATE INDEX deliveries_order ON deliveries(subscription_id, record_id, event_seq);
    CREATE INDEX deliveries_event ON deliveries(subscription_id, event_seq);
    CREATE TABLE delivery_attempts (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        delivery_id  TEXT NOT NULL,
        attempt      INTEGER NOT NULL,
        at           INTEGER NOT NULL,
        status_code  INTEGER,
        response_ms  INTEGER NOT NULL,
        outcome      TEXT NOT NULL,
        error        TEXT
    );
    CREATE INDEX delivery_attempts_delivery ON delivery_attempts(delivery_id, attempt);
    CREATE TABLE cursors (
        name   TEXT PRIMARY KEY,
        value  INTEGER NOT NULL
    );",
];

pub(super) fn run(conn: &mut Connection) -> Result<(), StoreError> {
    // IMMEDIATE so that two processes starting at once do not both migrate.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let current: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (index, sql) in MIGRATIONS.iter().enumerate() {
        let version = index as i64 + 1;
        if version > current {
            tx.execute_batch(sql)?;
            tracing::info!(version, "applied database migration");
        }
    }
    tx.execute_batch(&format!("PRAGMA user_version = {}", latest_version()))?;
    tx.commit()?;
    Ok(())
}

pub fn latest_version() -> i64 {
    MIGRATIONS.len() as i64
}
