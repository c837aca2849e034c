//! What operators' tools need beyond the request path (the CLI, and the management API's
//! delivery filters and bulk retry): deliveries found by several filters, requeueing all that
//! match in one statement, a subscription by id alone, and replacing a key's provider secrets.

use super::outbound::{DELIVERY_COLUMNS, SUB_COLUMNS, delivery_from_row, sub_from_row};
use super::sql::{Param, sql_params};
use super::{DeliveryRow, ReadConn, StoreError, SubscriptionRow, WriteTx};

/// Deliveries to find or requeue; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct DeliverySearch {
    pub company_id: Option<String>,
    pub subscription_id: Option<String>,
    pub status: Option<String>,
    pub event_type: Option<String>,
    /// Created at or after this time (unix ms).
    pub since_ms: Option<i64>,
    pub limit: usize,
}

/// The casts tell PostgreSQL the type of a parameter that may be bound as NULL.
const DELIVERY_MATCH: &str = "(CAST(?1 AS TEXT) IS NULL OR company_id = ?1)
    AND (CAST(?2 AS TEXT) IS NULL OR subscription_id = ?2)
    AND (CAST(?3 AS TEXT) IS NULL OR status = ?3) AND (CAST(?4 AS TEXT) IS NULL OR event_type = ?4)
    AND (CAST(?5 AS BIGINT) IS NULL OR created_at >= ?5)";

impl DeliverySearch {
    /// The values of [`DELIVERY_MATCH`]'s `?1`..`?5`, then `last` as `?6`.
    fn params(&self, last: i64) -> [Param<'_>; 6] {
        [
            (&self.company_id).into(),
            (&self.subscription_id).into(),
            (&self.status).into(),
            (&self.event_type).into(),
            self.since_ms.into(),
            last.into(),
        ]
    }
}

/// A change to one sealed secret of a key.
#[derive(Debug, Clone)]
pub enum SecretChange {
    Keep,
    Set(Vec<u8>),
    Remove,
}

impl ReadConn<'_> {
    /// Newest first, at most `limit`.
    pub fn search_deliveries(&self, s: &DeliverySearch) -> Result<Vec<DeliveryRow>, StoreError> {
        self.conn
            .query(
                &format!(
                    "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE {DELIVERY_MATCH}
                     ORDER BY event_seq DESC, created_at DESC LIMIT ?6"
                ),
                &s.params(s.limit.max(1).try_into().unwrap_or(i64::MAX)),
            )?
            .into_iter()
            .map(delivery_from_row)
            .collect()
    }

    /// A subscription of any company (the operator's view).
    pub fn subscription_by_id(&self, id: &str) -> Result<Option<SubscriptionRow>, StoreError> {
        self.conn
            .query_opt(
                &format!("SELECT {SUB_COLUMNS} FROM subscriptions WHERE id = ?1"),
                sql_params![id],
            )?
            .map(sub_from_row)
            .transpose()
    }
}

impl WriteTx<'_> {
    /// Puts every matching finished or waiting delivery back in the queue at once, as
    /// `requeue_delivery` does for one; returns how many. `limit` is ignored.
    pub fn requeue_deliveries(&self, s: &DeliverySearch, now: i64) -> Result<usize, StoreError> {
        self.conn.execute(
            &format!(
                "UPDATE deliveries SET next_attempt_at = ?6, lease_until = NULL, updated_at = ?6,
                    status = CASE WHEN (SELECT status FROM subscriptions s WHERE s.id = subscription_id) = 'disabled'
                                  THEN 'paused' ELSE 'pending' END
                 WHERE {DELIVERY_MATCH} AND status IN ('failed', 'succeeded', 'pending', 'paused')"
            ),
            &s.params(now),
        )
    }

    /// Sets or removes a key's sealed provider secrets (Square signature key, QuickBooks
    /// verifier token, Dynamics 365 key). False if there is no such active key.
    pub fn set_provider_secrets(
        &self,
        key_id: &str,
        square: &SecretChange,
        quickbooks: &SecretChange,
        dynamics: &SecretChange,
    ) -> Result<bool, StoreError> {
        let active = self
            .conn
            .query_opt(
                "SELECT 1 FROM api_keys WHERE id = ?1 AND revoked_at IS NULL",
                sql_params![key_id],
            )?
            .is_some();
        if !active {
            return Ok(false);
        }
        for (column, change) in [
            ("square_key_enc", square),
            ("quickbooks_token_enc", quickbooks),
            ("dynamics_key_enc", dynamics),
        ] {
            let value = match change {
                SecretChange::Keep => continue,
                SecretChange::Set(sealed) => Some(sealed),
                SecretChange::Remove => None,
            };
            self.conn.execute(
                &format!("UPDATE api_keys SET {column} = ?2 WHERE id = ?1"),
                sql_params![key_id, value],
            )?;
        }
        Ok(true)
    }
}
