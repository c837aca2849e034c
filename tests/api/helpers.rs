//! `spawn_app()`: the real server on 127.0.0.1:0 with a fresh temporary database, and helpers
//! to sign and send envelopes the way an integration would.

use std::path::PathBuf;

pub use crate::test_db::{TestDb, on_postgres};
use std::sync::Arc;

use hookgate::app::AppState;
use hookgate::config::Config;
use hookgate::keys::{CreatedKey, KeyOptions};
use hookgate::store::{Record, Row};
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub const MASTER_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

pub struct TestApp {
    pub base: String,
    pub state: Arc<AppState>,
    /// The test's database; taken by `stop` to start again on it.
    pub db: Option<TestDb>,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts the server with extra `HOOKGATE_*` settings, on a fresh database (SQLite, or
/// PostgreSQL when `HOOKGATE_TEST_POSTGRES` is set).
pub async fn spawn_app_with(env: &[(&str, &str)]) -> TestApp {
    start(TestDb::fresh().await, env).await
}

/// The test configuration on `database` (a file path or a URL), with extra `HOOKGATE_*`
/// settings.
pub fn test_config(database: &str, env: &[(&str, &str)]) -> Config {
    let mut vars: Vec<(String, String)> = vec![
        ("HOOKGATE_DATABASE".into(), database.to_string()),
        ("HOOKGATE_MASTER_KEY".into(), MASTER_KEY.into()),
        ("HOOKGATE_LISTEN".into(), "127.0.0.1:0".into()),
        (
            "HOOKGATE_PUBLIC_URL".into(),
            "https://hooks.example.com".into(),
        ),
        ("HOOKGATE_ALLOW_HTTP_URLS".into(), "true".into()),
        ("HOOKGATE_ALLOW_PRIVATE_URLS".into(), "true".into()),
        // Retries an hour apart: a test sees what is pending for as long as it looks, and moves
        // the retry clock forward (`wait_retried`) instead of sleeping through the schedule.
        ("HOOKGATE_RETRY_SCHEDULE".into(), "0,3600,3600".into()),
    ];
    for (k, v) in env {
        vars.retain(|(name, _)| name != k);
        vars.push((k.to_string(), v.to_string()));
    }
    Config::load_with_env(Some(&config_path()), |name| {
        vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    })
    .expect("test config")
}

/// Starts a server on an existing database (for restart tests).
pub async fn start(db: TestDb, env: &[(&str, &str)]) -> TestApp {
    let config = test_config(&db.url, env);
    let state = AppState::build(config).expect("app state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(hookgate::app::run(listener, state.clone(), async {
        let _ = rx.await;
    }));
    TestApp {
        base: format!("http://{addr}"),
        state,
        db: Some(db),
        client: reqwest::Client::builder().build().unwrap(),
        shutdown: Some(tx),
        server: Some(server),
    }
}

pub fn config_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/hookgate.toml")
}

/// The seed's `custom` scheme and the clock its timestamps come from (shared with the benchmark).
pub use crate::support::signing::{now, sign};

pub fn envelope(event_type: &str, data: Value) -> Value {
    json!({"event_type": event_type, "timestamp": "2025-01-15T14:30:00Z", "source": "test", "data": data})
}

/// A `project.created` envelope for project `code` (the customer and location are created
/// with it).
pub fn project_created(code: &str) -> Value {
    envelope(
        "project.created",
        json!({"project_code": code, "project_name": format!("Project {code}"), "customer_name": "Acme", "location_name": "HQ"}),
    )
}

pub struct Sent {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Sent {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

impl TestApp {
    pub async fn create_key(&self, company: &str, name: &str) -> CreatedKey {
        self.create_key_with(company, name, KeyOptions::default())
            .await
    }

    pub async fn create_key_with(
        &self,
        company: &str,
        name: &str,
        options: KeyOptions,
    ) -> CreatedKey {
        self.state
            .keys
            .create(company, name, options)
            .await
            .expect("create key")
    }

