//! End-to-end ingest benchmark: `cargo bench --bench ingest` (`BENCH_SECS=10` to measure for
//! longer).
//!
//! Starts the real server in-process on 127.0.0.1 with a fresh database in a temporary
//! directory, opens [`CONNECTIONS`] keep-alive connections with a minimal HTTP/1.1 client, and
//! runs each workload in [`PHASES`] over the same connections: [`WARMUP`] unmeasured, then
//! `BENCH_SECS` (default 5) measured. The load generator and the server share one multi-thread
//! runtime, and so the machine's cores: the numbers are end-to-end throughput of the whole box,
//! not of the server alone.
//!
//! The hand-rolled client writes each request with one `write_all` and parses only the status
//! line and the `Content-Length`/`Connection` headers, so it costs far less CPU than a general
//! client (reqwest, hyper client) would take away from the server on a small machine.
//!
//! Latency is measured per exchange: from just before the request is written to the moment its
//! full response has been read on that connection.

use std::error::Error;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BytesMut};
use hookgate::app::AppState;
use hookgate::config::Config;
use hookgate::crypto;
use hookgate::keys::KeyOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

type BoxError = Box<dyn Error + Send + Sync>;

/// Concurrent keep-alive connections, each with one request in flight (a closed loop).
const CONNECTIONS: usize = 64;
/// Run before every phase and not measured: warms the API-key cache and SQLite's page cache.
const WARMUP: Duration = Duration::from_secs(1);
const DEFAULT_SECS: u64 = 5;
/// An exchange slower than this counts as an error (and the connection is replaced), so that a
/// wedged server fails the run instead of hanging it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Targets for the headline numbers (see the printed verdict).
const TARGET_RATIO: f64 = 0.40;
const TARGET_P99_MS: f64 = 5.0;

/// The phases, in order. The first is the baseline every other phase is compared with.
///
/// EXTENSION POINT: to add a phase, add a [`Workload`] variant, give it a label and a request
/// generator in [`Workload::requests`], and list it here.
const PHASES: &[Workload] = &[Workload::Healthz, Workload::TestConnection];

/// What every connection sends during a phase.
///
/// EXTENSION POINT, planned but not implemented yet:
/// - `MixedEntities`: a blend of `work_order.created` / `work_order.updated`,
///   `timesheet.created` and `project.search` envelopes. It will need a set-up step before its
///   warm-up (companies, projects and employees for the work orders and timesheets to refer
///   to), and per-connection generators that vary ids so that creates do not collide.
/// - `OutboundFanout`: inbound envelopes with subscribed receivers (a local sink server counting
///   deliveries), to measure ingest while the outbox is being drained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    /// `GET /healthz`: the HTTP stack alone, the ceiling for everything else.
    Healthz,
    /// Signed `test.connection` envelopes: the whole inbound pipeline, including one
    /// group-committed write (the ingest-log row) per request.
    TestConnection,
}

impl Workload {
    fn label(self) -> &'static str {
        match self {
            Workload::Healthz => "healthz",
            Workload::TestConnection => "test.connection",
        }
    }

    /// The request generator of one connection.
    fn requests(self, target: &Target) -> Box<dyn Requests> {
        match self {
            Workload::Healthz => Box::new(Fixed(
                format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", target.addr).into_bytes(),
            )),
            Workload::TestConnection => Box::new(SignedEnvelope::new(target, TEST_CONNECTION_BODY)),
        }
    }
}

/// The envelope of the `test.connection` phase (the seed's example, with our own source).
const TEST_CONNECTION_BODY: &[u8] = br#"{"event_type":"test.connection","timestamp":"2025-01-15T10:00:00Z","source":"bench","data":{"test":true}}"#;

/// Produces the raw bytes of the next request on one connection.
trait Requests: Send {
    fn next(&mut self) -> &[u8];
}

/// The same request every time.
struct Fixed(Vec<u8>);

impl Requests for Fixed {
    fn next(&mut self) -> &[u8] {
        &self.0
    }
}

