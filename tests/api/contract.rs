//! The API's contract beside the schemathesis check (`.ci/contract`): the OpenAPI document is
//! served without a token and routes every documented operation to a handler; answers share one
//! wrapper; filters refuse unknown values by naming the allowed ones; HEAD and 405 answer as
//! HTTP says.

use hookgate::outbound::deliveries;
use hookgate::rest::openapi::DOCUMENT;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn the_document_is_public_and_lists_what_the_code_lists() {
    let app = spawn_app().await;
    let sent = app
        .send(app.client.get(format!("{}/api/v1/openapi.json", app.base)))
        .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert_eq!(sent.header("content-type"), Some("application/json"));
    assert_eq!(sent.body["openapi"], "3.1.0");
    assert_eq!(
        sent.body["components"]["schemas"]["DeliveryStatus"]["enum"],
        json!(deliveries::STATUSES)
    );
    assert_eq!(
        sent.body["components"]["schemas"]["OutboundEventType"]["enum"],
        json!(deliveries::event_types())
    );
    // Every path it documents outside /api/v1 is served too.
    for path in sent.body["paths"].as_object().unwrap().keys() {
        if path.starts_with("/api/v1") {
            continue;
        }
        let any = app
            .send(app.client.delete(format!("{}{path}", app.base)))
            .await;
        assert_ne!(
            any.code(),
            "route_not_found",
            "{path} is documented but not routed"
        );
    }
}

/// A concrete path for a template, with made-up ids.
fn concrete(template: &str) -> String {
    template
        .replace("{id}", "wh_unknown")
        .replace("{delivery_id}", "dlv_unknown")
}

#[tokio::test]
async fn every_documented_operation_has_a_handler_and_nothing_else_is_routed() {
    let app = spawn_app().await;
    let key = app.create_key("contract-co", "erp").await;
    assert!(DOCUMENT.routes().len() >= 20, "{:?}", DOCUMENT.routes());
    for route in DOCUMENT.routes() {
        let path = concrete(&route.template);
        let body = (route.method != "GET").then(|| json!({}));
        let sent = app.rest(&key.api_token, &route.method, &path, body).await;
        assert!(
            sent.status < 500,
            "{} {path} ({}) answered {}: {}",
            route.method,
            route.operation_id,
            sent.status,
            sent.body
        );
        assert!(
            !["route_not_found", "method_not_allowed"].contains(&sent.code()),
            "{} {path} is documented but not served: {}",
            route.method,
            sent.body
        );
    }
    // An undocumented path or method is not served, whatever a handler might do.
    let unknown = app
        .rest(&key.api_token, "GET", "/api/v1/webhooks/wh_1/secrets", None)
        .await;
    assert_eq!((unknown.status, unknown.code()), (404, "route_not_found"));
    let wrong = app
        .rest(&key.api_token, "DELETE", "/api/v1/skills", None)
        .await;
    assert_eq!((wrong.status, wrong.code()), (405, "method_not_allowed"));
    assert_eq!(wrong.header("allow"), Some("GET, POST"));
}

#[tokio::test]
async fn create_and_list_answers_share_one_wrapper_with_rfc3339_times() {
    let app = spawn_app().await;
    let key = app.create_key("wrapper-co", "erp").await;
    let token = key.api_token.as_str();
    let creates = [
        ("/api/v1/skills", json!({"names": ["Framing"]})),
        (
            "/api/v1/work-types",
            json!({"code": "TRV", "name": "Travel"}),
        ),
        (
            "/api/v1/webhooks",
            json!({"name": "w", "url": "https://hooks.example.com/x", "events": ["*"]}),
        ),
    ];
    for (path, body) in creates {
        let created = app.rest(token, "POST", path, Some(body)).await;
        assert_eq!(created.status, 201, "{path}: {}", created.body);
        assert_eq!(created.body["success"], true);
        assert!(created.body["data"].is_object(), "{path}: {}", created.body);
        let listed = app.rest(token, "GET", path, None).await;
        assert_eq!(listed.status, 200, "{path}: {}", listed.body);
        assert_eq!(listed.body["success"], true);
        let items = listed.body["data"].as_array().unwrap();
        assert_eq!(listed.body["count"], items.len(), "{path}: {}", listed.body);
        assert!(!items.is_empty(), "{path}: {}", listed.body);
    }
    let hooks = app.rest(token, "GET", "/api/v1/webhooks", None).await;
    for field in ["created_at", "updated_at"] {
        let text = hooks.body["data"][0][field].as_str().unwrap_or("");
        assert!(
            hookgate::clock::parse_rfc3339_ms(text).is_some(),
            "{field} is not RFC 3339: {}",
            hooks.body
        );
    }
}

