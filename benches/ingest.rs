//! End-to-end ingest benchmark: `cargo bench --bench ingest` (`BENCH_SECS=10` to measure for
//! longer).
//!
//! Starts the real server in-process on 127.0.0.1 with a fresh database in a temporary
//! directory (with its outbound delivery worker, as `hookgate serve` runs it), opens
//! [`CONNECTIONS`] keep-alive connections with a minimal HTTP/1.1 client, and runs each workload
//! in [`PHASES`] over the same connections: [`WARMUP`] unmeasured, then `BENCH_SECS` (default 5)
//! measured. The `healthz` baseline and `test.connection` alternate in [`ROUNDS`] slices, so a
//! change in the machine's speed during the run (it is a shared VM) affects both and their ratio
//! stays comparable between runs. Then the fan-out phases ([`FANOUT_SUBSCRIPTIONS`]): subscriptions of a second API
//! key point at a local receiver, the connections send `vendor.created` changes for a fixed time,
//! and the receiver counts deliveries until every expected one has arrived. The load generator,
//! the receiver and the server share one multi-thread runtime, and so the machine's cores: the
//! numbers are end-to-end throughput of the whole box, not of the server alone.
//!
//! The hand-rolled client writes each request with one `write_all` and parses only the status
//! line and the `Content-Length`/`Connection` headers, so it costs far less CPU than a general
//! client (reqwest, hyper client) would take away from the server on a small machine.
//!
//! Latency is measured per exchange: from just before the request is written to the moment its
//! full response has been read on that connection.

// The same allocator as the `hookgate` binary, so the in-process server behaves as in production.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashSet;
use std::convert::Infallible;
use std::error::Error;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes, BytesMut};
use hookgate::app::AppState;
use hookgate::config::Config;
use hookgate::crypto;
use hookgate::keys::{CreatedKey, KeyOptions};
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
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

/// The closed-loop phases, in order. The first is the baseline every other phase is compared
/// with.
///
/// EXTENSION POINT: to add a phase, add a [`Workload`] variant, give it a label and a request
/// generator in [`Workload::requests`], and list it here (with a set-up step in [`bench`] if
/// it needs records to exist).
/// Slices the baseline and test.connection phases are cut into, alternating.
const ROUNDS: u32 = 5;
/// Warm-up before each slice after the first.
const SLICE_WARMUP: Duration = Duration::from_millis(200);

const PHASES: &[Workload] = &[Workload::Healthz, Workload::TestConnection, Workload::Mixed];

/// The fan-out phases: how many subscriptions receive each change, one phase per entry.
const FANOUT_SUBSCRIPTIONS: &[usize] = &[1, 10];
/// How long, at most, to wait after the last send for the deliveries still expected...
const FANOUT_DRAIN_TIMEOUT: Duration = Duration::from_secs(25);
/// ... and how long without any new delivery before giving up earlier.
const FANOUT_STALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Work orders created per connection in the `mixed` set-up (updated in turn, and referred to
/// by that connection's timesheet entries).
const WORK_ORDERS_PER_CONN: usize = 4;
/// Projects in the `mixed` set-up, so that fuzzy search has some names to rank.
const PROJECTS: usize = 48;
/// The project the `mixed` work orders belong to.
const MIXED_PROJECT: &str = "PRJ-BENCH-000";
/// `project.search` terms of the `mixed` phase, in turn: exact substrings and typos.
const SEARCH_TERMS: &[&str] = &[
    "Skyline",
    "Skylin Towr",
    "harbor brige",
    "Summit Office",
    "granite",
    "Bench Towr",
];

/// What every connection sends during a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    /// `GET /healthz`: the HTTP stack alone, the ceiling for everything else.
    Healthz,
    /// Signed `test.connection` envelopes: the whole inbound pipeline, including one
    /// group-committed write (the ingest-log row) per request.
    TestConnection,
    /// Signed entity envelopes, in a fixed cycle of ten per connection: three
    /// `work_order.created`, three `work_order.updated`, two `timesheet.created`, two fuzzy
    /// `project.search` (see [`MIX_CYCLE`]). Needs [`setup_mixed`] first.
    Mixed,
    /// Signed `vendor.created` envelopes with unique names: one change (and so one outbound
    /// event) each. `run` keeps the names of successive fan-out phases apart.
    VendorCreated { run: usize },
}

/// Request kinds of [`Workload::Mixed`], indexed by [`Requests::kind`].
const MIX_KINDS: &[&str] = &[
    "work_order.created",
    "work_order.updated",
    "timesheet.created",
    "project.search",
];
/// The order of [`MIX_KINDS`] within one cycle of ten requests: 30/30/20/20. Each connection
/// starts at a different point of the cycle, so all kinds are in flight at any moment.
const MIX_CYCLE: [usize; 10] = [0, 1, 2, 3, 0, 1, 2, 3, 0, 1];

