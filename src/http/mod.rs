//! The HTTP edge: the only module that knows hyper. Accepts connections, routes requests,
//! authenticates from the headers before reading any body, receives bodies within their
//! limits (size, deadline, the budget of bytes in flight), and turns [`Reply`] values into
//! responses. Shuts down gracefully: stops accepting, lets in-flight requests finish (bounded
//! by `shutdown_grace_secs`), and cuts uploads that stop arriving.

pub mod body;
mod native;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::time::Instant;

use self::body::{BodyBudget, BodyError, Deadline, Received, ShutdownSignal};
use crate::app::AppState;
use crate::error::ApiError;
use crate::ingest::{self, Reply, Trace};
use crate::metrics::Gauges;
use crate::verify::Headers;

pub type HttpResponse = Response<Full<Bytes>>;

impl Headers for HeaderMap {
    fn get(&self, name: &str) -> Option<&str> {
        HeaderMap::get(self, name).and_then(|v| v.to_str().ok())
    }
}

/// What every request handler shares besides the application state: the body budget and
/// the shutdown signal.
struct Edge {
    state: Arc<AppState>,
    budget: BodyBudget,
    shutdown: ShutdownSignal,
}

/// How often the failed-authentication limiter forgets addresses that have recovered.
const FORGET_RECOVERED_EVERY: Duration = Duration::from_secs(10);

/// Serves on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn run(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let graceful = GracefulShutdown::new();
    let (begin_shutdown, shutdown_begun) = tokio::sync::watch::channel(false);
    let edge = Arc::new(Edge {
        budget: BodyBudget::new(state.config.max_body_bytes_in_flight),
        shutdown: ShutdownSignal::new(shutdown_begun),
        state: state.clone(),
    });
    let header_timeout = Duration::from_secs(state.config.header_timeout_secs);
    let forget = tokio::spawn(forget_recovered_addresses(state.clone()));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let edge = edge.clone();
        let service = service_fn(move |req| {
            let edge = edge.clone();
            async move { Ok::<_, Infallible>(route(&edge, peer, req).await) }
        });
        // A client that trickles its headers (slowloris) is cut off instead of holding a
        // connection open forever.
        let conn = http1::Builder::new()
            .keep_alive(true)
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    forget.abort();
    // Uploads that stall from now on are cut, so they cannot hold the grace period.
    let _ = begin_shutdown.send(true);
    let grace = Duration::from_secs(state.config.shutdown_grace_secs);
    tracing::info!("shutting down: finishing in-flight requests");
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within the grace period");
    }
}

async fn forget_recovered_addresses(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(FORGET_RECOVERED_EVERY);
    loop {
        tick.tick().await;
        state.limits.forget_recovered();
    }
}

async fn route(edge: &Edge, peer: SocketAddr, req: Request<Incoming>) -> HttpResponse {
    let state = &edge.state;
    let path = req.uri().path().to_string();
    // HEAD answers like GET; hyper sends the headers and leaves the body out.
    match (req.method(), path.as_str()) {
        (&Method::GET | &Method::HEAD, "/healthz") => text(StatusCode::OK, "ok\n", "text/plain"),
        (&Method::GET | &Method::HEAD, "/readyz") => readiness(state).await,
        (&Method::GET | &Method::HEAD, "/metrics") => {
            let (batches, jobs) = state.store.batch_stats();
            let gauges = Gauges {
                writer_batches: batches,
                writer_batched_jobs: jobs,
                outbox_pending: state.store.read(|r| r.pending_deliveries()).await.ok(),
            };
            text(
                StatusCode::OK,
                &state.metrics.render(&gauges),
                "text/plain; version=0.0.4",
            )
        }
        (&Method::POST, "/webhooks/inbound") => inbound(edge, peer, req).await,
        (_, p) if crate::providers::native_route(p).is_some() => {
            let (provider, key_id) = crate::providers::native_route(p).expect("matched");
            let (provider, key_id) = (provider.to_string(), key_id.to_string());
            native::native(edge, peer, req, &provider, &key_id).await
        }
        (_, p) if p == "/api/v1" || p.starts_with("/api/v1/") => rest(edge, peer, req).await,
        (_, p) if p == "/admin" || p.starts_with("/admin/") => admin(edge, peer, req).await,
        (_, "/webhooks/inbound") => method_not_allowed("POST"),
        (_, "/healthz" | "/readyz" | "/metrics") => method_not_allowed("GET, HEAD"),
        _ => error_response(&ApiError::new(
            404,
            "route_not_found",
            format!("no route for {path}"),
        )),
    }
}

