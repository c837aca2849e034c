//! Native provider intake (`/webhooks/inbound/{provider}/{key_id}`): every request of
//! `fixtures/providers/requests.json` (signed by the providers' own SDKs or their published
//! examples, see `fixtures/providers/generate.py`) verifies and gets its answer; handshakes,
//! pass-through events, mappings, deduplication and teaching signature errors.

use std::collections::BTreeMap;

use hookgate::keys::{CreatedKey, hash_api_token};
use hookgate::providers::{catalog, signature};
use hookgate::store::NewKey;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::receiver::Receiver;

#[derive(Deserialize, Clone)]
pub struct Fixture {
    pub provider: String,
    pub case: String,
    pub made_with: String,
    pub secret: String,
    pub method: String,
    pub target: String,
    pub headers: BTreeMap<String, String>,
    pub body: String,
    pub now: i64,
    pub expect: Expect,
}

#[derive(Deserialize, Clone)]
pub struct Expect {
    pub status: u16,
    pub body: Option<Value>,
    pub text: Option<String>,
}

pub fn fixtures() -> Vec<Fixture> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/providers/requests.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn fixture(provider: &str, case: &str) -> Fixture {
    fixtures()
        .into_iter()
        .find(|f| f.provider == provider && f.case == case)
        .unwrap_or_else(|| panic!("no fixture {provider} / {case}"))
}

const FIXTURE_KEY: &str = "hk_fixture";
const FIXTURE_TOKEN: &str = "hkt_fixture-token";

/// The key the fixtures were signed for (its id is in their URLs), in company `fixtures`.
async fn fixture_key(app: &TestApp) -> CreatedKey {
    let keys = app.state.keys.clone();
    let sealed = keys.seal(b"hks_fixture", FIXTURE_KEY);
    let company_id = app
        .state
        .store
        .write(move |tx| {
            let company = tx.ensure_company("fixtures", "co_fixtures", now())?;
            tx.insert_key(&NewKey {
                id: FIXTURE_KEY.into(),
                company_id: company.clone(),
                name: "providers".into(),
                secret_enc: sealed.clone(),
                square_key_enc: None,
                quickbooks_token_enc: None,
                dynamics_key_enc: None,
                body_only_signing: false,
                per_minute: Some(10_000),
                per_hour: Some(100_000),
                api_token_hash: Some(hash_api_token(FIXTURE_TOKEN)),
                created_at: now(),
            })?;
            Ok(company)
        })
        .await
        .unwrap();
    CreatedKey {
        key_id: FIXTURE_KEY.into(),
        secret: "hks_fixture".into(),
        api_token: FIXTURE_TOKEN.into(),
        company: "fixtures".into(),
        company_id,
        name: "providers".into(),
    }
}

/// `GET /api/v1/ingest-log/{id}` with `token`.
async fn entry(app: &TestApp, token: &str, id: &dyn std::fmt::Display) -> Sent {
    app.rest(token, "GET", &format!("/api/v1/ingest-log/{id}"), None)
        .await
}

/// `POST /api/v1/ingest-log/{id}/replay` with `token`.
async fn replay_entry(app: &TestApp, token: &str, id: &dyn std::fmt::Display) -> Sent {
    app.rest(
        token,
        "POST",
        &format!("/api/v1/ingest-log/{id}/replay"),
        None,
    )
    .await
}

/// `PUT /api/v1/providers/{provider}/mapping`.
async fn put_mapping(app: &TestApp, token: &str, provider: &str, mapping: Value) -> Sent {
    app.rest(
        token,
        "PUT",
        &format!("/api/v1/providers/{provider}/mapping"),
        Some(mapping),
    )
    .await
}

/// A Stripe mapping that makes a `customer.*` event a valid `customer.created`.
fn customer_mapping() -> Value {
    json!({"rules": [{"on": "customer.*", "event_type": "customer.created",
        "data": "{name: event.data.object.name, email: event.data.object.email}"}]})
}

