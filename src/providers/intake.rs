//! The native pipeline of one request: key and provider from the URL → handshakes the provider
//! does not sign → signature → rate limit → body → signed handshakes → events → per event:
//! mapping and the envelope pipeline, or pass-through. Each event writes its own ingest-log
//! row (sharing the request's id); a request refused before its events writes one.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Value, json};

use super::catalog::{BodyKind, Handshake, Provider, catalog};
use super::expr::Scope;
use super::mapping::Mapping;
use super::{passthrough, signature};
use crate::error::ApiError;
use crate::idempotency;
use crate::ingest::{self, Trace, limit};
use crate::keys::ApiKey;
use crate::request::{HeaderList, Reply, payload_too_large};
use crate::state::AppState;
use crate::verify::{Headers, Source, VerifiedRequest};

/// Where native requests arrive: `/webhooks/inbound/{provider}/{key_id}`.
pub(crate) fn native_route(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/webhooks/inbound/")?;
    let (provider, key_id) = rest.split_once('/')?;
    (!provider.is_empty() && !key_id.is_empty() && !key_id.contains('/'))
        .then_some((provider, key_id))
}

/// Whether a request is live, or an operator's replay of a kept one (whose signature is not
/// checked again, and which no rate limit holds back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Live,
    Replay,
}

/// What can be checked before the body is read: a blocked client address, the provider, the
/// key in the URL and the declared size.
pub(crate) async fn authenticate(
    state: &AppState,
    trace: &mut Trace,
    provider: &str,
    key_id: &str,
    content_length: Option<u64>,
) -> Result<(Arc<ApiKey>, &'static Provider), Reply> {
    if let Some(reply) = limit::refuse_blocked_client(state, trace) {
        return Err(reply);
    }
    let Some(provider) = catalog().get(provider) else {
        return Err(trace.fail(
            ApiError::not_found(format!(
                "unknown provider {provider:?}; see details for the known ones"
            ))
            .with_details(catalog().names().iter().map(|n| json!(n)).collect()),
        ));
    };
    trace.source = Some(Source::Native(&provider.name));
    if content_length.is_some_and(|n| n > state.config.max_body_bytes as u64) {
        return Err(trace.fail(payload_too_large(state.config.max_body_bytes)));
    }
    let key = ingest::key_for(state, trace, Some(key_id)).await?;
    Ok((key, provider))
}

/// A provider's request once its body is read.
pub(crate) struct NativeRequest<'a> {
    pub method: &'a str,
    /// Path and query.
    pub target: &'a str,
    /// Lower-case names.
    pub headers: &'a [(String, String)],
    pub body: Bytes,
}

