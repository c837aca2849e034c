//! The console's server side without a browser: login and its cookie, CSRF and origin checks,
//! security headers, failed-login limits, tenancy, and the JSON calls the page makes.

use std::time::{Duration, Instant};

use hookgate::keys::CreatedKey;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::receiver::Receiver;

const ADMIN_PASSWORD: &str = "a long admin password";

fn test_connection() -> Value {
    json!({"event_type": "test.connection", "timestamp": "2025-01-15T10:00:00Z", "source": "zapier", "data": {"test": true}})
}

/// A signed-in console session: its cookie and CSRF token.
struct Console<'a> {
    app: &'a TestApp,
    cookie: String,
    csrf: String,
    body: Value,
}

/// A login call; the caller adds the body and any header.
fn login_request(app: &TestApp) -> reqwest::RequestBuilder {
    app.client.post(format!("{}/admin/api/login", app.base))
}

async fn login_attempt(app: &TestApp, credential: &str) -> Sent {
    app.send(
        login_request(app)
            .header("Content-Type", "application/json")
            .body(json!({"credential": credential}).to_string()),
    )
    .await
}

impl<'a> Console<'a> {
    async fn login(app: &'a TestApp, credential: &str) -> Console<'a> {
        let sent = login_attempt(app, credential).await;
        assert_eq!(sent.status, 200, "{}", sent.body);
        let set_cookie = sent.header("set-cookie").expect("a session cookie");
        let cookie = set_cookie.split(';').next().unwrap().to_string();
        Console {
            app,
            cookie,
            csrf: sent.body["csrf_token"].as_str().unwrap().to_string(),
            body: sent.body,
        }
    }

    async fn get(&self, path: &str) -> Sent {
        self.app
            .send(
                self.app
                    .client
                    .get(format!("{}/admin/api/{path}", self.app.base))
                    .header("Cookie", &self.cookie),
            )
            .await
    }

    fn post_request(&self, path: &str, body: Option<Value>) -> reqwest::RequestBuilder {
        let mut request = self
            .app
            .client
            .post(format!("{}/admin/api/{path}", self.app.base))
            .header("Cookie", &self.cookie);
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        request
    }

    async fn post(&self, path: &str, body: Option<Value>) -> Sent {
        self.app
            .send(
                self.post_request(path, body)
                    .header("X-CSRF-Token", &self.csrf),
            )
            .await
    }
}

fn ids(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| v[field].as_str().unwrap_or("").to_string())
        .collect()
}

async fn subscription_status(app: &TestApp, id: &str) -> String {
    app.row(&format!(
        "SELECT status FROM subscriptions WHERE id = '{id}'"
    ))
    .await
    .text(0)
    .unwrap()
}