impl Workload {
    fn label(self) -> &'static str {
        match self {
            Workload::Healthz => "healthz",
            Workload::TestConnection => "test.connection",
            Workload::Mixed => "mixed",
            Workload::VendorCreated { .. } => "vendor.created",
        }
    }

    /// Names of the request kinds whose latencies are reported separately (empty: one kind).
    fn kinds(self) -> &'static [&'static str] {
        match self {
            Workload::Mixed => MIX_KINDS,
            _ => &[],
        }
    }

    /// The request generator of connection number `conn`.
    fn requests(self, target: &Target, conn: usize) -> Box<dyn Requests> {
        match self {
            Workload::Healthz => Box::new(Fixed(
                format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", target.addr).into_bytes(),
            )),
            Workload::TestConnection => Box::new(SignedEnvelope::new(target, TEST_CONNECTION_BODY)),
            Workload::Mixed => Box::new(MixedRequests {
                signer: Signer::new(target),
                fixture: target
                    .mixed
                    .clone()
                    .expect("the mixed phase runs after its set-up"),
                conn,
                sent: 0,
                per_kind: [0; MIX_KINDS.len()],
                kind: 0,
                body: String::with_capacity(512),
                request: Vec::with_capacity(1024),
            }),
            Workload::VendorCreated { run } => Box::new(VendorRequests {
                signer: Signer::new(target),
                run,
                conn,
                sent: 0,
                body: String::with_capacity(512),
                request: Vec::with_capacity(1024),
            }),
        }
    }
}

/// The envelope of the `test.connection` phase (the seed's example, with our own source).
const TEST_CONNECTION_BODY: &[u8] = br#"{"event_type":"test.connection","timestamp":"2025-01-15T10:00:00Z","source":"bench","data":{"test":true}}"#;

/// Produces the raw bytes of the next request on one connection.
trait Requests: Send {
    fn next(&mut self) -> &[u8];

    /// The kind of the request last returned by `next`, an index into [`Workload::kinds`].
    fn kind(&self) -> usize {
        0
    }
}

/// The same request every time.
struct Fixed(Vec<u8>);

impl Requests for Fixed {
    fn next(&mut self) -> &[u8] {
        &self.0
    }
}

/// Builds signed `POST /webhooks/inbound` requests: `custom` signature over `"{ts}.{body}"`.
struct Signer {
    /// Request line and the headers that never change.
    head: String,
    secret: Vec<u8>,
}

impl Signer {
    fn new(target: &Target) -> Signer {
        Signer {
            head: format!(
                "POST /webhooks/inbound HTTP/1.1\r\nHost: {}\r\nX-API-Key: {}\r\nContent-Type: application/json\r\n",
                target.addr, target.key_id
            ),
            secret: target.secret.as_bytes().to_vec(),
        }
    }

