//! What the connections send: one [`Workload`] per phase, and for each a request generator per
//! connection.
//!
//! EXTENSION POINT: to add a workload, add a variant, give it a label and a generator in
//! [`Workload::requests`], and run it from a phase in `main.rs` (or a module of its own).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use hookgate::keys::CreatedKey;

use crate::client::rest_get;
use crate::load::Requests;
use crate::mixed::{MIX_KINDS, MixedFixture, MixedRequests};
use crate::support::signing::{RawSigner, now};

/// Where and as whom the load generator sends.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub key_id: String,
    pub secret: String,
    /// The key's management API token.
    pub api_token: String,
    /// Set by the `mixed` set-up.
    pub mixed: Option<Arc<MixedFixture>>,
}

impl Target {
    pub fn new(addr: SocketAddr, key: &CreatedKey) -> Target {
        Target {
            addr,
            key_id: key.key_id.clone(),
            secret: key.secret.clone(),
            api_token: key.api_token.clone(),
            mixed: None,
        }
    }

    pub fn signer(&self) -> RawSigner {
        RawSigner::new(&self.addr.to_string(), &self.key_id, &self.secret)
    }
}

/// What every connection sends during a phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Workload {
    /// `GET /healthz`: the HTTP stack alone, the ceiling for everything else.
    Healthz,
    /// Signed `test.connection` envelopes: the whole inbound pipeline, including one
    /// group-committed write (the ingest-log row) per request.
    TestConnection,
    /// Signed `customer.created` envelopes with unique names: an entity create, one change
    /// (and one outbound event) each. `run` keeps the names of successive phases on one
    /// database apart.
    CustomerCreated { run: usize },
    /// Signed `vendor.created` envelopes with unique names (the outbound phases' load).
    VendorCreated { run: usize },
    /// Signed entity envelopes in a fixed cycle (see [`crate::mixed`]). Needs its set-up.
    Mixed,
    /// `per_conn` signed `project.created` envelopes per connection (seeding; the connection
    /// and request numbers make the codes and names unique within a company).
    Projects { per_conn: u64 },
    /// `per_conn` requests per connection of the ingest-log seed mix: nine `test.connection`
    /// to one `customer.created` (seeding).
    LogSeed { run: usize, per_conn: u64 },
    /// `GET /api/v1/ingest-log` pages with filters, in turn (see [`LOG_FILTERS`]).
    LogReads,
    /// Signed `project.search` envelopes over the names [`Workload::Projects`] seeded with
    /// `per_conn` on 64 connections, exact or fuzzy.
    Search { exact: bool, per_conn: u64 },
}

/// The ingest-log filters of [`Workload::LogReads`]: status and event type (matching many
/// rows, few, or none); the key's own rows are added to them.
pub const LOG_FILTERS: &[&str] = &[
    "status=200&event_type=test.connection",
    "status=200&event_type=customer.created",
    "status=401&event_type=customer.created",
    "event_type=project.created",
];

impl Workload {
    pub fn label(&self) -> String {
        match self {
            Workload::Healthz => "healthz".into(),
            Workload::TestConnection => "test.connection".into(),
            Workload::CustomerCreated { .. } => "customer.created".into(),
            Workload::VendorCreated { .. } => "vendor.created".into(),
            Workload::Mixed => "mixed".into(),
            Workload::Projects { .. } => "seed projects".into(),
            Workload::LogSeed { .. } => "seed ingest log".into(),
            Workload::LogReads => "ingest-log reads".into(),
            Workload::Search { exact: true, .. } => "project.search exact".into(),
            Workload::Search { exact: false, .. } => "project.search fuzzy".into(),
        }
    }

