//! The management REST API under `/api/v1`: routing by the OpenAPI document ([`openapi`]),
//! bearer-token authentication (each key's own management token, never its signing secret), the
//! seed's REST rate limits, and the operations on skills, work types, webhook subscriptions,
//! their deliveries, the ingest log and the event catalog. Knows no hyper types: [`serve`] gets
//! the request's head and a body reader, authenticates from the head (before any body is
//! read), then reads the body and runs the operation.
//!
//! Every success is `{"success": true, "data": …}`: one object for a single thing (create,
//! get, change, action), an array for a list, which also carries `count` (and `next_after_id`
//! where it pages). Errors are [`ApiError`] bodies.

pub mod openapi;
mod providers;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::catalog::InboundEvent;
use crate::error::ApiError;
use crate::keys::ApiKey;
use crate::outbound::deliveries::{self, Filter, Scope};
use crate::outbound::subscriptions as subs;
use crate::ratelimit::RateStatus;
use crate::request::{self, BodyReader, Head, Reply};
use crate::skills;
use crate::state::AppState;
use crate::verify::Headers;
use crate::views;
use openapi::{DOCUMENT, Match, Route};

struct RestRequest<'a> {
    query: Option<&'a str>,
    body: Bytes,
}

/// A request the headers alone admitted: the operation the OpenAPI document routes it to and,
/// unless that operation is public, an active key within its REST rate limits. Built only by
/// [`authenticate`], before any body is read.
struct Caller {
    route: &'static Route,
    params: Vec<(String, String)>,
    /// `None` only for a public operation (the document itself).
    key: Option<(Arc<ApiKey>, RateStatus)>,
}

/// Serves one call: the operation and the caller from the head, then the body, then the
/// operation; logs one line for it, whatever answered.
pub(crate) async fn serve<H: Headers + Sync>(
    state: &AppState,
    head: &Head<'_, H>,
    body: &mut impl BodyReader,
) -> Reply {
    let started = Instant::now();
    let authorization = head.headers.get("authorization");
    let authenticated = authenticate(state, head.method, head.path, authorization, head.client);
    let admitted = request::admit(body, state.config.max_body_bytes, authenticated).await;
    let reply = match admitted {
        Ok((caller, body)) => {
            if let Some((key, _)) = &caller.key {
                request::record_key(&key.id);
            }
            let req = RestRequest {
                query: head.query,
                body,
            };
            handle(state, &caller, req).await
        }
        Err(refused) => refused.answer(&state.config, |e| Reply::error(&e)),
    };
    log_request(head.method, head.path, &reply, started.elapsed());
    reply
}

async fn handle(state: &AppState, caller: &Caller, req: RestRequest<'_>) -> Reply {
    let Some((key, rate)) = &caller.key else {
        // Only the document itself is public (a test keeps it so).
        return Reply {
            body: DOCUMENT.bytes.clone(),
            ..Reply::json(200, &Value::Null)
        };
    };
    let call = Call {
        state,
        key,
        req: &req,
        params: &caller.params,
    };
    let mut reply = match call.dispatch(&caller.route.operation_id).await {
        Ok(answer) => Reply::json(answer.status, &answer.body),
        Err(e) => Reply::error(&e),
    };
    reply.rate = Some(*rate);
    reply
}

/// One info line per request (at most [`crate::logs::REQUESTS`] a second), whatever answered;
/// the request's span carries its id.
fn log_request(method: &str, path: &str, reply: &Reply, latency: Duration) {
    if crate::logs::REQUESTS.admit() {
        tracing::info!(
            method,
            path,
            status = reply.status,
            latency_us = latency.as_micros() as u64,
            "rest request"
        );
    }
}