    /// Replaces `out` with the signed request carrying `body`, timestamped now.
    fn sign_into(&self, out: &mut Vec<u8>, body: &[u8]) {
        let ts = unix_secs().to_string();
        let signature = crypto::hmac_hex(&self.secret, &[ts.as_bytes(), b".", body]);
        out.clear();
        out.extend_from_slice(self.head.as_bytes());
        out.extend_from_slice(
            format!(
                "Content-Length: {}\r\nX-Webhook-Timestamp: {ts}\r\nX-Webhook-Signature: {signature}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        out.extend_from_slice(body);
    }
}

/// A signed envelope whose body never changes.
///
/// The signed request is rebuilt only when the unix second changes (the timestamp is the only
/// thing that varies), so the client signs about once per second per connection rather than
/// once per request: that keeps the load generator's CPU for the server. A real sender would
/// sign every request; at ~1 µs per HMAC of this body that is not what limits throughput.
struct SignedEnvelope {
    signer: Signer,
    body: &'static [u8],
    signed_at: Option<u64>,
    request: Vec<u8>,
}

impl SignedEnvelope {
    fn new(target: &Target, body: &'static [u8]) -> SignedEnvelope {
        SignedEnvelope {
            signer: Signer::new(target),
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
            self.signer.sign_into(&mut self.request, self.body);
            self.signed_at = Some(now);
        }
        &self.request
    }
}

/// Records created by [`setup_mixed`] for the `mixed` phase to refer to.
struct MixedFixture {
    /// `emp_number` of each connection's own employee (its timesheets never collide).
    employees: Vec<String>,
    /// Each connection's own work orders: it updates them in turn (no two connections update
    /// the same one, so each update's new value is known to differ from the stored one) and
    /// books its timesheet entries on them.
    work_orders: Vec<Vec<String>>,
}

/// The `mixed` generator of one connection. Every body is unique and signed on its own.
struct MixedRequests {
    signer: Signer,
    fixture: Arc<MixedFixture>,
    conn: usize,
    sent: u64,
    /// Requests generated so far of each kind (numbers the creates, dates the timesheets).
    per_kind: [u64; MIX_KINDS.len()],
    kind: usize,
    body: String,
    request: Vec<u8>,
}

impl Requests for MixedRequests {
    fn next(&mut self) -> &[u8] {
        let kind = MIX_CYCLE[(self.sent as usize + self.conn) % MIX_CYCLE.len()];
        let n = self.per_kind[kind];
        self.per_kind[kind] += 1;
        self.sent += 1;
        self.kind = kind;
        let c = self.conn;
        let work_orders = &self.fixture.work_orders[c];
        let body = &mut self.body;
        body.clear();
        let _ = match kind {
            0 => write!(
                body,
                r#"{{"event_type":"work_order.created","timestamp":"2025-01-15T14:30:00Z","source":"bench","data":{{"project_code":"{MIXED_PROJECT}","phase_name":"Bench phase {c}-{n}","status":"scheduled","priority":"medium","start_date":"2025-02-01","end_date":"2025-02-05","people_required":4}}}}"#
            ),
            1 => {
                // Work order `n % len` for the `round`-th time: created "medium", then
                // "high", "low", "high", ...: every update changes the priority.
                let number = &work_orders[n as usize % work_orders.len()];
                let round = n / work_orders.len() as u64;
                let priority = if round.is_multiple_of(2) {
                    "high"
                } else {
                    "low"
                };
                write!(
                    body,
                    r#"{{"event_type":"work_order.updated","timestamp":"2025-01-15T14:30:00Z","source":"bench","data":{{"work_order_number":"{number}","priority":"{priority}"}}}}"#
                )
            }
            2 => {
                let emp = &self.fixture.employees[c];
                let date = date_after_2001(n);
                let number = &work_orders[n as usize % work_orders.len()];
                write!(
                    body,
                    r#"{{"event_type":"timesheet.created","timestamp":"2025-01-15T14:30:00Z","source":"bench","data":{{"emp_number":"{emp}","timesheet_date":"{date}","status":"draft","entries":[{{"entry_date":"{date}","work_order_number":"{number}","hours":8,"start_time":"08:00","end_time":"16:00","work_type_code":"REG"}}]}}}}"#
                )
            }
            _ => {
                let term = SEARCH_TERMS[(n as usize + c) % SEARCH_TERMS.len()];
                write!(
                    body,
                    r#"{{"event_type":"project.search","timestamp":"2025-01-15T14:30:00Z","source":"bench","data":{{"search_term":"{term}","search_field":"project_name","exact_match":false}}}}"#
                )
            }
        };
        self.signer
            .sign_into(&mut self.request, self.body.as_bytes());
        &self.request
    }

    fn kind(&self) -> usize {
        self.kind
    }
}

/// `YYYY-MM-DD` of 2001-01-01 plus `days` (a distinct timesheet date per request).
fn date_after_2001(days: u64) -> String {
    let date = time::Date::from_calendar_date(2001, time::Month::January, 1).expect("valid date")
        + time::Duration::days(days as i64);
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// The `vendor.created` generator of one connection.
struct VendorRequests {
    signer: Signer,
    run: usize,
    conn: usize,
    sent: u64,
    body: String,
    request: Vec<u8>,
}

impl Requests for VendorRequests {
    fn next(&mut self) -> &[u8] {
        let (run, c, n) = (self.run, self.conn, self.sent);
        self.sent += 1;
        self.body.clear();
        let _ = write!(
            self.body,
            r#"{{"event_type":"vendor.created","timestamp":"2025-01-15T08:00:00Z","source":"bench","data":{{"vendor_name":"Bench Vendor {run}-{c}-{n}","type":"subcontractor","trade_specialty":["HVAC","Mechanical"],"city":"Chicago","state":"IL","rating":4}}}}"#
        );
        self.signer
            .sign_into(&mut self.request, self.body.as_bytes());
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
    /// Set by [`setup_mixed`].
    mixed: Option<Arc<MixedFixture>>,
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

/// How long the fan-out phases send: a fifth of the measured time, at least 1 s. Deliveries
/// are much slower than ingest, and every change sent must be delivered before the phase ends.
fn fanout_drive(measure: Duration) -> Duration {
    (measure / 5).max(Duration::from_secs(1))
}

/// Runs every phase and prints the report; `Ok(false)` when any request failed or a delivery
/// went missing.
async fn bench(measure: Duration) -> Result<bool, BoxError> {
    // Declared first so it is dropped last, after the server and its store are gone.
    let dir = TempDir::new()?;
    let database = dir.0.join("bench.db");
    let server = Server::start(&database).await?;
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
    // The fan-out subscriptions belong to another key of the same company: deliveries of
    // changes made by their own key would be skipped as echoes.
    let subscriber = server
        .state
        .keys
        .create("bench", "bench-subscriber", KeyOptions::default())
        .await?;
    let mut target = Target {
        addr: server.addr,
        key_id: created.key_id,
        secret: created.secret,
        mixed: None,
    };
    check_signed_request(&target).await?;

    let mut conns = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        conns.push(Conn::connect(target.addr).await?);
    }

    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "hookgate ingest benchmark: {CONNECTIONS} keep-alive connections, {} s warm-up + {} s per phase, \
         fan-out: {} s of sends per phase, {cpus} CPU(s) shared by server, receiver and load generator",
        WARMUP.as_secs(),
        measure.as_secs(),
        fanout_drive(measure).as_secs_f64()
    );
    let mut results = Vec::with_capacity(PHASES.len() + FANOUT_SUBSCRIPTIONS.len());
    let mut updates = None;
    // BENCH_PHASES=test.connection,mixed,fanout picks phases (healthz, the baseline, always
    // runs); unset runs them all. Handy for profiling one workload.
    let selected = std::env::var("BENCH_PHASES").ok();
    let wanted = |name: &str| {
        selected
            .as_deref()
            .is_none_or(|list| list.split(',').any(|p| p.trim() == name))
    };
    // The baseline and test.connection run interleaved, in ROUNDS slices each, so that the
    // machine speeding up or slowing down during the run (a shared VM does) moves both alike
    // and the ratio stays meaningful.
    let interleaved: &[Workload] = if wanted(Workload::TestConnection.label()) {
        &[Workload::Healthz, Workload::TestConnection]
    } else {
        &[Workload::Healthz]
    };
    let mut paired: Vec<PhaseResult> = interleaved
        .iter()
        .map(|w| PhaseResult {
            label: w.label().to_string(),
            workload: Some(*w),
            ..Default::default()
        })
        .collect();
    for round in 0..ROUNDS {
        for (slot, &workload) in interleaved.iter().enumerate() {
            // A full warm-up before the first slice, a short one before the others.
            let warmup = if round == 0 { WARMUP } else { SLICE_WARMUP };
            let (batches_before, jobs_before) = server.state.store.batch_stats();
            let (returned, part) =
                run_phase(workload, &target, conns, warmup, measure / ROUNDS).await;
            conns = returned;
            let (batches_after, jobs_after) = server.state.store.batch_stats();
            let total = &mut paired[slot];
            total.batches += batches_after - batches_before;
            total.jobs += jobs_after - jobs_before;
            total.merge(part);
        }
    }
    for mut total in paired {
        total.latencies_us.sort_unstable();
        results.push(total);
    }
    for &workload in PHASES {
        if interleaved.contains(&workload) || !wanted(workload.label()) {
            continue;
        }
        if workload == Workload::Mixed {
            let started = Instant::now();
            let (returned, fixture) = setup_mixed(&target, conns).await?;
            conns = returned;
            target.mixed = Some(Arc::new(fixture));
            println!(
                "mixed set-up: {PROJECTS} projects, {CONNECTIONS} employees, {} work orders in {:.2} s",
                CONNECTIONS * WORK_ORDERS_PER_CONN,
                started.elapsed().as_secs_f64()
            );
        }
        let (batches_before, jobs_before) = server.state.store.batch_stats();
        let (returned, result) = run_phase(workload, &target, conns, WARMUP, measure).await;
        conns = returned;
        let (batches_after, jobs_after) = server.state.store.batch_stats();
        if workload == Workload::Mixed {
            updates = Some(count_updates(&database)?);
        }
        results.push(PhaseResult {
            batches: batches_after - batches_before,
            jobs: jobs_after - jobs_before,
            ..result
        });
    }

    let receiver = Receiver::start(FANOUT_SUBSCRIPTIONS.len()).await?;
    let mut fanouts = Vec::with_capacity(FANOUT_SUBSCRIPTIONS.len());
    for (run, &subscriptions) in FANOUT_SUBSCRIPTIONS.iter().enumerate() {
        if !wanted("fanout") {
            break;
        }
        let (returned, fanout) = run_fanout(
            &server,
            &target,
            &subscriber,
            &receiver,
            FanoutPlan {
                run,
                subscriptions,
                drive: fanout_drive(measure),
            },
            conns,
        )
        .await?;
        conns = returned;
        fanouts.push(fanout);
    }
    drop(conns);
    let clean = report(&results, updates, &fanouts, measure);
    receiver.stop();
    server.stop().await;
    drop(dir);
    Ok(clean)
}

/// `work_order.updated` requests answered 200, and `work_order.updated` events emitted, read
/// from the database: an update that changed nothing answers 200 but emits no event, so equal
/// counts show that every update of the `mixed` phase did real work.
fn count_updates(database: &Path) -> Result<UpdateCheck, BoxError> {
    let db = rusqlite::Connection::open_with_flags(
        database,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?;
    let count = |sql: &str| db.query_row(sql, [], |r| r.get::<_, i64>(0));
    Ok(UpdateCheck {
        answered: count(
            "SELECT COUNT(*) FROM ingest_log WHERE event_type = 'work_order.updated' AND status = 200",
        )?,
        emitted: count("SELECT COUNT(*) FROM events WHERE event_type = 'work_order.updated'")?,
    })
}

#[derive(Clone, Copy)]
struct UpdateCheck {
    answered: i64,
    emitted: i64,
}

/// One signed request up front, so that a broken signature or key set-up fails with the
/// server's own explanation instead of as a wall of errors.
async fn check_signed_request(target: &Target) -> Result<(), BoxError> {
    let mut conn = Conn::connect(target.addr).await?;
    let mut requests = Workload::TestConnection.requests(target, 0);
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

/// Sends one set-up request and returns its JSON body; anything but a 200 is an error.
async fn send_ok(
    conn: &mut Conn,
    signer: &Signer,
    request: &mut Vec<u8>,
    body: &str,
) -> Result<serde_json::Value, BoxError> {
    signer.sign_into(request, body.as_bytes());
    let response = tokio::time::timeout(REQUEST_TIMEOUT, conn.exchange(request))
        .await
        .map_err(|_| format!("set-up request timed out: {body}"))??;
    if response.status != 200 {
        return Err(format!(
            "set-up request got HTTP {} {} for {body}",
            response.status,
            String::from_utf8_lossy(conn.body())
        )
        .into());
    }
    Ok(serde_json::from_slice(conn.body())?)
}

/// Project `i` of the set-up: 0 is the one the `mixed` work orders belong to, the others give
/// fuzzy search names to rank.
fn project_body(i: usize) -> String {
    const PREFIXES: &[&str] = &[
        "Skyline",
        "Harbor",
        "Riverside",
        "Northgate",
        "Lakeside",
        "Summit",
        "Granite",
        "Cedar",
    ];
    const SUFFIXES: &[&str] = &[
        "Tower Construction",
        "Bridge Retrofit",
        "Warehouse Foundation",
        "Mall Renovation",
        "Hospital Wing",
        "Office Park",
    ];
    let name = if i == 0 {
        "Bench Tower Construction".to_string()
    } else {
        let k = i - 1;
        format!(
            "{} {}",
            PREFIXES[k % PREFIXES.len()],
            SUFFIXES[(k / PREFIXES.len()) % SUFFIXES.len()]
        )
    };
    format!(
        r#"{{"event_type":"project.created","timestamp":"2025-01-10T09:00:00Z","source":"bench","data":{{"project_code":"PRJ-BENCH-{i:03}","project_name":"{name}","customer_name":"Bench Customer {i}","location_name":"Bench Site {i}"}}}}"#
    )
}

/// Creates what the `mixed` phase refers to, through the inbound API: [`PROJECTS`] projects,
/// then on every connection at once its employee and its [`WORK_ORDERS_PER_CONN`] work orders.
async fn setup_mixed(
    target: &Target,
    mut conns: Vec<Conn>,
) -> Result<(Vec<Conn>, MixedFixture), BoxError> {
    let signer = Signer::new(target);
    let mut request = Vec::new();
    // First, alone: every work order below belongs to it.
    send_ok(&mut conns[0], &signer, &mut request, &project_body(0)).await?;
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, mut conn)| {
            let signer = Signer::new(target);
            tokio::spawn(async move {
                let mut request = Vec::new();
                let result = async {
                    if i + 1 < PROJECTS {
                        send_ok(&mut conn, &signer, &mut request, &project_body(i + 1)).await?;
                    }
                    let emp = format!("EMP-B{i:03}");
                    send_ok(
                        &mut conn,
                        &signer,
                        &mut request,
                        &format!(
                            r#"{{"event_type":"employee.created","timestamp":"2025-01-10T09:00:00Z","source":"bench","data":{{"emp_number":"{emp}","name":"Bench Worker {i}","email":"worker{i}@bench.example","employee_type":"site_worker"}}}}"#
                        ),
                    )
                    .await?;
                    let mut work_orders = Vec::with_capacity(WORK_ORDERS_PER_CONN);
                    for k in 0..WORK_ORDERS_PER_CONN {
                        let created = send_ok(
                            &mut conn,
                            &signer,
                            &mut request,
                            &format!(
                                r#"{{"event_type":"work_order.created","timestamp":"2025-01-10T09:00:00Z","source":"bench","data":{{"project_code":"{MIXED_PROJECT}","phase_name":"Bench setup {i}-{k}","status":"scheduled","priority":"medium"}}}}"#
                            ),
                        )
                        .await?;
                        let number = created["work_order_number"]
                            .as_str()
                            .ok_or_else(|| format!("work_order.created answered {created} without a work_order_number"))?;
                        work_orders.push(number.to_string());
                    }
                    Ok::<_, BoxError>((emp, work_orders))
                }
                .await;
                (conn, result)
            })
        })
        .collect();
    let mut conns = Vec::with_capacity(CONNECTIONS);
    let mut fixture = MixedFixture {
        employees: Vec::with_capacity(CONNECTIONS),
        work_orders: Vec::with_capacity(CONNECTIONS),
    };
    let mut first_error = None;
    for task in tasks {
        let (conn, result) = task.await.expect("set-up task panicked");
        conns.push(conn);
        match result {
            Ok((emp, work_orders)) => {
                fixture.employees.push(emp);
                fixture.work_orders.push(work_orders);
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(format!("mixed set-up failed: {e}").into()),
        None => Ok((conns, fixture)),
    }
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
                // The fan-out receiver is http://127.0.0.1.
                "HOOKGATE_ALLOW_HTTP_URLS" => "true".into(),
                "HOOKGATE_ALLOW_PRIVATE_URLS" => "true".into(),
                _ => return None,
            })
        })?;
        let state = AppState::build(config)?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        // The HTTP server and the outbound delivery worker, as `hookgate serve` runs them.
        let task = tokio::spawn(hookgate::app::run(listener, state.clone(), async move {
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

    /// A management API call (`/api/v1/...`) with a bearer token: the status and JSON body.
    async fn rest(
        &mut self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(u16, serde_json::Value), BoxError> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        let response =
            tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(request.as_bytes())).await??;
        let json = serde_json::from_slice(self.body()).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(self.body()).into_owned())
        });
        Ok((response.status, json))
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
    label: String,
    workload: Option<Workload>,
    /// Responses completed within the measured window, whatever their status.
    responses: u64,
    /// Latencies of the 200 responses in the window, in microseconds, sorted.
    latencies_us: Vec<u32>,
    /// The same, per request kind (see [`Workload::kinds`]; empty for one-kind workloads).
    kind_latencies_us: Vec<Vec<u32>>,
    /// 200 responses over the whole phase: warm-up, window and the exchanges that finished
    /// after it (each one a change applied, for the fan-out phases).
    all_ok: u64,
    /// Non-200 responses and failed exchanges (I/O errors, timeouts) over the whole phase,
    /// warm-up included: a set-up or generator bug shows even when it only bites early.
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
        if self.kind_latencies_us.len() < other.kind_latencies_us.len() {
            self.kind_latencies_us
                .resize_with(other.kind_latencies_us.len(), Vec::new);
        }
        for (mine, theirs) in self
            .kind_latencies_us
            .iter_mut()
            .zip(other.kind_latencies_us)
        {
            mine.extend(theirs);
        }
        self.all_ok += other.all_ok;
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

    fn percentile_ms(&self, p: f64) -> f64 {
        percentile_ms(&self.latencies_us, p)
    }
}

/// Nearest-rank percentile of sorted latencies (µs), in milliseconds (NaN when there are none).
fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted_us.len() as f64).ceil() as usize).max(1);
    sorted_us[rank - 1] as f64 / 1000.0
}

