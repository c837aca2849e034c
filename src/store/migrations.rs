//! Schema migrations for both backends, applied in order and recorded in `schema_migrations`.
//!
//! Each migration is written once in SQL both databases accept, with three type placeholders
//! where they differ: `{serial}` (an auto-increasing integer primary key), `{blob}` (bytes) and
//! `{json}` (a JSON document kept as sent, key order included). A migration may add statements
//! for one backend only (SQLite's FTS5, PostgreSQL's trigram indexes).

use super::StoreError;
use super::sql::{Conn, Dialect, sql_params};

struct Migration {
    both: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    // 1: tenancy, keys, ingest log, idempotency; records, skills, work types, counters and the
    // event log (also the outbox); subscriptions, deliveries and attempts.
    Migration {
        both: "CREATE TABLE companies (
            id         TEXT PRIMARY KEY,
            name       TEXT NOT NULL UNIQUE,
            created_at BIGINT NOT NULL
        );
        CREATE TABLE api_keys (
            id                     TEXT PRIMARY KEY,      -- the public X-API-Key value
            company_id             TEXT NOT NULL REFERENCES companies(id),
            name                   TEXT NOT NULL,
            secret_enc             {blob} NOT NULL,
            previous_secret_enc    {blob},
            previous_expires_at    BIGINT,
            square_key_enc         {blob},
            quickbooks_token_enc   {blob},
            dynamics_key_enc       {blob},
            body_only_signing      BOOLEAN NOT NULL DEFAULT FALSE,
            per_minute             BIGINT,
            per_hour               BIGINT,
            api_token_hash         TEXT UNIQUE,
            created_at             BIGINT NOT NULL,
            revoked_at             BIGINT
        );
        CREATE INDEX api_keys_company ON api_keys(company_id);
        CREATE TABLE ingest_log (
            id           {serial},
            received_at  BIGINT NOT NULL,              -- unix milliseconds
            request_id   TEXT NOT NULL,
            company_id   TEXT,
            key_id       TEXT,
            client_addr  TEXT,
            source       TEXT,
            event_type   TEXT,
            status       BIGINT NOT NULL,
            error_code   TEXT,
            latency_us   BIGINT NOT NULL,
            event_id     TEXT,
            record_id    TEXT
        );
        -- Every filter of the log (REST: always within a company; CLI: across companies) walks
        -- one of these backwards from the newest entry.
        CREATE INDEX ingest_log_company ON ingest_log(company_id, id);
        CREATE INDEX ingest_log_company_status ON ingest_log(company_id, status, id);
        CREATE INDEX ingest_log_company_type ON ingest_log(company_id, event_type, id);
        CREATE INDEX ingest_log_key ON ingest_log(key_id, id);
        CREATE INDEX ingest_log_status ON ingest_log(status, id);
        CREATE INDEX ingest_log_type ON ingest_log(event_type, id);
        CREATE INDEX ingest_log_received ON ingest_log(received_at);
        CREATE TABLE idempotency (
            key_id       TEXT NOT NULL,
            idem_key     TEXT NOT NULL,
            created_at   BIGINT NOT NULL,            -- unix seconds
            status       BIGINT NOT NULL,
            body         {blob} NOT NULL,            -- the answer, replayed as is
            request_hash TEXT NOT NULL,              -- SHA-256 of the request body it answered
            PRIMARY KEY (key_id, idem_key)
        );
        CREATE INDEX idempotency_created ON idempotency(created_at);
        CREATE TABLE records (
            company_id   TEXT NOT NULL,
            kind         TEXT NOT NULL,              -- work_order, project, employee, ...
            natural_key  TEXT NOT NULL,              -- lower-cased identifying fields
            record_id    TEXT NOT NULL UNIQUE,
            data         {json} NOT NULL,            -- canonical JSON
            created_at   BIGINT NOT NULL,
            updated_at   BIGINT NOT NULL,
            created_by   TEXT,
            updated_by   TEXT,
            PRIMARY KEY (company_id, kind, natural_key)
        );
        CREATE TABLE skills (
            company_id  TEXT NOT NULL,
            name_key    TEXT NOT NULL,               -- lower-cased name: skills match ignoring case
            name        TEXT NOT NULL,
            created_at  BIGINT NOT NULL,
            PRIMARY KEY (company_id, name_key)
        );
        CREATE TABLE work_types (
            company_id          TEXT NOT NULL,
            code                TEXT NOT NULL,       -- upper-cased
            name                TEXT NOT NULL,
            billable            BOOLEAN NOT NULL,
            requires_work_order BOOLEAN NOT NULL,
            multiplier          DOUBLE PRECISION NOT NULL DEFAULT 1.0,
            is_default          BOOLEAN NOT NULL DEFAULT FALSE,
            active              BOOLEAN NOT NULL DEFAULT TRUE,
            PRIMARY KEY (company_id, code)
        );
        CREATE TABLE counters (
            company_id  TEXT NOT NULL,
            name        TEXT NOT NULL,
            value       BIGINT NOT NULL,
            PRIMARY KEY (company_id, name)
        );
        CREATE TABLE events (
            seq              {serial},
            event_id         TEXT NOT NULL UNIQUE,
            company_id       TEXT NOT NULL,
            origin_key_id    TEXT,                   -- the API key whose request caused it
            inbound_event_id TEXT,                   -- the evt_ id of that request
            event_type       TEXT NOT NULL,
            entity           TEXT NOT NULL,
            record_id        TEXT NOT NULL,
            project_code     TEXT,                   -- for subscriptions' project filters
            payload          {json} NOT NULL,        -- the outbound envelope, as sent
            created_at       BIGINT NOT NULL         -- unix milliseconds
        );
        CREATE INDEX events_company ON events(company_id, seq);
        CREATE INDEX events_record ON events(record_id, seq);
        CREATE INDEX events_created ON events(created_at);
        CREATE TABLE subscriptions (
            id                   TEXT PRIMARY KEY,
            company_id           TEXT NOT NULL,
            owner_key_id         TEXT NOT NULL,
            name                 TEXT NOT NULL,
            url                  TEXT NOT NULL,
            events               TEXT NOT NULL,      -- JSON array of patterns
            secret_enc           {blob} NOT NULL,
            payload              TEXT NOT NULL,      -- full | thin
            projects             TEXT,               -- JSON array of project codes, or NULL
            basic_auth_enc       {blob},
            rate_limit           DOUBLE PRECISION,   -- deliveries per second, or NULL
            verify_url           BOOLEAN NOT NULL DEFAULT FALSE,
            status               TEXT NOT NULL,      -- active | failing | disabled
            disabled_reason      TEXT,
            consecutive_failures BIGINT NOT NULL DEFAULT 0,
            created_at           BIGINT NOT NULL,
            updated_at           BIGINT NOT NULL,
            UNIQUE (company_id, name)
        );
        CREATE TABLE deliveries (
            id               TEXT PRIMARY KEY,
            subscription_id  TEXT NOT NULL,
            company_id       TEXT NOT NULL,
            event_seq        BIGINT NOT NULL,
            event_id         TEXT NOT NULL,
            event_type       TEXT NOT NULL,
            record_id        TEXT NOT NULL,
            status           TEXT NOT NULL,
            attempts         BIGINT NOT NULL DEFAULT 0,
            next_attempt_at  BIGINT,                 -- unix ms
            lease_until      BIGINT,
            last_status_code BIGINT,
            last_error       TEXT,
            last_response_ms BIGINT,
            created_at       BIGINT NOT NULL,
            updated_at       BIGINT NOT NULL
        );
        CREATE INDEX deliveries_due ON deliveries(status, next_attempt_at, event_seq);
        CREATE INDEX deliveries_order ON deliveries(subscription_id, record_id, event_seq);
        CREATE INDEX deliveries_event ON deliveries(subscription_id, event_seq);
        CREATE INDEX deliveries_company ON deliveries(company_id, event_seq);
        CREATE INDEX deliveries_created ON deliveries(created_at);
        CREATE TABLE delivery_attempts (
            id           {serial},
            delivery_id  TEXT NOT NULL,
            attempt      BIGINT NOT NULL,
            at           BIGINT NOT NULL,
            status_code  BIGINT,
            response_ms  BIGINT NOT NULL,
            outcome      TEXT NOT NULL,
            error        TEXT
        );
        CREATE INDEX delivery_attempts_delivery ON delivery_attempts(delivery_id, attempt);
        CREATE TABLE cursors (
            name   TEXT PRIMARY KEY,
            value  BIGINT NOT NULL
        );
        -- A row written and undone by the readiness probe: can the database take a write?
        CREATE TABLE write_probe (
            id      BIGINT PRIMARY KEY,
            filler  {blob}
        );",
        sqlite: "",
        postgres: "",
    },
    // 2: facts about the database itself, e.g. the master key's check value (a known text
    // sealed with the key), so that a start with another key is refused.
    Migration {
        both: "CREATE TABLE meta (
            name   TEXT PRIMARY KEY,
            value  {blob} NOT NULL
        );",
        sqlite: "",
        postgres: "",
    },
    // 3: outbound delivery that follows a cursor per subscription over the published order
    // of events; leases so that several nodes share the work; every attempt on record;
    // outbound secrets that rotate with an overlap.
    Migration {
        both: "ALTER TABLE events ADD COLUMN position BIGINT;
        ALTER TABLE events ADD COLUMN about_subscription_id TEXT;
        CREATE UNIQUE INDEX events_position ON events(position);
        CREATE INDEX events_company_position ON events(company_id, position);
        CREATE INDEX events_unpublished ON events(seq) WHERE position IS NULL;
        ALTER TABLE subscriptions ADD COLUMN cursor_position BIGINT NOT NULL DEFAULT 0;
        ALTER TABLE subscriptions ADD COLUMN lease_owner TEXT;
        ALTER TABLE subscriptions ADD COLUMN lease_until BIGINT;
        ALTER TABLE subscriptions ADD COLUMN previous_secret_enc {blob};
        ALTER TABLE subscriptions ADD COLUMN previous_secret_until BIGINT;
        DROP INDEX deliveries_due;
        DROP INDEX deliveries_order;
        -- Only rows still to be sent are in these two, so they stay small.
        CREATE INDEX deliveries_due ON deliveries(next_attempt_at, event_seq)
            WHERE status = 'pending';
        CREATE INDEX deliveries_unfinished ON deliveries(subscription_id, record_id, event_seq)
            WHERE status IN ('pending', 'in_flight', 'paused');
        CREATE INDEX deliveries_leased ON deliveries(lease_until) WHERE status = 'in_flight';
        ALTER TABLE delivery_attempts ADD COLUMN error_kind TEXT;
        ALTER TABLE delivery_attempts ADD COLUMN request_headers TEXT;
        ALTER TABLE delivery_attempts ADD COLUMN response_headers TEXT;
        ALTER TABLE delivery_attempts ADD COLUMN response_body TEXT;
        DROP TABLE cursors;",
        sqlite: "",
        postgres: "",
    },
    // 4: search indexes over the searchable fields of projects and work orders.
    Migration {
        both: "CREATE TABLE search_values (
            id           {serial},
            record_id    TEXT NOT NULL,
            field        TEXT NOT NULL,
            company_id   TEXT NOT NULL,
            kind         TEXT NOT NULL,
            scope        TEXT,                    -- a work order's project code
            value        TEXT NOT NULL,
            value_lower  TEXT NOT NULL            -- trimmed, lower case: what searches compare
        );
        CREATE UNIQUE INDEX search_values_record ON search_values(record_id, field);
        CREATE INDEX search_values_exact ON search_values(company_id, kind, field, value_lower);",
        sqlite: "CREATE VIRTUAL TABLE search_grams USING fts5(
            value_lower, content = 'search_values', content_rowid = 'id', tokenize = 'trigram');
        CREATE TRIGGER search_values_inserted AFTER INSERT ON search_values BEGIN
            INSERT INTO search_grams (rowid, value_lower) VALUES (new.id, new.value_lower);
        END;
        CREATE TRIGGER search_values_deleted AFTER DELETE ON search_values BEGIN
            INSERT INTO search_grams (search_grams, rowid, value_lower)
                VALUES ('delete', old.id, old.value_lower);
        END;
        CREATE TRIGGER search_values_updated AFTER UPDATE ON search_values BEGIN
            INSERT INTO search_grams (search_grams, rowid, value_lower)
                VALUES ('delete', old.id, old.value_lower);
            INSERT INTO search_grams (rowid, value_lower) VALUES (new.id, new.value_lower);
        END;
        INSERT INTO search_values (record_id, field, company_id, kind, scope, value, value_lower)
            SELECT r.record_id, f.field, r.company_id, r.kind,
                   CASE WHEN r.kind = 'work_order' THEN json_extract(r.data, '$.project_code') END,
                   json_extract(r.data, '$.' || f.field),
                   lower(trim(json_extract(r.data, '$.' || f.field)))
            FROM records r JOIN (SELECT 'project' AS kind, 'project_name' AS field
                                 UNION ALL SELECT 'project', 'project_code'
                                 UNION ALL SELECT 'work_order', 'phase_name'
                                 UNION ALL SELECT 'work_order', 'work_order_number') f
              ON f.kind = r.kind
            WHERE json_extract(r.data, '$.' || f.field) IS NOT NULL;",
        postgres: "CREATE EXTENSION IF NOT EXISTS pg_trgm;
        CREATE INDEX search_values_trigrams ON search_values USING gin (value_lower gin_trgm_ops);
        INSERT INTO search_values (record_id, field, company_id, kind, scope, value, value_lower)
            SELECT r.record_id, f.field, r.company_id, r.kind,
                   CASE WHEN r.kind = 'work_order' THEN r.data ->> 'project_code' END,
                   r.data ->> f.field, lower(trim(r.data ->> f.field))
            FROM records r JOIN (VALUES ('project', 'project_name'), ('project', 'project_code'),
                                        ('work_order', 'phase_name'),
                                        ('work_order', 'work_order_number')) AS f(kind, field)
              ON f.kind = r.kind
            WHERE r.data ->> f.field IS NOT NULL;",
    },
    // 5: native provider intake and kept requests: a key's secret per provider, its intake
    // settings, its mappings of provider events onto envelopes, and each inbound request's
    // headers and body (for `inspect` and `replay`; pruned after retention.requests_days).
    Migration {
        both: "CREATE TABLE key_provider_secrets (
            id          TEXT NOT NULL UNIQUE,       -- key_id/provider: what the secret is sealed to
            key_id      TEXT NOT NULL,
            provider    TEXT NOT NULL,              -- a name from the provider catalog
            secret_enc  {blob} NOT NULL,
            updated_at  BIGINT NOT NULL,
            PRIMARY KEY (key_id, provider)
        );
        -- Only keys whose settings differ from the defaults have a row.
        CREATE TABLE key_intake_settings (
            key_id        TEXT PRIMARY KEY,
            keep_requests BOOLEAN NOT NULL,
            updated_at    BIGINT NOT NULL
        );
        CREATE TABLE provider_mappings (
            key_id      TEXT NOT NULL,
            provider    TEXT NOT NULL,
            company_id  TEXT NOT NULL,
            mapping     {json} NOT NULL,            -- {\"rules\": [...]}, as the operator sent it
            created_at  BIGINT NOT NULL,
            updated_at  BIGINT NOT NULL,
            PRIMARY KEY (key_id, provider)
        );
        CREATE INDEX provider_mappings_company ON provider_mappings(company_id);
        CREATE TABLE ingest_requests (
            request_id      TEXT PRIMARY KEY,       -- ingest_log.request_id (one or more rows)
            received_at     BIGINT NOT NULL,        -- unix ms, the same as its log rows'
            company_id      TEXT NOT NULL,
            key_id          TEXT NOT NULL,
            provider        TEXT,                   -- native intake; NULL: /webhooks/inbound
            method          TEXT NOT NULL,
            target          TEXT NOT NULL,          -- path and query, secrets redacted
            headers         {json} NOT NULL,        -- [[name, value], ...], secrets redacted
            body            {blob} NOT NULL,        -- at most capture.max_body_bytes of it
            body_bytes      BIGINT NOT NULL,        -- the whole body's size
            response_status BIGINT NOT NULL,
            response_body   {blob} NOT NULL,
            replay_of       TEXT,                   -- the request this one replayed
            replayed_by     TEXT                    -- who asked for the replay
        );
        CREATE INDEX ingest_requests_received ON ingest_requests(received_at);
        CREATE INDEX ingest_requests_replay_of ON ingest_requests(replay_of);",
        sqlite: "",
        postgres: "",
    },
    // 6: the unfinished deliveries' index names its statuses with `=` joined by OR. SQLite
    // compiles an IN list of three into a temporary table, which it built again for every
    // delivery row written (a tenth of a delivery's time in the writer); queries name the
    // predicate the same way (`deliveries::unfinished`) so that the planner still uses it.
    Migration {
        both: "DROP INDEX deliveries_unfinished;
        CREATE INDEX deliveries_unfinished ON deliveries(subscription_id, record_id, event_seq)
            WHERE (status = 'pending' OR status = 'in_flight' OR status = 'paused');",
        sqlite: "",
        postgres: "",
    },
    // 7: two indexes of the first schema that no query uses since events are read by their
    // published position (`events_company_position`): every event written paid for both.
    Migration {
        both: "DROP INDEX events_company;
        DROP INDEX events_record;",
        sqlite: "",
        postgres: "",
    },
];