/// Finds the operation, then checks the bearer token: an unknown path or method is answered
/// without one. A missing, unknown or revoked token counts as a failed
/// authentication of `client`, and a client over that limit is refused before its token is
/// even looked up.
async fn authenticate(
    state: &AppState,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    client: IpAddr,
) -> Result<Caller, Reply> {
    let (route, params) = match DOCUMENT.find(method, path) {
        Match::Found { route, params } => (route, params),
        Match::MethodNotAllowed(allowed) => {
            let error = ApiError::new(
                405,
                "method_not_allowed",
                format!(
                    "{method} is not allowed on {path}; allowed: {}",
                    allowed.join(", ")
                ),
            )
            .with_details(allowed.iter().map(|m| json!(m)).collect());
            let mut reply = Reply::error(&error);
            reply.allow = Some(allowed.join(", "));
            return Err(reply);
        }
        Match::NotFound => {
            let error = ApiError::new(404, "route_not_found", format!("no route for {path}"));
            return Err(Reply::error(&error));
        }
    };
    if route.public {
        return Ok(Caller {
            route,
            params,
            key: None,
        });
    }
    let fail = |e: ApiError, rate: RateStatus| {
        let mut reply = Reply::error(&e);
        reply.rate = Some(rate);
        reply
    };
    if let Some(status) = state.limits.auth_blocked(client) {
        return Err(fail(
            ApiError::new(
                429,
                "too_many_auth_failures",
                "too many failed authentication attempts from this address; retry later",
            ),
            status,
        ));
    }
    let token = authorization
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let key = match token {
        None => Err(ApiError::new(
            401,
            "token_missing",
            "send Authorization: Bearer <api token>",
        )),
        Some(token) => match state.keys.find_by_api_token(token).await {
            Ok(Some(key)) if !key.revoked => Ok(key),
            Ok(Some(_)) => Err(ApiError::new(
                401,
                "api_key_revoked",
                "this API key has been revoked",
            )),
            Ok(None) => Err(ApiError::new(401, "token_invalid", "unknown API token")),
            Err(e) => {
                let status = state.limits.auth_status(client);
                return Err(fail(ApiError::internal(&e), status));
            }
        },
    };
    let key = key.map_err(|e| fail(e, state.limits.auth_failed(client)))?;
    let rate = state.limits.check_rest(&key.id).await;
    if let Some(wait) = rate.retry_after {
        return Err(fail(
            ApiError::new(
                429,
                "rate_limited",
                format!("REST rate limit exceeded; retry in {wait} s"),
            ),
            rate,
        ));
    }
    Ok(Caller {
        route,
        params,
        key: Some((key, rate)),
    })
}

/// A success: its status and the `{"success": true, "data": …}` body.
struct Answer {
    status: u16,
    body: Value,
}

impl Answer {
    fn one(status: u16, data: Value) -> Answer {
        Answer {
            status,
            body: json!({"success": true, "data": data}),
        }
    }

    fn many(items: Vec<Value>) -> Answer {
        Answer {
            status: 200,
            body: json!({"success": true, "count": items.len(), "data": items}),
        }
    }

    fn with(mut self, field: &str, value: Value) -> Answer {
        self.body[field] = value;
        self
    }
}

/// `POST /webhooks/{id}/rotate-secret`: the new secret (generated when absent) and how long
/// the old one keeps signing beside it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateSecretInput {
    secret: Option<String>,
    /// A JSON number with no fraction (`392.0` is one too).
    overlap_secs: Option<f64>,
}

/// How long a rotated-out subscription secret keeps signing, unless the request says.
const DEFAULT_SECRET_OVERLAP_SECS: i64 = 86_400;

/// A JSON body; an empty one reads as `{}` where every field is optional.
fn parse_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    let invalid = |e: serde_json::Error| {
        ApiError::bad_request("invalid_request", format!("invalid JSON body: {e}"))
    };
    // Every body is an object: serde would also read a struct from an array of its fields.
    let value: Value = serde_json::from_slice(body).map_err(invalid)?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "invalid_request",
            "the body must be a JSON object",
        ));
    }
    serde_json::from_value(value).map_err(invalid)
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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RetryInput {
    status: Option<String>,
    event_type: Option<String>,
    since: Option<String>,
}

