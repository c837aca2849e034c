//! A local webhook receiver for outbound tests: records every request (headers and body) and
//! answers with the statuses it is told to, in order (then 200). It checks every delivery of a
//! catalog event against its published schema (`schemas/outbound/`); reading what it recorded
//! fails the test if one did not match.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use hookgate::catalog::{OutboundEvent, THIN_SCHEMA};
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use jsonschema::Validator;
use serde_json::Value;

/// Why a delivery does not match its schema, or None when it does (or is not a catalog
/// event: URL verifications and test sends).
pub fn schema_violation(event_type: &str, body: &[u8]) -> Option<String> {
    static SCHEMAS: OnceLock<(HashMap<&'static str, Validator>, Validator)> = OnceLock::new();
    let (full, thin) = SCHEMAS.get_or_init(|| {
        let compile =
            |schema: &Value| jsonschema::draft202012::new(schema).expect("schema compiles");
        let full = OutboundEvent::ALL
            .iter()
            .map(|e| (e.name(), compile(e.schema())))
            .collect();
        (full, compile(&serde_json::from_str(THIN_SCHEMA).unwrap()))
    });
    let validator = full.get(event_type)?;
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Some(format!("{event_type}: the body is not JSON"));
    };
    // A thin payload is `{entity, id}`; a full one is an envelope with `data`.
    let validator = if value.get("data").is_some() {
        validator
    } else {
        thin
    };
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    (!errors.is_empty()).then(|| format!("{event_type}: {}; body {value}", errors.join("; ")))
}

#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

fn headers_event(headers: &HashMap<String, String>) -> String {
    headers.get("x-webhook-event").cloned().unwrap_or_default()
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    answers: VecDeque<u16>,
    /// Deliveries that did not match their schema.
    invalid: Vec<String>,
}

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    pub port: u16,
    inner: Arc<Mutex<Inner>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        Self::start_on(0).await
    }

    /// Starts on a given port (0: any), e.g. to come back where a stopped one was.
    pub async fn start_on(port: u16) -> Receiver {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind receiver");
        let port = listener.local_addr().unwrap().port();
        let inner = Arc::new(Mutex::new(Inner::default()));
        let state = inner.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = state.clone();
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let state = state.clone();
                    async move {
                        let headers = req
                            .headers()
                            .iter()
                            .map(|(k, v)| {
                                (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())
                            })
                            .collect();
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes().to_vec())
                            .unwrap_or_default();
                        let event_type = headers_event(&headers);
                        let violation = schema_violation(&event_type, &body);
                        let status = {
                            let mut s = state.lock().unwrap();
                            s.invalid.extend(violation);
                            s.received.push(Received { headers, body });
                            s.answers.pop_front().unwrap_or(200)
                        };
                        let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
                        *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                        Ok::<_, Infallible>(response)
                    }
                });
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        Receiver {
            url: format!("http://127.0.0.1:{port}/hook"),
            port,
            inner,
        }
    }

    /// The next answers, in order (200 after them).
    pub fn answer(&self, statuses: &[u16]) {
        self.inner.lock().unwrap().answers.extend(statuses);
    }

    /// Everything received so far; fails if a delivery did not match its schema.
    pub fn received(&self) -> Vec<Received> {
        let inner = self.inner.lock().unwrap();
        assert!(
            inner.invalid.is_empty(),
            "deliveries that do not match their schemas/outbound/ schema:\n{}",
            inner.invalid.join("\n")
        );
        inner.received.clone()
    }

    /// Received requests other than URL verifications and test sends.
    pub fn events(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| {
                !matches!(
                    r.header("x-webhook-event"),
                    "webhook.verification" | "webhook.test"
                )
            })
            .collect()
    }

    /// Waits until at least `n` events arrived (or 10 s).
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        for _ in 0..200 {
            let got = self.events();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.events()
    }

    /// Waits until at least `n` events arrived (or 10 s), moving `app`'s retry clock a step of
    /// the tests' schedule forward at every look: a retry comes as soon as the worker recorded
    /// the failure before it, without waiting through the schedule.
    pub async fn wait_retried(&self, app: &hookgate::app::AppState, n: usize) -> Vec<Received> {
        for _ in 0..200 {
            let got = self.events();
            if got.len() >= n {
                return got;
            }
            app.advance_retry_clock(crate::helpers::RETRY_STEP);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.events()
    }
}
