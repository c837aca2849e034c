//! The HTTP client for deliveries: HTTP/1.1 of our own (`http1.rs`) on pooled keep-alive
//! connections per origin, with TLS by rustls (the web PKI's roots).
//!
//! It resolves a subscriber's host itself and connects only to addresses the SSRF guard
//! (`ssrf.rs`) allows, so the address checked is the address connected to (no second lookup
//! to rebind). It follows no redirects and uses no proxy: a proxy taken from `HTTP(S)_PROXY`
//! would be the only address checked, and it would then connect to any target on our behalf.
//!
//! A general-purpose client (reqwest) cost about a third more CPU per delivery than hyper's
//! connection API did, and that API in turn runs every connection as a task of its own, with a
//! channel to it and a second task to wake for each request and answer. A delivery is one small
//! POST and one answer, so the exchange now runs in the sending task itself.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Uri;
use http::header::{HeaderMap, HeaderValue};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::ServerName;

use super::ssrf;

mod http1;

use http1::{Connection, Stream};

/// How much of a response body is kept.
pub(crate) const KEPT_BODY_BYTES: usize = 4096;
/// How long an unused connection is kept for the next delivery to its origin.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Unused connections kept per origin, at most.
const MOST_IDLE_PER_ORIGIN: usize = 1024;
const USER_AGENT_VALUE: &str = concat!("hookgate/", env!("CARGO_PKG_VERSION"));

/// Where a subscription's deliveries go: its URL, worked out once rather than per send.
#[derive(Debug)]
pub(crate) struct Target {
    /// `scheme://host:port`: which pooled connections can carry its requests.
    origin: Arc<str>,
    /// The name the server's certificate must carry, for `https`.
    tls_name: Option<ServerName<'static>>,
    host: url::Host<String>,
    port: u16,
    /// The `Host` header.
    authority: HeaderValue,
    /// The path and query, as the request line carries them.
    path: String,
    /// `Authorization: Basic` from credentials in the URL (`https://user:pass@host/`).
    url_credentials: Option<HeaderValue>,
}

impl Target {
    /// Parses a subscription's URL; the error is the attempt's error kind and text.
    pub(crate) fn parse(url: &str, allow_private: bool) -> Result<Target, (&'static str, String)> {
        let invalid = |why: String| ("invalid_url", why);
        let parsed = url::Url::parse(url).map_err(|e| invalid(format!("invalid URL: {e}")))?;
        ssrf::check_literal_host(&parsed, allow_private)
            .map_err(|e| ("ssrf_refused", e.to_string()))?;
        let https = match parsed.scheme() {
            "https" => true,
            "http" => false,
            other => return Err(invalid(format!("unsupported URL scheme {other:?}"))),
        };
        let host = parsed
            .host()
            .ok_or_else(|| invalid("the URL has no host".into()))?
            .to_owned();
        let port = parsed
            .port_or_known_default()
            .ok_or_else(|| invalid("the URL has no port".into()))?;
        // An IPv6 host in brackets, as the Host header and the origin write it.
        let host_text = host.to_string();
        let authority = match parsed.port() {
            Some(port) => format!("{host_text}:{port}"),
            None => host_text.clone(),
        };
        let tls_name =
            if https {
                let name = match &host {
                    url::Host::Ipv6(ip) => ip.to_string(),
                    other => other.to_string(),
                };
                Some(ServerName::try_from(name).map_err(|e| {
                    invalid(format!("the URL's host is not a TLS server name: {e}"))
                })?)
            } else {
                None
            };
        let path = &parsed[url::Position::BeforePath..url::Position::AfterQuery];
        let url_credentials =
            (!parsed.username().is_empty() || parsed.password().is_some()).then(|| {
                let decode = |s: &str| {
                    percent_encoding::percent_decode_str(s)
                        .decode_utf8_lossy()
                        .into_owned()
                };
                basic_auth(
                    &decode(parsed.username()),
                    parsed.password().map(decode).as_deref(),
                )
            });
        Ok(Target {
            origin: format!("{}://{host_text}:{port}", parsed.scheme()).into(),
            tls_name,
            host,
            port,
            authority: HeaderValue::try_from(authority)
                .map_err(|e| invalid(format!("the URL's host is not a header value: {e}")))?,
            path: Uri::try_from(if path.is_empty() { "/" } else { path })
                .map_err(|e| invalid(format!("the URL's path is not a request target: {e}")))?
                .to_string(),
            url_credentials,
        })
    }

