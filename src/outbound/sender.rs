//! One HTTP attempt to a subscriber: builds the signed request, sends it through the
//! SSRF-guarded client, and keeps what an integration engineer needs to debug it: the request
//! headers (secrets removed), the answer's status, headers and first 4 KiB, the duration, and
//! what kind of failure it was.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::HeaderValue;
use serde_json::Value;

use super::client::{self, Answer, Failure, Target};
use super::signing::{self, SigningSecret};
use super::{AttemptOutcome, Outbound, classify};
use crate::clock;
use crate::store::{AttemptRecord, EventRow, SubscriptionRow};

/// What an attempt did.
#[derive(Debug, Clone)]
pub(crate) struct Exchange {
    pub outcome: AttemptOutcome,
    /// The attempt as recorded (`delivery_id` and `attempt` are filled in by the caller).
    pub record: AttemptRecord,
}

/// What every delivery to one version of a subscription shares, worked out once rather than
/// per send: its target (or why its URL cannot be used), its secrets unsealed, and its basic
/// auth header. Kept per subscription in a [`PreparedCache`] and rebuilt when the row changes.
pub(crate) struct Prepared {
    /// The version of the row this was built from.
    url: String,
    secret_enc: Vec<u8>,
    previous_secret_enc: Option<Vec<u8>>,
    previous_secret_until: Option<i64>,
    basic_auth_enc: Option<Vec<u8>>,
    /// Where its deliveries go, or the error kind and text of a send to its URL.
    target: Result<Target, (&'static str, String)>,
    /// The current secret, and during a rotation's overlap the previous one with the end of
    /// the overlap, keyed for signing; `None` when they cannot be unsealed (wrong master key).
    secrets: Option<(SigningSecret, Option<(SigningSecret, i64)>)>,
    basic_auth: Option<HeaderValue>,
}

/// Subscriptions prepared by this process; more than this many and the cache starts afresh
/// (subscriptions deleted long ago would otherwise stay in it).
const PREPARED_CACHE_LIMIT: usize = 10_000;

#[derive(Default)]
pub(crate) struct PreparedCache(std::sync::Mutex<HashMap<String, Arc<Prepared>>>);

impl PreparedCache {
    /// The subscription's prepared form, built again when its row has changed.
    fn get(&self, out: &Outbound, sub: &SubscriptionRow) -> Arc<Prepared> {
        if let Some(prepared) = self
            .0
            .lock()
            .expect("prepared cache lock")
            .get(&sub.id)
            .filter(|p| p.is_for(sub))
        {
            return prepared.clone();
        }
        let prepared = Arc::new(Prepared::build(out, sub));
        let mut cache = self.0.lock().expect("prepared cache lock");
        if cache.len() >= PREPARED_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(sub.id.clone(), prepared.clone());
        prepared
    }
}

impl Prepared {
    fn is_for(&self, sub: &SubscriptionRow) -> bool {
        self.url == sub.url
            && self.secret_enc == sub.secret_enc
            && self.previous_secret_enc == sub.previous_secret_enc
            && self.previous_secret_until == sub.previous_secret_until
            && self.basic_auth_enc == sub.basic_auth_enc
    }

    fn build(out: &Outbound, sub: &SubscriptionRow) -> Prepared {
        let open = |sealed: &[u8]| {
            out.keys
                .unseal(sealed, &sub.id)
                .and_then(|s| String::from_utf8(s).ok())
        };
        let secrets = open(&sub.secret_enc).and_then(|current| {
            let previous = match (&sub.previous_secret_enc, sub.previous_secret_until) {
                (Some(sealed), Some(until)) => Some((SigningSecret::new(&open(sealed)?), until)),
                _ => None,
            };
            Some((SigningSecret::new(&current), previous))
        });
        let target = Target::parse(&sub.url, out.config.allow_private_urls);
        let basic_auth = sub.basic_auth_enc.as_ref().and_then(|sealed| {
            let auth: Value = out
                .keys
                .unseal(sealed, &sub.id)
                .and_then(|b| serde_json::from_slice(&b).ok())?;
            Some(client::basic_auth(
                auth["username"].as_str().unwrap_or(""),
                auth["password"].as_str(),
            ))
        });
        Prepared {
            url: sub.url.clone(),
            secret_enc: sub.secret_enc.clone(),
            previous_secret_enc: sub.previous_secret_enc.clone(),
            previous_secret_until: sub.previous_secret_until,
            basic_auth_enc: sub.basic_auth_enc.clone(),
            target,
            secrets,
            basic_auth,
        }
    }