/// Everything after [`authenticate`] and reading the body.
pub(crate) async fn process(
    state: &AppState,
    trace: &mut Trace,
    key: Arc<ApiKey>,
    provider: &'static Provider,
    native: NativeRequest<'_>,
    mode: Mode,
) -> Reply {
    let NativeRequest {
        method,
        target,
        headers,
        body,
    } = native;
    trace.key = Some(key.clone());
    trace.body = Some(body.clone());
    trace.source = Some(Source::Native(&provider.name));
    let request = signature::Request {
        method,
        target,
        headers,
        body: &body,
        public_url: &state.config.public_url,
    };
    let query = request.query();
    // Handshakes the provider does not sign see the request without its body.
    let bare = Scope::request(method, headers, &query, &Value::Null);
    if let Some(h) = find_handshake(provider, method, true, &bare) {
        return handshake(trace, provider, h, &bare, None);
    }
    if method != "POST" {
        return trace.fail(ApiError::new(
            405,
            "method_not_allowed",
            format!("{} sends its events with POST", provider.title),
        ));
    }
    let Some(secret) = key.provider_secret(&provider.name).map(<[u8]>::to_vec) else {
        let e = signature::refusal(
            provider,
            "provider_secret_missing",
            format!(
                "this API key has no {} secret ({}): add it with `hookgate keys update {} --provider-secret {}=…`",
                provider.name, provider.secret, key.id, provider.name
            ),
        );
        return provider_answer(provider, limit::refuse_signature(state, trace, &key, e));
    };
    if mode == Mode::Live
        && let Err(e) = signature::verify(provider, &secret, &request, state.providers.now_secs())
    {
        return provider_answer(provider, limit::refuse_signature(state, trace, &key, e));
    }
    let rate = match mode {
        Mode::Live => match limit::count(state, trace, &key).await {
            Ok(rate) => Some(rate),
            Err(reply) => return *reply,
        },
        Mode::Replay => None,
    };
    let parsed = match parse_body(provider, &HeaderList(headers), &body) {
        Ok(v) => v,
        Err(e) => return trace.fail(e),
    };
    let scope = Scope::request(method, headers, &query, &parsed);
    if let Some(h) = find_handshake(provider, method, false, &scope) {
        return handshake(trace, provider, h, &scope, Some(&secret));
    }
    let events = match &provider.event.batch {
        None => vec![scope.event()],
        Some(batch) => match scope.events(batch) {
            Ok(events) => events,
            Err(e) => {
                return trace.fail(ApiError::unprocessable(
                    "invalid_provider_body",
                    format!("the {} body has no list of events: {e}", provider.title),
                ));
            }
        },
    };
    let scopes: Vec<Scope> = events.iter().map(|e| scope.with_event(e)).collect();
    if mode == Mode::Live
        && let Err(e) = signature::verify_events(provider, &secret, &scopes)
    {
        return provider_answer(provider, limit::refuse_signature(state, trace, &key, e));
    }
    let mapping = match load_mapping(state, &key.id, &provider.name).await {
        Ok(m) => m,
        Err(e) => return trace.internal(&e),
    };
    let mut results = Vec::with_capacity(scopes.len());
    for scope in &scopes {
        let mut event_trace = trace.clone();
        event_trace.capture = None;
        let reply = run_one(
            state,
            &mut event_trace,
            &key,
            provider,
            mapping.as_deref(),
            scope,
            mode,
        )
        .await;
        ingest::log(state, &event_trace, reply.status);
        results.push((event_trace, reply));
    }
    // Each event logged itself; the request's own row would repeat them.
    trace.logged = !results.is_empty();
    if let Some((first, _)) = results.first() {
        trace.event_type = first.event_type.clone();
        trace.event_id = first.event_id.clone();
        trace.error_code = results.iter().find_map(|(t, _)| t.error_code);
    }
    let mut reply = combine(provider, provider.event.batch.is_some(), results);
    reply.rate = rate;
    provider_answer(provider, reply)
}

/// The answer as the provider wants it: no body for those that want none (Xero).
fn provider_answer(provider: &Provider, mut reply: Reply) -> Reply {
    if provider.empty_answers {
        reply.body = Bytes::new();
    }
    reply
}

fn find_handshake<'p>(
    provider: &'p Provider,
    method: &str,
    unsigned: bool,
    scope: &Scope,
) -> Option<&'p Handshake> {
    provider
        .handshakes
        .iter()
        .find(|h| h.unsigned == unsigned && h.method == method && h.when.holds(scope))
}

fn handshake(
    trace: &mut Trace,
    provider: &Provider,
    h: &Handshake,
    scope: &Scope,
    secret: Option<&[u8]>,
) -> Reply {
    trace.event_type = Some(format!("{}.handshake", provider.name));
    let mut answer = h.answer.eval(scope).unwrap_or(Value::Null);
    if let (Some((field, of)), Some(secret), Value::Object(fields)) = (&h.hmac, secret, &mut answer)
        && let Some(value) = of.text(scope)
    {
        fields.insert(
            field.clone(),
            json!(signature::handshake_mac(provider, secret, &value)),
        );
    }
    let mut reply = if h.text {
        let text = match answer {
            Value::String(s) => s,
            other => other.to_string(),
        };
        let mut reply = Reply::json(200, &Value::Null);
        reply.body = Bytes::from(text);
        reply.content_type = "text/plain; charset=utf-8";
        reply
    } else {
        Reply::json(200, &answer)
    };
    if provider.empty_answers {
        reply.body = Bytes::new();
    }
    reply
}