fn render(sql: &str, dialect: Dialect) -> String {
    let (serial, blob, json) = match dialect {
        Dialect::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB", "TEXT"),
        Dialect::Postgres => (
            "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
            "BYTEA",
            "JSON",
        ),
    };
    sql.replace("{serial}", serial)
        .replace("{blob}", blob)
        .replace("{json}", json)
}

/// Applies the migrations not yet applied, in one transaction (so that several processes or
/// nodes starting at once do not both migrate).
pub(super) fn run(conn: &dyn Conn) -> Result<(), StoreError> {
    let dialect = conn.dialect();
    match dialect {
        Dialect::Sqlite => {
            conn.batch("BEGIN IMMEDIATE")?;
            let legacy = conn
                .query_one("PRAGMA user_version", &[])?
                .i64(0)
                .unwrap_or(0);
            if legacy > 0 {
                conn.batch("ROLLBACK")?;
                return Err(StoreError::Open {
                    target: "the SQLite database".into(),
                    reason: "it was created by a development build before version 0.2 (schema \
                             version numbers restarted); move it aside and start again"
                        .into(),
                });
            }
        }
        Dialect::Postgres => {
            conn.batch("BEGIN")?;
            // Nodes starting at once take turns; the lock ends with the transaction.
            conn.query_opt("SELECT pg_advisory_xact_lock(7201514474591237)", &[])?;
        }
    }
    let applied = migrate(conn, dialect);
    match applied {
        Ok(()) => conn.batch("COMMIT"),
        Err(e) => {
            let _ = conn.batch("ROLLBACK");
            Err(e)
        }
    }
}

fn migrate(conn: &dyn Conn, dialect: Dialect) -> Result<(), StoreError> {
    conn.batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version    BIGINT PRIMARY KEY,
            applied_at BIGINT NOT NULL
        )",
    )?;
    let current = conn
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )?
        .i64(0)?;
    for (index, migration) in MIGRATIONS.iter().enumerate() {
        let version = index as i64 + 1;
        if version <= current {
            continue;
        }
        conn.batch(&render(migration.both, dialect))?;
        let own = match dialect {
            Dialect::Sqlite => migration.sqlite,
            Dialect::Postgres => migration.postgres,
        };
        if !own.is_empty() {
            conn.batch(&render(own, dialect))?;
        }
        conn.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            sql_params![version, crate::clock::now_secs()],
        )?;
        tracing::info!(version, "applied database migration");
    }
    if current > latest_version() {
        return Err(StoreError::Open {
            target: "the database".into(),
            reason: format!(
                "its schema (version {current}) is newer than this build knows ({}); upgrade hookgate",
                latest_version()
            ),
        });
    }
    Ok(())
}

pub fn latest_version() -> i64 {
    MIGRATIONS.len() as i64
}