/// A `POST /webhooks/inbound` with a `custom` signature over `"{ts}.{body}"`.
///
/// The signed request is rebuilt only when the unix second changes (the timestamp is the only
/// thing that varies), so the client signs about once per second per connection rather than
/// once per request: that keeps the load generator's CPU for the server. A real sender would
/// sign every request; at ~1 µs per HMAC of this body that is not what limits throughput.
struct SignedEnvelope {
    head: String,
    secret: Vec<u8>,
    body: &'static [u8],
    signed_at: Option<u64>,
    request: Vec<u8>,
}

impl SignedEnvelope {
    fn new(target: &Target, body: &'static [u8]) -> SignedEnvelope {
        SignedEnvelope {
            head: format!(
                "POST /webhooks/inbound HTTP/1.1\r\nHost: {}\r\nX-API-Key: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
                target.addr,
                target.key_id,
                body.len()
            ),
            secret: target.secret.as_bytes().to_vec(),
            body,
            signed_at: None,
            request: Vec::new(),
        }
    }
}

impl Requests for SignedEnvelope {
    fn next(&mut self) -> &[u8] {
        let now = unix_secs();
        if self.signed_at != Some(now) {
            let ts = now.to_string();
            let signature = crypto::hmac_hex(&self.secret, &[ts.as_bytes(), b".", self.body]);
            self.request.clear();
            self.request.extend_from_slice(self.head.as_bytes());
            self.request.extend_from_slice(
                format!("X-Webhook-Timestamp: {ts}\r\nX-Webhook-Signature: {signature}\r\n\r\n")
                    .as_bytes(),
            );
            self.request.extend_from_slice(self.body);
            self.signed_at = Some(now);
        }
        &self.request
    }
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Where and as whom the load generator sends.
struct Target {
    addr: SocketAddr,
    key_id: String,
    secret: String,
}

fn main() -> ExitCode {
    let secs = match std::env::var("BENCH_SECS") {
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("BENCH_SECS must be a positive integer, got {v:?}");
                return ExitCode::FAILURE;
            }
        },
        Err(_) => DEFAULT_SECS,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(bench(Duration::from_secs(secs))) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("benchmark failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs every phase and prints the report; `Ok(false)` when any request failed.
async fn bench(measure: Duration) -> Result<bool, BoxError> {
    // Declared first so it is dropped last, after the server and its store are gone.
    let dir = TempDir::new()?;
    let server = Server::start(&dir.0.join("bench.db")).await?;
    let created = server
        .state
        .keys
        .create(
            "bench",
            "bench",
            KeyOptions {
                // Far beyond anything this run can send: the limiter must never answer 429.
                per_minute: Some(u32::MAX / 2),
                per_hour: Some(u32::MAX / 2),
                ..Default::default()
            },
        )
        .await?;
    let target = Target {
        addr: server.addr,
        key_id: created.key_id,
        secret: created.secret,
    };
    check_signed_request(&target).await?;

    let mut conns = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        conns.push(Conn::connect(target.addr).await?);
    }

    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "hookgate ingest benchmark: {CONNECTIONS} keep-alive connections, {} s warm-up + {} s per phase, \
         {cpus} CPU(s) shared by server and load generator",
        WARMUP.as_secs(),
        measure.as_secs()
    );
    let mut results = Vec::with_capacity(PHASES.len());
    for &workload in PHASES {
        let (batches_before, jobs_before) = server.state.store.batch_stats();
        let (returned, result) = run_phase(workload, &target, conns, measure).await;
        conns = returned;
        let (batches_after, jobs_after) = server.state.store.batch_stats();
        results.push(PhaseResult {
            batches: batches_after - batches_before,
            jobs: jobs_after - jobs_before,
            ..result
        });
    }
    drop(conns);
    let clean = report(&results, measure);
    server.stop().await;
    drop(dir);
    Ok(clean)
}