    /// Whether requests carry `Authorization` from the URL's credentials.
    pub(crate) fn has_credentials(&self) -> bool {
        self.url_credentials.is_some()
    }
}

/// Whether `value` may be sent as a header's value: no control characters but tab (so no line
/// breaks that would start a header of its own), as `http::HeaderValue` accepts.
pub(crate) fn is_header_value(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// `Authorization: Basic` for a user and password, marked sensitive.
pub(crate) fn basic_auth(user: &str, password: Option<&str>) -> HeaderValue {
    let pair = format!("{user}:{}", password.unwrap_or(""));
    let encoded = crate::crypto::base64_encode(pair.as_bytes());
    let mut value =
        HeaderValue::try_from(format!("Basic {encoded}")).expect("base64 is a header value");
    value.set_sensitive(true);
    value
}

/// A subscriber's answer: its status, headers and the first [`KEPT_BODY_BYTES`] of its body.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Why there was no answer: an attempt's error kind (`timeout`, `connection_refused`, `dns`,
/// `tls`, `ssrf_refused`, `connection`) and a description with every cause.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub kind: &'static str,
    pub text: String,
}

impl Failure {
    fn new(kind: &'static str, text: impl Into<String>) -> Failure {
        Failure {
            kind,
            text: text.into(),
        }
    }

    /// A failure of the exchange itself, after a connection was made.
    fn exchange(text: impl Into<String>) -> Failure {
        Failure::new("connection", text)
    }

    /// No answer within the exchange's time.
    fn timed_out() -> Failure {
        Failure::new("timeout", "timed out")
    }
}

struct Idle {
    connection: Connection,
    since: Instant,
}

#[derive(Default)]
struct Pool {
    idle: HashMap<Arc<str>, Vec<Idle>>,
    swept: Option<Instant>,
}

/// The delivery client; one per process, shared by every send.
pub(crate) struct Client {
    pool: Mutex<Pool>,
    tls: TlsConnector,
    allow_private: bool,
    timeout: Duration,
    connect_timeout: Duration,
    /// Origins that left a pipelined request unanswered: see [`Client::post_pipelined`].
    refuse_pipelining: Mutex<HashSet<Arc<str>>>,
}

/// How a pipelined round on one connection ended.
enum Round {
    /// Every request answered, or the connection can carry no more: the requests left (if
    /// any) go in another round.
    Ended,
    /// The receiver closed a new connection after its first answer with requests left: it
    /// answers one request per connection.
    OneRequestPerConnection,
}

impl Client {
    /// A client whose exchanges time out after `timeout` (unless a send gives its own).
    pub(crate) fn new(timeout: Duration, allow_private: bool) -> Client {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Client {
            pool: Mutex::default(),
            tls: TlsConnector::from(Arc::new(config)),
            allow_private,
            timeout,
            connect_timeout: Duration::from_secs(10).min(timeout),
            refuse_pipelining: Mutex::default(),
        }
    }

    /// A POST of `body` with `headers` to the target, as bytes to send: `headers` and `Host`,
    /// `User-Agent`, the URL's credentials and `Content-Length`.
    pub(crate) fn request(target: &Target, headers: &[(&str, &[u8])], body: &[u8]) -> Vec<u8> {
        http1::request(target, headers, body, USER_AGENT_VALUE)
    }

