//! One HTTP attempt to a subscriber: builds the signed request, sends it through the
//! SSRF-guarded client, and keeps what an integration engineer needs to debug it: the request
//! headers (secrets removed), the answer's status, headers and first 4 KiB, the duration, and
//! what kind of failure it was.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::HeaderValue;
use serde_json::Value;

use super::client::{self, Target};
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
        timestamp: clock::now_secs(),
    };
    send(out, sub, &meta, &body, None).await
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
    let mut record = AttemptRecord {
        at,
        attempt: meta.attempt,
        request_headers: "{}".into(),
        ..AttemptRecord::default()
    };
    let fail = |mut record: AttemptRecord, kind: &str, error: String| {
        record.duration_ms = started.elapsed().as_millis() as i64;
        record.outcome = "failed".into();
        record.error_kind = Some(kind.into());
        record.error = Some(error.clone());
        Exchange {
            outcome: classify(None, None, Some(&error)),
            record,
        }
    };
    let prepared = out.prepared.get(out, sub);
    let Some(secrets) = prepared.secrets_now() else {
        return fail(
            record,
            "secret",
            "the subscription secret cannot be decrypted (master key changed?)".into(),
        );
    };
    let target = match &prepared.target {
        Ok(target) => target,
        Err((kind, error)) => return fail(record, kind, error.clone()),
    };
    let mut signed = signing::headers(&secrets, meta, body);
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
    let answer = match out.client.post(target, &headers, body, timeout).await {
        Ok(answer) => answer,
        Err(failure) => return fail(record, failure.kind, failure.text),
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

fn header_json<'h>(headers: impl Iterator<Item = (&'h str, &'h str)>) -> String {
    use serde::Serializer as _;
    let mut json = Vec::with_capacity(512);
    serde_json::Serializer::new(&mut json)
        .collect_map(headers)
        .expect("strings serialize");
    String::from_utf8(json).expect("serde_json writes UTF-8")
}
