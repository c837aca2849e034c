//! Deliveries ignore proxy settings in the environment. A binary of its own: it sets
//! `HTTP_PROXY` and friends for the whole process, which no other test may see.

#[allow(dead_code, unused_imports)]
#[path = "api/helpers.rs"]
mod helpers;
#[path = "support/mod.rs"]
mod support;
#[allow(dead_code)]
#[path = "api/test_db.rs"]
mod test_db;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;

/// A "proxy" that answers 200 to anything: had the delivery gone through it, it would have
/// been recorded as delivered.
async fn fake_proxy(listener: std::net::TcpListener, contacted: Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        contacted.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await;
        });
    }
}

#[test]
fn deliveries_ignore_proxy_variables_and_still_refuse_private_targets() {
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    for var in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        // SAFETY: no other thread of this process is running yet (the runtime starts below,
        // and this binary holds this one test only), so nothing reads the environment
        // concurrently.
        unsafe { std::env::set_var(var, &proxy_url) };
    }
    for var in ["NO_PROXY", "no_proxy"] {
        // SAFETY: as above.
        unsafe { std::env::remove_var(var) };
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move {
            let contacted = Arc::new(AtomicUsize::new(0));
            tokio::spawn(fake_proxy(proxy, contacted.clone()));
            let mut app =
                helpers::spawn_app_with(&[("HOOKGATE_ALLOW_PRIVATE_URLS", "false")]).await;
            // The test's own client talks to the server directly.
            app.client = reqwest::Client::builder().no_proxy().build().unwrap();
            let sender = app.create_key("acme", "erp").await;
            let subscriber = app.create_key("acme", "crm").await;
            let sub = app
                .subscribe(
                    &subscriber,
                    json!({"name": "local", "url": "http://localhost:9/hook", "events": ["vendor.created"]}),
                )
                .await;
            let sent = app
                .post(
                    &sender,
                    &helpers::envelope("vendor.created", json!({"vendor_name": "Bolt"})),
                )
                .await;
            assert_eq!(sent.status, 200, "{}", sent.body);
            let path = format!(
                "/api/v1/webhooks/{}/deliveries",
                sub["id"].as_str().unwrap()
            );
            let mut delivery = json!(null);
            for _ in 0..100 {
                let log = app.rest(&subscriber.api_token, "GET", &path, None).await;
                delivery = log.body["data"][0].clone();
                if delivery["attempts"].as_u64().unwrap_or(0) > 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert_ne!(delivery["status"], "succeeded", "{delivery}");
            let error = delivery["error"].as_str().unwrap_or("");
            assert!(error.contains("non-public"), "{delivery}");
            assert_eq!(
                contacted.load(Ordering::SeqCst),
                0,
                "the proxy was never contacted"
            );
        });
}