/// One signed request up front, so that a broken signature or key set-up fails with the
/// server's own explanation instead of as a wall of errors.
async fn check_signed_request(target: &Target) -> Result<(), BoxError> {
    let mut conn = Conn::connect(target.addr).await?;
    let mut requests = Workload::TestConnection.requests(target);
    let response = conn.exchange(requests.next()).await?;
    let body: serde_json::Value = serde_json::from_slice(conn.body()).unwrap_or_default();
    if response.status != 200 || body["signature_verified"] != serde_json::Value::Bool(true) {
        return Err(format!(
            "sanity request: expected 200 with signature_verified=true, got {} {}",
            response.status,
            String::from_utf8_lossy(conn.body())
        )
        .into());
    }
    Ok(())
}

/// The server under test and the means to stop it.
struct Server {
    state: Arc<AppState>,
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(database: &Path) -> Result<Server, BoxError> {
        let database = database
            .to_str()
            .ok_or("temp path is not UTF-8")?
            .to_string();
        let config = Config::load_with_env(None, |name| {
            Some(match name {
                "HOOKGATE_DATABASE" => database.clone(),
                // Fixed rather than generated: the bench never reopens the database.
                "HOOKGATE_MASTER_KEY" => "5a".repeat(32),
                // No tracing subscriber is installed, so nothing is logged either way.
                "HOOKGATE_LOG_FORMAT" => "json".into(),
                "HOOKGATE_LISTEN" => "127.0.0.1:0".into(),
                "HOOKGATE_SHUTDOWN_GRACE_SECS" => "5".into(),
                _ => return None,
            })
        })?;
        let state = AppState::build(config)?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(hookgate::http::run(listener, state.clone(), async move {
            let _ = stopped.await;
        }));
        Ok(Server {
            state,
            addr,
            stop,
            task,
        })
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        if tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .is_err()
        {
            eprintln!("warning: the server did not shut down within 10 s");
        }
    }
}

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<TempDir> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path =
            std::env::temp_dir().join(format!("hookgate-bench-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A keep-alive HTTP/1.1 client connection with one request in flight at a time.
struct Conn {
    addr: SocketAddr,
    stream: TcpStream,
    buf: BytesMut,
    /// Bytes of `buf` that belong to the last response (dropped before the next exchange).
    consumed: usize,
    /// Start of the last response's body in `buf`.
    body_start: usize,
}

struct Response {
    status: u16,
    /// The server sent `Connection: close`: the connection must not be reused.
    close: bool,
}

impl Conn {
    async fn connect(addr: SocketAddr) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        // As the server does: no small write should wait on Nagle's algorithm.
        stream.set_nodelay(true)?;
        Ok(Conn {
            addr,
            stream,
            buf: BytesMut::with_capacity(4096),
            consumed: 0,
            body_start: 0,
        })
    }

    async fn reconnect(&mut self) -> std::io::Result<()> {
        *self = Conn::connect(self.addr).await?;
        Ok(())
    }

    /// Body of the last response.
    fn body(&self) -> &[u8] {
        &self.buf[self.body_start..self.consumed]
    }

    /// Writes `request` and reads the complete response.
    async fn exchange(&mut self, request: &[u8]) -> std::io::Result<Response> {
        self.buf.advance(self.consumed);
        self.consumed = 0;
        self.stream.write_all(request).await?;
        loop {
            if let Some((response, header_len, body_len)) = parse_head(&self.buf)? {
                while self.buf.len() < header_len + body_len {
                    self.fill().await?;
                }
                self.body_start = header_len;
                self.consumed = header_len + body_len;
                return Ok(response);
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(4096);
        }
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "server closed the connection mid-response",
            ));
        }
        Ok(())
    }
}