    /// The secrets to sign with now: the current one, and the previous one while its overlap
    /// lasts.
    fn secrets_now(&self) -> Option<Vec<&SigningSecret>> {
        let (current, previous) = self.secrets.as_ref()?;
        let mut secrets = vec![current];
        if let Some((previous, until)) = previous
            && *until > clock::now_ms()
        {
            secrets.push(previous);
        }
        Some(secrets)
    }

    /// Where a send goes and the secrets it is signed with, or the error kind and text of the
    /// attempt when it cannot be made.
    fn ready(&self) -> Result<(&Target, Vec<&SigningSecret>), (&'static str, String)> {
        let secrets = self.secrets_now().ok_or((
            "secret",
            "the subscription secret cannot be decrypted (master key changed?)".to_string(),
        ))?;
        let target = self
            .target
            .as_ref()
            .map_err(|(kind, error)| (*kind, error.clone()))?;
        Ok((target, secrets))
    }
}

/// Sends `event` to the subscription (attempt number `attempt`, 0 for the first).
// At debug level: at info, every delivery would open a span for the one line the worker
// already logs with these fields.
#[tracing::instrument(
    level = "debug",
    skip_all,
    fields(subscription_id = %sub.id, event_id = %event.event_id, attempt)
)]
pub(crate) async fn deliver(
    out: &Outbound,
    sub: &SubscriptionRow,
    event: &EventRow,
    attempt: u32,
) -> Exchange {
    let (body, meta) = of_event(sub, event, attempt, clock::now_secs());
    send(out, sub, &meta, &body, None).await
}

/// The body and the signing details of `event` sent to `sub`.
fn of_event<'e>(
    sub: &'e SubscriptionRow,
    event: &'e EventRow,
    attempt: u32,
    timestamp: i64,
) -> (Cow<'e, [u8]>, signing::DeliveryMeta<'e>) {
    let body = signing::body(
        &sub.payload,
        &event.payload,
        &event.entity,
        &event.record_id,
    );
    let meta = signing::DeliveryMeta {
        webhook_id: &event.event_id,
        event_type: &event.event_type,
        subscription_name: &sub.name,
        attempt,
        timestamp,
    };
    (body, meta)
}

/// Sends several events to the subscription pipelined on one connection (first attempts;
/// see [`client::Client::post_pipelined`]); an exchange per event, in their order.
pub(crate) async fn deliver_pipelined(
    out: &Outbound,
    sub: &SubscriptionRow,
    events: &[Arc<EventRow>],
) -> Vec<Exchange> {
    let started = Instant::now();
    let at = clock::now_ms();
    let prepared = out.prepared.get(out, sub);
    let (target, secrets) = match prepared.ready() {
        Ok(ready) => ready,
        Err((kind, error)) => {
            return events
                .iter()
                .map(|_| failed(new_record(at, 0), kind, error.clone(), started))
                .collect();
        }
    };
    let timestamp = clock::now_secs();
    let (requests, records): (Vec<Vec<u8>>, Vec<AttemptRecord>) = events
        .iter()
        .map(|event| {
            let (body, meta) = of_event(sub, event, 0, timestamp);
            outgoing(&prepared, target, &secrets, &meta, &body, at)
        })
        .unzip();
    let answers = out.client.post_pipelined(target, &requests, None).await;
    records
        .into_iter()
        .zip(answers)
        .map(|(record, answer)| concluded(record, answer, started))
        .collect()
}

/// POSTs a signed body to the subscription's URL (deliveries, test sends, URL verification).
pub(crate) async fn send(
    out: &Outbound,
    sub: &SubscriptionRow,
    meta: &signing::DeliveryMeta<'_>,
    body: &[u8],
    timeout: Option<Duration>,
) -> Exchange {
    let started = Instant::now();
    let at = clock::now_ms();
    let prepared = out.prepared.get(out, sub);
    let (target, secrets) = match prepared.ready() {
        Ok(ready) => ready,
        Err((kind, error)) => return failed(new_record(at, meta.attempt), kind, error, started),
    };
    let (request, record) = outgoing(&prepared, target, &secrets, meta, body, at);
    let answer = out.client.post(target, &request, timeout).await;
    concluded(record, answer, started)
}