    /// Names of the request kinds whose latencies are reported separately (empty: one kind).
    pub fn kinds(&self) -> &'static [&'static str] {
        match self {
            Workload::Mixed => MIX_KINDS,
            _ => &[],
        }
    }

    /// The request generator of connection number `conn`.
    pub fn requests(&self, target: &Target, conn: usize) -> Box<dyn Requests> {
        match self {
            Workload::Healthz => Box::new(Fixed(
                format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", target.addr).into_bytes(),
            )),
            Workload::TestConnection => Box::new(SignedEnvelope::new(target, TEST_CONNECTION_BODY)),
            Workload::Mixed => Box::new(MixedRequests::new(target, conn)),
            &Workload::CustomerCreated { run } => {
                Box::new(Generated::new(target, u64::MAX, move |n, body| {
                    let _ = write!(
                        body,
                        r#"{{"event_type":"customer.created","timestamp":"2025-01-15T08:00:00Z","source":"bench","data":{{"name":"Bench Customer {run}-{conn}-{n}","type":"commercial","email":"c{run}x{conn}x{n}@bench.example","status":"active"}}}}"#
                    );
                }))
            }
            &Workload::VendorCreated { run } => {
                Box::new(Generated::new(target, u64::MAX, move |n, body| {
                    let _ = write!(
                        body,
                        r#"{{"event_type":"vendor.created","timestamp":"2025-01-15T08:00:00Z","source":"bench","data":{{"vendor_name":"Bench Vendor {run}-{conn}-{n}","type":"subcontractor","trade_specialty":["HVAC","Mechanical"],"city":"Chicago","state":"IL","rating":4}}}}"#
                    );
                }))
            }
            &Workload::Projects { per_conn } => {
                Box::new(Generated::new(target, per_conn, move |n, body| {
                    let name = seeded_project_name(conn as u64, n);
                    let _ = write!(
                        body,
                        r#"{{"event_type":"project.created","timestamp":"2025-01-10T09:00:00Z","source":"bench","data":{{"project_code":"PRJ-{conn}-{n}","project_name":"{name}","customer_name":"Bench Customer {conn}","location_name":"Bench Site {conn}"}}}}"#
                    );
                }))
            }
            &Workload::LogSeed { run, per_conn } => {
                Box::new(Generated::new(target, per_conn, move |n, body| {
                    if n % 10 == 9 {
                        let _ = write!(
                            body,
                            r#"{{"event_type":"customer.created","timestamp":"2025-01-15T08:00:00Z","source":"bench","data":{{"name":"Seed Customer {run}-{conn}-{n}"}}}}"#
                        );
                    } else {
                        body.push_str(std::str::from_utf8(TEST_CONNECTION_BODY).unwrap());
                    }
                }))
            }
            Workload::LogReads => Box::new(Cycle::new(
                LOG_FILTERS
                    .iter()
                    .map(|filter| filter.to_string())
                    .chain([format!("key={}&status=200", target.key_id)])
                    .map(|filter| {
                        rest_get(
                            target.addr,
                            &format!("/api/v1/ingest-log?{filter}&limit=20"),
                            &target.api_token,
                        )
                    })
                    .collect(),
                conn,
            )),
            &Workload::Search { exact, per_conn } => {
                Box::new(Generated::new(target, u64::MAX, move |n, body| {
                    // A seeded project: exact, its whole name; fuzzy, part of it with typos.
                    let (c, k) = ((conn as u64 + n) % 64, (n * 31 + conn as u64) % per_conn);
                    let term = if exact {
                        seeded_project_name(c, k)
                    } else {
                        typo(&project_name(c * 1_000_003 + k))
                    };
                    let _ = write!(
                        body,
                        r#"{{"event_type":"project.search","timestamp":"2025-01-15T14:30:00Z","source":"bench","data":{{"search_term":"{term}","search_field":"project_name","exact_match":{exact}}}}}"#
                    );
                }))
            }
        }
    }
}

/// The envelope of the `test.connection` phase (the seed's example, with our own source).
pub const TEST_CONNECTION_BODY: &[u8] = br#"{"event_type":"test.connection","timestamp":"2025-01-15T10:00:00Z","source":"bench","data":{"test":true}}"#;

/// Words of seeded project names: a prefix and a suffix from these small lists, so that exact
/// names repeat across projects and fuzzy terms have near neighbours to rank.
const PROJECT_PREFIXES: &[&str] = &[
    "Skyline",
    "Harbor",
    "Riverside",
    "Northgate",
    "Lakeside",
    "Summit",
    "Granite",
    "Cedar",
    "Maple",
    "Ironwood",
    "Bayview",
    "Westfield",
    "Oakridge",
    "Pinecrest",
    "Stonebridge",
    "Clearwater",
];
const PROJECT_SUFFIXES: &[&str] = &[
    "Tower Construction",
    "Bridge Retrofit",
    "Warehouse Foundation",
    "Mall Renovation",
    "Hospital Wing",
    "Office Park",
    "School Annex",
    "Parking Deck",
];

