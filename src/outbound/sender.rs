//! One HTTP attempt to a subscriber: builds the signed request, sends it through the
//! SSRF-guarded client, and keeps what an integration engineer needs to debug it: the request
//! headers (secrets removed), the answer's status, headers and first 4 KiB, the duration, and
//! what kind of failure it was.

use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::{AttemptOutcome, Outbound, classify, client, signing};
use crate::clock;
use crate::store::{AttemptRecord, EventRow, SubscriptionRow};

/// How much of a response body is kept.
const KEPT_BODY_BYTES: usize = 4096;

/// What an attempt did.
#[derive(Debug, Clone)]
pub(crate) struct Exchange {
    pub outcome: AttemptOutcome,
    /// The attempt as recorded (`delivery_id` and `attempt` are filled in by the caller).
    pub record: AttemptRecord,
}

/// The secrets a subscription signs with now: the current one, and during a rotation's
/// overlap the previous one too. `None` when they cannot be unsealed (wrong master key).
pub(crate) fn signing_secrets(out: &Outbound, sub: &SubscriptionRow) -> Option<Vec<String>> {
    let open = |sealed: &[u8]| {
        out.keys
            .unseal(sealed, &sub.id)
            .and_then(|s| String::from_utf8(s).ok())
    };
    let mut secrets = vec![open(&sub.secret_enc)?];
    if let (Some(previous), Some(until)) = (&sub.previous_secret_enc, sub.previous_secret_until)
        && until > clock::now_ms()
    {
        secrets.push(open(previous)?);
    }
    Some(secrets)
}

/// Sends `event` to the subscription (attempt number `attempt`, 0 for the first).
#[tracing::instrument(
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
    send(out, sub, &meta, body, None).await
}

/// POSTs a signed body to the subscription's URL (deliveries, test sends, URL verification).
pub(crate) async fn send(
    out: &Outbound,
    sub: &SubscriptionRow,
    meta: &signing::DeliveryMeta<'_>,
    body: Vec<u8>,
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
    let Some(secrets) = signing_secrets(out, sub) else {
        return fail(
            record,
            "secret",
            "the subscription secret cannot be decrypted (master key changed?)".into(),
        );
    };
    let url = match reqwest::Url::parse(&sub.url) {
        Ok(url) => url,
        Err(e) => return fail(record, "invalid_url", format!("invalid URL: {e}")),
    };
    if let Err(e) = client::check_literal_host(&url, out.config.allow_private_urls) {
        return fail(record, "ssrf_refused", e.to_string());
    }
    let mut headers: Vec<(String, String)> =
        vec![("content-type".into(), "application/json".into())];
    headers.extend(
        signing::headers(&secrets, meta, &body)
            .into_iter()
            .map(|(name, value)| (name.to_string(), value)),
    );
    let mut request = out.client.post(url);
    for (name, value) in &headers {
        request = request.header(name, value);
    }
    if let Some((user, password)) = basic_auth(out, sub) {
        request = request.basic_auth(user, password);
        headers.push(("authorization".into(), "Basic <redacted>".into()));
    }
    record.request_headers = header_json(headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    if let Some(t) = timeout {
        request = request.timeout(t);
    }
    let response = match request.body(body).send().await {
        Ok(response) => response,
        Err(e) => {
            let (kind, text) = describe(&e);
            return fail(record, kind, text);
        }
    };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    record.status_code = Some(status);
    record.response_headers = Some(header_json(
        response
            .headers()
            .iter()
            .filter_map(|(n, v)| Some((n.as_str(), v.to_str().ok()?))),
    ));
    record.response_body = Some(kept_body(response).await);
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

fn basic_auth(out: &Outbound, sub: &SubscriptionRow) -> Option<(String, Option<String>)> {
    let sealed = sub.basic_auth_enc.as_ref()?;
    let auth: Value = out
        .keys
        .unseal(sealed, &sub.id)
        .and_then(|b| serde_json::from_slice(&b).ok())?;
    Some((
        auth["username"].as_str().unwrap_or("").to_string(),
        auth["password"].as_str().map(str::to_string),
    ))
}

fn header_json<'h>(headers: impl Iterator<Item = (&'h str, &'h str)>) -> String {
    let map: Map<String, Value> = headers
        .map(|(n, v)| (n.to_string(), Value::String(v.to_string())))
        .collect();
    Value::Object(map).to_string()
}

/// The first [`KEPT_BODY_BYTES`] of the body, as text.
async fn kept_body(mut response: reqwest::Response) -> String {
    let mut kept = Vec::new();
    while kept.len() < KEPT_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
            _ => break,
        }
    }
    kept.truncate(KEPT_BODY_BYTES);
    String::from_utf8_lossy(&kept).into_owned()
}

/// The kind of a transport failure, and its description with every cause.
fn describe(e: &reqwest::Error) -> (&'static str, String) {
    let mut text = if e.is_timeout() {
        "timed out".to_string()
    } else {
        e.to_string()
    };
    let mut kind = if e.is_timeout() {
        "timeout"
    } else {
        "connection"
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.downcast_ref::<client::PrivateAddress>().is_some() {
            kind = "ssrf_refused";
        } else if let Some(io) = s.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => kind = "connection_refused",
                std::io::ErrorKind::TimedOut => kind = "timeout",
                _ => {}
            }
        }
        let message = s.to_string();
        let lower = message.to_ascii_lowercase();
        if kind == "connection" {
            if lower.contains("dns") || lower.contains("lookup") || lower.contains("resolve") {
                kind = "dns";
            } else if lower.contains("certificate") || lower.contains("tls") {
                kind = "tls";
            }
        }
        text.push_str(": ");
        text.push_str(&message);
        source = s.source();
    }
    (kind, text)
}