/// The body as JSON, or a form's fields as an object of strings.
fn parse_body(provider: &Provider, headers: &impl Headers, body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    let media = headers
        .get("content-type")
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase());
    let form = match media.as_deref() {
        Some("application/x-www-form-urlencoded") => true,
        Some(_) => false,
        None => provider.body == BodyKind::Form,
    };
    if form {
        let fields: serde_json::Map<String, Value> =
            signature::form_pairs(&String::from_utf8_lossy(body))
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
        return Ok(Value::Object(fields));
    }
    serde_json::from_slice(body).map_err(|e| {
        let is_json = media
            .as_deref()
            .is_none_or(|m| m == "application/json" || m.ends_with("+json"));
        if is_json {
            ApiError::bad_request(
                "invalid_json",
                format!(
                    "malformed JSON in the {} body (line {}, column {}): {e}",
                    provider.title,
                    e.line(),
                    e.column()
                ),
            )
        } else {
            ApiError::new(
                415,
                "unsupported_media_type",
                format!(
                    "{} bodies are JSON or form fields; this one is {}",
                    provider.title,
                    media.as_deref().unwrap_or("untyped")
                ),
            )
        }
    })
}

#[tracing::instrument(skip_all, fields(provider))]
async fn load_mapping(
    state: &AppState,
    key_id: &str,
    provider: &str,
) -> Result<Option<Arc<Mapping>>, crate::store::StoreError> {
    let cache = &state.providers.mappings;
    if let Some(found) = cache.get(key_id, provider) {
        return Ok(found);
    }
    let (k, p) = (key_id.to_string(), provider.to_string());
    let row = state.store.read(move |r| r.mapping(&k, &p)).await?;
    let mapping = row.and_then(|row| {
        let document: Value = serde_json::from_str(&row.mapping).ok()?;
        match Mapping::compile(&document) {
            Ok(m) => Some(Arc::new(m)),
            Err(e) => {
                tracing::warn!(key_id, provider, error = %e.message, "stored mapping does not compile; events pass through");
                None
            }
        }
    });
    cache.put(key_id, provider, mapping.clone());
    Ok(mapping)
}

/// What the catalog says of one event.
pub(super) struct EventFacts {
    pub id: Option<String>,
    pub type_: Option<String>,
}

fn facts(provider: &Provider, scope: &Scope) -> EventFacts {
    EventFacts {
        id: provider.event.id.as_ref().and_then(|e| e.text(scope)),
        type_: provider.event.type_.as_ref().and_then(|e| e.text(scope)),
    }
}

async fn run_one(
    state: &AppState,
    trace: &mut Trace,
    key: &Arc<ApiKey>,
    provider: &'static Provider,
    mapping: Option<&Mapping>,
    scope: &Scope,
    mode: Mode,
) -> Reply {
    let facts = facts(provider, scope);
    let idem = facts
        .id
        .as_deref()
        .map(|id| idempotency::provider_key(&provider.name, id));
    if mode == Mode::Replay
        && let Some(idem) = &idem
        && let Err(e) = idempotency::forget_failure(state, &key.id, idem).await
    {
        return trace.internal(&e);
    }
    match mapping.and_then(|m| m.apply(&provider.name, facts.type_.as_deref(), scope)) {
        Some(Ok(mapped)) => {
            let body =
                Bytes::from(serde_json::to_vec(&mapped.envelope).expect("JSON values serialize"));
            // The provider's retry of this event is the same event, mapped at another moment.
            let event = serde_json::to_vec(&*scope.event()).expect("JSON values serialize");
            let verified = VerifiedRequest::authenticated_elsewhere(key.clone(), body)
                .guarding(Bytes::from(event));
            ingest::after_verification(state, trace, idem, verified).await
        }
        Some(Err(e)) => trace.fail(e),
        None => passthrough::run(state, trace, key, provider, &facts, scope, idem).await,
    }
}

