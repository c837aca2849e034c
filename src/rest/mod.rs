//! The management REST API under `/api/v1`: bearer-token authentication (each key's own
//! management token, never its signing secret), the seed's REST rate limits, and routing to
//! skills, work types, webhook subscriptions and the event catalog. Knows no hyper types: it gets method, path,
//! query, the Authorization header and the body.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::error::ApiError;
use crate::ingest::Reply;
use crate::keys::ApiKey;
use crate::outbound::subscriptions as subs;
use crate::ratelimit::RateStatus;
use crate::skills;

pub struct RestRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub authorization: Option<&'a str>,
    pub body: Bytes,
    pub request_id: String,
}

pub async fn handle(state: &AppState, req: RestRequest<'_>) -> Reply {
    let (key, rate) = match authenticate(state, &req).await {
        Ok(ok) => ok,
        Err(mut reply) => {
            reply.request_id = req.request_id.clone();
            return reply;
        }
    };
    let mut reply = match route(state, &key, &req).await {
        Ok((status, body)) => Reply::json(status, &body, &req.request_id),
        Err(e) => Reply::json(e.status, &e.body(), &req.request_id),
    };
    reply.rate = Some(rate);
    reply
}

async fn authenticate(
    state: &AppState,
    req: &RestRequest<'_>,
) -> Result<(std::sync::Arc<ApiKey>, RateStatus), Reply> {
    let fail = |e: ApiError| Reply::json(e.status, &e.body(), "");
    let token = req
        .authorization
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            fail(ApiError::new(
                401,
                "token_missing",
                "send Authorization: Bearer <api token>",
            ))
        })?;
    let key = match state.keys.find_by_api_token(token).await {
        Ok(Some(key)) if !key.revoked => key,
        Ok(Some(_)) => {
            return Err(fail(ApiError::new(
                401,
                "api_key_revoked",
                "this API key has been revoked",
            )));
        }
        Ok(None) => {
            return Err(fail(ApiError::new(
                401,
                "token_invalid",
                "unknown API token",
            )));
        }
        Err(e) => return Err(fail(ApiError::internal(&e, &req.request_id))),
    };
    let rate = state.limits.rest(&key.id).check();
    if let Some(wait) = rate.retry_after {
        let mut reply = fail(ApiError::new(
            429,
            "rate_limited",
            format!("REST rate limit exceeded; retry in {wait} s"),
        ));
        reply.rate = Some(rate);
        return Err(reply);
    }
    Ok((key, rate))
}

fn parse_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("invalid_request", format!("invalid JSON body: {e}")))
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

