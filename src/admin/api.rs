//! The console's JSON endpoints under `/admin/api/`: login and logout, then thin calls into the
//! same operations the REST API and the CLI use (`outbound::subscriptions`, `keys`, store
//! reads), scoped to what the session may see. No business rule lives here.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::session::{self, Principal, Session};
use super::stats::{self, Buckets};
use super::{AdminRequest, Page};
use crate::clock;
use crate::error::ApiError;
use crate::keys::{ApiKey, KeyError, KeyOptions};
use crate::outbound::deliveries;
use crate::outbound::subscriptions as subs;
use crate::state::AppState;
use crate::store::{
    DeliveryFilter, DeliveryStatus, IngestEntry, IngestFilter, KeySummary, ReadConn, StoreError,
};

/// Deliveries looked at for a subscription's success rate.
const HEALTH_WINDOW: usize = 100;
/// Longest hold of a live-log request; under the shutdown grace period so that a console left
/// open never delays a shutdown beyond it.
const MAX_WAIT_SECS: u64 = 25;

type Answer = Result<(u16, Value), ApiError>;

pub(super) async fn handle(state: &AppState, req: &AdminRequest<'_>) -> Page {
    let route = req.path.trim_start_matches("/admin/api/");
    let segments: Vec<&str> = route.split('/').filter(|s| !s.is_empty()).collect();
    let secure = state.config.public_url.starts_with("https://");
    let result = match (req.method, segments.as_slice()) {
        ("POST", ["login"]) => login(state, req, secure).await,
        _ => match authenticate(state, req).await {
            Ok(caller) if req.method == "POST" && segments == ["logout"] => {
                logout(state, &caller, secure)
            }
            Ok(caller) => {
                let ctx = Ctx { state, req, caller };
                ctx.route(&segments)
                    .await
                    .map(|(status, body)| Page::json(status, &body))
            }
            Err(e) => Err(e),
        },
    };
    result.unwrap_or_else(|e| Page::json(e.status, &e.body()))
}

/// A signed-in caller: the session, and the key it acts for when it is not the admin.
struct Caller {
    cookie: String,
    session: Session,
    key: Option<Arc<ApiKey>>,
}

impl Caller {
    fn is_admin(&self) -> bool {
        self.session.principal == Principal::Admin
    }

    /// The company a request is about: a key's own, or for the admin the one asked for (all
    /// when none).
    fn company(&self, asked: Option<String>) -> Option<String> {
        match &self.key {
            Some(key) => Some(key.company_id.clone()),
            None => asked.filter(|c| !c.is_empty()),
        }
    }