    /// Sends a [`Client::request`] to the target and reads its answer, within `timeout` or the
    /// client's own for the whole exchange.
    pub(crate) async fn post(
        &self,
        target: &Target,
        request: &[u8],
        timeout: Option<Duration>,
    ) -> Result<Answer, Failure> {
        let limit = timeout.unwrap_or(self.timeout);
        tokio::time::timeout(limit, self.exchange(target, request))
            .await
            .unwrap_or_else(|_| Err(Failure::timed_out()))
    }

    /// Whether requests to the target may be pipelined: none of them was left unanswered
    /// behind an answered one.
    pub(crate) fn pipelines(&self, target: &Target) -> bool {
        !self
            .refuse_pipelining
            .lock()
            .expect("pipelining lock")
            .contains(&target.origin)
    }

    /// Sends requests to the target pipelined (HTTP/1.1, RFC 9112 9.3.2): written in one piece
    /// on one connection, their answers read in order; each result is at its request's index.
    /// Requests left unanswered when the receiver closes the connection (or an answer leaves
    /// it unusable) go again on a new connection: they carry their webhook-id, which receivers
    /// deduplicate on. `timeout`, or the client's own, bounds the whole exchange.
    ///
    /// Two answers show that the origin does not take pipelined requests, and stop pipelining
    /// to it: a new connection closed after its first answer, and a request still unanswered
    /// at the timeout behind an answered one. The requests left then go one per connection, in
    /// the second case within a timeout of their own: what failed is pipelining, not the
    /// receiver, and as failed attempts they would wait for their retries.
    pub(crate) async fn post_pipelined(
        &self,
        target: &Target,
        requests: &[Vec<u8>],
        timeout: Option<Duration>,
    ) -> Vec<Result<Answer, Failure>> {
        let limit = timeout.unwrap_or(self.timeout);
        let deadline = tokio::time::Instant::now() + limit;
        let mut results = Vec::with_capacity(requests.len());
        while results.len() < requests.len() {
            let first = results.len();
            let round = self.pipeline_round(target, &requests[first..], &mut results);
            let failure = match tokio::time::timeout_at(deadline, round).await {
                Ok(Ok(Round::Ended)) => continue,
                Ok(Ok(Round::OneRequestPerConnection)) => {
                    self.stop_pipelining(
                        target,
                        "it closed a new connection after its first answer",
                    );
                    self.one_per_connection(target, requests, &mut results, deadline)
                        .await;
                    continue;
                }
                Ok(Err(failure)) => failure,
                Err(_) if results.len() > first => {
                    self.stop_pipelining(
                        target,
                        "a pipelined request went unanswered behind an answered one",
                    );
                    let deadline = tokio::time::Instant::now() + limit;
                    self.one_per_connection(target, requests, &mut results, deadline)
                        .await;
                    continue;
                }
                Err(_) => Failure::timed_out(),
            };
            while results.len() < requests.len() {
                results.push(Err(failure.clone()));
            }
        }
        results
    }

    /// Sends the requests without a result yet one per connection, in order; those not
    /// answered by `deadline` time out.
    async fn one_per_connection(
        &self,
        target: &Target,
        requests: &[Vec<u8>],
        results: &mut Vec<Result<Answer, Failure>>,
        deadline: tokio::time::Instant,
    ) {
        for request in &requests[results.len()..] {
            let exchange = tokio::time::timeout_at(deadline, self.exchange(target, request));
            results.push(exchange.await.unwrap_or_else(|_| Err(Failure::timed_out())));
        }
    }

    /// From now on, requests to the target's origin go one per connection.
    fn stop_pipelining(&self, target: &Target, why: &str) {
        tracing::warn!(origin = %target.origin, why, "no longer pipelining to this origin: one request per connection from now on");
        self.refuse_pipelining
            .lock()
            .expect("pipelining lock")
            .insert(target.origin.clone());
    }

