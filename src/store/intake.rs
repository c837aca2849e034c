//! Native provider intake and kept requests: a key's sealed secret per provider and its intake
//! settings, the operator's mappings of provider events, and each inbound request's headers,
//! body and answer (what `inspect` shows and `replay` runs again). Secrets arrive sealed.

use super::sql::{Param, Row, sql_params};
use super::{ReadConn, StoreError, WriteTx};

/// What a key adds to its row for native intake.
#[derive(Debug, Clone, Default)]
pub struct KeyIntake {
    /// Sealed secrets by provider name.
    pub provider_secrets: Vec<(String, Vec<u8>)>,
    /// `None`: the default (keep requests).
    pub keep_requests: Option<bool>,
}

/// One stored mapping of a key's events from one provider.
#[derive(Debug, Clone)]
pub struct MappingRow {
    pub key_id: String,
    pub provider: String,
    pub company_id: String,
    pub mapping: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One kept inbound request.
#[derive(Debug, Clone)]
pub struct KeptRequest {
    pub request_id: String,
    pub received_at: i64,
    pub company_id: String,
    pub key_id: String,
    pub provider: Option<String>,
    pub method: String,
    pub target: String,
    /// `[[name, value], ...]` as JSON text.
    pub headers: String,
    pub body: Vec<u8>,
    pub body_bytes: i64,
    pub response_status: u16,
    pub response_body: Vec<u8>,
    pub replay_of: Option<String>,
    pub replayed_by: Option<String>,
}

impl KeptRequest {
    /// Whether the whole body was kept (a replay needs it).
    pub(crate) fn body_complete(&self) -> bool {
        self.body.len() as i64 == self.body_bytes
    }
}

/// Which kept requests a bulk replay takes: always one company's, oldest first.
#[derive(Debug, Clone, Default)]
pub struct KeptFilter {
    pub company_id: String,
    pub status: Option<u16>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub key_id: Option<String>,
    pub provider: Option<String>,
    pub event_type: Option<String>,
    pub limit: usize,
}

const KEPT_COLUMNS: &str = "request_id, received_at, company_id, key_id, provider, method, target,
    headers, body, body_bytes, response_status, response_body, replay_of, replayed_by";

fn kept_from_row(mut r: Row) -> Result<KeptRequest, StoreError> {
    Ok(KeptRequest {
        request_id: r.text(0)?,
        received_at: r.i64(1)?,
        company_id: r.text(2)?,
        key_id: r.text(3)?,
        provider: r.opt_text(4)?,
        method: r.text(5)?,
        target: r.text(6)?,
        headers: r.text(7)?,
        body: r.blob(8)?,
        body_bytes: r.i64(9)?,
        response_status: r.u16(10)?,
        response_body: r.blob(11)?,
        replay_of: r.opt_text(12)?,
        replayed_by: r.opt_text(13)?,
    })
}

fn mapping_from_row(mut r: Row) -> Result<MappingRow, StoreError> {
    Ok(MappingRow {
        key_id: r.text(0)?,
        provider: r.text(1)?,
        company_id: r.text(2)?,
        mapping: r.text(3)?,
        created_at: r.i64(4)?,
        updated_at: r.i64(5)?,
    })
}

const MAPPING_COLUMNS: &str = "key_id, provider, company_id, mapping, created_at, updated_at";

impl WriteTx<'_> {
    /// Whether `key_id` names a key that is not revoked.
    pub(crate) fn key_is_active(&self, key_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .query_opt(
                "SELECT 1 FROM api_keys WHERE id = ?1 AND revoked_at IS NULL",
                sql_params![key_id],
            )?
            .is_some())
    }

    /// Sets (`Some`) or removes (`None`) the key's sealed secret for `provider`; `owner` is
    /// what it was sealed to (the row's `id`, which master-key rotation re-seals it to).
    pub(crate) fn set_provider_secret(
        &self,
        key_id: &str,
        provider: &str,
        owner: &str,
        sealed: Option<&[u8]>,
        now: i64,
    ) -> Result<(), StoreError> {
        match sealed {
            Some(sealed) => self.conn.execute(
                "INSERT INTO key_provider_secrets (id, key_id, provider, secret_enc, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (key_id, provider) DO UPDATE SET
                    secret_enc = excluded.secret_enc, updated_at = excluded.updated_at",
                sql_params![owner, key_id, provider, sealed, now],
            )?,
            None => self.conn.execute(
                "DELETE FROM key_provider_secrets WHERE key_id = ?1 AND provider = ?2",
                sql_params![key_id, provider],
            )?,
        };
        Ok(())
    }

    pub(crate) fn set_keep_requests(
        &self,
        key_id: &str,
        keep: bool,
        now: i64,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO key_intake_settings (key_id, keep_requests, updated_at)
             VALUES (?1, ?2, ?3)
             ON CONFLICT (key_id) DO UPDATE SET
                keep_requests = excluded.keep_requests, updated_at = excluded.updated_at",
            sql_params![key_id, keep, now],
        )?;
        Ok(())
    }

    /// Stores the mapping of `key_id`'s events from `provider`, replacing any earlier one.
    pub(crate) fn put_mapping(
        &self,
        key_id: &str,
        provider: &str,
        company_id: &str,
        mapping: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO provider_mappings (key_id, provider, company_id, mapping, created_at,
                updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)
             ON CONFLICT (key_id, provider) DO UPDATE SET
                mapping = excluded.mapping, updated_at = excluded.updated_at",
            sql_params![key_id, provider, company_id, mapping, now],
        )?;
        Ok(())
    }

    /// Removes a mapping; false when there was none.
    pub(crate) fn delete_mapping(&self, key_id: &str, provider: &str) -> Result<bool, StoreError> {
        Ok(self.conn.execute(
            "DELETE FROM provider_mappings WHERE key_id = ?1 AND provider = ?2",
            sql_params![key_id, provider],
        )? == 1)
    }

    pub(crate) fn insert_kept_request(&self, k: &KeptRequest) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO ingest_requests (request_id, received_at, company_id, key_id, provider,
                method, target, headers, body, body_bytes, response_status, response_body,
                replay_of, replayed_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
             ON CONFLICT (request_id) DO NOTHING",
            sql_params![
                &k.request_id,
                k.received_at,
                &k.company_id,
                &k.key_id,
                &k.provider,
                &k.method,
                &k.target,
                &k.headers,
                &k.body,
                k.body_bytes,
                k.response_status,
                &k.response_body,
                &k.replay_of,
                &k.replayed_by
            ],
        )?;
        Ok(())
    }

    /// Drops up to `limit` kept requests received before `before_ms`; returns how many.
    pub(crate) fn prune_kept_requests(
        &self,
        before_ms: i64,
        limit: usize,
    ) -> Result<usize, StoreError> {
        self.conn.execute(
            "DELETE FROM ingest_requests WHERE request_id IN (
                SELECT request_id FROM ingest_requests WHERE received_at < ?1
                ORDER BY received_at LIMIT ?2)",
            sql_params![before_ms, limit],
        )
    }

    /// Forgets a failure's answer stored under (key, idempotency key), so that a replay
    /// applies the request again and stores its new answer there. A success's answer stays.
    pub(crate) fn forget_failed_idempotency_key(
        &self,
        key_id: &str,
        idem_key: &str,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "DELETE FROM idempotency WHERE key_id = ?1 AND idem_key = ?2 AND status >= 300",
            sql_params![key_id, idem_key],
        )?;
        Ok(())
    }
}