    /// A request to the inbound endpoint with a valid key and signature.
    pub fn signed(&self, key: &CreatedKey, body: &[u8]) -> reqwest::RequestBuilder {
        let ts = now();
        self.client
            .post(format!("{}/webhooks/inbound", self.base))
            .header("X-API-Key", &key.key_id)
            .header("Content-Type", "application/json")
            .header("X-Webhook-Timestamp", ts.to_string())
            .header("X-Webhook-Signature", sign(&key.secret, ts, body))
            .body(body.to_vec())
    }

    /// A request to the inbound endpoint with a valid key and a wrong signature.
    pub fn wrongly_signed(&self, key: &CreatedKey, body: &[u8]) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}/webhooks/inbound", self.base))
            .header("X-API-Key", &key.key_id)
            .header("Content-Type", "application/json")
            .header("X-Webhook-Timestamp", now().to_string())
            .header("X-Webhook-Signature", "sha256=00")
            .body(body.to_vec())
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Sent {
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
        Sent {
            status,
            headers,
            body,
        }
    }

    /// The status of a plain `GET path` (health, readiness).
    pub async fn status_of(&self, path: &str) -> u16 {
        let url = format!("{}{path}", self.base);
        self.client.get(url).send().await.unwrap().status().as_u16()
    }

    /// Signs and sends `envelope` with `key`.
    pub async fn post(&self, key: &CreatedKey, envelope: &Value) -> Sent {
        let body = serde_json::to_vec(envelope).unwrap();
        self.send(self.signed(key, &body)).await
    }

    /// The rows of a read-only query, run through the store (so on either backend), to
    /// assert on stored state.
    pub async fn rows(&self, sql: &str) -> Vec<Row> {
        let query = sql.to_string();
        self.state
            .store
            .read(move |r| r.query_rows(&query))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The first row of a query.
    pub async fn row(&self, sql: &str) -> Row {
        self.rows(sql)
            .await
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no row: {sql}"))
    }

    /// A single number (`SELECT COUNT(*) ...`).
    pub async fn count(&self, sql: &str) -> i64 {
        self.row(sql).await.i64(0).expect(sql)
    }

    /// The company's record of `kind` with this name (its natural key), if stored.
    pub async fn record(&self, company_id: &str, kind: &str, name: &str) -> Option<Record> {
        let (company, kind, key) = (
            company_id.to_string(),
            kind.to_string(),
            hookgate::apply::natural_key(&[name]),
        );
        self.state
            .store
            .read(move |r| r.get_record(&company, &kind, &key))
            .await
            .expect("read record")
    }

    /// Waits until the detached ingest-log writes have landed.
    pub async fn settle(&self) {
        self.state.store.flush().await;
    }

    /// Signals shutdown (as SIGTERM would) without waiting for it.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Shuts the server down and returns its database, to start again on it.
    pub async fn stop(mut self) -> TestDb {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        self.db.take().expect("a running app has its database")
    }

    /// What `HOOKGATE_DATABASE` names for this app (a file path or a URL).
    pub fn database(&self) -> &str {
        &self
            .db
            .as_ref()
            .expect("a running app has its database")
            .url
    }
}

/// One step of the tests' retry schedule (`HOOKGATE_RETRY_SCHEDULE` above).
pub const RETRY_STEP: std::time::Duration = std::time::Duration::from_secs(3600);

impl TestApp {
    /// A REST call with `token` as the bearer token.
    pub async fn rest(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> Sent {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {token}"));
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        self.send(request).await
    }

    /// The Prometheus text of `GET /metrics`.
    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("metrics answered")
            .text()
            .await
            .expect("metrics text")
    }

    /// Creates a subscription for `key` and returns its JSON (`data`, with the secret).
    pub async fn subscribe(&self, key: &CreatedKey, body: Value) -> Value {
        let sent = self
            .rest(&key.api_token, "POST", "/api/v1/webhooks", Some(body))
            .await;
        assert_eq!(sent.status, 201, "{}", sent.body);
        assert_eq!(sent.body["success"], true, "{}", sent.body);
        sent.body["data"].clone()
    }
}