    /// Writes `requests` on one connection and reads answers into `results` until every
    /// request is answered, the connection cannot carry more, or it failed; `Err` when no
    /// connection could be made.
    async fn pipeline_round(
        &self,
        target: &Target,
        requests: &[Vec<u8>],
        results: &mut Vec<Result<Answer, Failure>>,
    ) -> Result<Round, Failure> {
        let (mut connection, reused) = self.connection(target).await?;
        let first = results.len();
        let mut failed = http1::write(&mut connection, &requests.concat())
            .await
            .err();
        while failed.is_none() && results.len() - first < requests.len() {
            match http1::read_answer(&mut connection).await {
                Ok((answer, reusable)) => {
                    results.push(Ok(answer));
                    if !reusable {
                        // After several answers, a close is a limit of requests per connection
                        // (nginx's `keepalive_requests`); after the first on a new one, it is
                        // how this receiver works: pipelined requests would be written for
                        // nothing, each round one fewer.
                        let answered = results.len() - first;
                        let left = answered < requests.len();
                        return Ok(if !reused && answered == 1 && left {
                            Round::OneRequestPerConnection
                        } else {
                            Round::Ended
                        });
                    }
                }
                Err(e) => failed = Some(e),
            }
        }
        match failed {
            None if connection.is_drained() => self.check_in(&target.origin, connection),
            // The receiver closed the connection before this answer: this request and the ones
            // after it go again on another connection. A new connection that closes before its
            // first answer fails that request, so that every round progresses.
            Some(http1::Error::NothingReceived(e)) if results.len() == first && !reused => {
                results.push(Err(Failure::exchange(e)));
            }
            None | Some(http1::Error::NothingReceived(_)) => {}
            Some(e) => results.push(Err(Failure::exchange(e.to_string()))),
        }
        Ok(Round::Ended)
    }

    /// A pooled connection to the target (`true`), or else a new one.
    async fn connection(&self, target: &Target) -> Result<(Connection, bool), Failure> {
        Ok(match self.check_out(&target.origin) {
            Some(idle) => (idle, true),
            // Boxed: connecting (DNS, TCP, TLS) is a large future and rare once a connection
            // is pooled; inline, every send's task would carry its size.
            None => (Box::pin(self.connect(target)).await?, false),
        })
    }

    async fn exchange(&self, target: &Target, request: &[u8]) -> Result<Answer, Failure> {
        loop {
            let (mut connection, reused) = self.connection(target).await?;
            match http1::exchange(&mut connection, request).await {
                Ok((answer, reusable)) => {
                    if reusable {
                        self.check_in(&target.origin, connection);
                    }
                    return Ok(answer);
                }
                // A pooled connection that the receiver closed while it was idle fails before
                // a byte of the answer: the request goes on the next connection. (It carries
                // its webhook-id, the idempotency key receivers deduplicate on.)
                Err(http1::Error::NothingReceived(_)) if reused => {}
                Err(e) => return Err(Failure::exchange(e.to_string())),
            }
        }
    }

    fn check_out(&self, origin: &str) -> Option<Connection> {
        let mut pool = self.pool.lock().expect("connection pool lock");
        let idle = pool.idle.get_mut(origin)?;
        while let Some(Idle {
            mut connection,
            since,
        }) = idle.pop()
        {
            if since.elapsed() < IDLE_TIMEOUT && connection.is_open() {
                return Some(connection);
            }
        }
        None
    }

    fn check_in(&self, origin: &Arc<str>, connection: Connection) {
        let now = Instant::now();
        let mut pool = self.pool.lock().expect("connection pool lock");
        // Now and then, connections that went unused too long are closed (dropped) everywhere,
        // also for origins nothing is sent to any more.
        if pool
            .swept
            .is_none_or(|at| now.duration_since(at) > IDLE_TIMEOUT / 3)
        {
            pool.swept = Some(now);
            pool.idle.retain(|_, idle| {
                idle.retain(|i| now - i.since < IDLE_TIMEOUT);
                !idle.is_empty()
            });
        }
        let idle = pool.idle.entry(origin.clone()).or_default();
        if idle.len() < MOST_IDLE_PER_ORIGIN {
            idle.push(Idle {
                connection,
                since: now,
            });
        }
    }