/// A request answered before its body was read whole; the connection closes after it.
struct Refused {
    /// Boxed: the refused path is the rare one, and keeps `Result<_, Refused>` small.
    reply: Box<Reply>,
    retry_after: Option<u64>,
    /// Keep reading what the client is still sending, so that it reads the answer instead of
    /// a reset; not for a client that stalled or broke the connection.
    drain: bool,
}

/// Why a body could not be received, before it is turned into an answer.
struct Refusal {
    error: ApiError,
    retry_after: Option<u64>,
    drain: bool,
}

impl Refusal {
    /// The refusal answered with `reply` (which renders and may log the error).
    fn answer(self, reply: impl FnOnce(ApiError) -> Reply) -> Refused {
        Refused {
            reply: Box::new(reply(self.error)),
            retry_after: self.retry_after,
            drain: self.drain,
        }
    }
}

impl Refused {
    /// An answer given from the headers alone, to a client that may still be sending.
    fn early(reply: Reply) -> Refused {
        Refused {
            reply: Box::new(reply),
            retry_after: None,
            drain: true,
        }
    }
}

/// Ready when the database answers and takes writes, and this process's master key is the
/// database's (a key rotated by the CLI while the server runs makes it unready until it is
/// restarted with the new key).
async fn readiness(state: &AppState) -> HttpResponse {
    let unready = |reason: String| {
        tracing::warn!(reason = %reason, "readiness check failed");
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("{reason}\n"),
            "text/plain",
        )
    };
    if let Err(reason) = state.store.check_ready().await {
        return unready(format!("database unavailable: {reason}"));
    }
    match crate::master_key::stored_check(&state.store).await {
        Ok(Some(check)) if state.keys.opens_master_key_check(&check) => {
            text(StatusCode::OK, "ready\n", "text/plain")
        }
        Ok(_) => unready("the master key does not match the database's".to_string()),
        Err(e) => unready(format!("database unavailable: {e}")),
    }
}

impl Edge {
    /// The request deadline, counted from now (the headers are in).
    fn request_deadline(&self) -> Deadline {
        Deadline {
            at: Instant::now() + Duration::from_secs(self.state.config.request_timeout_secs),
            code: "request_timeout",
        }
    }

    /// Receives a body of at most `limit` bytes (after its sender was authenticated, where
    /// the route authenticates from the headers).
    async fn receive(
        &self,
        incoming: &mut Incoming,
        limit: usize,
        request: Deadline,
    ) -> Result<Received, BodyError> {
        let config = &self.state.config;
        let deadline = Deadline {
            at: Instant::now() + Duration::from_secs(config.body_timeout_secs),
            code: "body_timeout",
        }
        .min(request);
        body::receive(incoming, limit, deadline, &self.budget, &self.shutdown).await
    }

    /// The answer to a body that could not be received.
    fn refusal(&self, error: BodyError) -> Refusal {
        let config = &self.state.config;
        let (error, retry_after, drain) = match error {
            BodyError::TooLarge => (ingest::payload_too_large(config.max_body_bytes), None, true),
            BodyError::Timeout(code) => {
                let message = if code == "body_timeout" {
                    format!(
                        "the request body did not arrive within {} s",
                        config.body_timeout_secs
                    )
                } else {
                    format!(
                        "the request was not received within {} s",
                        config.request_timeout_secs
                    )
                };
                (ApiError::new(408, code, message), None, false)
            }
            BodyError::Busy => (
                ApiError::new(
                    503,
                    "server_busy",
                    "too many request bodies are being received at once; retry shortly",
                ),
                Some(1),
                true,
            ),
            BodyError::ShuttingDown => (
                ApiError::new(
                    503,
                    "shutting_down",
                    "the server is shutting down and the request body stopped arriving; retry",
                ),
                Some(1),
                false,
            ),
            BodyError::Io(e) => (
                ApiError::bad_request(
                    "body_read_failed",
                    format!("could not read the request body: {e}"),
                ),
                None,
                false,
            ),
        };
        Refusal {
            error,
            retry_after,
            drain,
        }
    }