impl ReadConn<'_> {
    /// The key's provider secrets (sealed) and intake settings.
    pub(crate) fn key_intake(&self, key_id: &str) -> Result<KeyIntake, StoreError> {
        let provider_secrets = self
            .conn
            .query(
                "SELECT provider, secret_enc FROM key_provider_secrets WHERE key_id = ?1
                 ORDER BY provider",
                sql_params![key_id],
            )?
            .into_iter()
            .map(|mut r| Ok((r.text(0)?, r.blob(1)?)))
            .collect::<Result<_, StoreError>>()?;
        let keep_requests = self
            .conn
            .query_opt(
                "SELECT keep_requests FROM key_intake_settings WHERE key_id = ?1",
                sql_params![key_id],
            )?
            .map(|r| r.bool(0))
            .transpose()?;
        Ok(KeyIntake {
            provider_secrets,
            keep_requests,
        })
    }

    pub(crate) fn mapping(
        &self,
        key_id: &str,
        provider: &str,
    ) -> Result<Option<MappingRow>, StoreError> {
        self.conn
            .query_opt(
                &format!(
                    "SELECT {MAPPING_COLUMNS} FROM provider_mappings
                     WHERE key_id = ?1 AND provider = ?2"
                ),
                sql_params![key_id, provider],
            )?
            .map(mapping_from_row)
            .transpose()
    }

    /// The company's mappings (of one key, when given), by key and provider.
    pub(crate) fn list_mappings(
        &self,
        company_id: &str,
        key_id: Option<&str>,
    ) -> Result<Vec<MappingRow>, StoreError> {
        self.conn
            .query(
                &format!(
                    "SELECT {MAPPING_COLUMNS} FROM provider_mappings
                     WHERE company_id = ?1 AND (CAST(?2 AS TEXT) IS NULL OR key_id = ?2)
                     ORDER BY key_id, provider"
                ),
                sql_params![company_id, key_id],
            )?
            .into_iter()
            .map(mapping_from_row)
            .collect()
    }

    fn ingest_entries_where(
        &self,
        condition: &str,
        params: &[Param],
    ) -> Result<Vec<super::IngestEntry>, StoreError> {
        self.conn
            .query(
                &format!(
                    "SELECT {} FROM ingest_log WHERE {condition} ORDER BY id",
                    super::ingest_log::COLUMNS
                ),
                params,
            )?
            .into_iter()
            .map(super::ingest_log::entry_from_row)
            .collect()
    }

    pub(crate) fn kept_request(&self, request_id: &str) -> Result<Option<KeptRequest>, StoreError> {
        self.conn
            .query_opt(
                &format!("SELECT {KEPT_COLUMNS} FROM ingest_requests WHERE request_id = ?1"),
                sql_params![request_id],
            )?
            .map(kept_from_row)
            .transpose()
    }

    /// The ingest-log rows of one request (a batch of provider events has one per event),
    /// found through the `received_at` index.
    pub(crate) fn ingest_entries_of_request(
        &self,
        request_id: &str,
        received_at: i64,
    ) -> Result<Vec<super::IngestEntry>, StoreError> {
        self.ingest_entries_where(
            "received_at = ?1 AND request_id = ?2",
            &[Param::Int(received_at), Param::Text(request_id)],
        )
    }

    /// One ingest-log row by id.
    pub(crate) fn ingest_entry(&self, id: i64) -> Result<Option<super::IngestEntry>, StoreError> {
        Ok(self
            .ingest_entries_where("id = ?1", &[Param::Int(id)])?
            .into_iter()
            .next())
    }

    /// Kept requests matching the filter whose replay has not yet succeeded (a request that
    /// was replayed successfully is not replayed again by a filter), oldest first. A request
    /// matches when one of its log rows does.
    pub(crate) fn kept_requests_to_replay<'f>(
        &self,
        f: &'f KeptFilter,
    ) -> Result<Vec<String>, StoreError> {
        let mut params: Vec<Param<'f>> = vec![Param::Text(&f.company_id)];
        let mut sql = String::from(
            "SELECT l.request_id, MIN(l.id) FROM ingest_log l
             JOIN ingest_requests r ON r.request_id = l.request_id
             WHERE l.company_id = ?1",
        );
        let mut add = |condition: &str, value: Param<'f>| {
            params.push(value);
            sql.push_str(&condition.replace("?", &format!("?{}", params.len())));
        };
        if let Some(status) = f.status {
            add(" AND l.status = ?", Param::from(status));
        }
        if let Some(since) = f.since_ms {
            add(" AND l.received_at >= ?", Param::Int(since));
        }
        if let Some(until) = f.until_ms {
            add(" AND l.received_at < ?", Param::Int(until));
        }
        if let Some(key) = &f.key_id {
            add(" AND l.key_id = ?", Param::Text(key));
        }
        if let Some(provider) = &f.provider {
            add(" AND r.provider = ?", Param::Text(provider));
        }
        if let Some(event_type) = &f.event_type {
            add(" AND l.event_type = ?", Param::Text(event_type));
        }
        params.push(Param::from(f.limit.max(1)));
        sql.push_str(&format!(
            " AND NOT EXISTS (SELECT 1 FROM ingest_requests done
                 WHERE done.replay_of = l.request_id AND done.response_status < 300)
             GROUP BY l.request_id ORDER BY MIN(l.id) LIMIT ?{}",
            params.len()
        ));
        self.conn
            .query(&sql, &params)?
            .into_iter()
            .map(|mut r| r.text(0))
            .collect()
    }
}