/// `POST /api/v1/ingest-log/replay` with a filter.
async fn bulk_replay(app: &TestApp, token: &str, filter: Value) -> Sent {
    app.rest(token, "POST", "/api/v1/ingest-log/replay", Some(filter))
        .await
}

async fn set_secret(app: &TestApp, key_id: &str, provider: &str, secret: &str) {
    app.state
        .keys
        .update_intake(key_id, vec![(provider.into(), Some(secret.into()))], None)
        .await
        .unwrap();
}

/// A server whose fixture key holds the secret of this fixture's provider.
async fn started_with(provider: &str, case: &str) -> (TestApp, CreatedKey, Fixture) {
    let app = spawn_app().await;
    let key = fixture_key(&app).await;
    let f = fixture(provider, case);
    set_secret(&app, &key.key_id, provider, &f.secret).await;
    (app, key, f)
}

/// Sends the fixture as its provider sent it, judged as of the time it was signed.
async fn send_fixture(app: &TestApp, f: &Fixture) -> Sent {
    app.state.providers.set_now_secs(f.now);
    let method = reqwest::Method::from_bytes(f.method.as_bytes()).unwrap();
    let mut request = app
        .client
        .request(method, format!("{}{}", app.base, f.target))
        .body(f.body.clone());
    for (name, value) in &f.headers {
        request = request.header(name, value);
    }
    app.send(request).await
}

fn lower(headers: &BTreeMap<String, String>) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect()
}

/// The fixture's request with these headers and body, at the fixtures' public URL.
fn request<'a>(
    f: &'a Fixture,
    headers: &'a [(String, String)],
    body: &'a [u8],
) -> signature::Request<'a> {
    signature::Request {
        method: &f.method,
        target: &f.target,
        headers,
        body,
        public_url: "https://hooks.example.com",
    }
}

#[test]
fn every_signed_fixture_verifies_as_its_provider_signs_it_and_nothing_else_does() {
    let all = fixtures();
    let providers: std::collections::BTreeSet<_> =
        all.iter().map(|f| f.provider.as_str()).collect();
    assert_eq!(
        providers.len(),
        catalog().all().len(),
        "a fixture for every provider"
    );
    for f in &all {
        let provider = catalog().get(&f.provider).unwrap();
        let headers = lower(&f.headers);
        let verdict = signature::verify(
            provider,
            f.secret.as_bytes(),
            &request(f, &headers, f.body.as_bytes()),
            f.now,
        );
        let refused = matches!(f.expect.status, 401 | 403);
        assert_eq!(
            verdict.is_err(),
            refused,
            "{} / {} ({})",
            f.provider,
            f.case,
            f.made_with
        );
        let signs_body = provider.secret_header().is_some()
            && provider.secret_param().is_none()
            && provider.name != "okta";
        if refused || !signs_body || f.body.is_empty() {
            continue;
        }
        let mut tampered = f.body.clone().into_bytes();
        tampered[0] ^= 0x01;
        let wrong: [(&[u8], &[u8]); 2] = [
            (f.secret.as_bytes(), &tampered),
            (b"another secret", f.body.as_bytes()),
        ];
        for (secret, body) in wrong {
            let err = signature::verify(provider, secret, &request(f, &headers, body), f.now)
                .unwrap_err();
            assert_eq!(
                err.code, "signature_mismatch",
                "{} / {}",
                f.provider, f.case
            );
        }
    }
}

