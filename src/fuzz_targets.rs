//! The fuzz targets, as plain functions of the input bytes: `fuzz/` runs them under
//! libFuzzer (nightly), and `tests/fuzz_corpus.rs` replays every saved input through them on
//! stable, so an input that once crashed stays fixed. Each drives one parser the way a
//! request would reach it, and panics on any broken promise (a panic is what the fuzzer
//! reports), not only on crashes.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde_json::{Value, json};

use crate::envelope;
use crate::error::ApiError;
use crate::keys::ApiKey;
use crate::normalize;
use crate::request::{LimitedBuffer, TooLarge};
use crate::validate::Schemas;
use crate::verify::{self, Headers, Source, VerifySettings};

/// The server's clock, as far as the targets are concerned.
const NOW: i64 = 1_700_000_000;

fn schemas() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| Schemas::compile().expect("the embedded schemas compile"))
}

/// The key every target (and `verify`'s unit tests) verifies with.
pub fn sample_key() -> Arc<ApiKey> {
    Arc::new(ApiKey {
        id: "hk_1".into(),
        company_id: "co".into(),
        company_name: "acme".into(),
        name: "erp".into(),
        signing_secrets: vec![b"new-secret".to_vec(), b"old-secret".to_vec()],
        square_signature_key: Some(b"sq-key".to_vec()),
        quickbooks_verifier_token: Some(b"qb-token".to_vec()),
        dynamics_key: Some(DYNAMICS_KEY.as_bytes().to_vec()),
        provider_secrets: Vec::new(),
        keep_requests: true,
        body_only_signing: false,
        per_minute: None,
        per_hour: None,
        revoked: false,
    })
}

const DYNAMICS_KEY: &str = "d365";

pub fn sample_settings() -> VerifySettings {
    VerifySettings {
        public_url: "https://hooks.example.com".into(),
        timestamp_tolerance_secs: 300,
        dynamics_header: "x-dynamics-key".into(),
    }
}