/// Runs `workload` on every connection: `warmup`, then `measure`. Returns the connections
/// (possibly replaced after errors) for the next phase.
async fn run_phase(
    workload: Workload,
    target: &Target,
    conns: Vec<Conn>,
    warmup: Duration,
    measure: Duration,
) -> (Vec<Conn>, PhaseResult) {
    let measure_from = Instant::now() + warmup;
    let end = measure_from + measure;
    let kinds = workload.kinds().len();
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, conn)| {
            let requests = workload.requests(target, i);
            tokio::spawn(drive(conn, requests, kinds, measure_from, end))
        })
        .collect();
    let mut conns = Vec::with_capacity(tasks.len());
    let mut result = PhaseResult {
        label: workload.label().to_string(),
        workload: Some(workload),
        ..Default::default()
    };
    for task in tasks {
        let (conn, part) = task.await.expect("load generator task panicked");
        conns.extend(conn);
        result.merge(part);
    }
    result.latencies_us.sort_unstable();
    for latencies in &mut result.kind_latencies_us {
        latencies.sort_unstable();
    }
    (conns, result)
}

/// One connection's closed loop. Only exchanges that complete inside `[measure_from, end)` are
/// counted in the throughput and latencies, so the throughput is exact for the window whatever
/// the latency at its edges; errors and `all_ok` count the whole phase.
async fn drive(
    mut conn: Conn,
    mut requests: Box<dyn Requests>,
    kinds: usize,
    measure_from: Instant,
    end: Instant,
) -> (Option<Conn>, PhaseResult) {
    let mut result = PhaseResult {
        latencies_us: Vec::with_capacity(1 << 14),
        kind_latencies_us: vec![Vec::new(); kinds],
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
        let kind = requests.kind();
        let (healthy, error) = match outcome {
            Ok(Ok(response)) => {
                if counted {
                    result.responses += 1;
                }
                if response.status == 200 {
                    result.all_ok += 1;
                    if counted {
                        let us =
                            u32::try_from((finished - started).as_micros()).unwrap_or(u32::MAX);
                        result.latencies_us.push(us);
                        if let Some(latencies) = result.kind_latencies_us.get_mut(kind) {
                            latencies.push(us);
                        }
                    }
                } else {
                    result.count_status(response.status, 1);
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
        if let Some(error) = error {
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

/// A local webhook receiver: answers every request 200 at once and counts, per fan-out run
/// (the first path segment, `/{run}/{subscription}`), the requests, the distinct
/// (subscription, `X-Webhook-ID`) pairs and the time of the last arrival.
struct Receiver {
    /// `http://127.0.0.1:PORT`.
    base: String,
    epoch: Instant,
    runs: Arc<Vec<RunCounts>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct RunCounts {
    requests: AtomicU64,
    /// Nanoseconds after `Receiver::epoch` of the last request (0: none yet).
    last_ns: AtomicU64,
    distinct: Mutex<HashSet<(u32, String)>>,
}

impl Receiver {
    async fn start(runs: usize) -> std::io::Result<Receiver> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let epoch = Instant::now();
        let counts: Arc<Vec<RunCounts>> =
            Arc::new((0..runs).map(|_| RunCounts::default()).collect());
        let shared = counts.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let counts = shared.clone();
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let counts = counts.clone();
                    async move {
                        let mut segments = req.uri().path().trim_start_matches('/').split('/');
                        let run = segments.next().and_then(|s| s.parse::<usize>().ok());
                        let sub = segments.next().and_then(|s| s.parse::<u32>().ok());
                        let id = req
                            .headers()
                            .get("x-webhook-id")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string();
                        // Read the whole body, as a real receiver would before answering.
                        let _ = req.into_body().collect().await;
                        if let (Some(counts), Some(sub)) = (run.and_then(|r| counts.get(r)), sub) {
                            counts.requests.fetch_add(1, Ordering::Relaxed);
                            counts
                                .distinct
                                .lock()
                                .expect("receiver lock")
                                .insert((sub, id));
                            let ns = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
                            counts.last_ns.fetch_max(ns, Ordering::Relaxed);
                        }
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::new())))
                    }
                });
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        Ok(Receiver {
            base,
            epoch,
            runs: counts,
            task,
        })
    }

    /// Distinct deliveries received for `run`.
    fn distinct(&self, run: usize) -> u64 {
        self.runs[run].distinct.lock().expect("receiver lock").len() as u64
    }

    fn requests(&self, run: usize) -> u64 {
        self.runs[run].requests.load(Ordering::Relaxed)
    }

    /// When the last request of `run` arrived.
    fn last(&self, run: usize) -> Option<Instant> {
        match self.runs[run].last_ns.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(self.epoch + Duration::from_nanos(ns)),
        }
    }

    fn stop(self) {
        self.task.abort();
    }
}