#[tokio::test]
async fn every_signed_fixture_gets_its_answer_over_http() {
    let app = spawn_app().await;
    fixture_key(&app).await;
    let mut failures = Vec::new();
    for f in fixtures() {
        set_secret(&app, FIXTURE_KEY, &f.provider, &f.secret).await;
        let sent = send_fixture(&app, &f).await;
        let name = format!("{} / {} ({})", f.provider, f.case, f.made_with);
        if sent.status != f.expect.status {
            failures.push(format!("{name}: {} {}", sent.status, sent.body));
            continue;
        }
        if let Some(body) = &f.expect.body {
            for (field, value) in body.as_object().unwrap() {
                if &sent.body[field] != value {
                    failures.push(format!(
                        "{name}: {field} is {} in {}",
                        sent.body[field], sent.body
                    ));
                }
            }
        }
        if let Some(text) = &f.expect.text
            && sent.body != Value::String(text.clone())
        {
            failures.push(format!("{name}: answered {:?}, not {text:?}", sent.body));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn unmapped_events_pass_through_to_other_keys_once_and_never_echo() {
    let app = spawn_app().await;
    let key = fixture_key(&app).await;
    let other = app.create_key("fixtures", "crm").await;
    let (mine, theirs) = (Receiver::start().await, Receiver::start().await);
    app.subscribe(
        &key,
        json!({"name": "own", "url": mine.url, "events": ["source.*"]}),
    )
    .await;
    app.subscribe(
        &other,
        json!({"name": "all-records", "url": theirs.url, "events": ["*"]}),
    )
    .await;
    app.subscribe(
        &other,
        json!({"name": "stripe", "url": theirs.url, "events": ["source.stripe.*"]}),
    )
    .await;
    let f = fixture("stripe", "customer.created");
    set_secret(&app, &key.key_id, "stripe", &f.secret).await;

    let sent = send_fixture(&app, &f).await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert_eq!(sent.body["event_type"], "source.stripe.customer.created");
    assert_eq!(sent.body["provider_event_id"], "evt_1QfixtureCustomer");
    // Stripe retries with the same event id: answered as before, nothing stored twice.
    let again = send_fixture(&app, &f).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, sent.body);

    let got = theirs.wait_for(1).await;
    assert_eq!(
        got.len(),
        1,
        "one delivery, to the source.stripe.* subscription only"
    );
    let delivered = got[0].json();
    assert_eq!(delivered["event_type"], "source.stripe.customer.created");
    assert_eq!(delivered["data"]["provider"], "stripe");
    assert_eq!(
        delivered["data"]["event"]["data"]["object"]["name"],
        "Riverside Logistics LLC"
    );
    app.settle().await;
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM events WHERE event_type = 'source.stripe.customer.created'"
        )
        .await,
        1
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM deliveries WHERE status = 'skipped_echo'")
            .await,
        1,
        "the key's own subscription is skipped"
    );
    assert!(mine.events().is_empty());
}

#[tokio::test]
async fn a_providers_retry_of_a_mapped_event_seconds_later_is_answered_again() {
    let (app, key, f) = started_with("stripe", "customer.created").await;
    let put = put_mapping(&app, &key.api_token, "stripe", customer_mapping()).await;
    assert_eq!(put.status, 200, "{}", put.body);
    let first = send_fixture(&app, &f).await;
    assert_eq!(first.status, 200, "{}", first.body);
    // The mapped envelope carries the moment of mapping; the retry is mapped in another second,
    // and is still the same provider event.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let retry = send_fixture(&app, &f).await;
    assert_eq!(retry.status, 200, "{}", retry.body);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(retry.body, first.body);
}