    /// Runs `admit` (authentication from the headers, then the body) within the request
    /// deadline; `Err` when the deadline passed first.
    async fn within<T>(
        &self,
        deadline: Deadline,
        admit: impl std::future::Future<Output = Result<T, Refused>>,
    ) -> Result<Result<T, Refused>, Refusal> {
        tokio::time::timeout_at(deadline.at, admit)
            .await
            .map_err(|_elapsed| self.refusal(BodyError::Timeout(deadline.code)))
    }

    /// The body of an inbound request whose key was authenticated from its headers, or its
    /// refusal (recorded on the trace).
    async fn receive_for(
        &self,
        trace: &mut Trace,
        incoming: &mut Incoming,
        key: Arc<crate::keys::ApiKey>,
        deadline: Deadline,
    ) -> Result<(Arc<crate::keys::ApiKey>, Received), Refused> {
        match self
            .receive(incoming, self.state.config.max_body_bytes, deadline)
            .await
        {
            Ok(body) => Ok((key, body)),
            Err(e) => {
                trace.key = Some(key);
                Err(self.refusal(e).answer(|e| trace.fail(e)))
            }
        }
    }

    /// Logs an inbound request's answer, keeps the request, and sends the answer.
    fn answered(&self, trace: &Trace, mut reply: Reply) -> HttpResponse {
        ingest::finish(&self.state, trace, &mut reply);
        crate::inspect::keep(&self.state, trace, &reply);
        reply_response(&reply, false)
    }

    /// Logs an inbound request refused before its body was read whole, and sends the refusal.
    fn refused_inbound(
        &self,
        trace: &Trace,
        mut refused: Refused,
        incoming: Incoming,
    ) -> HttpResponse {
        ingest::finish(&self.state, trace, &mut refused.reply);
        self.refused(refused, incoming)
    }

    /// Sends a refusal, draining the unread body first when that helps the client.
    fn refused(&self, refused: Refused, incoming: Incoming) -> HttpResponse {
        if refused.drain {
            body::drain_in_background(
                incoming,
                self.state.config.max_body_bytes,
                self.shutdown.clone(),
            );
        }
        let mut response = reply_response(&refused.reply, true);
        if let Some(wait) = refused.retry_after {
            response
                .headers_mut()
                .insert(hyper::header::RETRY_AFTER, HeaderValue::from(wait));
        }
        response
    }
}

async fn inbound(edge: &Edge, peer: SocketAddr, req: Request<Incoming>) -> HttpResponse {
    let state = &edge.state;
    let deadline = edge.request_deadline();
    let mut trace = Trace::start(peer.ip());
    let (parts, mut incoming) = req.into_parts();
    let (content_length, path_and_query) = length_and_target(&parts);
    // Authentication needs only the headers: no body is read for a request that fails it.
    let received = edge
        .within(deadline, async {
            let key = ingest::authenticate(state, &mut trace, &parts.headers, content_length)
                .await
                .map_err(Refused::early)?;
            edge.receive_for(&mut trace, &mut incoming, key, deadline)
                .await
        })
        .await
        .unwrap_or_else(|late| Err(late.answer(|e| trace.fail(e))));
    match received {
        Ok((key, body)) => {
            if crate::inspect::wanted(state, &key) {
                trace.capture = Some(crate::inspect::Capture::new(
                    parts.method.as_str(),
                    &path_and_query,
                    captured(&parts.headers),
                ));
            }
            let reply = ingest::process(
                state,
                &mut trace,
                key,
                &parts.headers,
                &path_and_query,
                body.bytes.clone(),
            )
            .await;
            drop(body);
            edge.answered(&trace, reply)
        }
        Err(refused) => edge.refused_inbound(&trace, refused, incoming),
    }
}

/// The declared body size and the request target (path and query).
fn length_and_target(parts: &hyper::http::request::Parts) -> (Option<u64>, String) {
    let content_length = parts
        .headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_string();
    (content_length, target)
}

/// The request's headers as a list (lower-case names), for keeping and for providers.
fn captured(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect()
}