/// One event's answer is the request's; a batch's lists each event's, and fails with the first
/// failure (the other events stand: each is its own change, deduplicated by its id, so the
/// provider's retry or an operator's replay runs only what failed).
fn combine(provider: &Provider, batch: bool, results: Vec<(Trace, Reply)>) -> Reply {
    let success = provider.success_status;
    if !batch && results.len() == 1 {
        let (_, mut reply) = results.into_iter().next().expect("one result");
        if reply.status == 200 {
            reply.status = success;
        }
        return reply;
    }
    let summaries: Vec<Value> = results
        .iter()
        .enumerate()
        .map(|(index, (t, reply))| {
            let mut summary = serde_json::from_slice::<Value>(&reply.body).unwrap_or(Value::Null);
            if let Value::Object(fields) = &mut summary {
                fields.insert("index".into(), json!(index));
                fields.insert("status".into(), json!(reply.status));
                fields.insert("event_type".into(), json!(t.event_type));
                if reply.replayed {
                    fields.insert("duplicate".into(), json!(true));
                }
            }
            summary
        })
        .collect();
    let count = results.len();
    match results.iter().position(|(_, r)| r.status >= 300) {
        None => Reply::json(
            success,
            &json!({
                "success": true,
                "message": format!("{count} event(s) processed"),
                "events": summaries,
            }),
        ),
        Some(i) => {
            let failed = &summaries[i]["error"];
            let body = json!({
                "success": false,
                "error": {
                    "code": failed["code"],
                    "message": format!("event {} of {count}: {}", i + 1, failed["message"].as_str().unwrap_or("failed")),
                    "details": summaries,
                },
            });
            Reply::json(results[i].1.status, &body)
        }
    }
}

/// What a sample request would become for a key, without storing anything: each event's id,
/// type and, through `mapping` (or the key's stored one), its envelope and whether that
/// envelope is valid.
pub(crate) async fn preview(
    state: &AppState,
    key: &ApiKey,
    provider: &'static Provider,
    headers: &[(String, String)],
    body: &Value,
    mapping: Option<Mapping>,
) -> Result<Value, ApiError> {
    let scope = Scope::request("POST", headers, &[], body);
    let events = match &provider.event.batch {
        None => vec![scope.event()],
        Some(batch) => scope
            .events(batch)
            .map_err(|e| ApiError::unprocessable("invalid_provider_body", e))?,
    };
    let stored;
    let mapping = match mapping {
        Some(m) => Some(Arc::new(m)),
        None => {
            stored = load_mapping(state, &key.id, &provider.name)
                .await
                .map_err(|e| ApiError::internal(&e))?;
            stored
        }
    };
    let mut out = Vec::new();
    for event in &events {
        let scope = scope.with_event(event);
        let facts = facts(provider, &scope);
        let mut item = json!({
            "provider_event_id": facts.id,
            "provider_event_type": facts.type_,
        });
        match mapping
            .as_deref()
            .and_then(|m| m.apply(&provider.name, facts.type_.as_deref(), &scope))
        {
            None => {
                item["becomes"] = json!(super::pass_through_type(
                    &provider.name,
                    facts.type_.as_deref()
                ));
            }
            Some(Err(e)) => item["error"] = e.body()["error"].clone(),
            Some(Ok(mapped)) => {
                item["becomes"] = mapped.envelope["event_type"].clone();
                item["rule"] = json!(mapped.rule);
                let body = Bytes::from(mapped.envelope.to_string());
                let verified =
                    VerifiedRequest::authenticated_elsewhere(Arc::new(key.clone()), body);
                let checked = crate::envelope::parse(&verified)
                    .and_then(crate::normalize::normalize)
                    .and_then(|n| state.schemas.validate(n));
                match checked {
                    Ok(valid) => {
                        item["envelope"] =
                            json!({"event_type": valid.event_type().name(), "data": valid.data()})
                    }
                    Err(e) => {
                        item["envelope"] = mapped.envelope.clone();
                        item["error"] = e.body()["error"].clone();
                    }
                }
            }
        }
        out.push(item);
    }
    Ok(json!({"provider": provider.name, "events": out}))
}
