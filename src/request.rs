//! What the HTTP edge hands to the handlers below it, and what they hand back, with no hyper
//! type in sight: the request's id and its tracing span ([`run_as`]), its head ([`Head`]), its
//! body as a [`BodyReader`] that reads only when asked (after the sender is authenticated) and
//! within its bounds, and the answer ([`Reply`]).

use std::future::Future;
use std::net::IpAddr;

use bytes::{Bytes, BytesMut};
use serde_json::Value;
use tracing::Instrument;

use crate::config::Config;
use crate::error::ApiError;
use crate::ratelimit::RateStatus;
use crate::verify::Headers;

/// What the edge sends back.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: Bytes,
    pub rate: Option<RateStatus>,
    pub replayed: bool,
    /// The `Allow` header of a 405.
    pub allow: Option<String>,
    /// `application/json` unless a provider's handshake asks for another.
    pub content_type: &'static str,
    /// Set when the answer was given before the body was read whole.
    pub early: Option<Early>,
}

/// An answer given before the request's body was read whole: the connection closes after it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Early {
    /// Keep reading what the client is still sending, so that it reads the answer instead of
    /// a reset; not for a client that stalled or broke the connection.
    pub drain: bool,
    pub retry_after: Option<u64>,
}

impl Reply {
    pub(crate) fn json(status: u16, body: &Value) -> Reply {
        Reply {
            status,
            body: Bytes::from(serde_json::to_vec(body).expect("JSON values serialize")),
            rate: None,
            replayed: false,
            allow: None,
            content_type: "application/json",
            early: None,
        }
    }

    pub(crate) fn error(error: &ApiError) -> Reply {
        Reply::json(error.status, &error.body())
    }
}

/// The id and span of the request being served.
#[derive(Clone)]
struct Current {
    id: String,
    span: tracing::Span,
}

tokio::task_local! {
    static CURRENT: Current;
}

/// A new request id: time-ordered, so that kept requests (stored under it) append to the end
/// of their index instead of landing on a random page each.
pub(crate) fn new_id() -> String {
    crate::crypto::sortable_id("req_")
}

/// Runs `handle` as request `id`: inside a span that carries the id (and the key id, once
/// [`record_key`] knows it) to every log line and instrumented call below, with the id at hand
/// for the answers that quote it ([`current_id`]).
pub(crate) async fn run_as<F: Future>(id: String, route: &'static str, handle: F) -> F::Output {
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        route,
        key_id = tracing::field::Empty
    );
    let current = Current {
        id,
        span: span.clone(),
    };
    CURRENT.scope(current, handle.instrument(span)).await
}

/// The id of the request being served, if any (the CLI serves none).
pub(crate) fn current_id() -> Option<String> {
    CURRENT.try_with(|c| c.id.clone()).ok()
}

/// Notes on the request's span which key sent it.
pub(crate) fn record_key(key_id: &str) {
    let _ = CURRENT.try_with(|c| {
        c.span.record("key_id", key_id);
    });
}

/// What is known of a request before its body is read.
pub(crate) struct Head<'a, H> {
    pub client: IpAddr,
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// Path and query, as sent.
    pub target: &'a str,
    /// The declared body size.
    pub content_length: Option<u64>,
    pub headers: &'a H,
}

/// A request's body, read only when a handler asks: after the sender was authenticated from
/// the headers, so that nobody unknown can make the server read (or wait for) a body.
pub(crate) trait BodyReader: Send {
    /// The whole body, at most `limit` bytes, before the body deadline and the request
    /// deadline. The room it takes in the budget of bytes in flight is held until the reader
    /// is dropped.
    fn read(&mut self, limit: usize) -> impl Future<Output = Result<Bytes, BodyError>> + Send;

    /// When the request must have been received: authentication from the headers counts too.
    fn deadline(&self) -> tokio::time::Instant;
}