async fn rest(edge: &Edge, peer: SocketAddr, req: Request<Incoming>) -> HttpResponse {
    let state = &edge.state;
    let started = Instant::now();
    let deadline = edge.request_deadline();
    let (parts, mut incoming) = req.into_parts();
    let request_id = crate::crypto::random_id("req_", 8);
    let authorization = parts
        .headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    // The bearer token is checked (and failures counted) before any body is read.
    let reply_of = |e: ApiError| Reply::json(e.status, &e.body(), &request_id);
    let received = edge
        .within(deadline, async {
            let caller = crate::rest::authenticate(
                state,
                parts.method.as_str(),
                parts.uri.path(),
                authorization,
                peer.ip(),
                &request_id,
            )
            .await
            .map_err(Refused::early)?;
            let limit = state.config.max_body_bytes;
            match edge.receive(&mut incoming, limit, deadline).await {
                Ok(body) => Ok((caller, body)),
                Err(e) => Err(edge.refusal(e).answer(reply_of)),
            }
        })
        .await
        .unwrap_or_else(|late| Err(late.answer(reply_of)));
    match received {
        Ok((caller, body)) => {
            let request = crate::rest::RestRequest {
                method: parts.method.as_str(),
                path: parts.uri.path(),
                query: parts.uri.query(),
                body: body.bytes.clone(),
                request_id,
            };
            let reply = crate::rest::handle(state, &caller, request).await;
            drop(body);
            crate::rest::log_request(
                parts.method.as_str(),
                parts.uri.path(),
                &reply,
                started.elapsed(),
            );
            reply_response(&reply, false)
        }
        Err(refused) => {
            let (method, path) = (parts.method.as_str(), parts.uri.path());
            crate::rest::log_request(method, path, &refused.reply, started.elapsed());
            edge.refused(refused, incoming)
        }
    }
}

async fn admin(edge: &Edge, peer: SocketAddr, req: Request<Incoming>) -> HttpResponse {
    let state = &edge.state;
    let deadline = edge.request_deadline();
    let (parts, mut incoming) = req.into_parts();
    let received = edge
        .receive(&mut incoming, crate::admin::MAX_BODY_BYTES, deadline)
        .await;
    let page = match received {
        Ok(body) => {
            let request = crate::admin::AdminRequest {
                method: parts.method.as_str(),
                path: parts.uri.path(),
                query: parts.uri.query(),
                headers: &parts.headers,
                peer: peer.ip(),
                body: body.bytes.clone(),
            };
            crate::admin::handle(state, request).await
        }
        Err(BodyError::TooLarge) => {
            body::drain_in_background(
                incoming,
                crate::admin::MAX_BODY_BYTES,
                edge.shutdown.clone(),
            );
            crate::admin::body_too_large()
        }
        Err(e) => {
            let refused = edge
                .refusal(e)
                .answer(|e| Reply::json(e.status, &e.body(), ""));
            return edge.refused(refused, incoming);
        }
    };
    let mut response = Response::new(Full::new(page.body));
    *response.status_mut() =
        StatusCode::from_u16(page.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in page.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

fn reply_response(reply: &Reply, close: bool) -> HttpResponse {
    let mut response = Response::new(Full::new(reply.body.clone()));
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    if !reply.body.is_empty() {
        headers.insert("content-type", HeaderValue::from_static(reply.content_type));
    }
    if let Ok(v) = HeaderValue::from_str(&reply.request_id) {
        headers.insert("x-request-id", v);
    }
    if let Some(rate) = reply.rate {
        headers.insert("x-ratelimit-limit", HeaderValue::from(rate.limit));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(rate.remaining));
        headers.insert("x-ratelimit-reset", HeaderValue::from(rate.reset));
        if let Some(wait) = rate.retry_after {
            headers.insert("retry-after", HeaderValue::from(wait));
        }
    }
    if reply.status == 503 && !headers.contains_key("retry-after") {
        headers.insert(
            "retry-after",
            HeaderValue::from(crate::error::UNAVAILABLE_RETRY_AFTER_SECS),
        );
    }
    if let Some(allow) = reply
        .allow
        .as_deref()
        .and_then(|a| HeaderValue::from_str(a).ok())
    {
        headers.insert("allow", allow);
    }
    if reply.replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    if close {
        headers.insert("connection", HeaderValue::from_static("close"));
    }
    response
}

pub fn error_response(error: &ApiError) -> HttpResponse {
    let body = serde_json::to_vec(&error.body()).expect("JSON values serialize");
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    response
}

fn method_not_allowed(allow: &'static str) -> HttpResponse {
    let mut response = error_response(&ApiError::new(
        405,
        "method_not_allowed",
        format!("method not allowed on this path; allowed: {allow}"),
    ));
    response
        .headers_mut()
        .insert("allow", HeaderValue::from_static(allow));
    response
}

fn text(status: StatusCode, body: &str, content_type: &'static str) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::copy_from_slice(body.as_bytes())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static(content_type));
    response
}