struct FuzzHeaders(Vec<(&'static str, String)>);

impl Headers for FuzzHeaders {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Every refusal is a documented client error whose body serializes.
fn check_refusal(e: &ApiError, statuses: &[u16]) {
    assert!(statuses.contains(&e.status), "{} {}", e.status, e.code);
    assert!(!e.code.is_empty());
    serde_json::to_vec(&e.body()).expect("error bodies serialize");
}

/// Parse, normalize and validate `body` as an unsigned `zapier` request would be; checks the
/// promises of each stage.
fn pipeline(body: Bytes) {
    let len = body.len();
    let peeked = envelope::peek_event_type(&body);
    let verified = verify::verify(
        sample_key(),
        Source::Zapier,
        &FuzzHeaders(Vec::new()),
        "/webhooks/inbound",
        body,
        NOW,
        &sample_settings(),
    )
    .expect("an unsigned zapier request reaches parsing");
    let parsed = match envelope::parse(&verified) {
        Ok(parsed) => parsed,
        Err(e) => {
            check_refusal(&e, &[400]);
            if e.code == "invalid_json" {
                let offset = e.details[0]["offset"].as_u64().expect("an offset");
                assert!(offset as usize <= len, "offset {offset} past {len}");
            }
            return;
        }
    };
    match normalize::normalize(parsed).and_then(|n| schemas().validate(n)) {
        // The type is a catalog entry by construction; it must be the one the body named
        // (the peek reads nothing when a duplicated key leaves it unsure).
        Ok(event) => assert!(peeked.is_none_or(|p| p == event.event_type().name())),
        Err(e) => {
            check_refusal(&e, &[400]);
            assert!(e.details.len() <= 101, "{} details", e.details.len());
            for detail in &e.details {
                let message = detail["message"].as_str().unwrap_or("");
                assert!(message.len() < 2048, "a message of {} bytes", message.len());
            }
        }
    }
}

/// Envelope parsing (and the stages after it) on arbitrary request bytes.
pub fn envelope(data: &[u8]) {
    pipeline(Bytes::copy_from_slice(data));
}

/// Normalization: the first line names the event type, the rest is its `data` object; rest
/// that is not a JSON object is tried as a vendor's combined address and as enum and region
/// spellings.
pub fn normalize(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (event_type, rest) = text.split_once('\n').unwrap_or((&text, ""));
    let data = match serde_json::from_str::<Value>(rest) {
        Ok(Value::Object(object)) => Value::Object(object),
        _ => {
            let _ = normalize::canonical_enum("status", rest);
            let _ = normalize::region_code(rest);
            json!({"vendor_name": "fuzz", "address": rest, "trade_specialty": rest})
        }
    };
    let body = json!({"event_type": event_type, "data": data});
    pipeline(Bytes::from(
        serde_json::to_vec(&body).expect("JSON serializes"),
    ));
}

/// Signature headers: the first line is `X-Webhook-Timestamp`, the second
/// `X-Webhook-Signature` (also tried as the Square and QuickBooks headers), the rest the body.
pub fn signature_header(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.splitn(3, '\n');
    let timestamp = lines.next().unwrap_or("").to_string();
    let signature = lines.next().unwrap_or("").to_string();
    let body = Bytes::from(lines.next().unwrap_or("").to_string());
    let headers = FuzzHeaders(vec![
        ("x-webhook-timestamp", timestamp),
        ("x-webhook-signature", signature.clone()),
        ("x-square-hmacsha256-signature", signature.clone()),
        ("intuit-signature", signature),
    ]);
    for source in [Source::Custom, Source::Square, Source::QuickBooks] {
        let result = verify::verify(
            sample_key(),
            source,
            &headers,
            "/webhooks/inbound",
            body.clone(),
            NOW,
            &sample_settings(),
        );
        if let Err(e) = result {
            check_refusal(&e, &[403]);
        }
    }
}

/// Query strings: the Dynamics 365 shared key sent as `?code=`.
pub fn query_string(data: &[u8]) {
    let query = String::from_utf8_lossy(data);
    let target = format!("/webhooks/inbound?{query}");
    let result = verify::verify(
        sample_key(),
        Source::Dynamics365,
        &FuzzHeaders(Vec::new()),
        &target,
        Bytes::new(),
        NOW,
        &sample_settings(),
    );
    let sent = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned());
    match result {
        Ok(v) => assert_eq!(
            v.signature_verified(),
            sent.as_deref() == Some(DYNAMICS_KEY)
        ),
        Err(e) => {
            check_refusal(&e, &[403]);
            assert!(sent.is_some_and(|s| s != DYNAMICS_KEY));
        }
    }
}

/// The body reader: the first two bytes are the limit, the rest are chunks separated by
/// `0xff`. What is kept is exactly the chunks up to the limit, and a body over the limit is
/// refused at the first chunk that crosses it.
pub fn body_reader(data: &[u8]) {
    let Some((limit, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let limit = usize::from(u16::from_le_bytes(*limit));
    let mut buffer = LimitedBuffer::new(limit);
    let mut expected = Vec::new();
    let mut refused = false;
    for chunk in rest.split(|b| *b == 0xff) {
        let fits = expected.len() + chunk.len() <= limit;
        match buffer.push(chunk) {
            Ok(()) => {
                assert!(fits, "a chunk past the limit was kept");
                expected.extend_from_slice(chunk);
            }
            Err(TooLarge) => {
                assert!(!fits, "a chunk within the limit was refused");
                refused = true;
                break;
            }
        }
    }
    let kept = buffer.finish();
    assert!(kept.len() <= limit);
    assert_eq!(kept.as_ref(), expected.as_slice());
    assert!(refused || rest.split(|b| *b == 0xff).map(<[u8]>::len).sum::<usize>() <= limit);
}
