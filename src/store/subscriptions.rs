//! Outbound subscriptions: their settings (secrets arrive sealed), their state, and what the
//! delivery workers keep on them: a cursor over the company's published events (every event at
//! or before it was handled) and a lease saying which node dispatches them.

use super::sql::{Conn, Row, sql_params};
use super::{ReadConn, StoreError, WriteTx};

/// A subscription's state (SPEC section 4: active / failing / disabled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    Active,
    /// Still delivering, but its recent attempts failed.
    Failing,
    Disabled,
}

impl SubscriptionStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SubscriptionStatus::Active => "active",
            SubscriptionStatus::Failing => "failing",
            SubscriptionStatus::Disabled => "disabled",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<SubscriptionStatus> {
        Some(match text {
            "active" => SubscriptionStatus::Active,
            "failing" => SubscriptionStatus::Failing,
            "disabled" => SubscriptionStatus::Disabled,
            _ => return None,
        })
    }
}

impl std::fmt::Display for SubscriptionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct SubscriptionRow {
    pub id: String,
    pub company_id: String,
    pub owner_key_id: String,
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    pub secret_enc: Vec<u8>,
    /// The secret before the last rotation, which still signs until `previous_secret_until`.
    pub previous_secret_enc: Option<Vec<u8>>,
    pub previous_secret_until: Option<i64>,
    pub payload: String,
    pub projects: Option<Vec<String>>,
    pub basic_auth_enc: Option<Vec<u8>>,
    pub rate_limit: Option<f64>,
    pub verify_url: bool,
    pub status: SubscriptionStatus,
    pub disabled_reason: Option<String>,
    pub consecutive_failures: u32,
    /// Every published event of the company up to this position has been handled.
    pub cursor_position: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

pub(super) const SUB_COLUMNS: &str = "id, company_id, owner_key_id, name, url, events,
    secret_enc, previous_secret_enc, previous_secret_until, payload, projects, basic_auth_enc,
    rate_limit, verify_url, status, disabled_reason, consecutive_failures, cursor_position,
    created_at, updated_at";

fn json_list(text: Option<String>) -> Option<Vec<String>> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

pub(super) fn sub_from_row_at(r: &mut Row, o: usize) -> Result<SubscriptionRow, StoreError> {
    let status = r.text(o + 14)?;
    Ok(SubscriptionRow {
        id: r.text(o)?,
        company_id: r.text(o + 1)?,
        owner_key_id: r.text(o + 2)?,
        name: r.text(o + 3)?,
        url: r.text(o + 4)?,
        events: json_list(r.opt_text(o + 5)?).unwrap_or_default(),
        secret_enc: r.blob(o + 6)?,
        previous_secret_enc: r.opt_blob(o + 7)?,
        previous_secret_until: r.opt_i64(o + 8)?,
        payload: r.text(o + 9)?,
        projects: json_list(r.opt_text(o + 10)?),
        basic_auth_enc: r.opt_blob(o + 11)?,
        rate_limit: r.opt_f64(o + 12)?,
        verify_url: r.bool(o + 13)?,
        status: SubscriptionStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("subscription status {status:?}")))?,
        disabled_reason: r.opt_text(o + 15)?,
        consecutive_failures: r.u32(o + 16)?,
        cursor_position: r.i64(o + 17)?,
        created_at: r.i64(o + 18)?,
        updated_at: r.i64(o + 19)?,
    })
}

fn sub_from_row(mut r: Row) -> Result<SubscriptionRow, StoreError> {
    sub_from_row_at(&mut r, 0)
}

fn get_subscription(
    conn: &dyn Conn,
    company: &str,
    id: &str,
) -> Result<Option<SubscriptionRow>, StoreError> {
    conn.query_opt(
        &format!("SELECT {SUB_COLUMNS} FROM subscriptions WHERE id = ?1 AND company_id = ?2"),
        sql_params![id, company],
    )?
    .map(sub_from_row)
    .transpose()
}