    fn may_see(&self, company_id: &str) -> bool {
        self.key.as_ref().is_none_or(|k| k.company_id == company_id)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginInput {
    credential: String,
}

/// A key's REST token signs in to its company; anything else is tried as the admin password.
/// Failures count against the client address like failed inbound authentications.
async fn login(state: &AppState, req: &AdminRequest<'_>, secure: bool) -> Result<Page, ApiError> {
    same_origin(req)?;
    if let Some(rate) = state.limits.auth_blocked(req.peer) {
        return Err(too_many_failures(rate.retry_after));
    }
    if !req
        .headers
        .get("content-type")
        .is_some_and(|t| t.starts_with("application/json"))
    {
        return Err(ApiError::new(
            415,
            "unsupported_media_type",
            "send the login as application/json",
        ));
    }
    let input: LoginInput = parse_body(&req.body)?;
    let credential = input.credential.trim();
    let principal = if credential.starts_with("hkt_") {
        match state.keys.find_by_api_token(credential).await {
            Ok(Some(key)) if !key.revoked => Some(Principal::Key {
                key_id: key.id.clone(),
                company_id: key.company_id.clone(),
            }),
            Ok(_) => None,
            Err(e) => return Err(ApiError::internal(&e)),
        }
    } else {
        session::admin_password_matches(&state.config.console.admin_password.0, credential)
            .then_some(Principal::Admin)
    };
    let Some(principal) = principal else {
        let rate = state.limits.auth_failed(req.peer);
        if rate.is_limited() {
            return Err(too_many_failures(rate.retry_after));
        }
        return Err(ApiError::new(
            401,
            "invalid_credentials",
            "unknown REST token or wrong admin password",
        ));
    };
    let (cookie, session) = state.console.start(principal);
    let caller = caller_of(state, cookie, session).await?;
    let mut page = Page::json(200, &session_view(&caller));
    page.headers.push((
        "set-cookie",
        session::set_cookie(&caller.cookie, secure, session::max_age_secs()),
    ));
    Ok(page)
}

fn logout(state: &AppState, caller: &Caller, secure: bool) -> Result<Page, ApiError> {
    state.console.end(&caller.cookie);
    let mut page = Page::json(200, &json!({"success": true}));
    page.headers
        .push(("set-cookie", session::clear_cookie(secure)));
    Ok(page)
}

fn too_many_failures(retry_after: Option<u64>) -> ApiError {
    let wait = retry_after.unwrap_or(60);
    ApiError::new(
        429,
        "too_many_failed_logins",
        format!("too many failed logins from this address; retry in {wait} s"),
    )
    .with_details(vec![json!({"retry_after": wait})])
}

/// The session of the request's cookie; a state-changing call must also carry the session's
/// CSRF token and come from this origin.
async fn authenticate(state: &AppState, req: &AdminRequest<'_>) -> Result<Caller, ApiError> {
    let signed_out = || ApiError::new(401, "not_signed_in", "sign in to the console first");
    let cookie = session::cookie_value(req.headers.get("cookie")).ok_or_else(signed_out)?;
    let session = state.console.find(cookie).ok_or_else(signed_out)?;
    if req.method != "GET" {
        same_origin(req)?;
        let sent = req.headers.get("x-csrf-token").unwrap_or("");
        if !crate::crypto::ct_eq(sent.as_bytes(), session.csrf_token.as_bytes()) {
            return Err(ApiError::new(
                403,
                "csrf_token_invalid",
                "missing or wrong X-CSRF-Token header; reload the console",
            ));
        }
    }
    caller_of(state, cookie.to_string(), session).await
}

/// Loads the session's key, which must still be active (a revoked key's sessions end).
async fn caller_of(state: &AppState, cookie: String, session: Session) -> Result<Caller, ApiError> {
    let key = match &session.principal {
        Principal::Admin => None,
        Principal::Key { key_id, .. } => match state.keys.find(key_id).await {
            Ok(Some(key)) if !key.revoked => Some(key),
            Ok(_) => {
                state.console.end(&cookie);
                return Err(ApiError::new(
                    401,
                    "not_signed_in",
                    "this session's API key was revoked",
                ));
            }
            Err(e) => return Err(ApiError::internal(&e)),
        },
    };
    Ok(Caller {
        cookie,
        session,
        key,
    })
}

/// Refuses calls made by another site's page: browsers send `Origin` (and `Sec-Fetch-Site`)
/// with every POST, and neither may name anything but this host.
fn same_origin(req: &AdminRequest<'_>) -> Result<(), ApiError> {
    let cross = || {
        ApiError::new(
            403,
            "cross_origin_refused",
            "console calls must come from the console's own pages",
        )
    };
    if let Some(site) = req.headers.get("sec-fetch-site")
        && !matches!(site, "same-origin" | "none")
    {
        return Err(cross());
    }
    if let Some(origin) = req.headers.get("origin") {
        let authority = origin.split_once("://").map(|(_, rest)| rest);
        if authority.is_none() || authority != req.headers.get("host") {
            return Err(cross());
        }
    }
    Ok(())
}

fn session_view(caller: &Caller) -> Value {
    let who = match &caller.key {
        None => json!({"role": "admin"}),
        Some(key) => json!({
            "role": "key",
            "key_id": key.id,
            "key_name": key.name,
            "company": key.company_name,
            "company_id": key.company_id,
        }),
    };
    json!({"success": true, "session": who, "csrf_token": caller.session.csrf_token})
}

fn parse_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("invalid_request", format!("invalid JSON body: {e}")))
}