#[tokio::test]
async fn a_mapping_turns_provider_events_into_records_through_the_envelope_pipeline() {
    let (app, key, f) = started_with("stripe", "customer.created").await;
    let bad = put_mapping(
        &app,
        &key.api_token,
        "stripe",
        json!({"rules": [
            {"on": "customer.created", "event_type": "customer.exploded", "data": "{"}]}),
    )
    .await;
    assert_eq!(
        (bad.status, bad.code()),
        (400, "invalid_mapping"),
        "{}",
        bad.body
    );
    assert_eq!(bad.body["error"]["details"].as_array().unwrap().len(), 2);
    // A rule whose data misses a required field: the event is refused by the schema.
    let mapping = json!({"rules": [{"on": "customer.*", "event_type": "customer.created",
        "data": "{email: event.data.object.email}"}]});
    let put = put_mapping(&app, &key.api_token, "stripe", mapping).await;
    assert_eq!(put.status, 200, "{}", put.body);
    let refused = send_fixture(&app, &f).await;
    assert_eq!(
        (refused.status, refused.code()),
        (400, "validation_failed"),
        "{}",
        refused.body
    );

    // The operator fixes the mapping, previews it, and replays the refused request.
    let fixed = customer_mapping();
    let preview = app
        .rest(
            &key.api_token,
            "POST",
            "/api/v1/providers/stripe/mapping/preview",
            Some(
                json!({"body": serde_json::from_str::<Value>(&f.body).unwrap(), "mapping": fixed}),
            ),
        )
        .await;
    assert_eq!(preview.status, 200, "{}", preview.body);
    assert_eq!(
        preview.body["data"]["events"][0]["becomes"],
        "customer.created"
    );
    assert!(
        preview.body["data"]["events"][0]["error"].is_null(),
        "{}",
        preview.body
    );
    let put = put_mapping(&app, &key.api_token, "stripe", fixed).await;
    assert_eq!(put.status, 200);
    app.settle().await;
    let log_id = app
        .count("SELECT MAX(id) FROM ingest_log WHERE status = 400")
        .await;
    let replayed = replay_entry(&app, &key.api_token, &log_id).await;
    assert_eq!(replayed.status, 200, "{}", replayed.body);
    assert_eq!(replayed.body["data"]["status"], 200, "{}", replayed.body);
    assert!(
        app.record(&key.company_id, "customer", "Riverside Logistics LLC")
            .await
            .is_some()
    );
    // The provider's own retry now finds the success, and applies nothing twice.
    let retry = send_fixture(&app, &f).await;
    assert_eq!(retry.status, 200, "{}", retry.body);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));

    // The replay is a request of its own, which says what it replayed and why unsigned.
    app.settle().await;
    let replay_id = replayed.body["data"]["request_id"].as_str().unwrap();
    let shown = entry(&app, &key.api_token, &replay_id).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    let data = &shown.body["data"];
    assert!(
        data["signature_check"]
            .as_str()
            .unwrap()
            .contains("skipped"),
        "{data}"
    );
    assert_eq!(data["replayed_by"], format!("API key {}", key.key_id));
    assert_eq!(data["entry"]["event_type"], "customer.created");
    assert_eq!(data["entry"]["source"], "stripe");
}

#[tokio::test]
async fn kept_requests_show_headers_redacted_body_and_answer() {
    let (app, key, f) = started_with("github", "issues.opened").await;
    let sent = send_fixture(&app, &f).await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    app.settle().await;
    let id = app.count("SELECT MAX(id) FROM ingest_log").await;
    let shown = entry(&app, &key.api_token, &id).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    let request = &shown.body["data"]["request"];
    let headers = request["headers"].as_array().unwrap();
    let header = |name: &str| {
        headers
            .iter()
            .find(|h| h[0] == name)
            .map(|h| h[1].as_str().unwrap().to_string())
    };
    assert_eq!(header("x-hub-signature-256").as_deref(), Some("[redacted]"));
    assert_eq!(
        header("x-github-delivery").as_deref(),
        Some("d2d2a4e0-fixture-0001")
    );
    assert_eq!(request["body"]["json"]["action"], "opened");
    assert_eq!(request["provider"], "github");
    assert_eq!(shown.body["data"]["response"]["status"], 200);
    assert_eq!(
        shown.body["data"]["entry"]["event_type"],
        "source.github.issues.opened"
    );
    // Another company's token sees nothing of it.
    let stranger = app.create_key("elsewhere", "erp").await;
    let hidden = entry(&app, &stranger.api_token, &id).await;
    assert_eq!(hidden.status, 404);
    let hidden = replay_entry(&app, &stranger.api_token, &id).await;
    assert_eq!(hidden.status, 404);

    // A key that opts out keeps no request.
    app.state
        .keys
        .update_intake(&key.key_id, Vec::new(), Some(false))
        .await
        .unwrap();
    let mut f2 = f.clone();
    f2.headers
        .insert("X-GitHub-Delivery".into(), "d2d2a4e0-fixture-0099".into());
    assert_eq!(send_fixture(&app, &f2).await.status, 200);
    app.settle().await;
    let id = app.count("SELECT MAX(id) FROM ingest_log").await;
    let shown = entry(&app, &key.api_token, &id).await;
    assert_eq!(shown.body["data"]["kept"], false, "{}", shown.body);
    assert!(shown.body["data"]["request"].is_null());
}