/// Parses the status line and headers once they are complete: the response, the header length
/// and the body length. Only `Content-Length` bodies are supported (hyper sends one for every
/// response of this server, whose bodies are all in memory).
fn parse_head(buf: &[u8]) -> std::io::Result<Option<(Response, usize, usize)>> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let head =
        std::str::from_utf8(&buf[..end]).map_err(|_| invalid("response head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| invalid("malformed status line"))?;
    let mut body_len = 0;
    let mut close = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            body_len = value
                .parse()
                .map_err(|_| invalid("malformed Content-Length"))?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(invalid(
                "chunked responses are not supported by the bench client",
            ));
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    Ok(Some((Response { status, close }, end + 4, body_len)))
}

/// What one phase measured.
#[derive(Default)]
struct PhaseResult {
    workload: Option<Workload>,
    /// Responses completed within the measured window, whatever their status.
    responses: u64,
    /// Latencies of the 200 responses, in microseconds, sorted.
    latencies_us: Vec<u32>,
    /// Non-200 responses and failed exchanges (I/O errors, timeouts) in the window.
    errors: u64,
    /// Statuses other than 200 seen, with counts.
    bad_statuses: Vec<(u16, u64)>,
    first_error: Option<String>,
    /// Group-commit writer activity during the phase (warm-up included).
    batches: u64,
    jobs: u64,
}

impl PhaseResult {
    fn merge(&mut self, other: PhaseResult) {
        self.responses += other.responses;
        self.latencies_us.extend(other.latencies_us);
        self.errors += other.errors;
        for (status, n) in other.bad_statuses {
            self.count_status(status, n);
        }
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn count_status(&mut self, status: u16, n: u64) {
        match self.bad_statuses.iter_mut().find(|(s, _)| *s == status) {
            Some((_, count)) => *count += n,
            None => self.bad_statuses.push((status, n)),
        }
    }

    fn ok(&self) -> u64 {
        self.latencies_us.len() as u64
    }

    /// Nearest-rank percentile of the 200 responses, in milliseconds (NaN when there are none).
    fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let rank = ((p * self.latencies_us.len() as f64).ceil() as usize).max(1);
        self.latencies_us[rank - 1] as f64 / 1000.0
    }
}

/// Runs `workload` on every connection: [`WARMUP`], then `measure`. Returns the connections
/// (possibly replaced after errors) for the next phase.
async fn run_phase(
    workload: Workload,
    target: &Target,
    conns: Vec<Conn>,
    measure: Duration,
) -> (Vec<Conn>, PhaseResult) {
    let measure_from = Instant::now() + WARMUP;
    let end = measure_from + measure;
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|conn| {
            let requests = workload.requests(target);
            tokio::spawn(drive(conn, requests, measure_from, end))
        })
        .collect();
    let mut conns = Vec::with_capacity(tasks.len());
    let mut result = PhaseResult {
        workload: Some(workload),
        ..Default::default()
    };
    for task in tasks {
        let (conn, part) = task.await.expect("load generator task panicked");
        conns.extend(conn);
        result.merge(part);
    }
    result.latencies_us.sort_unstable();
    (conns, result)
}