/// Project name `i` of the first `prefixes` × `suffixes` combinations of the lists above.
pub fn project_name_among(i: usize, prefixes: usize, suffixes: usize) -> String {
    format!(
        "{} {}",
        PROJECT_PREFIXES[i % prefixes],
        PROJECT_SUFFIXES[(i / prefixes) % suffixes]
    )
}

/// Seeded project name `i`, from every combination.
pub fn project_name(i: u64) -> String {
    project_name_among(i as usize, PROJECT_PREFIXES.len(), PROJECT_SUFFIXES.len())
}

/// The name of project `n` seeded by connection `conn`.
pub fn seeded_project_name(conn: u64, n: u64) -> String {
    format!("{} {conn}-{n}", project_name(conn * 1_000_003 + n))
}

/// `name` with its first word cut short by a letter and the rest dropped after one more word
/// with a letter missing: "Skyline Tower Construction" becomes "Skylin Towr".
fn typo(name: &str) -> String {
    let mut words = name.split(' ');
    let first = words.next().unwrap_or("");
    let second = words.next().unwrap_or("");
    let drop_last = |w: &str| w[..w.len().saturating_sub(1)].to_string();
    let second = match second.len() {
        0..=2 => second.to_string(),
        n => format!("{}{}", &second[..n - 2], &second[n - 1..]),
    };
    format!("{} {second}", drop_last(first))
}

/// The same request every time.
struct Fixed(Vec<u8>);

impl Requests for Fixed {
    fn next(&mut self) -> Option<&[u8]> {
        Some(&self.0)
    }
}

/// A fixed list of requests, in turn, each connection starting at its own point.
struct Cycle {
    requests: Vec<Vec<u8>>,
    next: usize,
}

impl Cycle {
    fn new(requests: Vec<Vec<u8>>, conn: usize) -> Cycle {
        Cycle {
            next: conn % requests.len(),
            requests,
        }
    }
}

impl Requests for Cycle {
    fn next(&mut self) -> Option<&[u8]> {
        let i = self.next;
        self.next = (i + 1) % self.requests.len();
        Some(&self.requests[i])
    }
}

/// A signed envelope whose body never changes.
///
/// The signed request is rebuilt only when the unix second changes (the timestamp is the only
/// thing that varies), so the client signs about once per second per connection rather than
/// once per request: that keeps the load generator's CPU for the server. A real sender would
/// sign every request; at ~1 µs per HMAC of this body that is not what limits throughput.
struct SignedEnvelope {
    signer: RawSigner,
    body: &'static [u8],
    signed_at: Option<i64>,
    request: Vec<u8>,
}

impl SignedEnvelope {
    fn new(target: &Target, body: &'static [u8]) -> SignedEnvelope {
        SignedEnvelope {
            signer: target.signer(),
            body,
            signed_at: None,
            request: Vec::new(),
        }
    }
}

impl Requests for SignedEnvelope {
    fn next(&mut self) -> Option<&[u8]> {
        let now = now();
        if self.signed_at != Some(now) {
            self.signer.sign_into(&mut self.request, self.body);
            self.signed_at = Some(now);
        }
        Some(&self.request)
    }
}

/// Signed envelopes whose body `write(n, body)` writes for the `n`-th request; `limit`
/// requests in all.
struct Generated<F> {
    signer: RawSigner,
    write: F,
    sent: u64,
    limit: u64,
    body: String,
    request: Vec<u8>,
}

impl<F: FnMut(u64, &mut String) + Send> Generated<F> {
    fn new(target: &Target, limit: u64, write: F) -> Generated<F> {
        Generated {
            signer: target.signer(),
            write,
            sent: 0,
            limit,
            body: String::with_capacity(512),
            request: Vec::with_capacity(1024),
        }
    }
}

impl<F: FnMut(u64, &mut String) + Send> Requests for Generated<F> {
    fn next(&mut self) -> Option<&[u8]> {
        if self.sent >= self.limit {
            return None;
        }
        let n = self.sent;
        self.sent += 1;
        self.body.clear();
        (self.write)(n, &mut self.body);
        self.signer
            .sign_into(&mut self.request, self.body.as_bytes());
        Some(&self.request)
    }
}