#[tokio::test]
async fn a_refused_envelope_is_replayed_after_the_fix_and_bulk_replay_takes_the_rest() {
    let app = spawn_app().await;
    let key = app.create_key("acme", "hr").await;
    let employee = |n: u32| {
        envelope(
            "employee.created",
            json!({"emp_number": format!("EMP-{n}"), "name": format!("Worker {n}"),
            "email": format!("w{n}@acme.example"), "employee_type": "site_worker", "employee_skills": ["Welding"]}),
        )
    };
    for n in 1..=3 {
        let sent = app.post(&key, &employee(n)).await;
        assert_eq!(
            (sent.status, sent.code()),
            (422, "unknown_skills"),
            "{}",
            sent.body
        );
    }
    app.settle().await;
    let first = app
        .count("SELECT MIN(id) FROM ingest_log WHERE status = 422")
        .await;
    let early = replay_entry(&app, &key.api_token, &first).await;
    assert_eq!(
        early.body["data"]["status"], 422,
        "still refused before the fix"
    );

    let added = app
        .rest(
            &key.api_token,
            "POST",
            "/api/v1/skills",
            Some(json!({"names": ["Welding"]})),
        )
        .await;
    assert_eq!(added.status, 201);
    let one = replay_entry(&app, &key.api_token, &first).await;
    assert_eq!(one.body["data"]["status"], 200, "{}", one.body);
    assert!(
        app.record(&key.company_id, "employee", "EMP-1")
            .await
            .is_some()
    );

    // The rest by filter; the request already replayed successfully is not run again.
    let bulk = bulk_replay(
        &app,
        &key.api_token,
        json!({"status": 422, "since": "2020-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(bulk.status, 200, "{}", bulk.body);
    assert_eq!(bulk.body["data"]["succeeded"], 2, "{}", bulk.body);
    assert!(
        app.record(&key.company_id, "employee", "EMP-3")
            .await
            .is_some()
    );
    let bad = bulk_replay(&app, &key.api_token, json!({"since": "yesterday"})).await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn signature_failures_name_the_scheme_the_header_and_what_is_signed() {
    let app = spawn_app().await;
    let key = fixture_key(&app).await;
    let f = fixture("stripe", "invoice.paid");
    set_secret(&app, &key.key_id, "stripe", "whsec_not_the_one_stripe_used").await;
    let sent = send_fixture(&app, &f).await;
    assert_eq!(
        (sent.status, sent.code()),
        (403, "signature_mismatch"),
        "{}",
        sent.body
    );
    let message = sent.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("stripe-signature"), "{message}");
    assert!(message.contains("\"{timestamp}.{body}\""), "{message}");
    assert!(
        message.contains(&format!("{{timestamp}} = {}", f.now)),
        "{message}"
    );
    let details = &sent.body["error"]["details"][0];
    assert_eq!(details["signed_content"], "{timestamp}.{body}");
    assert_eq!(details["header"], "stripe-signature");
    let expected = hookgate::crypto::hmac_hex(
        b"whsec_not_the_one_stripe_used",
        &[format!("{}.", f.now).as_bytes(), f.body.as_bytes()],
    );
    assert!(
        !sent.body.to_string().contains(&expected),
        "never the expected signature"
    );

    // The custom scheme of /webhooks/inbound teaches the same way.
    let other = app.create_key("acme", "erp").await;
    let wrong = app
        .send(app.wrongly_signed(&other, br#"{"event_type":"test.connection"}"#))
        .await;
    assert_eq!(wrong.code(), "signature_mismatch");
    assert!(
        wrong.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("{X-Webhook-Timestamp}.{body}")
    );

    // No secret for the provider, an unknown provider, an unknown key.
    let square = fixture("square", "customer.created");
    let sent = send_fixture(&app, &square).await;
    assert_eq!(
        (sent.status, sent.code()),
        (403, "provider_secret_missing"),
        "{}",
        sent.body
    );
    assert!(
        sent.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("keys update hk_fixture --provider-secret square=")
    );
    let nobody = app
        .send(
            app.client
                .post(format!(
                    "{}/webhooks/inbound/nobody/{}",
                    app.base, key.key_id
                ))
                .body("{}"),
        )
        .await;
    assert_eq!((nobody.status, nobody.code()), (404, "not_found"));
    let unknown = app
        .send(
            app.client
                .post(format!("{}/webhooks/inbound/stripe/hk_nope", app.base))
                .body("{}"),
        )
        .await;
    assert_eq!((unknown.status, unknown.code()), (401, "api_key_invalid"));
}

#[tokio::test]
async fn a_batch_applies_what_it_can_and_answers_each_event() {
    let (app, _key, f) = started_with("hubspot", "contact.creation batch").await;
    let sent = send_fixture(&app, &f).await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let events = sent.body["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["event_type"], "source.hubspot.contact.creation");
    assert_eq!(
        events[1]["event_type"],
        "source.hubspot.contact.propertychange"
    );
    app.settle().await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM events WHERE event_type LIKE 'source.hubspot.%'")
            .await,
        2
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM ingest_log WHERE source = 'hubspot'")
            .await,
        2,
        "a log row per event"
    );
    // Sent again: both are duplicates.
    let again = send_fixture(&app, &f).await;
    assert_eq!(again.status, 200);
    assert!(
        again.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["duplicate"] == true),
        "{}",
        again.body
    );
}

#[tokio::test]
async fn subscriptions_name_pass_through_events_explicitly() {
    let app = spawn_app().await;
    let key = app.create_key("acme", "erp").await;
    for (events, status) in [
        (json!(["source.*"]), 201),
        (json!(["source.stripe.invoice.paid"]), 201),
        (json!(["source.nobody.*"]), 400),
    ] {
        let sent = app
            .rest(&key.api_token, "POST", "/api/v1/webhooks",
                Some(json!({"name": format!("s{status}{}", events[0]), "url": "http://127.0.0.1:9/x", "events": events})))
            .await;
        assert_eq!(sent.status, status, "{events}: {}", sent.body);
    }
}

#[test]
fn the_catalog_signs_as_it_verifies_for_every_signing_provider() {
    // `hookgate trigger` signs with the catalog: what it signs, verification accepts.
    for f in fixtures().iter().filter(|f| f.expect.status < 400) {
        let provider = catalog().get(&f.provider).unwrap();
        if provider.secret_header().is_none() {
            continue;
        }
        let at = f.now + 86_400;
        let mut headers = lower(&f.headers);
        let signed = signature::sign(
            provider,
            b"a fresh secret",
            &request(f, &headers, f.body.as_bytes()),
            at,
        )
        .unwrap();
        headers.retain(|(name, _)| !signed.iter().any(|(n, _)| n == name));
        headers.extend(signed);
        let verdict = signature::verify(
            provider,
            b"a fresh secret",
            &request(f, &headers, f.body.as_bytes()),
            at,
        );
        assert!(
            verdict.is_ok(),
            "{} / {}: {:?}",
            f.provider,
            f.case,
            verdict.err()
        );
    }
}

#[tokio::test]
async fn kept_requests_are_pruned_after_their_own_period_and_the_log_stays() {
    // The server keeps requests for its default period, so its own housekeeping (which runs at
    // start) cannot prune the request before it is counted; the prune below keeps them 0 days.
    let app = spawn_app().await;
    let key = app.create_key("acme", "erp").await;
    let sent = app
        .post(&key, &envelope("test.connection", json!({})))
        .await;
    assert_eq!(sent.status, 200);
    app.settle().await;
    assert_eq!(app.count("SELECT COUNT(*) FROM ingest_requests").await, 1);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let mut config = app.state.config.clone();
    config.retention.requests_days = 0;
    hookgate::retention::prune(&app.state.store, &config)
        .await
        .unwrap();
    assert_eq!(app.count("SELECT COUNT(*) FROM ingest_requests").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM ingest_log").await, 1);
}