/// One authenticated call.
struct Ctx<'a> {
    state: &'a AppState,
    req: &'a AdminRequest<'a>,
    caller: Caller,
}

impl Ctx<'_> {
    async fn route(&self, segments: &[&str]) -> Answer {
        match (self.req.method, segments) {
            ("GET", ["session"]) => self.session().await,
            ("GET", ["ingest-log"]) => self.ingest_log().await,
            ("GET", ["ingest-log", id]) => self.ingest_entry(id).await,
            ("POST", ["ingest-log", id, "replay"]) => self.replay(id).await,
            ("GET", ["stats"]) => self.stats().await,
            ("GET", ["subscriptions"]) => self.subscriptions().await,
            ("POST", ["subscriptions", id, action]) => self.subscription_action(id, action).await,
            ("GET", ["deliveries"]) => self.deliveries().await,
            ("POST", ["deliveries", id, "retry"]) => self.retry(id).await,
            ("GET", ["keys"]) => self.keys().await,
            ("POST", ["keys"]) => self.create_key().await,
            ("POST", ["keys", id, "rotate" | "revoke"]) => self.key_action(id, segments[2]).await,
            _ => Err(ApiError::new(
                404,
                "route_not_found",
                format!("no console route for {} {}", self.req.method, self.req.path),
            )),
        }
    }

    fn query(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.req.query.unwrap_or("").as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .filter(|v| !v.is_empty())
    }

    fn number(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.query(name)
            .map(|v| {
                v.parse::<i64>().map_err(|_| {
                    ApiError::bad_request(
                        "invalid_query",
                        format!("{name} must be a whole number, not {v:?}"),
                    )
                })
            })
            .transpose()
    }

    fn store_failed(&self) -> impl Fn(StoreError) -> ApiError + '_ {
        move |e| ApiError::internal(&e)
    }

    /// A store read; a failure is the opaque 500 carrying this call's request id.
    async fn read<R, F>(&self, job: F) -> Result<R, ApiError>
    where
        R: Send + 'static,
        F: FnOnce(&ReadConn) -> Result<R, StoreError> + Send + 'static,
    {
        self.state
            .store
            .read(job)
            .await
            .map_err(self.store_failed())
    }

    fn key_failed(&self) -> impl Fn(KeyError) -> ApiError + '_ {
        move |e| match e {
            KeyError::NotFound(id) => ApiError::not_found(format!("no active API key {id}")),
            other => ApiError::internal(&other),
        }
    }

    /// The session, and for the admin the companies to choose from.
    async fn session(&self) -> Answer {
        let mut view = session_view(&self.caller);
        if self.caller.is_admin() {
            let mut companies: Vec<Value> = Vec::new();
            for k in self.list_keys().await? {
                if !companies.iter().any(|c| c["id"] == k.company_id.as_str()) {
                    companies.push(json!({"id": k.company_id, "name": k.company}));
                }
            }
            view["companies"] = json!(companies);
        }
        Ok((200, view))
    }

    async fn ingest_log(&self) -> Answer {
        let status = self.query("status");
        let (exact, class) = match status.as_deref() {
            None => (None, None),
            Some(s @ ("2xx" | "3xx" | "4xx" | "5xx")) => (None, s[..1].parse::<u16>().ok()),
            Some(s) => match s.parse::<u16>() {
                Ok(code) if (100..600).contains(&code) => (Some(code), None),
                _ => {
                    return Err(ApiError::bad_request(
                        "invalid_status",
                        format!(
                            "status must be 2xx, 3xx, 4xx, 5xx or an HTTP status code, not {s:?}"
                        ),
                    ));
                }
            },
        };
        let source = self.query("source");
        let limit = self.number("limit")?.unwrap_or(100).clamp(1, 500) as usize;
        let filter = IngestFilter {
            after_id: self.number("after_id")?.unwrap_or(0).max(0),
            key_id: self.query("key"),
            company_id: self.caller.company(self.query("company")),
            event_type: self.query("event_type"),
            status: exact,
            limit,
        };
        let keep = move |e: &IngestEntry| {
            source.as_ref().is_none_or(|s| e.source.as_ref() == Some(s))
                && class.is_none_or(|c| e.status / 100 == c)
        };
        let (entries, next) = match self.number("after_id")? {
            Some(_) => {
                let wait = self
                    .number("wait")?
                    .unwrap_or(0)
                    .clamp(0, MAX_WAIT_SECS as i64);
                crate::rest::follow_ingest_log(
                    &self.state.store,
                    filter,
                    Duration::from_secs(wait as u64),
                    keep,
                )
                .await
                .map_err(self.store_failed())?
            }
            // No cursor yet: the newest entries, and the cursor to follow from.
            None => {
                let (last, recent) = self
                    .read(move |r| {
                        let last = r.last_ingest_id()?;
                        // Post-filters thin the page out; look further back for them.
                        Ok((last, r.recent_ingest_entries(&filter, limit * 5)?))
                    })
                    .await?;
                let next = recent.last().map_or(last, |e| e.id.max(last));
                let mut kept: Vec<IngestEntry> = recent.into_iter().filter(|e| keep(e)).collect();
                let skip = kept.len().saturating_sub(limit);
                (kept.split_off(skip), next)
            }
        };
        let views: Vec<Value> = entries.iter().map(entry_view).collect();
        Ok((
            200,
            json!({"success": true, "entries": views, "count": views.len(), "next_after_id": next}),
        ))
    }

    /// Requests per second by outcome and delivery lag over the last `minutes` (1 to 60).
    async fn stats(&self) -> Answer {
        const REQUEST_BUCKETS: usize = 150;
        const LAG_BUCKETS: usize = 30;
        let minutes = self.number("minutes")?.unwrap_or(5).clamp(1, 60);
        let window_ms = minutes * 60_000;
        let end = clock::now_ms();
        let start = end - window_ms;
        let company = self.caller.company(self.query("company"));
        let request_buckets = Buckets {
            start,
            width_ms: window_ms / REQUEST_BUCKETS as i64,
            count: REQUEST_BUCKETS,
        };
        let lag_buckets = Buckets {
            start,
            width_ms: window_ms / LAG_BUCKETS as i64,
            count: LAG_BUCKETS,
        };
        let width = request_buckets.width_ms;
        let (requests, lags) = self
            .read(move |r| {
                Ok((
                    r.ingest_outcome_counts(company.as_deref(), start, width)?,
                    r.delivery_lags_since(company.as_deref(), start, 100_000)?,
                ))
            })
            .await?;
        let (p50, max) = stats::lag_percentiles(&lags, lag_buckets);
        Ok((
            200,
            json!({
                "success": true,
                "start": clock::rfc3339_from_ms(start),
                "end": clock::rfc3339_from_ms(end),
                "requests": {
                    "outcomes": stats::OUTCOMES,
                    "bucket_secs": request_buckets.width_ms as f64 / 1000.0,
                    "per_second": stats::request_rates(&requests, request_buckets),
                    "total": requests.iter().map(|&(_, _, n)| n).sum::<i64>(),
                },
                "delivery_lag": {
                    "bucket_secs": lag_buckets.width_ms as f64 / 1000.0,
                    "p50_ms": p50,
                    "max_ms": max,
                    "deliveries": lags.len(),
                },
            }),
        ))
    }

    /// Every subscription the caller may see, each with its health.
    async fn subscriptions(&self) -> Answer {
        let company = self.caller.company(self.query("company"));
        let list = self
            .read(move |r| r.list_subscriptions(company.as_deref()))
            .await?;
        let mut views = Vec::with_capacity(list.len());
        for sub in &list {
            let id = sub.id.clone();
            let recent = self
                .read(move |r| r.latest_delivery_outcomes(&id, HEALTH_WINDOW))
                .await?;
            let mut view = subs::view(sub, &self.state.outbound);
            view["company_id"] = json!(sub.company_id);
            view["health"] = stats::subscription_health(&recent);
            views.push(view);
        }
        Ok((
            200,
            json!({"success": true, "subscriptions": views, "count": views.len()}),
        ))
    }

    /// The key that acts on a subscription: the caller's own (whose company scopes the
    /// lookup, so another company's subscription is a 404), or for the admin its owner's.
    async fn acting_key(&self, id: &str) -> Result<Arc<ApiKey>, ApiError> {
        if let Some(key) = &self.caller.key {
            return Ok(key.clone());
        }
        let wanted = id.to_string();
        let owner = self
            .read(move |r| {
                Ok(r.list_subscriptions(None)?
                    .into_iter()
                    .find(|s| s.id == wanted)
                    .map(|s| s.owner_key_id))
            })
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no subscription {id}")))?;
        self.state
            .keys
            .find(&owner)
            .await
            .map_err(self.key_failed())?
            .ok_or_else(|| ApiError::not_found(format!("no subscription {id}")))
    }

    async fn subscription_action(&self, id: &str, action: &str) -> Answer {
        let out = &self.state.outbound;
        let key = self.acting_key(id).await?;
        match action {
            "enable" | "disable" => {
                let sub = subs::set_enabled(out, &key, id, action == "enable").await?;
                Ok((200, subs::view(&sub, out)))
            }
            "test" => Ok((202, subs::test_send(out, &key, id).await?)),
            "recover" => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct RecoverInput {
                    since: String,
                }
                let input: RecoverInput = parse_body(&self.req.body)?;
                Ok((202, subs::recover(out, &key, id, &input.since).await?))
            }
            _ => Err(ApiError::new(
                404,
                "route_not_found",
                format!("no subscription action {action:?}; use enable, disable, test or recover"),
            )),
        }
    }

    async fn deliveries(&self) -> Answer {
        let status = match self.query("status") {
            None => None,
            Some(s) => Some(DeliveryStatus::parse(&s).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_status",
                    format!("status must be one of {}", deliveries::STATUSES.join(", ")),
                )
                .with_details(deliveries::STATUSES.iter().map(|s| json!(s)).collect())
            })?),
        };
        let filter = DeliveryFilter {
            company_id: self.caller.company(self.query("company")),
            subscription_id: self.query("subscription"),
            status,
            limit: self.number("limit")?.unwrap_or(200).clamp(1, 1000) as usize,
            ..DeliveryFilter::default()
        };
        let rows = self.read(move |r| r.list_deliveries(&filter)).await?;
        let views: Vec<Value> = rows.iter().map(deliveries::view).collect();
        Ok((
            200,
            json!({"success": true, "deliveries": views, "count": views.len()}),
        ))
    }

    /// One log entry with its kept request (headers redacted, body) and answer.
    async fn ingest_entry(&self, id: &str) -> Answer {
        let company = self.caller.company(None);
        let view = crate::inspect::find(self.state, company.as_deref(), id).await?;
        Ok((200, json!({"success": true, "data": view})))
    }

    /// Runs an entry's kept request through the pipeline again (after a fix).
    async fn replay(&self, id: &str) -> Answer {
        let company = self.caller.company(None);
        let by = match &self.caller.key {
            Some(key) => format!("the console, signed in with key {}", key.id),
            None => "the console's admin".to_string(),
        };
        let outcome =
            crate::inspect::replay(self.state, company.as_deref(), id, &by, self.req.peer).await?;
        Ok((200, json!({"success": true, "data": outcome})))
    }

    async fn retry(&self, id: &str) -> Answer {
        let did = id.to_string();
        let company = self
            .read(move |r| r.delivery(&did))
            .await?
            .map(|(_, company)| company)
            .filter(|c| self.caller.may_see(c))
            .ok_or_else(|| ApiError::not_found(format!("no delivery {id}")))?;
        let requeued = subs::retry(&self.state.outbound, &company, None, id).await?;
        Ok((
            202,
            json!({"success": true, "delivery_id": id, "status": requeued.status.as_str()}),
        ))
    }

    async fn list_keys(&self) -> Result<Vec<KeySummary>, ApiError> {
        let company = self.caller.company(self.query("company"));
        let all = self.read(|r| r.list_keys(None)).await?;
        Ok(all
            .into_iter()
            .filter(|k| company.as_ref().is_none_or(|c| &k.company_id == c))
            .collect())
    }

    async fn keys(&self) -> Answer {
        let now = clock::now_secs();
        let views: Vec<Value> = self
            .list_keys()
            .await?
            .iter()
            .map(|k| {
                json!({
                    "key_id": k.key_id,
                    "company": k.company,
                    "company_id": k.company_id,
                    "name": k.name,
                    "created_at": clock::rfc3339_from_ms(k.created_at * 1000),
                    "revoked": k.revoked,
                    "per_minute": k.per_minute,
                    "per_hour": k.per_hour,
                    "previous_secret_valid_until": k
                        .rotation_overlap_until
                        .filter(|&t| t > now)
                        .map(|t| clock::rfc3339_from_ms(t * 1000)),
                })
            })
            .collect();
        Ok((
            200,
            json!({"success": true, "keys": views, "count": views.len()}),
        ))
    }

    /// Creates a key in the caller's company (the admin names any company, new or not);
    /// the answer is the only time its secrets are shown.
    async fn create_key(&self) -> Answer {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct CreateInput {
            name: String,
            company: Option<String>,
        }
        let input: CreateInput = parse_body(&self.req.body)?;
        let name = checked_name("name", &input.name)?;
        let company = match &self.caller.key {
            Some(key)
                if input
                    .company
                    .as_ref()
                    .is_none_or(|c| c == &key.company_name) =>
            {
                key.company_name.clone()
            }
            Some(_) => {
                return Err(ApiError::new(
                    403,
                    "company_not_allowed",
                    "a key's session creates keys in its own company only",
                ));
            }
            None => checked_name(
                "company",
                input.company.as_deref().ok_or_else(|| {
                    ApiError::bad_request("company_required", "the admin must name the company")
                })?,
            )?,
        };
        let created = self
            .state
            .keys
            .create(&company, &name, KeyOptions::default())
            .await
            .map_err(self.key_failed())?;
        Ok((201, json!({"success": true, "key": created})))
    }

    async fn key_action(&self, id: &str, action: &str) -> Answer {
        let keys = &self.state.keys;
        let found = keys.find(id).await.map_err(self.key_failed())?;
        if !found.is_some_and(|k| !k.revoked && self.caller.may_see(&k.company_id)) {
            return Err(ApiError::not_found(format!("no active API key {id}")));
        }
        if action == "revoke" {
            keys.revoke(id).await.map_err(self.key_failed())?;
            self.state.console.end_for_key(id);
            return Ok((200, json!({"success": true, "key_id": id, "revoked": true})));
        }
        let overlap = self.state.config.rotation_overlap_secs;
        let secret = keys.rotate(id, overlap).await.map_err(self.key_failed())?;
        Ok((
            200,
            json!({
                "success": true,
                "key_id": id,
                "secret": secret,
                "previous_secret_valid_until": clock::rfc3339_from_ms((clock::now_secs() + overlap) * 1000),
            }),
        ))
    }
}

fn checked_name(field: &'static str, value: &str) -> Result<String, ApiError> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > 100 {
        return Err(ApiError::bad_request(
            "invalid_name",
            format!("{field} must be 1 to 100 characters"),
        ));
    }
    Ok(value.to_string())
}

/// An ingest-log entry as the console shows it, its time in RFC 3339.
fn entry_view(e: &IngestEntry) -> Value {
    let mut v = serde_json::to_value(e).expect("serializable");
    v["received_at"] = json!(clock::rfc3339_from_ms(e.received_at));
    v
}