    /// A new connection to the target: resolved, checked by the SSRF guard, connected (each
    /// allowed address in turn), and TLS for `https`.
    async fn connect(&self, target: &Target) -> Result<Connection, Failure> {
        let mut last_error = None;
        for address in self.addresses(target).await? {
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(address)).await {
                Ok(Ok(stream)) => return self.start(target, stream).await,
                Ok(Err(e)) => {
                    let kind = match e.kind() {
                        std::io::ErrorKind::ConnectionRefused => "connection_refused",
                        std::io::ErrorKind::TimedOut => "timeout",
                        _ => "connection",
                    };
                    last_error = Some(Failure::new(kind, format!("connecting to {address}: {e}")));
                }
                Err(_) => {
                    last_error = Some(Failure::new(
                        "timeout",
                        format!("connecting to {address} timed out"),
                    ));
                }
            }
        }
        Err(last_error.unwrap_or_else(|| Failure::new("dns", "the host has no address")))
    }

    async fn addresses(&self, target: &Target) -> Result<Vec<SocketAddr>, Failure> {
        let found: Vec<SocketAddr> = match &target.host {
            url::Host::Ipv4(ip) => vec![SocketAddr::new(IpAddr::V4(*ip), target.port)],
            url::Host::Ipv6(ip) => vec![SocketAddr::new(IpAddr::V6(*ip), target.port)],
            url::Host::Domain(name) => tokio::net::lookup_host((name.as_str(), target.port))
                .await
                .map_err(|e| Failure::new("dns", format!("resolving {name}: {e}")))?
                .collect(),
        };
        let allowed: Vec<SocketAddr> = found
            .into_iter()
            .filter(|a| self.allow_private || ssrf::is_public(a.ip()))
            .collect();
        if allowed.is_empty() {
            let refused = ssrf::PrivateAddress(target.host.to_string());
            return Err(Failure::new("ssrf_refused", refused.to_string()));
        }
        Ok(allowed)
    }

    async fn start(&self, target: &Target, stream: TcpStream) -> Result<Connection, Failure> {
        let _ = stream.set_nodelay(true);
        let Some(name) = &target.tls_name else {
            return Ok(Connection::new(Stream::Plain(stream)));
        };
        let stream = self
            .tls
            .connect(name.clone(), stream)
            .await
            .map_err(|e| Failure::new("tls", format!("TLS with {}: {e}", target.host)))?;
        Ok(Connection::new(Stream::Tls(Box::new(stream))))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A receiver that answers one request for each read and ignores whatever else came with
    /// it: requests one after another on a connection are served, those pipelined behind the
    /// first are left unanswered.
    async fn answers_one_per_read() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut chunk = [0u8; 16 * 1024];
                    while let Ok(n) = socket.read(&mut chunk).await {
                        if n == 0 {
                            return;
                        }
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                        if socket.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        format!("http://{address}/hook")
    }

    #[tokio::test]
    async fn a_pipelined_request_left_unanswered_stops_pipelining_to_its_origin() {
        let client = Client::new(Duration::from_secs(30), true);
        let target = Target::parse(&answers_one_per_read().await, true).unwrap();
        let requests: Vec<Vec<u8>> = (0..3)
            .map(|n| Client::request(&target, &[("x-n", format!("{n}").as_bytes())], b"{}"))
            .collect();
        assert!(client.pipelines(&target));
        let results = client
            .post_pipelined(&target, &requests, Some(Duration::from_millis(500)))
            .await;
        // The two left unanswered went again, one per connection, and were answered rather
        // than failed as attempts.
        let statuses: Vec<Option<u16>> = results
            .iter()
            .map(|r| r.as_ref().ok().map(|a| a.status))
            .collect();
        assert_eq!(statuses, [Some(200); 3]);
        assert!(
            !client.pipelines(&target),
            "the origin is not pipelined to again"
        );
    }

    /// A receiver that answers the first `answers` requests of each connection, the last of
    /// them with `connection: close`, and closes it; counts the requests that reached it.
    async fn closes_after(answers: usize, arrived: Arc<AtomicUsize>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let arrived = arrived.clone();
                tokio::spawn(async move {
                    let mut received = Vec::new();
                    let mut chunk = [0u8; 16 * 1024];
                    // All that the client wrote, before answering any of it.
                    while let Ok(Ok(n)) =
                        tokio::time::timeout(Duration::from_millis(100), socket.read(&mut chunk))
                            .await
                    {
                        if n == 0 {
                            break;
                        }
                        received.extend_from_slice(&chunk[..n]);
                    }
                    let requests = received.windows(5).filter(|w| w == b"POST ").count();
                    arrived.fetch_add(requests, Ordering::SeqCst);
                    let answered = requests.min(answers);
                    for n in 1..=answered {
                        let close = if n == answered {
                            "connection: close\r\n"
                        } else {
                            ""
                        };
                        let answer =
                            format!("HTTP/1.1 200 OK\r\n{close}content-length: 2\r\n\r\nok");
                        let _ = socket.write_all(answer.as_bytes()).await;
                    }
                });
            }
        });
        format!("http://{address}/hook")
    }

    /// Sends five requests pipelined to a receiver that closes after `answers` of each
    /// connection; every one is answered. Returns the client, the target and how many
    /// requests reached the receiver.
    async fn five_pipelined_to(answers: usize) -> (Client, Target, usize) {
        let arrived = Arc::new(AtomicUsize::new(0));
        let client = Client::new(Duration::from_secs(5), true);
        let target = Target::parse(&closes_after(answers, arrived.clone()).await, true).unwrap();
        let requests: Vec<Vec<u8>> = (0..5)
            .map(|n| Client::request(&target, &[("x-n", format!("{n}").as_bytes())], b"{}"))
            .collect();
        let results = client.post_pipelined(&target, &requests, None).await;
        let statuses: Vec<Option<u16>> = results
            .iter()
            .map(|r| r.as_ref().ok().map(|a| a.status))
            .collect();
        assert_eq!(statuses, [Some(200); 5]);
        let arrived = arrived.load(Ordering::SeqCst);
        (client, target, arrived)
    }

    #[tokio::test]
    async fn an_origin_that_closes_after_each_answer_is_not_pipelined_to_again() {
        let (client, target, arrived) = five_pipelined_to(1).await;
        assert!(!client.pipelines(&target));
        // The first connection carried all five; the four left went one to a connection.
        assert_eq!(arrived, 5 + 4);
    }

    #[tokio::test]
    async fn a_limit_of_requests_per_connection_does_not_stop_pipelining() {
        let (client, target, arrived) = five_pipelined_to(2).await;
        assert!(client.pipelines(&target));
        // Two answered per connection, the rest pipelined again on the next.
        assert_eq!(arrived, 5 + 3 + 1);
    }

    #[tokio::test]
    async fn a_refused_connection_fails_every_pipelined_request() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = Client::new(Duration::from_secs(5), true);
        let target = Target::parse(&format!("http://127.0.0.1:{port}/"), true).unwrap();
        let request = Client::request(&target, &[], b"{}");
        let results = client
            .post_pipelined(&target, &[request.clone(), request], None)
            .await;
        let kinds: Vec<&str> = results
            .iter()
            .map(|r| r.as_ref().unwrap_err().kind)
            .collect();
        assert_eq!(kinds, ["connection_refused", "connection_refused"]);
        assert!(
            client.pipelines(&target),
            "a refused connection says nothing of pipelining"
        );
    }
}
