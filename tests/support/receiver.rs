//! A local webhook receiver. [`Receiver::start`] records every request (headers and body) and
//! answers with the statuses it is told to, in order (then 200); it checks every delivery of a
//! catalog event against its published schema (`schemas/outbound/`), and reading what it
//! recorded fails the test if one did not match. [`Receiver::observing`] keeps nothing: it
//! hands each request to a function and answers at once, for loads of many thousand
//! deliveries a second (the benchmark). It is a minimal HTTP/1.1 server of its own rather
//! than hyper's, so that on a machine it shares with the gateway it takes little of the CPU
//! (as the fast receiver of the measurements, nginx, does).

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
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
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

/// One request as an observing receiver sees it.
pub struct Arrival<'a> {
    /// The request's path (the subscription URL's path).
    pub path: &'a str,
    pub headers: &'a [httparse::Header<'a>],
    pub body: &'a [u8],
    /// Whether it came before the answer to an earlier request on its connection (HTTP/1.1
    /// pipelining): a client that waits for each answer never sends two requests at once.
    pub pipelined: bool,
}

impl Arrival<'_> {
    /// The value of the first header named `name` (ASCII case ignored).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        header_value(self.headers, name)
    }
}

/// The value of the first of `headers` named `name` (ASCII case ignored).
pub fn header_value<'a>(headers: &[httparse::Header<'a>], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// What an observing receiver calls for every request.
pub type Observer = Arc<dyn Fn(&Arrival<'_>) + Send + Sync>;

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
    /// `http://127.0.0.1:PORT/hook`.
    pub url: String,
    pub port: u16,
    inner: Arc<Mutex<Inner>>,
    /// Requests received, in either mode.
    requests: Arc<AtomicU64>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        Self::start_on(0).await
    }

    /// Starts on a given port (0: any), e.g. to come back where a stopped one was.
    pub async fn start_on(port: u16) -> Receiver {
        Self::listen(port, None).await
    }

    /// A receiver that records nothing: `observer` sees every request, which is answered 200.
    pub async fn observing(observer: Observer) -> Receiver {
        Self::listen(0, Some(observer)).await
    }

    /// Accepts connections and serves each in the receiver's mode: recording (hyper) or
    /// observing (`observe_connection`).
    async fn listen(port: u16, observer: Option<Observer>) -> Receiver {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind receiver");
        let port = listener.local_addr().unwrap().port();
        let inner = Arc::new(Mutex::new(Inner::default()));
        let requests = Arc::new(AtomicU64::new(0));
        let (state, count) = (inner.clone(), requests.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let (state, count) = (state.clone(), count.clone());
                if let Some(observer) = &observer {
                    tokio::spawn(observe_connection(stream, observer.clone(), count));
                    continue;
                }
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (state, count) = (state.clone(), count.clone());
                    async move {
                        let status = record(req, &state).await;
                        count.fetch_add(1, Ordering::Relaxed);
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
            requests,
        }
    }

    /// `http://127.0.0.1:PORT`, to which subscriptions add paths of their own.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Requests received so far (URL verifications and test sends included).
    pub fn request_count(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
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
}

/// Records the request (checking a catalog event against its schema); the status to answer.
async fn record(req: Request<hyper::body::Incoming>, state: &Mutex<Inner>) -> u16 {
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let event_type = headers_event(&headers);
    let violation = schema_violation(&event_type, &body);
    let mut s = state.lock().unwrap();
    s.invalid.extend(violation);
    s.received.push(Received { headers, body });
    s.answers.pop_front().unwrap_or(200)
}

/// The most headers an observed request may have.
const MOST_OBSERVED_HEADERS: usize = 32;
const OBSERVED_ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

/// Serves one connection of an observing receiver: HTTP/1.1 requests with a `Content-Length`
/// body (as the delivery client sends them), kept alive. Each request is read whole, as a real
/// receiver would before answering, shown to `observer` and answered 200; requests that came
/// in one read are answered in one write. The connection is closed on a request it cannot
/// parse.
async fn observe_connection(mut stream: TcpStream, observer: Observer, count: Arc<AtomicU64>) {
    let mut buffer: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut answers: Vec<u8> = Vec::new();
    loop {
        let mut used = 0;
        loop {
            let mut slots = [httparse::EMPTY_HEADER; MOST_OBSERVED_HEADERS];
            let mut request = httparse::Request::new(&mut slots);
            let head = match request.parse(&buffer[used..]) {
                Ok(httparse::Status::Complete(head)) => head,
                Ok(httparse::Status::Partial) => break,
                Err(_) => return,
            };
            let length = header_value(request.headers, "content-length")
                .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<usize>().ok())
                .unwrap_or(0);
            let end = used + head + length;
            if buffer.len() < end {
                break;
            }
            observer(&Arrival {
                path: request.path.unwrap_or("/"),
                headers: request.headers,
                body: &buffer[used + head..end],
                pipelined: used > 0,
            });
            count.fetch_add(1, Ordering::Relaxed);
            answers.extend_from_slice(OBSERVED_ANSWER);
            used = end;
        }
        buffer.drain(..used);
        if !answers.is_empty() {
            if stream.write_all(&answers).await.is_err() {
                return;
            }
            answers.clear();
        }
        buffer.reserve(16 * 1024);
        match stream.read_buf(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