fn new_record(at: i64, attempt: u32) -> AttemptRecord {
    AttemptRecord {
        at,
        attempt,
        request_headers: "{}".into(),
        ..AttemptRecord::default()
    }
}

/// An attempt that got no answer.
fn failed(mut record: AttemptRecord, kind: &str, error: String, started: Instant) -> Exchange {
    record.duration_ms = started.elapsed().as_millis() as i64;
    record.outcome = "failed".into();
    record.error_kind = Some(kind.into());
    record.error = Some(error.clone());
    Exchange {
        outcome: classify(None, None, Some(&error)),
        record,
    }
}

/// Signs and frames one request: its bytes, and its attempt as recorded so far (the request
/// headers, secrets removed).
fn outgoing(
    prepared: &Prepared,
    target: &Target,
    secrets: &[&SigningSecret],
    meta: &signing::DeliveryMeta<'_>,
    body: &[u8],
    at: i64,
) -> (Vec<u8>, AttemptRecord) {
    let mut record = new_record(at, meta.attempt);
    let mut signed = signing::headers(secrets, meta, body);
    // Every value is ours or was checked when the subscription was saved; one that is not a
    // valid header value is left out rather than failing the send.
    signed.retain(|(_, value)| client::is_header_value(value.as_bytes()));
    let authorized = prepared.basic_auth.is_some() || target.has_credentials();
    record.request_headers = header_json(
        std::iter::once(("content-type", "application/json"))
            .chain(signed.iter().map(|(name, value)| (*name, value.as_ref())))
            .chain(authorized.then_some(("authorization", "Basic <redacted>"))),
    );
    let mut headers: Vec<(&str, &[u8])> = Vec::with_capacity(signed.len() + 2);
    headers.push(("content-type", b"application/json"));
    headers.extend(signed.iter().map(|(name, value)| (*name, value.as_bytes())));
    if let Some(auth) = &prepared.basic_auth {
        headers.push(("authorization", auth.as_bytes()));
    }
    (client::Client::request(target, &headers, body), record)
}

/// The attempt, from the answer (or why there was none).
fn concluded(
    mut record: AttemptRecord,
    answer: Result<Answer, Failure>,
    started: Instant,
) -> Exchange {
    let answer = match answer {
        Ok(answer) => answer,
        Err(failure) => return failed(record, failure.kind, failure.text, started),
    };
    let status = answer.status;
    let retry_after = answer
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    record.status_code = Some(status);
    record.response_headers = Some(header_json(
        answer
            .headers
            .iter()
            .filter_map(|(n, v)| Some((n.as_str(), v.to_str().ok()?))),
    ));
    record.response_body = Some(String::from_utf8_lossy(&answer.body).into_owned());
    record.duration_ms = started.elapsed().as_millis() as i64;
    let outcome = classify(Some(status), retry_after, None);
    if outcome == AttemptOutcome::Succeeded {
        record.outcome = "succeeded".into();
    } else {
        record.outcome = "failed".into();
        record.error_kind = Some("http_status".into());
        record.error = Some(format!("HTTP {status}"));
    }
    Exchange { outcome, record }
}

/// How many first attempts to the subscription go pipelined on one connection: the configured
/// depth, or 1 when its URL cannot be used or its origin left a pipelined request unanswered.
pub(crate) fn pipeline_depth(out: &Outbound, sub: &SubscriptionRow) -> usize {
    let depth = out.config.pipeline_depth;
    if depth <= 1 {
        return 1;
    }
    match &out.prepared.get(out, sub).target {
        Ok(target) if out.client.pipelines(target) => depth,
        _ => 1,
    }
}

fn header_json<'h>(headers: impl Iterator<Item = (&'h str, &'h str)>) -> String {
    use serde::Serializer as _;
    let mut json = Vec::with_capacity(512);
    serde_json::Serializer::new(&mut json)
        .collect_map(headers)
        .expect("strings serialize");
    String::from_utf8(json).expect("serde_json writes UTF-8")
}