#[tokio::test]
async fn the_page_and_every_answer_carry_a_strict_policy() {
    let app = spawn_app().await;
    let redirect = app
        .client
        .get(format!("{}/admin", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), 200, "reqwest follows the redirect");
    assert_eq!(redirect.url().path(), "/admin/");

    for path in [
        "/admin/",
        "/admin/assets/js/app.js",
        "/admin/api/session",
        "/admin/nope",
    ] {
        let sent = app
            .send(app.client.get(format!("{}{path}", app.base)))
            .await;
        let csp = sent.header("content-security-policy").unwrap_or("");
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-eval"), "{path}: {csp}");
        assert_eq!(sent.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(sent.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(sent.header("referrer-policy"), Some("no-referrer"));
    }
    let page = app
        .send(app.client.get(format!("{}/admin/", app.base)))
        .await;
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.body.as_str().unwrap();
    assert!(html.contains(r#"<script type="module" src="/admin/assets/js/app.js">"#));
    let script = app
        .send(
            app.client
                .get(format!("{}/admin/assets/js/app.js", app.base)),
        )
        .await;
    assert!(
        script
            .header("content-type")
            .unwrap()
            .starts_with("text/javascript")
    );
    let missing = app
        .send(
            app.client
                .get(format!("{}/admin/assets/js/nope.js", app.base)),
        )
        .await;
    assert_eq!((missing.status, missing.code()), (404, "route_not_found"));
    let signed_out = app
        .send(app.client.get(format!("{}/admin/api/session", app.base)))
        .await;
    assert_eq!(
        (signed_out.status, signed_out.code()),
        (401, "not_signed_in")
    );
    assert_eq!(signed_out.header("cache-control"), Some("no-store"));
}

#[tokio::test]
async fn a_rest_token_signs_in_with_a_strict_cookie_and_bad_credentials_do_not() {
    let app = spawn_app().await;
    let key = app.create_key("acme", "crm").await;

    let wrong = login_attempt(&app, "hkt_not-a-token").await;
    assert_eq!((wrong.status, wrong.code()), (401, "invalid_credentials"));
    assert!(wrong.header("set-cookie").is_none());
    // With no admin password configured, nothing else signs in either.
    let no_admin = login_attempt(&app, "").await;
    assert_eq!(no_admin.status, 401);
    let form = app
        .send(
            login_request(&app)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(format!("credential={}", key.api_token)),
        )
        .await;
    assert_eq!((form.status, form.code()), (415, "unsupported_media_type"));
    let elsewhere = app
        .send(
            login_request(&app)
                .header("Content-Type", "application/json")
                .header("Origin", "https://evil.example")
                .body(json!({"credential": key.api_token}).to_string()),
        )
        .await;
    assert_eq!(
        (elsewhere.status, elsewhere.code()),
        (403, "cross_origin_refused")
    );

    let sent = login_attempt(&app, &key.api_token).await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let cookie = sent.header("set-cookie").unwrap();
    for flag in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/admin",
        "Max-Age=43200",
        "Secure",
    ] {
        assert!(cookie.contains(flag), "{flag} missing from {cookie}");
    }
    assert_eq!(sent.body["session"]["role"], "key");
    assert_eq!(sent.body["session"]["company"], "acme");
    assert_eq!(sent.body["session"]["key_id"], key.key_id.as_str());
    assert!(sent.body["csrf_token"].as_str().unwrap().len() >= 32);
    assert!(!cookie.contains(sent.body["csrf_token"].as_str().unwrap()));

    let console = Console::login(&app, &key.api_token).await;
    let session = console.get("session").await;
    assert_eq!(session.status, 200);
    assert_eq!(session.body["csrf_token"], console.csrf.as_str());
    let out = console.post("logout", None).await;
    assert_eq!(out.status, 200);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(console.get("session").await.status, 401);

    // Served over plain http (no https public URL), the cookie cannot ask for https.
    let plain = spawn_app_with(&[("HOOKGATE_PUBLIC_URL", "http://127.0.0.1:8080")]).await;
    let key = plain.create_key("acme", "crm").await;
    let sent = login_attempt(&plain, &key.api_token).await;
    assert!(!sent.header("set-cookie").unwrap().contains("Secure"));
}

#[tokio::test]
async fn state_changing_calls_need_the_sessions_csrf_token_and_origin() {
    let app = spawn_app().await;
    let key = app.create_key("acme", "crm").await;
    let receiver = Receiver::start().await;
    let sub = app
        .subscribe(
            &key,
            json!({"name": "crm", "url": receiver.url, "events": ["project.*"]}),
        )
        .await;
    let id = sub["id"].as_str().unwrap();
    let console = Console::login(&app, &key.api_token).await;
    let path = format!("subscriptions/{id}/disable");

    let none = app.send(console.post_request(&path, None)).await;
    assert_eq!((none.status, none.code()), (403, "csrf_token_invalid"));
    let wrong = app
        .send(
            console
                .post_request(&path, None)
                .header("X-CSRF-Token", "0".repeat(43)),
        )
        .await;
    assert_eq!((wrong.status, wrong.code()), (403, "csrf_token_invalid"));
    // Another session's token is no better.
    let other = Console::login(&app, &key.api_token).await;
    let borrowed = app
        .send(
            console
                .post_request(&path, None)
                .header("X-CSRF-Token", &other.csrf),
        )
        .await;
    assert_eq!(borrowed.status, 403);
    for (header, value) in [
        ("Origin", "https://evil.example"),
        ("Sec-Fetch-Site", "cross-site"),
    ] {
        let cross = app
            .send(
                console
                    .post_request(&path, None)
                    .header("X-CSRF-Token", &console.csrf)
                    .header(header, value),
            )
            .await;
        assert_eq!((cross.status, cross.code()), (403, "cross_origin_refused"));
    }
    assert_eq!(subscription_status(&app, id).await, "active");

    let host = app.base.trim_start_matches("http://").to_string();
    let done = app
        .send(
            console
                .post_request(&path, None)
                .header("X-CSRF-Token", &console.csrf)
                .header("Origin", format!("http://{host}"))
                .header("Sec-Fetch-Site", "same-origin"),
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.body["status"], "disabled");
    assert_eq!(subscription_status(&app, id).await, "disabled");
    // The REST API sees the same change: one operation behind both.
    let rest = app
        .rest(
            &key.api_token,
            "GET",
            &format!("/api/v1/webhooks/{id}"),
            None,
        )
        .await;
    assert_eq!(rest.body["data"]["status"], "disabled");
    let enabled = console
        .post(&format!("subscriptions/{id}/enable"), None)
        .await;
    assert_eq!(enabled.body["status"], "active");
    assert_eq!(subscription_status(&app, id).await, "active");
}

#[tokio::test]
async fn failed_logins_are_limited_per_address() {
    let app = spawn_app_with(&[
        ("HOOKGATE_AUTH_FAILURES_PER_MINUTE", "3"),
        ("HOOKGATE_ADMIN_PASSWORD", ADMIN_PASSWORD),
    ])
    .await;
    let key = app.create_key("acme", "crm").await;
    for guess in ["hkt_a", "not the password", "hkt_b"] {
        assert_eq!(login_attempt(&app, guess).await.status, 401);
    }
    // Used up: even the right credential waits, so guessing cannot go on.
    for credential in [key.api_token.as_str(), ADMIN_PASSWORD] {
        let limited = login_attempt(&app, credential).await;
        assert_eq!(
            (limited.status, limited.code()),
            (429, "too_many_failed_logins")
        );
        assert!(limited.body["error"]["details"][0]["retry_after"].as_u64() > Some(0));
    }
}

/// Two companies with a key, a subscription and traffic each.
struct TwoCompanies {
    acme: CreatedKey,
    acme_sender: CreatedKey,
    globex: CreatedKey,
    globex_sender: CreatedKey,
    acme_sub: String,
    globex_sub: String,
}

async fn two_companies(app: &TestApp) -> TwoCompanies {
    let acme = app.create_key("acme", "crm").await;
    let acme_sender = app.create_key("acme", "erp").await;
    let globex = app.create_key("globex", "crm").await;
    let globex_sender = app.create_key("globex", "erp").await;
    let receiver = Receiver::start().await;
    let mut subs = Vec::new();
    for key in [&acme, &globex] {
        let sub = app
            .subscribe(
                key,
                json!({"name": "crm", "url": receiver.url, "events": ["project.*"]}),
            )
            .await;
        subs.push(sub["id"].as_str().unwrap().to_string());
    }
    for (sender, code) in [(&acme_sender, "A-1"), (&globex_sender, "G-1")] {
        assert_eq!(app.post(sender, &project_created(code)).await.status, 200);
    }
    receiver.wait_for(2).await;
    app.settle().await;
    TwoCompanies {
        acme,
        acme_sender,
        globex,
        globex_sender,
        acme_sub: subs[0].clone(),
        globex_sub: subs[1].clone(),
    }
}

#[tokio::test]
async fn the_admin_sees_every_company_and_a_key_only_its_own() {
    let app = spawn_app_with(&[("HOOKGATE_ADMIN_PASSWORD", ADMIN_PASSWORD)]).await;
    let t = two_companies(&app).await;
    let wrong = login_attempt(&app, "a long admin passwore").await;
    assert_eq!((wrong.status, wrong.code()), (401, "invalid_credentials"));

    let admin = Console::login(&app, ADMIN_PASSWORD).await;
    assert_eq!(admin.body["session"]["role"], "admin");
    let session = admin.get("session").await;
    let companies = ids(&session.body["companies"], "name");
    assert_eq!(companies, vec!["acme", "globex"]);
    let log = admin.get("ingest-log").await;
    let keys_seen = ids(&log.body["entries"], "key_id");
    assert!(
        keys_seen.contains(&t.acme_sender.key_id) && keys_seen.contains(&t.globex_sender.key_id)
    );
    let only_globex = admin
        .get(&format!("ingest-log?company={}", t.globex.company_id))
        .await;
    assert_eq!(
        ids(&only_globex.body["entries"], "key_id"),
        vec![t.globex_sender.key_id.clone()]
    );
    let subs = admin.get("subscriptions").await;
    assert_eq!(subs.body["count"], 2);
    assert_eq!(admin.get("keys").await.body["count"], 4);
    // The admin acts on any company's subscription.
    let disabled = admin
        .post(&format!("subscriptions/{}/disable", t.globex_sub), None)
        .await;
    assert_eq!(disabled.status, 200, "{}", disabled.body);
    assert_eq!(subscription_status(&app, &t.globex_sub).await, "disabled");

    let acme = Console::login(&app, &t.acme.api_token).await;
    // A company filter naming another company is ignored: a key sees its own, always.
    for path in [
        "ingest-log".to_string(),
        format!("ingest-log?company={}", t.globex.company_id),
    ] {
        let log = acme.get(&path).await;
        assert_eq!(
            ids(&log.body["entries"], "key_id"),
            vec![t.acme_sender.key_id.clone()],
            "{path}"
        );
    }
    let subs = acme.get("subscriptions").await;
    assert_eq!(
        ids(&subs.body["subscriptions"], "id"),
        vec![t.acme_sub.clone()]
    );
    let keys = acme.get("keys").await;
    assert_eq!(
        ids(&keys.body["keys"], "company"),
        vec!["acme".to_string(), "acme".to_string()]
    );
    let deliveries = acme.get("deliveries").await;
    assert_eq!(
        ids(&deliveries.body["deliveries"], "subscription_id"),
        vec![t.acme_sub.clone()]
    );
    let stats = acme.get("stats").await;
    assert_eq!(stats.body["requests"]["total"], 1);

    // Another company's things are not found, and stay as they were.
    let globex_delivery = app
        .row(&format!(
            "SELECT id FROM deliveries WHERE subscription_id = '{}'",
            t.globex_sub
        ))
        .await
        .text(0)
        .unwrap();
    for path in [
        format!("subscriptions/{}/enable", t.globex_sub),
        format!("subscriptions/{}/test", t.globex_sub),
        format!("deliveries/{globex_delivery}/retry"),
        format!("keys/{}/rotate", t.globex.key_id),
        format!("keys/{}/revoke", t.globex.key_id),
    ] {
        let refused = acme.post(&path, None).await;
        assert_eq!(refused.status, 404, "{path}: {}", refused.body);
    }
    assert_eq!(subscription_status(&app, &t.globex_sub).await, "disabled");
    assert_eq!(
        app.post(&t.globex_sender, &test_connection()).await.status,
        200
    );
    let globex_session = login_attempt(&app, &t.globex.api_token).await;
    assert_eq!(globex_session.status, 200, "globex's key is not revoked");
    let elsewhere = acme
        .post("keys", Some(json!({"name": "pos", "company": "globex"})))
        .await;
    assert_eq!(
        (elsewhere.status, elsewhere.code()),
        (403, "company_not_allowed")
    );
}

#[tokio::test]
async fn keys_are_created_rotated_and_revoked_with_secrets_shown_once() {
    let app = spawn_app().await;
    let key = app.create_key("acme", "crm").await;
    let console = Console::login(&app, &key.api_token).await;

    let created = console.post("keys", Some(json!({"name": "pos"}))).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let new = &created.body["key"];
    assert_eq!(new["company"], "acme");
    let new_key = CreatedKey {
        key_id: new["key_id"].as_str().unwrap().into(),
        secret: new["secret"].as_str().unwrap().into(),
        api_token: new["api_token"].as_str().unwrap().into(),
        company: "acme".into(),
        company_id: key.company_id.clone(),
        name: "pos".into(),
    };
    assert_eq!(app.post(&new_key, &test_connection()).await.status, 200);
    let list = console.get("keys").await;
    let text = list.body.to_string();
    assert!(text.contains(&new_key.key_id));
    assert!(!text.contains(&new_key.secret) && !text.contains(&new_key.api_token));

    let rotated = console
        .post(&format!("keys/{}/rotate", new_key.key_id), None)
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let secret = rotated.body["secret"].as_str().unwrap().to_string();
    assert_ne!(secret, new_key.secret);
    let with_new = CreatedKey {
        secret,
        ..new_key.clone()
    };
    tokio::time::sleep(hookgate::keys::KEY_CACHE_TTL).await;
    assert_eq!(app.post(&with_new, &test_connection()).await.status, 200);
    assert_eq!(
        app.post(&new_key, &test_connection()).await.status,
        200,
        "the old secret verifies during the overlap"
    );
    let listed = console.get("keys").await;
    let row = listed.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key_id"] == new_key.key_id.as_str())
        .unwrap()
        .clone();
    assert!(row["previous_secret_valid_until"].is_string());

    let revoked = console
        .post(&format!("keys/{}/revoke", new_key.key_id), None)
        .await;
    assert_eq!(revoked.status, 200);
    tokio::time::sleep(hookgate::keys::KEY_CACHE_TTL).await;
    assert_eq!(app.post(&with_new, &test_connection()).await.status, 401);
    // Revoking the session's own key ends the session.
    let own = console
        .post(&format!("keys/{}/revoke", key.key_id), None)
        .await;
    assert_eq!(own.status, 200);
    assert_eq!(console.get("session").await.status, 401);
    assert_eq!(login_attempt(&app, &key.api_token).await.status, 401);
}

#[tokio::test]
async fn the_live_log_waits_for_new_entries_and_filters_them() {
    let app = spawn_app().await;
    let key = app.create_key("acme", "crm").await;
    let sender = app.create_key("acme", "erp").await;
    assert_eq!(app.post(&sender, &test_connection()).await.status, 200);
    app.settle().await;
    let console = Console::login(&app, &key.api_token).await;
    let first = console.get("ingest-log").await;
    assert_eq!(first.body["count"], 1);
    let cursor = first.body["next_after_id"].as_i64().unwrap();

    let started = Instant::now();
    let follow = format!("ingest-log?after_id={cursor}&wait=10");
    let (followed, _) = tokio::join!(console.get(&follow), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.post(&sender, &project_created("P-1")).await
    });
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered as soon as it arrived"
    );
    assert_eq!(
        ids(&followed.body["entries"], "event_type"),
        vec!["project.created"]
    );
    assert!(
        followed.body["entries"][0]["received_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );

    // A refused request, then filters by status class, code, source and event type.
    let forged = app
        .send(app.wrongly_signed(&sender, project_created("P-2").to_string().as_bytes()))
        .await;
    assert_eq!(forged.status, 403);
    app.settle().await;
    let count = |path: &str| {
        let path = path.to_string();
        let console = &console;
        async move { console.get(&path).await.body["count"].as_u64().unwrap() }
    };
    assert_eq!(count("ingest-log?status=4xx").await, 1);
    assert_eq!(count("ingest-log?status=403").await, 1);
    assert_eq!(count("ingest-log?status=2xx").await, 2);
    assert_eq!(count("ingest-log?source=custom").await, 3);
    assert_eq!(count("ingest-log?source=square").await, 0);
    assert_eq!(count("ingest-log?event_type=test.connection").await, 1);
    assert_eq!(
        count(&format!("ingest-log?key={}&status=2xx", sender.key_id)).await,
        2
    );
    let bad = console.get("ingest-log?status=oops").await;
    assert_eq!((bad.status, bad.code()), (400, "invalid_status"));
    let bad = console.get("deliveries?status=oops").await;
    assert_eq!((bad.status, bad.code()), (400, "invalid_status"));
    assert!(
        bad.body["error"]["details"]
            .to_string()
            .contains("skipped_echo")
    );
}

#[tokio::test]
async fn subscriptions_show_health_and_charts_count_outcomes() {
    let app = spawn_app_with(&[("HOOKGATE_RETRY_SCHEDULE", "0")]).await;
    let key = app.create_key("acme", "crm").await;
    let sender = app.create_key("acme", "erp").await;
    let receiver = Receiver::start().await;
    receiver.answer(&[200, 500, 200, 200]);
    let sub = app
        .subscribe(
            &key,
            json!({"name": "crm", "url": receiver.url, "events": ["project.*"]}),
        )
        .await;
    for i in 0..4 {
        assert_eq!(
            app.post(&sender, &project_created(&format!("P-{i}")))
                .await
                .status,
            200
        );
        receiver.wait_for(i + 1).await;
    }
    let unknown = app
        .send(
            app.client
                .post(format!("{}/webhooks/inbound", app.base))
                .header("X-API-Key", "hk_nobody")
                .header("Content-Type", "application/json")
                .body("{}"),
        )
        .await;
    assert_eq!(unknown.status, 401);
    app.settle().await;

    let console = Console::login(&app, &key.api_token).await;
    let subs = console.get("subscriptions").await;
    let view = &subs.body["subscriptions"][0];
    assert_eq!(view["id"], sub["id"]);
    let health = &view["health"];
    assert_eq!(
        (health["succeeded"].as_u64(), health["failed"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(health["success_rate"].as_f64(), Some(0.75));
    assert_eq!(health["last_error"]["response_code"], 500);
    assert!(view.get("secret").is_none());

    // Key sessions count their company's requests; the unknown key's 401 belongs to nobody.
    let stats = console.get("stats?minutes=5").await;
    assert_eq!(stats.status, 200, "{}", stats.body);
    let requests = &stats.body["requests"];
    assert_eq!(
        requests["outcomes"],
        json!(["accepted", "rejected", "rate_limited", "error"])
    );
    let bucket = requests["bucket_secs"].as_f64().unwrap();
    let per_outcome = |i: usize| -> f64 {
        requests["per_second"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b[i].as_f64().unwrap() * bucket)
            .sum()
    };
    assert!((per_outcome(0) - 4.0).abs() < 0.05, "{}", per_outcome(0));
    assert!(per_outcome(1).abs() < 0.05);
    let lag = &stats.body["delivery_lag"];
    assert_eq!(lag["deliveries"], 3);
    assert!(lag["p50_ms"].as_array().unwrap().iter().any(|v| v.is_i64()));
}

#[tokio::test]
async fn an_oversized_console_call_is_refused_before_it_is_read() {
    let app = spawn_app().await;
    let sent = app
        .send(
            login_request(&app)
                .header("Content-Type", "application/json")
                .body(vec![b' '; 100 * 1024]),
        )
        .await;
    assert_eq!((sent.status, sent.code()), (413, "payload_too_large"));
    assert!(sent.header("content-security-policy").is_some());
}

#[tokio::test]
async fn an_entry_shows_its_kept_request_and_replays_only_within_its_company() {
    let app = spawn_app().await;
    let t = two_companies(&app).await;
    let acme = Console::login(&app, &t.acme.api_token).await;
    let globex = Console::login(&app, &t.globex.api_token).await;
    let log = acme.get("ingest-log").await;
    let entry = log.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key_id"] == t.acme_sender.key_id.as_str())
        .expect("the acme sender's entry")
        .clone();
    let id = entry["id"].to_string();

    let shown = acme.get(&format!("ingest-log/{id}")).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    let data = &shown.body["data"];
    assert_eq!(data["kept"], true, "{data}");
    assert_eq!(data["replayable"], true, "{data}");
    assert_eq!(
        data["request"]["body"]["json"]["data"]["project_code"], "A-1",
        "{data}"
    );
    let headers = data["request"]["headers"].as_array().unwrap();
    let signature = headers
        .iter()
        .find(|h| {
            h[0].as_str()
                .unwrap()
                .eq_ignore_ascii_case("x-webhook-signature")
        })
        .expect("the signature header is listed");
    assert_eq!(signature[1], "[redacted]", "the signature is never shown");
    assert_eq!(data["response"]["status"], 200, "{data}");

    // Another company's key sees neither the entry nor its request, and cannot replay it.
    let hidden = globex.get(&format!("ingest-log/{id}")).await;
    assert_eq!(
        (hidden.status, hidden.code()),
        (404, "not_found"),
        "{}",
        hidden.body
    );
    let refused = globex.post(&format!("ingest-log/{id}/replay"), None).await;
    assert_eq!(
        (refused.status, refused.code()),
        (404, "not_found"),
        "{}",
        refused.body
    );

    let before = app.count("SELECT COUNT(*) FROM ingest_log").await;
    let replayed = acme.post(&format!("ingest-log/{id}/replay"), None).await;
    assert_eq!(replayed.status, 200, "{}", replayed.body);
    let outcome = &replayed.body["data"];
    assert_eq!(outcome["replay_of"], data["request_id"], "{outcome}");
    assert!(
        outcome["request_id"].as_str().unwrap().starts_with("req_"),
        "{outcome}"
    );
    assert!(outcome["status"].as_u64().is_some(), "{outcome}");
    app.settle().await;
    let after = app.count("SELECT COUNT(*) FROM ingest_log").await;
    assert_eq!(
        after,
        before + 1,
        "the replay is a request of its own in the log"
    );
    let replay_view = acme
        .get(&format!(
            "ingest-log/{}",
            outcome["request_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(replay_view.status, 200, "{}", replay_view.body);
    assert_eq!(replay_view.body["data"]["replay_of"], data["request_id"]);
}