/// One connection's closed loop. Only exchanges that complete inside `[measure_from, end)` are
/// counted, so the throughput is exact for the window whatever the latency at its edges.
async fn drive(
    mut conn: Conn,
    mut requests: Box<dyn Requests>,
    measure_from: Instant,
    end: Instant,
) -> (Option<Conn>, PhaseResult) {
    let mut result = PhaseResult {
        latencies_us: Vec::with_capacity(1 << 14),
        ..Default::default()
    };
    loop {
        if Instant::now() >= end {
            return (Some(conn), result);
        }
        let request = requests.next();
        let started = Instant::now();
        let outcome = tokio::time::timeout(REQUEST_TIMEOUT, conn.exchange(request)).await;
        let finished = Instant::now();
        let counted = finished >= measure_from && finished < end;
        let (healthy, error) = match outcome {
            Ok(Ok(response)) => {
                if counted {
                    result.responses += 1;
                    if response.status == 200 {
                        let us = (finished - started).as_micros();
                        result
                            .latencies_us
                            .push(u32::try_from(us).unwrap_or(u32::MAX));
                    } else {
                        result.count_status(response.status, 1);
                    }
                }
                let error = (response.status != 200).then(|| {
                    format!(
                        "HTTP {}: {}",
                        response.status,
                        String::from_utf8_lossy(conn.body())
                    )
                });
                (!response.close, error)
            }
            Ok(Err(e)) => (false, Some(format!("I/O error: {e}"))),
            Err(_) => (
                false,
                Some(format!("no response within {REQUEST_TIMEOUT:?}")),
            ),
        };
        if counted && let Some(error) = error {
            result.errors += 1;
            result.first_error.get_or_insert(error);
        }
        if !healthy {
            // The server closed (or we gave up on) this connection: open a new one, retrying
            // until the phase ends so that one hiccup does not silently shrink the concurrency.
            while let Err(e) = conn.reconnect().await {
                if Instant::now() >= end {
                    result.errors += 1;
                    result
                        .first_error
                        .get_or_insert(format!("reconnect failed: {e}"));
                    return (None, result);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Prints the table and the verdict; returns whether the run was free of errors.
fn report(results: &[PhaseResult], measure: Duration) -> bool {
    let secs = measure.as_secs_f64();
    let baseline = results.first().map_or(0.0, |r| r.ok() as f64 / secs);
    println!();
    println!(
        "{:<16} {:>10} {:>10} {:>8} {:>8} {:>8} {:>8} {:>10}",
        "phase", "requests", "req/s", "p50 ms", "p99 ms", "errors", "vs base", "batch avg"
    );
    for r in results {
        let rate = r.ok() as f64 / secs;
        let batch = if r.batches == 0 {
            "-".to_string()
        } else {
            format!("{:.1}", r.jobs as f64 / r.batches as f64)
        };
        println!(
            "{:<16} {:>10} {:>10.0} {:>8} {:>8} {:>8} {:>8.2} {:>10}",
            r.workload.map_or("?", Workload::label),
            r.responses,
            rate,
            ms(r.percentile_ms(0.50)),
            ms(r.percentile_ms(0.99)),
            r.errors,
            rate / baseline,
            batch
        );
    }
    println!(
        "(requests: responses completed in the {secs:.0} s window; req/s, p50, p99: 200 responses only; \
         batch avg: writer jobs per group commit during the phase, warm-up included)"
    );

    let base_label = PHASES[0].label();
    if let Some(b) = results
        .iter()
        .find(|r| r.workload == Some(Workload::TestConnection))
    {
        let ratio = (b.ok() as f64 / secs) / baseline;
        let p99 = b.percentile_ms(0.99);
        println!();
        println!(
            "headline: test.connection / {base_label} throughput = {ratio:.2} (target >= {TARGET_RATIO:.2}): {}",
            verdict(ratio >= TARGET_RATIO)
        );
        println!(
            "          test.connection p99 = {} ms (target < {TARGET_P99_MS:.0} ms): {}",
            ms(p99),
            verdict(p99 < TARGET_P99_MS)
        );
        if b.batches > 0 {
            println!(
                "          writer group commit: {} jobs in {} batches, mean {:.1} jobs/batch",
                b.jobs,
                b.batches,
                b.jobs as f64 / b.batches as f64
            );
        }
    }

    let failed: Vec<&PhaseResult> = results.iter().filter(|r| r.errors > 0).collect();
    if failed.is_empty() {
        println!("\nall responses were 200");
        return true;
    }
    eprintln!();
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    eprintln!("!!! THIS RUN HAD ERRORS: its numbers are not valid");
    for r in failed {
        eprintln!(
            "!!! {}: {} errors; statuses {:?}; first: {}",
            r.workload.map_or("?", Workload::label),
            r.errors,
            r.bad_statuses,
            r.first_error.as_deref().unwrap_or("-")
        );
    }
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    false
}

/// Milliseconds with two decimals, or `-` when there was no sample.
fn ms(value: f64) -> String {
    if value.is_nan() {
        "-".to_string()
    } else {
        format!("{value:.2}")
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}