#[tokio::test]
async fn unknown_filter_values_are_refused_with_the_allowed_ones() {
    let app = spawn_app().await;
    let key = app.create_key("filters-co", "erp").await;
    let token = key.api_token.as_str();
    let sub = app
        .subscribe(
            &key,
            json!({"name": "f", "url": "https://hooks.example.com/f", "events": ["*"]}),
        )
        .await;
    let id = sub["id"].as_str().unwrap();
    let cases = [
        (
            format!("/api/v1/webhooks/{id}/deliveries?status=done"),
            "invalid_filter",
            "failed",
        ),
        (
            format!("/api/v1/webhooks/{id}/deliveries?event_type=vendor.exploded"),
            "invalid_filter",
            "vendor.created",
        ),
        (
            format!("/api/v1/webhooks/{id}/deliveries?limit=0"),
            "invalid_query",
            "1 to 1000",
        ),
        (
            "/api/v1/ingest-log?event_type=nope".to_string(),
            "invalid_filter",
            "test.connection",
        ),
        (
            "/api/v1/ingest-log?status=99".to_string(),
            "invalid_query",
            "100 to 599",
        ),
        (
            "/api/v1/ingest-log?wait=31".to_string(),
            "invalid_query",
            "0 to 30",
        ),
    ];
    for (path, code, named) in cases {
        let sent = app.rest(token, "GET", &path, None).await;
        assert_eq!(
            (sent.status, sent.code()),
            (400, code),
            "{path}: {}",
            sent.body
        );
        assert!(
            sent.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(named),
            "{path}: the message does not name {named}: {}",
            sent.body
        );
    }
    let sent = app
        .rest(
            token,
            "GET",
            &format!("/api/v1/webhooks/{id}/deliveries?status=done"),
            None,
        )
        .await;
    let allowed: Vec<&str> = sent.body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(allowed, deliveries::STATUSES);
    // A known value filters.
    let fine = app
        .rest(
            token,
            "GET",
            &format!("/api/v1/webhooks/{id}/deliveries?status=failed"),
            None,
        )
        .await;
    assert_eq!((fine.status, fine.body["count"].clone()), (200, json!(0)));
}

#[tokio::test]
async fn head_answers_like_get_without_a_body_and_405_says_what_is_allowed() {
    let app = spawn_app().await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        let get = app
            .client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        let head = app
            .client
            .head(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(
            (get.status().as_u16(), head.status().as_u16()),
            (200, 200),
            "{path}"
        );
        assert_eq!(
            head.headers().get("content-type"),
            get.headers().get("content-type"),
            "{path}"
        );
        assert!(
            head.bytes().await.unwrap().is_empty(),
            "{path}: HEAD sent a body"
        );
        let post = app
            .send(app.client.post(format!("{}{path}", app.base)))
            .await;
        assert_eq!(
            (post.status, post.header("allow")),
            (405, Some("GET, HEAD")),
            "{path}"
        );
    }
    let get = app
        .send(app.client.get(format!("{}/webhooks/inbound", app.base)))
        .await;
    assert_eq!((get.status, get.header("allow")), (405, Some("POST")));
}

/// The value of the sample `line_start` (name and labels) in Prometheus text.
fn sample(metrics: &str, line_start: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
}

#[tokio::test]
async fn metrics_name_the_build_the_process_and_why_authentication_failed() {
    let app = spawn_app().await;
    let key = app.create_key("metrics-co", "erp").await;
    let body = serde_json::to_vec(&json!({"event_type": "test.connection", "data": {}})).unwrap();
    let unknown_key = app
        .client
        .post(format!("{}/webhooks/inbound", app.base))
        .header("X-API-Key", "hk_nobody")
        .header("Content-Type", "application/json")
        .body(body.clone());
    assert_eq!(app.send(unknown_key).await.status, 401);
    let mut wrong = key.clone();
    wrong.secret = "hks_wrong".into();
    for _ in 0..2 {
        assert_eq!(app.send(app.signed(&wrong, &body)).await.status, 403);
    }
    let ok = app.send(app.signed(&key, &body)).await;
    assert_eq!(ok.status, 200, "{}", ok.body);

    let metrics = app.metrics().await;
    let build = format!(
        "hookgate_build_info{{version=\"{}\",profile=\"debug\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(sample(&metrics, &build), Some(1.0), "{metrics}");
    let failures = |reason: &str| {
        sample(
            &metrics,
            &format!("hookgate_auth_failures_total{{reason=\"{reason}\"}}"),
        )
    };
    assert_eq!(failures("api_key_invalid"), Some(1.0), "{metrics}");
    assert_eq!(failures("signature_mismatch"), Some(2.0), "{metrics}");
    assert!(
        !metrics.contains("event_type=\"unknown\",status=\"401\"")
            && !metrics.contains("event_type=\"unknown\",status=\"403\""),
        "auth failures still counted by event type: {metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "hookgate_inbound_requests_total{event_type=\"test.connection\",status=\"200\"}"
        ),
        Some(1.0)
    );
    assert!(sample(&metrics, "process_resident_memory_bytes").unwrap() > 1e6);
    assert!(sample(&metrics, "process_cpu_seconds_total").unwrap() > 0.0);
    assert!(sample(&metrics, "process_open_fds").unwrap() >= 3.0);
    let started = sample(&metrics, "process_start_time_seconds").unwrap();
    let now = hookgate::clock::now_secs() as f64;
    assert!(
        started <= now + 1.0 && started > now - 86_400.0,
        "{started}"
    );
}