fn list_subscriptions(
    conn: &dyn Conn,
    company: Option<&str>,
) -> Result<Vec<SubscriptionRow>, StoreError> {
    let rows = match company {
        Some(company) => conn.query(
            &format!(
                "SELECT {SUB_COLUMNS} FROM subscriptions WHERE company_id = ?1
                 ORDER BY created_at, id"
            ),
            sql_params![company],
        )?,
        None => conn.query(
            &format!("SELECT {SUB_COLUMNS} FROM subscriptions ORDER BY created_at, id"),
            &[],
        )?,
    };
    rows.into_iter().map(sub_from_row).collect()
}

impl WriteTx<'_> {
    /// Inserts or updates a subscription's settings and state. A new subscription starts after
    /// the company's latest published event; an existing one keeps its cursor unless it comes
    /// back from `disabled`, when it skips what was published meanwhile (a disabled
    /// subscription misses events; `recover` sends them on request).
    pub fn save_subscription(&self, s: &SubscriptionRow) -> Result<(), StoreError> {
        let events = serde_json::to_string(&s.events).expect("strings serialize");
        let projects = s
            .projects
            .as_ref()
            .map(|p| serde_json::to_string(p).expect("strings serialize"));
        let latest = self.latest_position(&s.company_id)?;
        self.conn.execute(
            &format!(
                "INSERT INTO subscriptions ({SUB_COLUMNS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                    ?17, ?18, ?19, ?20)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, url = excluded.url,
                    events = excluded.events, secret_enc = excluded.secret_enc,
                    previous_secret_enc = excluded.previous_secret_enc,
                    previous_secret_until = excluded.previous_secret_until,
                    payload = excluded.payload, projects = excluded.projects,
                    basic_auth_enc = excluded.basic_auth_enc, rate_limit = excluded.rate_limit,
                    verify_url = excluded.verify_url, status = excluded.status,
                    disabled_reason = excluded.disabled_reason,
                    consecutive_failures = excluded.consecutive_failures,
                    cursor_position = CASE
                        WHEN subscriptions.status = 'disabled' AND excluded.status != 'disabled'
                        THEN excluded.cursor_position ELSE subscriptions.cursor_position END,
                    updated_at = excluded.updated_at"
            ),
            sql_params![
                &s.id,
                &s.company_id,
                &s.owner_key_id,
                &s.name,
                &s.url,
                &events,
                &s.secret_enc,
                &s.previous_secret_enc,
                s.previous_secret_until,
                &s.payload,
                &projects,
                &s.basic_auth_enc,
                s.rate_limit,
                s.verify_url,
                s.status.as_str(),
                &s.disabled_reason,
                s.consecutive_failures,
                latest,
                s.created_at,
                s.updated_at
            ],
        )?;
        self.set_deliveries_paused(&s.id, s.status == SubscriptionStatus::Disabled)
    }

    /// Records a subscription's state as decided by the outbound rules (and pauses or resumes
    /// its waiting deliveries with it).
    pub(crate) fn set_subscription_state(
        &self,
        id: &str,
        status: SubscriptionStatus,
        consecutive_failures: u32,
        disabled_reason: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE subscriptions SET status = ?2, consecutive_failures = ?3,
                disabled_reason = ?4, updated_at = ?5
             WHERE id = ?1",
            sql_params![
                id,
                status.as_str(),
                consecutive_failures,
                disabled_reason,
                now
            ],
        )?;
        self.set_deliveries_paused(id, status == SubscriptionStatus::Disabled)
    }

    /// A disabled subscription's waiting deliveries are `paused` (so the due index never walks
    /// over them), and `pending` again once it is enabled.
    fn set_deliveries_paused(&self, subscription_id: &str, paused: bool) -> Result<(), StoreError> {
        let (from, to) = if paused {
            ("pending", "paused")
        } else {
            ("paused", "pending")
        };
        self.conn.execute(
            "UPDATE deliveries SET status = ?3 WHERE subscription_id = ?1 AND status = ?2",
            sql_params![subscription_id, from, to],
        )?;
        Ok(())
    }

    pub fn subscription(
        &self,
        company: &str,
        id: &str,
    ) -> Result<Option<SubscriptionRow>, StoreError> {
        get_subscription(self.conn, company, id)
    }

    pub(crate) fn subscription_name_taken(
        &self,
        company: &str,
        name: &str,
        except_id: &str,
    ) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .query_opt(
                "SELECT 1 FROM subscriptions WHERE company_id = ?1 AND name = ?2 AND id != ?3",
                sql_params![company, name, except_id],
            )?
            .is_some())
    }

    /// Deletes the subscription and the deliveries not yet made to it.
    pub(crate) fn delete_subscription(&self, company: &str, id: &str) -> Result<bool, StoreError> {
        let deleted = self.conn.execute(
            "DELETE FROM subscriptions WHERE id = ?1 AND company_id = ?2",
            sql_params![id, company],
        )?;
        if deleted == 1 {
            self.conn.execute(
                concat!(
                    "DELETE FROM deliveries WHERE subscription_id = ?1 AND ",
                    super::deliveries::unfinished!("status")
                ),
                sql_params![id],
            )?;
        }
        Ok(deleted == 1)
    }

    /// Takes (or renews) the lease on every enabled subscription that no other node holds,
    /// until `lease_until`, and returns the subscriptions `node` now dispatches.
    pub fn lease_subscriptions(
        &self,
        node: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<Vec<SubscriptionRow>, StoreError> {
        self.conn
            .query(
                &format!(
                    "UPDATE subscriptions SET lease_owner = ?1, lease_until = ?3
                     WHERE status != 'disabled'
                       AND (lease_owner = ?1 OR lease_owner IS NULL OR lease_until < ?2)
                     RETURNING {SUB_COLUMNS}"
                ),
                sql_params![node, now, lease_until],
            )?
            .into_iter()
            .map(sub_from_row)
            .collect()
    }

    /// Gives up `node`'s leases (on shutdown), so that another node takes over at once.
    pub(crate) fn release_subscriptions(&self, node: &str) -> Result<usize, StoreError> {
        self.conn.execute(
            "UPDATE subscriptions SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?1",
            sql_params![node],
        )
    }

    /// Voids every lease (a SQLite file has one process dispatching; its earlier runs' leases
    /// would otherwise hold its subscriptions until they expire).
    pub(crate) fn release_all_leases(&self) -> Result<usize, StoreError> {
        self.conn.execute(
            "UPDATE subscriptions SET lease_owner = NULL, lease_until = NULL
             WHERE lease_owner IS NOT NULL",
            &[],
        )
    }

    /// Moves the cursor forward to `position`, if `node` still holds the lease (a node that
    /// lost it must not move a cursor another node now keeps).
    pub fn advance_cursor(&self, id: &str, node: &str, position: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE subscriptions SET cursor_position = ?3
             WHERE id = ?1 AND lease_owner = ?2 AND cursor_position < ?3",
            sql_params![id, node, position],
        )?;
        Ok(())
    }
}

impl ReadConn<'_> {
    /// Whether any subscription is enabled (one a delivery worker would lease).
    pub(crate) fn any_enabled_subscription(&self) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .query_opt(
                "SELECT 1 FROM subscriptions WHERE status != 'disabled' LIMIT 1",
                &[],
            )?
            .is_some())
    }

    /// A subscription of any company (the operator's view).
    pub(crate) fn subscription_by_id(
        &self,
        id: &str,
    ) -> Result<Option<SubscriptionRow>, StoreError> {
        self.conn
            .query_opt(
                &format!("SELECT {SUB_COLUMNS} FROM subscriptions WHERE id = ?1"),
                sql_params![id],
            )?
            .map(sub_from_row)
            .transpose()
    }

    pub fn subscription(
        &self,
        company: &str,
        id: &str,
    ) -> Result<Option<SubscriptionRow>, StoreError> {
        get_subscription(self.conn, company, id)
    }

    pub(crate) fn list_subscriptions(
        &self,
        company: Option<&str>,
    ) -> Result<Vec<SubscriptionRow>, StoreError> {
        list_subscriptions(self.conn, company)
    }
}
