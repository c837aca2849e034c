//! The gateway as its own process (`hookgate serve`, the binary under test) on a test's
//! database, for the tests that kill it: its address and the child to kill.

use std::process::Stdio;
use std::time::{Duration, Instant};

use hookgate::keys::CreatedKey;
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::helpers::*;

pub struct Node {
    pub base: String,
    pub child: Child,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub async fn start_node(database: &str) -> Node {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .arg("serve")
        .env("HOOKGATE_CONFIG", config_path())
        .env("HOOKGATE_DATABASE", database)
        .env("HOOKGATE_MASTER_KEY", MASTER_KEY)
        .env("HOOKGATE_LISTEN", format!("127.0.0.1:{port}"))
        .env("HOOKGATE_ALLOW_HTTP_URLS", "true")
        .env("HOOKGATE_ALLOW_PRIVATE_URLS", "true")
        .env("HOOKGATE_RETRY_SCHEDULE", "0,1,1,1,1,1")
        .env("HOOKGATE_WRITER_CONNECTIONS", "4")
        .env("RUST_LOG", "warn")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start hookgate serve");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status() == 200
        {
            return Node { base, child };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("node on port {port} did not become ready");
}

pub fn signed(
    client: &reqwest::Client,
    base: &str,
    key: &CreatedKey,
    body: &Value,
) -> reqwest::RequestBuilder {
    let body = serde_json::to_vec(body).unwrap();
    let ts = now();
    client
        .post(format!("{base}/webhooks/inbound"))
        .header("X-API-Key", &key.key_id)
        .header("Content-Type", "application/json")
        .header("X-Webhook-Timestamp", ts.to_string())
        .header("X-Webhook-Signature", sign(&key.secret, ts, &body))
        .body(body)
}

/// A store on the database the nodes run on, to read what they stored.
pub fn open_store(database: &str) -> hookgate::store::Store {
    hookgate::store::Store::open(&hookgate::store::StoreOptions {
        database: database.to_string(),
        max_batch: 16,
        writers: 1,
        wal_restart_bytes: 64 << 20,
        max_database_bytes: 0,
    })
    .unwrap()
}