/// The query string, parsed once; numbers are checked against their documented range.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: Option<&str>) -> Query {
        Query(
            url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    fn text(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The integer `name`, if given; outside `range` (or not a number) it is a 400.
    fn number(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<Option<i64>, ApiError> {
        let Some(text) = self.text(name) else {
            return Ok(None);
        };
        match text.parse::<i64>() {
            Ok(n) if range.contains(&n) => Ok(Some(n)),
            _ => Err(ApiError::bad_request(
                "invalid_query",
                format!(
                    "{name} must be an integer from {} to {}, not {text:?}",
                    range.start(),
                    range.end()
                ),
            )),
        }
    }
}

/// One authenticated call being served.
struct Call<'a> {
    state: &'a AppState,
    key: &'a ApiKey,
    req: &'a RestRequest<'a>,
    params: &'a [(String, String)],
}

impl Call<'_> {
    fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    }

    /// Turns a storage failure into the opaque 500 carrying this request's id.
    fn store_failed(&self) -> impl Fn(crate::store::StoreError) -> ApiError + '_ {
        move |e| ApiError::internal(&e)
    }

    /// Runs the operation the document names `operation`.
    #[tracing::instrument(skip(self), name = "rest_operation")]
    async fn dispatch(&self, operation: &str) -> Result<Answer, ApiError> {
        let out = &*self.state.outbound;
        let (key, id) = (self.key, self.param("id"));
        match operation {
            "listSkills" => Ok(Answer::many(
                self.skills()
                    .await?
                    .iter()
                    .map(|s| views::skill(s))
                    .collect(),
            )),
            "addSkills" => {
                let input: SkillsInput = parse_body(&self.req.body)?;
                let names: Vec<String> = input
                    .names
                    .into_iter()
                    .flatten()
                    .chain(input.name)
                    .collect();
                let names = skills::check_skill_names(&names)?;
                let added = skills::add_skills(&self.state.store, &key.company_id, names)
                    .await
                    .map_err(self.store_failed())?;
                let list: Vec<Value> = self
                    .skills()
                    .await?
                    .iter()
                    .map(|s| views::skill(s))
                    .collect();
                Ok(Answer::one(201, json!({"added": added, "skills": list})))
            }
            "listWorkTypes" => {
                let company = key.company_id.clone();
                let list = self
                    .state
                    .store
                    .read(move |r| r.list_work_types(&company))
                    .await
                    .map_err(self.store_failed())?;
                Ok(Answer::many(list.iter().map(views::work_type).collect()))
            }
            "saveWorkType" => {
                let work_type = skills::check_work_type(parse_body(&self.req.body)?)?;
                let view = views::work_type(&work_type);
                skills::save_work_type(&self.state.store, &key.company_id, work_type)
                    .await
                    .map_err(self.store_failed())?;
                Ok(Answer::one(201, view))
            }
            "listWebhooks" => Ok(Answer::many(
                subs::list(out, key)
                    .await?
                    .iter()
                    .map(|s| subs::view(s, out))
                    .collect(),
            )),
            "createWebhook" => Ok(Answer::one(
                201,
                subs::create(out, key, subs::parse_input(&self.req.body)?).await?,
            )),
            "getWebhook" => Ok(Answer::one(
                200,
                subs::view(&subs::get(out, key, id).await?, out),
            )),
            "updateWebhook" | "replaceWebhook" => {
                let input = subs::parse_input(&self.req.body)?;
                let updated = subs::update(out, key, id, input).await?;
                Ok(Answer::one(200, subs::view(&updated, out)))
            }
            "deleteWebhook" => {
                subs::delete(out, key, id).await?;
                Ok(Answer::one(200, json!({"id": id, "deleted": true})))
            }
            "enableWebhook" | "disableWebhook" => {
                let enabled = operation == "enableWebhook";
                let sub = subs::set_enabled(out, key, id, enabled).await?;
                Ok(Answer::one(200, subs::view(&sub, out)))
            }
            "testWebhook" => Ok(Answer::one(202, subs::test_send(out, key, id).await?)),
            "recoverWebhook" => {
                let input: RecoverInput = parse_body(&self.req.body)?;
                Ok(Answer::one(
                    202,
                    subs::recover(out, key, id, &input.since).await?,
                ))
            }
            "listDeliveries" => {
                let query = Query::parse(self.req.query);
                let filter = Filter::parse(
                    query.text("status"),
                    query.text("event_type"),
                    query.text("since"),
                )?;
                let limit = query.number("limit", 1..=1000)?.unwrap_or(100) as usize;
                let scope = self.subscription_scope().await?;
                let rows = deliveries::list(out, &scope, &filter, limit).await?;
                Ok(Answer::many(rows.iter().map(deliveries::view).collect()))
            }
            "getDelivery" => {
                let scope = self.subscription_scope().await?;
                let delivery = deliveries::find(out, &scope, self.param("delivery_id")).await?;
                Ok(Answer::one(200, deliveries::view(&delivery)))
            }
            "listDeliveryAttempts" => {
                let scope = self.subscription_scope().await?;
                let delivery = deliveries::find(out, &scope, self.param("delivery_id")).await?;
                let attempts = deliveries::attempts(out, &delivery).await?;
                Ok(Answer::many(attempts).with("delivery", deliveries::view(&delivery)))
            }
            "rotateWebhookSecret" => {
                let input: RotateSecretInput = parse_body(&self.req.body)?;
                Ok(Answer::one(
                    200,
                    subs::rotate_secret(
                        out,
                        key,
                        id,
                        input.secret,
                        match input.overlap_secs {
                            None => DEFAULT_SECRET_OVERLAP_SECS,
                            Some(n) if n.fract() == 0.0 && n.abs() < 1e15 => n as i64,
                            Some(_) => {
                                return Err(ApiError::bad_request(
                                    "invalid_overlap",
                                    "overlap_secs must be a whole number of seconds",
                                ));
                            }
                        },
                    )
                    .await?,
                ))
            }
            "retryDeliveries" => {
                let input: RetryInput = parse_body(&self.req.body)?;
                let filter = Filter::parse(
                    input.status.as_deref(),
                    input.event_type.as_deref(),
                    input.since.as_deref(),
                )?;
                let scope = self.subscription_scope().await?;
                let queued = deliveries::retry_matching(out, &scope, &filter).await?;
                Ok(Answer::one(202, json!({"queued": queued})))
            }
            "retryDelivery" => {
                let delivery_id = self.param("delivery_id");
                let delivery = subs::retry(out, &key.company_id, Some(id), delivery_id).await?;
                Ok(Answer::one(202, deliveries::view(&delivery)))
            }
            "listIngestLog" => self.ingest_log().await,
            "listEventTypes" => Ok(Answer::one(200, crate::catalog::describe())),
            other => match self.dispatch_intake(other).await {
                Some(answer) => answer,
                None => Err(ApiError::internal(
                    &format!("the OpenAPI document names operation {other}, which has no handler")
                        .as_str(),
                )),
            },
        }
    }

    async fn skills(&self) -> Result<Vec<String>, ApiError> {
        let company = self.key.company_id.clone();
        self.state
            .store
            .read(move |r| r.list_skills(&company))
            .await
            .map_err(self.store_failed())
    }

    /// The deliveries of the subscription in the path (404 if it is not this company's).
    async fn subscription_scope(&self) -> Result<Scope, ApiError> {
        let sub = subs::get(&self.state.outbound, self.key, self.param("id")).await?;
        Ok(Scope {
            company_id: Some(sub.company_id),
            subscription_id: Some(sub.id),
        })
    }

    /// The company's ingest log, oldest first after `after_id`. With `wait=N` (at most 30) the
    /// call holds until a new entry arrives or N seconds pass, so a client can follow the log
    /// live by calling again with `next_after_id`.
    async fn ingest_log(&self) -> Result<Answer, ApiError> {
        let query = Query::parse(self.req.query);
        let filter = crate::store::IngestFilter {
            after_id: query.number("after_id", 0..=i64::MAX)?.unwrap_or(0),
            key_id: query.text("key").map(str::to_string),
            company_id: Some(self.key.company_id.clone()),
            event_type: query
                .text("event_type")
                .map(|t| deliveries::one_of("event_type", t, InboundEvent::NAMES))
                .transpose()?
                .map(str::to_string),
            status: query.number("status", 100..=599)?.map(|s| s as u16),
            limit: query.number("limit", 1..=1000)?.unwrap_or(100) as usize,
        };
        let wait = query.number("wait", 0..=30)?.unwrap_or(0);
        let (entries, next) = follow_ingest_log(
            &self.state.store,
            filter,
            Duration::from_secs(wait as u64),
            |_| true,
        )
        .await
        .map_err(self.store_failed())?;
        Ok(
            Answer::many(entries.iter().map(views::ingest_entry).collect())
                .with("next_after_id", json!(next)),
        )
    }
}

/// The entries after `filter.after_id` that `keep` accepts, waiting up to `wait` for the first
/// one. Returns them with the cursor to continue from: the last entry looked at, kept or not.
/// Shared by the REST API and the console.
pub(crate) async fn follow_ingest_log(
    store: &crate::store::Store,
    mut filter: crate::store::IngestFilter,
    wait: Duration,
    keep: impl Fn(&crate::store::IngestEntry) -> bool,
) -> Result<(Vec<crate::store::IngestEntry>, i64), crate::store::StoreError> {
    let deadline = Instant::now() + wait;
    loop {
        let f = filter.clone();
        let scanned = store.read(move |r| r.ingest_entries(&f)).await?;
        let full_page = scanned.len() >= filter.limit;
        if let Some(last) = scanned.last() {
            filter.after_id = last.id;
        }
        let kept: Vec<_> = scanned.into_iter().filter(|e| keep(e)).collect();
        if !kept.is_empty() || Instant::now() >= deadline {
            return Ok((kept, filter.after_id));
        }
        if !full_page {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