impl RestRequest<'_> {
    /// Turns a storage failure into the opaque 500 carrying this request's id.
    fn store_failed(&self) -> impl Fn(crate::store::StoreError) -> ApiError + '_ {
        move |e| ApiError::internal(&e, &self.request_id)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SkillsInput {
    names: Option<Vec<String>>,
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecoverInput {
    since: String,
}

async fn route(
    state: &AppState,
    key: &ApiKey,
    req: &RestRequest<'_>,
) -> Result<(u16, Value), ApiError> {
    let out = &state.outbound;
    let segments: Vec<&str> = req
        .path
        .trim_start_matches("/api/v1")
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let company = key.company_id.clone();
    match (req.method, segments.as_slice()) {
        ("GET", ["ingest-log"]) => ingest_log(state, key, req).await,
        ("GET", ["event-types"]) => Ok((200, crate::catalog::describe())),
        ("GET", ["skills"]) => {
            let list = state
                .store
                .read(move |r| r.list_skills(&company))
                .await
                .map_err(req.store_failed())?;
            Ok((
                200,
                json!({"success": true, "skills": list, "count": list.len()}),
            ))
        }
        ("POST", ["skills"]) => {
            let input: SkillsInput = parse_body(&req.body)?;
            let names = skills::check_skill_names(
                &input
                    .names
                    .into_iter()
                    .flatten()
                    .chain(input.name)
                    .collect::<Vec<_>>(),
            )?;
            let added = skills::add_skills(&state.store, &company, names)
                .await
                .map_err(req.store_failed())?;
            let list = state
                .store
                .read(move |r| r.list_skills(&company))
                .await
                .map_err(req.store_failed())?;
            Ok((
                201,
                json!({"success": true, "added": added, "skills": list}),
            ))
        }
        ("GET", ["work-types"]) => {
            let list = state
                .store
                .read(move |r| r.list_work_types(&company))
                .await
                .map_err(req.store_failed())?;
            Ok((
                200,
                json!({"success": true, "work_types": list, "count": list.len()}),
            ))
        }
        ("POST", ["work-types"]) => {
            let work_type = skills::check_work_type(parse_body(&req.body)?)?;
            let view = serde_json::to_value(&work_type).expect("serializable");
            skills::save_work_type(&state.store, &company, work_type)
                .await
                .map_err(req.store_failed())?;
            Ok((201, json!({"success": true, "work_type": view})))
        }
        ("GET", ["webhooks"]) => {
            let list: Vec<Value> = subs::list(out, key)
                .await?
                .iter()
                .map(|s| subs::view(s, out))
                .collect();
            Ok((
                200,
                json!({"success": true, "webhooks": list, "count": list.len()}),
            ))
        }
        ("POST", ["webhooks"]) => Ok((
            201,
            subs::create(out, key, subs::parse_input(&req.body)?).await?,
        )),
        ("GET", ["webhooks", id]) => Ok((200, subs::view(&subs::get(out, key, id).await?, out))),
        ("PATCH" | "PUT", ["webhooks", id]) => Ok((
            200,
            subs::view(
                &subs::update(out, key, id, subs::parse_input(&req.body)?).await?,
                out,
            ),
        )),
        ("DELETE", ["webhooks", id]) => {
            subs::delete(out, key, id).await?;
            Ok((200, json!({"success": true, "deleted": id})))
        }
        ("POST", ["webhooks", id, "enable"]) => Ok((
            200,
            subs::view(&subs::set_enabled(out, key, id, true).await?, out),
        )),
        ("POST", ["webhooks", id, "disable"]) => Ok((
            200,
            subs::view(&subs::set_enabled(out, key, id, false).await?, out),
        )),
        ("POST", ["webhooks", id, "test"]) => Ok((202, subs::test_send(out, key, id).await?)),
        ("POST", ["webhooks", id, "recover"]) => {
            let input: RecoverInput = parse_body(&req.body)?;
            Ok((202, subs::recover(out, key, id, &input.since).await?))
        }
        ("GET", ["webhooks", id, "deliveries"]) => {
            let status = query_param(req.query, "status");
            let limit = query_param(req.query, "limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(100usize)
                .min(1000);
            Ok((200, subs::deliveries(out, key, id, status, limit).await?))
        }
        ("POST", ["webhooks", id, "deliveries", delivery_id, "retry"]) => Ok((
            202,
            subs::retry(out, &key.company_id, Some(id), delivery_id).await?,
        )),
        (_, ["skills" | "work-types" | "webhooks" | "event-types", ..]) => Err(ApiError::new(
            405,
            "method_not_allowed",
            format!("{} is not allowed on {}", req.method, req.path),
        )),
        _ => Err(ApiError::new(
            404,
            "route_not_found",
            format!("no route for {}", req.path),
        )),
    }
}

/// The company's ingest log, oldest first after `after_id`. With `wait=N` (at most 30) the call
/// holds until a new entry arrives or N seconds pass, so a client can follow the log live by
/// calling again with `next_after_id`.
async fn ingest_log(
    state: &AppState,
    key: &ApiKey,
    req: &RestRequest<'_>,
) -> Result<(u16, Value), ApiError> {
    let number = |name: &str| query_param(req.query, name).and_then(|v| v.parse::<i64>().ok());
    let filter = crate::store::IngestFilter {
        after_id: number("after_id").unwrap_or(0).max(0),
        key_id: query_param(req.query, "key"),
        company_id: Some(key.company_id.clone()),
        event_type: query_param(req.query, "event_type"),
        status: number("status").map(|s| s as u16),
        limit: number("limit").unwrap_or(100).clamp(1, 1000) as usize,
    };
    let wait = std::time::Duration::from_secs(number("wait").unwrap_or(0).clamp(0, 30) as u64);
    let (entries, next) = follow_ingest_log(&state.store, filter, wait, |_| true)
        .await
        .map_err(req.store_failed())?;
    Ok((
        200,
        json!({"success": true, "entries": entries, "count": entries.len(), "next_after_id": next}),
    ))
}

/// The entries after `filter.after_id` that `keep` accepts, waiting up to `wait` for the first
/// one. Returns them with the cursor to continue from: the last entry looked at, kept or not.
/// Shared by the REST API and the console.
pub(crate) async fn follow_ingest_log(
    store: &crate::store::Store,
    mut filter: crate::store::IngestFilter,
    wait: std::time::Duration,
    keep: impl Fn(&crate::store::IngestEntry) -> bool,
) -> Result<(Vec<crate::store::IngestEntry>, i64), crate::store::StoreError> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        let f = filter.clone();
        let scanned = store.read(move |r| r.ingest_entries(&f)).await?;
        let full_page = scanned.len() >= filter.limit;
        if let Some(last) = scanned.last() {
            filter.after_id = last.id;
        }
        let kept: Vec<_> = scanned.into_iter().filter(|e| keep(e)).collect();
        if !kept.is_empty() || std::time::Instant::now() >= deadline {
            return Ok((kept, filter.after_id));
        }
        if !full_page {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
}