/// Why a body could not be received.
#[derive(Debug)]
pub(crate) enum BodyError {
    TooLarge,
    /// A deadline passed; carries the code of the one that did (`body_timeout` or
    /// `request_timeout`).
    Timeout(&'static str),
    /// Every byte of the in-flight budget is reserved by other requests.
    Busy,
    /// Shutdown began and the body stopped arriving.
    ShuttingDown,
    Io(String),
}

impl BodyError {
    /// The error answered, whether to wait before retrying, and whether the edge should keep
    /// reading what the client still sends.
    fn answer(self, config: &Config) -> (ApiError, Option<u64>, bool) {
        match self {
            BodyError::TooLarge => (payload_too_large(config.max_body_bytes), None, true),
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
        }
    }
}

pub(crate) fn payload_too_large(limit: usize) -> ApiError {
    ApiError::new(
        413,
        "payload_too_large",
        format!("the request body exceeds {limit} bytes"),
    )
}

/// A request refused before its body was read whole.
pub(crate) enum Refused {
    /// By authentication, from the headers: the answer is ready.
    Early(Reply),
    /// While receiving the body, or past the request deadline.
    Body(BodyError),
}

impl Refused {
    /// The answer, rendered by `render` (which may record the error) unless it is ready.
    pub(crate) fn answer(self, config: &Config, render: impl FnOnce(ApiError) -> Reply) -> Reply {
        let (mut reply, early) = match self {
            Refused::Early(reply) => (
                reply,
                Early {
                    drain: true,
                    retry_after: None,
                },
            ),
            Refused::Body(e) => {
                let (error, retry_after, drain) = e.answer(config);
                (render(error), Early { drain, retry_after })
            }
        };
        reply.early = Some(early);
        reply
    }
}

/// Authenticates the sender from the headers, then reads the body (at most `limit` bytes),
/// both before the request deadline.
pub(crate) async fn admit<T>(
    body: &mut impl BodyReader,
    limit: usize,
    authenticate: impl Future<Output = Result<T, Reply>>,
) -> Result<(T, Bytes), Refused> {
    let deadline = body.deadline();
    let admitted = async {
        let caller = authenticate.await.map_err(Refused::Early)?;
        let bytes = body.read(limit).await.map_err(Refused::Body)?;
        Ok((caller, bytes))
    };
    tokio::time::timeout_at(deadline, admitted)
        .await
        .unwrap_or(Err(Refused::Body(BodyError::Timeout("request_timeout"))))
}

/// A body collected up to a limit: the pure part of reading, fed one chunk at a time.
#[derive(Debug)]
pub(crate) struct LimitedBuffer {
    limit: usize,
    buf: BytesMut,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TooLarge;

impl LimitedBuffer {
    pub(crate) fn new(limit: usize) -> LimitedBuffer {
        LimitedBuffer {
            limit,
            buf: BytesMut::new(),
        }
    }

    /// Appends `chunk`, failing (and keeping nothing more) once the total would exceed the
    /// limit.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Result<(), TooLarge> {
        if chunk.len() > self.limit - self.buf.len() {
            return Err(TooLarge);
        }
        self.buf.extend_from_slice(chunk);
        Ok(())
    }

    pub(crate) fn finish(self) -> Bytes {
        self.buf.freeze()
    }
}

/// Header access over the list of a request's headers (lower-case names): a kept request's,
/// or a provider's.
pub(crate) struct HeaderList<'a>(pub &'a [(String, String)]);

impl Headers for HeaderList<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn all(&self) -> Vec<(String, String)> {
        self.0.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limited_buffer_keeps_everything_up_to_the_limit_and_nothing_past_it() {
        let mut buf = LimitedBuffer::new(5);
        assert_eq!(buf.push(b"ab"), Ok(()));
        assert_eq!(buf.push(b""), Ok(()));
        assert_eq!(buf.push(b"cde"), Ok(()));
        assert_eq!(buf.push(b"f"), Err(TooLarge));
        assert_eq!(buf.finish(), Bytes::from_static(b"abcde"));
        let mut small = LimitedBuffer::new(2);
        assert_eq!(small.push(b"abc"), Err(TooLarge));
        assert!(small.finish().is_empty());
    }

    #[tokio::test]
    async fn the_request_id_is_at_hand_inside_its_scope_only() {
        assert_eq!(current_id(), None);
        let inner = run_as("req_test".into(), "test", async {
            record_key("hk_test");
            current_id()
        })
        .await;
        assert_eq!(inner.as_deref(), Some("req_test"));
        assert_eq!(current_id(), None);
    }
}
