//! The HTTP edge: the only module that knows hyper. Accepts connections, routes requests,
//! reads bodies with a limit, and turns [`Reply`] values into responses. Shuts down gracefully:
//! stops accepting, lets in-flight requests finish (bounded by `shutdown_grace_secs`).

mod body;

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

use crate::app::AppState;
use crate::error::ApiError;
use crate::ingest::{self, Reply, Trace};
use crate::metrics::Gauges;
use crate::verify::Headers;

pub type HttpResponse = Response<Full<Bytes>>;

const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

impl Headers for HeaderMap {
    fn get(&self, name: &str) -> Option<&str> {
        HeaderMap::get(self, name).and_then(|v| v.to_str().ok())
    }
}

/// Serves on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn run(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let graceful = GracefulShutdown::new();
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
        let state = state.clone();
        let service = service_fn(move |req| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(route(state, peer, req).await) }
        });
        // A client that trickles its headers (slowloris) is cut off instead of holding a
        // connection open forever.
        let conn = http1::Builder::new()
            .keep_alive(true)
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let grace = Duration::from_secs(state.config.shutdown_grace_secs);
    tracing::info!("shutting down: finishing in-flight requests");
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within the grace period");
    }
}

async fn route(state: Arc<AppState>, peer: SocketAddr, req: Request<Incoming>) -> HttpResponse {
    let path = req.uri().path().to_string();
    // HEAD answers like GET; hyper sends the headers and leaves the body out.
    match (req.method(), path.as_str()) {
        (&Method::GET | &Method::HEAD, "/healthz") => text(StatusCode::OK, "ok\n", "text/plain"),
        (&Method::GET | &Method::HEAD, "/readyz") => match state.store.check_ready().await {
            Ok(()) => text(StatusCode::OK, "ready\n", "text/plain"),
            Err(reason) => {
                tracing::warn!(reason = %reason, "readiness check failed");
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("database unavailable: {reason}\n"),
                    "text/plain",
                )
            }
        },
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
        (&Method::POST, "/webhooks/inbound") => inbound(&state, peer, req).await,
        (_, p) if p == "/api/v1" || p.starts_with("/api/v1/") => rest(&state, req).await,
        (_, p) if p == "/admin" || p.starts_with("/admin/") => admin(&state, peer, req).await,
        (_, "/webhooks/inbound") => method_not_allowed("POST"),
        (_, "/healthz" | "/readyz" | "/metrics") => method_not_allowed("GET, HEAD"),
        _ => error_response(&ApiError::new(
            404,
            "route_not_found",
            format!("no route for {path}"),
        )),
    }
}

async fn inbound(state: &Arc<AppState>, peer: SocketAddr, req: Request<Incoming>) -> HttpResponse {
    let mut trace = Trace::start(peer.ip());
    let (parts, mut incoming) = req.into_parts();
    let content_length = parts
        .headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_string();
    let mut close = false;
    let mut reply =
        match ingest::authenticate(state, &mut trace, &parts.headers, content_length).await {
            Err(reply) => {
                close = true; // the body was not read: do not reuse the connection
                body::drain_in_background(incoming, state.config.max_body_bytes);
                reply
            }
            Ok(key) => match body::read_limited(&mut incoming, state.config.max_body_bytes).await {
                Ok(bytes) => {
                    ingest::process(
                        state,
                        &mut trace,
                        key,
                        &parts.headers,
                        &path_and_query,
                        bytes,
                    )
                    .await
                }
                Err(body::BodyError::TooLarge) => {
                    close = true;
                    trace.key = Some(key);
                    body::drain_in_background(incoming, state.config.max_body_bytes);
                    trace.fail(ingest::payload_too_large(state.config.max_body_bytes))
                }
                Err(body::BodyError::Io(e)) => {
                    close = true;
                    trace.key = Some(key);
                    trace.fail(ApiError::bad_request(
                        "body_read_failed",
                        format!("could not read the request body: {e}"),
                    ))
                }
            },
        };
    ingest::finish(state, &trace, &mut reply);
    reply_response(&reply, close)
}

async fn rest(state: &Arc<AppState>, req: Request<Incoming>) -> HttpResponse {
    let (parts, mut incoming) = req.into_parts();
    let request_id = crate::crypto::random_id("req_", 8);
    let body = match body::read_limited(&mut incoming, state.config.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(body::BodyError::TooLarge) => {
            body::drain_in_background(incoming, state.config.max_body_bytes);
            let e = ingest::payload_too_large(state.config.max_body_bytes);
            return reply_response(&Reply::json(e.status, &e.body(), &request_id), true);
        }
        Err(body::BodyError::Io(e)) => {
            let e = ApiError::bad_request(
                "body_read_failed",
                format!("could not read the request body: {e}"),
            );
            return reply_response(&Reply::json(e.status, &e.body(), &request_id), true);
        }
    };
    let authorization = parts
        .headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let request = crate::rest::RestRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        authorization,
        body,
        request_id,
    };
    let reply = crate::rest::handle(state, request).await;
    reply_response(&reply, false)
}

async fn admin(state: &Arc<AppState>, peer: SocketAddr, req: Request<Incoming>) -> HttpResponse {
    let (parts, mut incoming) = req.into_parts();
    let page = match body::read_limited(&mut incoming, crate::admin::MAX_BODY_BYTES).await {
        Ok(body) => {
            let request = crate::admin::AdminRequest {
                method: parts.method.as_str(),
                path: parts.uri.path(),
                query: parts.uri.query(),
                headers: &parts.headers,
                peer: peer.ip(),
                body,
            };
            crate::admin::handle(state, request).await
        }
        Err(_) => {
            body::drain_in_background(incoming, crate::admin::MAX_BODY_BYTES);
            crate::admin::body_too_large()
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
    headers.insert("content-type", HeaderValue::from_static("application/json"));
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
