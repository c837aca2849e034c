//! The HTTP edge: the only module that knows hyper. Accepts connections, gives each request
//! an id and a span ([`request::run_as`]), routes it to the handler below (the inbound
//! [`pipeline`], the REST API, the console) with its head and a [`HyperBody`] that reads the
//! body within its limits (size, deadline, the budget of bytes in flight) only when the handler
//! asks, and turns the answer into a response. Shuts down gracefully: stops accepting, lets
//! in-flight requests finish (bounded by `shutdown_grace_secs`), and cuts uploads that stop
//! arriving.

mod body;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::http::request::Parts;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use self::body::{BodyBudget, HyperBody, ShutdownSignal};
use crate::error::ApiError;
use crate::metrics::Gauges;
use crate::pipeline::{self, Route};
use crate::request::{self, Early, Head, Reply};
use crate::state::AppState;
use crate::verify::Headers;

type HttpResponse = Response<Full<Bytes>>;

impl Headers for HeaderMap {
    fn get(&self, name: &str) -> Option<&str> {
        HeaderMap::get(self, name).and_then(|v| v.to_str().ok())
    }

    fn all(&self) -> Vec<(String, String)> {
        self.iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_string(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect()
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
pub(crate) async fn run(
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
    let id = request::new_id();
    let area = area(req.uri().path());
    let mut response = request::run_as(id.clone(), area, dispatch(edge, peer, req)).await;
    if let Ok(id) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", id);
    }
    response
}

/// The part of the server a path belongs to, for the request's span.
fn area(path: &str) -> &'static str {
    if path.starts_with("/webhooks/inbound") {
        "inbound"
    } else if path.starts_with("/api/v1") {
        "rest"
    } else if path.starts_with("/admin") {
        "admin"
    } else {
        "edge"
    }
}

/// Every handler's future is boxed where it is awaited: a future holds the state of the
/// largest one it awaits, and the request's future is moved several times on its way to
/// hyper (the span, the task-local scope): unboxed, every request copied some 30 KB a few
/// times over (5% of the CPU under load, in `perf`).
async fn dispatch(edge: &Edge, peer: SocketAddr, req: Request<Incoming>) -> HttpResponse {
    let state = &edge.state;
    let path = req.uri().path().to_string();
    // HEAD answers like GET; hyper sends the headers and leaves the body out.
    match (req.method(), path.as_str()) {
        (&Method::GET | &Method::HEAD, "/healthz") => text(StatusCode::OK, "ok\n", "text/plain"),
        (&Method::GET | &Method::HEAD, "/readyz") => Box::pin(readiness(state)).await,
        (&Method::GET | &Method::HEAD, "/metrics") => Box::pin(metrics(state)).await,
        (&Method::POST, "/webhooks/inbound") => inbound(edge, peer, req, Route::Envelope).await,
        (_, p) if crate::providers::native_route(p).is_some() => {
            let (provider, key_id) = crate::providers::native_route(p).expect("matched");
            let route = Route::Native { provider, key_id };
            inbound(edge, peer, req, route).await
        }
        (_, p) if p == "/api/v1" || p.starts_with("/api/v1/") => {
            let (parts, mut body) = edge.split(req);
            let reply = Box::pin(crate::rest::serve(state, &head(&parts, peer), &mut body)).await;
            edge.respond(&reply, body)
        }
        (_, p) if p == "/admin" || p.starts_with("/admin/") => {
            let (parts, mut body) = edge.split(req);
            let page = Box::pin(crate::admin::serve(state, &head(&parts, peer), &mut body)).await;
            edge.page(page, body)
        }
        (_, "/webhooks/inbound") => method_not_allowed("POST"),
        (_, "/healthz" | "/readyz" | "/metrics") => method_not_allowed("GET, HEAD"),
        _ => error_response(&ApiError::new(
            404,
            "route_not_found",
            format!("no route for {path}"),
        )),
    }
}

async fn inbound(
    edge: &Edge,
    peer: SocketAddr,
    req: Request<Incoming>,
    route: Route<'_>,
) -> HttpResponse {
    let (parts, mut body) = edge.split(req);
    let reply = Box::pin(pipeline::inbound(
        &edge.state,
        &head(&parts, peer),
        route,
        &mut body,
    ))
    .await;
    edge.respond(&reply, body)
}

/// What the handlers below see of a request before its body.
fn head(parts: &Parts, peer: SocketAddr) -> Head<'_, HeaderMap> {
    Head {
        client: peer.ip(),
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        target: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/"),
        content_length: parts
            .headers
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok()),
        headers: &parts.headers,
    }
}

async fn metrics(state: &AppState) -> HttpResponse {
    let (batches, jobs) = state.store.batch_stats();
    let gauges = Gauges {
        writer_batches: batches,
        writer_batched_jobs: jobs,
        outbox_pending: state.store.read(|r| r.pending_deliveries()).await.ok(),
    };
    text(
        StatusCode::OK,
        &state.metrics.render(gauges),
        crate::metrics::CONTENT_TYPE,
    )
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
    /// The request's head, and its body as the handlers below read it (the request deadline
    /// counts from now: the headers are in).
    fn split(&self, req: Request<Incoming>) -> (Parts, HyperBody) {
        let config = &self.state.config;
        let (parts, incoming) = req.into_parts();
        let body = HyperBody::new(
            incoming,
            self.budget.clone(),
            self.shutdown.clone(),
            Duration::from_secs(config.body_timeout_secs),
            Duration::from_secs(config.request_timeout_secs),
        );
        (parts, body)
    }

    /// The response to `reply`; after an early answer, the connection closes, and what the
    /// client still sends is drained first when that helps it.
    fn respond(&self, reply: &Reply, body: HyperBody) -> HttpResponse {
        let mut response = reply_response(reply);
        self.close_early(&mut response, reply.early, body);
        response
    }

    /// The response to a console page.
    fn page(&self, page: crate::admin::Page, body: HyperBody) -> HttpResponse {
        let mut response = Response::new(Full::new(page.body));
        *response.status_mut() =
            StatusCode::from_u16(page.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        for (name, value) in page.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().append(name, value);
            }
        }
        self.close_early(&mut response, page.early, body);
        response
    }

    fn close_early(&self, response: &mut HttpResponse, early: Option<Early>, body: HyperBody) {
        let Some(early) = early else { return };
        if early.drain {
            body.drain(self.state.config.max_body_bytes);
        }
        let headers = response.headers_mut();
        headers.insert("connection", HeaderValue::from_static("close"));
        if let Some(wait) = early.retry_after {
            headers.insert(hyper::header::RETRY_AFTER, HeaderValue::from(wait));
        }
    }
}

fn reply_response(reply: &Reply) -> HttpResponse {
    let mut response = Response::new(Full::new(reply.body.clone()));
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    if !reply.body.is_empty() {
        headers.insert("content-type", HeaderValue::from_static(reply.content_type));
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
    response
}

fn error_response(error: &ApiError) -> HttpResponse {
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