/// One fan-out phase to run.
struct FanoutPlan {
    /// Index of the phase (the receiver's path segment and the vendor names' run number).
    run: usize,
    subscriptions: usize,
    /// How long the connections send.
    drive: Duration,
}

/// What one fan-out phase measured.
struct FanoutResult {
    subscriptions: usize,
    /// The inbound side: `vendor.created` sent by every connection for `drive`.
    inbound: PhaseResult,
    drive: Duration,
    /// Deliveries expected: changes applied (200 responses) × subscriptions.
    expected: u64,
    /// Distinct deliveries received.
    delivered: u64,
    /// Requests received beyond the distinct deliveries (re-sends).
    duplicates: u64,
    /// From the first send to the last delivery received.
    elapsed: Option<Duration>,
    /// Deliveries still pending or in flight in the outbox when the phase gave up waiting.
    pending: Option<i64>,
}

impl FanoutResult {
    fn deliveries_per_sec(&self) -> f64 {
        match self.elapsed {
            Some(elapsed) if !elapsed.is_zero() => self.delivered as f64 / elapsed.as_secs_f64(),
            _ => f64::NAN,
        }
    }

    fn missing(&self) -> u64 {
        self.expected.saturating_sub(self.delivered)
    }
}

/// Subscribes `plan.subscriptions` receivers (owned by `subscriber`) to `vendor.created`,
/// sends changes on every connection for `plan.drive`, waits until the receiver has every
/// expected delivery (or [`FANOUT_DRAIN_TIMEOUT`] / [`FANOUT_STALL_TIMEOUT`]), then deletes the
/// subscriptions.
async fn run_fanout(
    server: &Server,
    target: &Target,
    subscriber: &CreatedKey,
    receiver: &Receiver,
    plan: FanoutPlan,
    conns: Vec<Conn>,
) -> Result<(Vec<Conn>, FanoutResult), BoxError> {
    let mut rest = Conn::connect(target.addr).await?;
    let mut ids = Vec::with_capacity(plan.subscriptions);
    for i in 0..plan.subscriptions {
        let body = serde_json::json!({
            "name": format!("bench-fanout-{}-{i}", plan.run),
            "url": format!("{}/{}/{i}", receiver.base, plan.run),
            "events": ["vendor.created"],
        });
        let (status, created) = rest
            .rest(
                "POST",
                "/api/v1/webhooks",
                &subscriber.api_token,
                Some(&body),
            )
            .await?;
        let id = created["id"].as_str().filter(|_| status == 201);
        let id = id.ok_or_else(|| format!("creating a subscription: HTTP {status} {created}"))?;
        ids.push(id.to_string());
    }

    let workload = Workload::VendorCreated { run: plan.run };
    let (batches_before, jobs_before) = server.state.store.batch_stats();
    let started = Instant::now();
    let (conns, mut inbound) = run_phase(workload, target, conns, Duration::ZERO, plan.drive).await;
    inbound.label = format!("fanout x{}", plan.subscriptions);
    let expected = inbound.all_ok * plan.subscriptions as u64;
    let deadline = Instant::now() + FANOUT_DRAIN_TIMEOUT;
    let (mut seen, mut progress_at) = (0, Instant::now());
    loop {
        let now = Instant::now();
        let delivered = receiver.distinct(plan.run);
        if delivered > seen {
            (seen, progress_at) = (delivered, now);
        }
        if delivered >= expected
            || now >= deadline
            || now.duration_since(progress_at) >= FANOUT_STALL_TIMEOUT
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (batches_after, jobs_after) = server.state.store.batch_stats();
    inbound.batches = batches_after - batches_before;
    inbound.jobs = jobs_after - jobs_before;
    let delivered = receiver.distinct(plan.run);
    let pending = if delivered < expected {
        server
            .state
            .store
            .read(|r| r.pending_deliveries())
            .await
            .ok()
    } else {
        None
    };

    for id in &ids {
        let (status, body) = rest
            .rest(
                "DELETE",
                &format!("/api/v1/webhooks/{id}"),
                &subscriber.api_token,
                None,
            )
            .await?;
        if status != 200 {
            return Err(format!("deleting subscription {id}: HTTP {status} {body}").into());
        }
    }

    let result = FanoutResult {
        subscriptions: plan.subscriptions,
        drive: plan.drive,
        expected,
        delivered,
        duplicates: receiver.requests(plan.run).saturating_sub(delivered),
        elapsed: receiver.last(plan.run).map(|last| last - started),
        pending,
        inbound,
    };
    Ok((conns, result))
}

/// Prints the tables and the verdict; returns whether the run was free of errors and of
/// missing deliveries.
fn report(
    results: &[PhaseResult],
    updates: Option<UpdateCheck>,
    fanouts: &[FanoutResult],
    measure: Duration,
) -> bool {
    let secs = measure.as_secs_f64();
    let baseline = results.first().map_or(0.0, |r| r.ok() as f64 / secs);
    println!();
    println!(
        "{:<22} {:>10} {:>10} {:>8} {:>8} {:>8} {:>8} {:>10}",
        "phase", "requests", "req/s", "p50 ms", "p99 ms", "errors", "vs base", "batch avg"
    );
    let row = |label: &str, r: &PhaseResult, window: f64| {
        let rate = r.ok() as f64 / window;
        let batch = if r.batches == 0 {
            "-".to_string()
        } else {
            format!("{:.1}", r.jobs as f64 / r.batches as f64)
        };
        println!(
            "{:<22} {:>10} {:>10.0} {:>8} {:>8} {:>8} {:>8.2} {:>10}",
            label,
            r.responses,
            rate,
            ms(r.percentile_ms(0.50)),
            ms(r.percentile_ms(0.99)),
            r.errors,
            rate / baseline,
            batch
        );
    };
    for r in results {
        row(&r.label, r, secs);
        let kinds = r.workload.map_or(&[][..], Workload::kinds);
        for (name, latencies) in kinds.iter().zip(&r.kind_latencies_us) {
            println!(
                "{:<22} {:>10} {:>10.0} {:>8} {:>8}",
                format!("  {name}"),
                latencies.len(),
                latencies.len() as f64 / secs,
                ms(percentile_ms(latencies, 0.50)),
                ms(percentile_ms(latencies, 0.99)),
            );
        }
    }
    for f in fanouts {
        row(
            &format!("{} (inbound)", f.inbound.label),
            &f.inbound,
            f.drive.as_secs_f64(),
        );
    }
    println!(
        "(requests: responses completed in the measured window ({secs:.0} s; fan-out: its send time); \
         req/s, p50, p99: 200 responses only; errors: non-200 and failed exchanges over the whole phase, \
         warm-up included; batch avg: writer jobs per group commit during the phase, warm-up included)"
    );

    if !fanouts.is_empty() {
        println!();
        println!(
            "{:<12} {:>6} {:>9} {:>10} {:>10} {:>8} {:>8} {:>9} {:>13} {:>13}",
            "fan-out",
            "subs",
            "changes",
            "expected",
            "delivered",
            "missing",
            "send s",
            "total s",
            "deliveries/s",
            "inbound req/s"
        );
        for f in fanouts {
            println!(
                "{:<12} {:>6} {:>9} {:>10} {:>10} {:>8} {:>8.1} {:>9} {:>13.0} {:>13.0}",
                f.inbound.label,
                f.subscriptions,
                f.inbound.all_ok,
                f.expected,
                f.delivered,
                f.missing(),
                f.drive.as_secs_f64(),
                f.elapsed
                    .map_or("-".to_string(), |e| format!("{:.2}", e.as_secs_f64())),
                f.deliveries_per_sec(),
                f.inbound.ok() as f64 / f.drive.as_secs_f64(),
            );
        }
        println!(
            "(changes: vendor.created answered 200, each one outbound event; total s: first send to last \
             delivery received; deliveries/s = delivered / total s; inbound req/s: 200s per second of sending)"
        );
    }

    let base_label = PHASES[0].label();
    println!();
    if let Some(b) = results
        .iter()
        .find(|r| r.workload == Some(Workload::TestConnection))
    {
        let ratio = (b.ok() as f64 / secs) / baseline;
        let p99 = b.percentile_ms(0.99);
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
    if let Some(m) = results.iter().find(|r| r.workload == Some(Workload::Mixed)) {
        let rate = m.ok() as f64 / secs;
        println!(
            "          mixed / {base_label} throughput = {:.2} ({rate:.0} req/s, p50 {} ms, p99 {} ms)",
            rate / baseline,
            ms(m.percentile_ms(0.50)),
            ms(m.percentile_ms(0.99)),
        );
    }
    if let Some(u) = updates {
        println!(
            "          mixed updates: {} work_order.updated answered 200, {} work_order.updated events emitted{}",
            u.answered,
            u.emitted,
            if u.emitted < u.answered {
                " (SOME UPDATES CHANGED NOTHING)"
            } else {
                ""
            }
        );
    }
    for f in fanouts {
        println!(
            "          fan-out to {:>2} subscription(s): {:.0} deliveries/s ({} of {} delivered), inbound {:.0} req/s meanwhile",
            f.subscriptions,
            f.deliveries_per_sec(),
            f.delivered,
            f.expected,
            f.inbound.ok() as f64 / f.drive.as_secs_f64(),
        );
    }

    let failed: Vec<&PhaseResult> = results
        .iter()
        .chain(fanouts.iter().map(|f| &f.inbound))
        .filter(|r| r.errors > 0)
        .collect();
    let incomplete: Vec<&FanoutResult> = fanouts
        .iter()
        .filter(|f| f.missing() > 0 || f.duplicates > 0)
        .collect();
    let idle_updates = updates.filter(|u| u.emitted < u.answered);
    if failed.is_empty() && incomplete.is_empty() && idle_updates.is_none() {
        println!("\nall responses were 200 and every expected delivery arrived exactly once");
        return true;
    }
    eprintln!();
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    eprintln!("!!! THIS RUN HAD ERRORS: its numbers are not valid");
    for r in failed {
        eprintln!(
            "!!! {}: {} errors; statuses {:?}; first: {}",
            r.label,
            r.errors,
            r.bad_statuses,
            r.first_error.as_deref().unwrap_or("-")
        );
    }
    if let Some(u) = idle_updates {
        eprintln!(
            "!!! mixed: {} of {} work_order.updated emitted no event: they changed nothing",
            u.answered - u.emitted,
            u.answered
        );
    }
    for f in incomplete {
        eprintln!(
            "!!! {}: {} of {} deliveries missing (waited up to {} s, or {} s without progress); \
             {} re-sent; outbox still pending or in flight: {}",
            f.inbound.label,
            f.missing(),
            f.expected,
            FANOUT_DRAIN_TIMEOUT.as_secs(),
            FANOUT_STALL_TIMEOUT.as_secs(),
            f.duplicates,
            f.pending.map_or("-".to_string(), |p| p.to_string())
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
