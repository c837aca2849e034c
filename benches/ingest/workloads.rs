//! What the connections send: one [`Workload`] per phase, and for each a request generator per
//! connection.
//!
//! EXTENSION POINT: to add a workload, add a variant, give it a label and a generator in
//! [`Workload::requests`], and run it from a phase in `main.rs` (or a module of its own).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use hookgate::keys::CreatedKey;

use crate::load::Requests;
use crate::mixed::{MIX_KINDS, MixedFixture, MixedRequests};
use crate::support::signing::{RawSigner, now};

/// Where and as whom the load generator sends.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub key_id: String,
    pub secret: String,
    /// Set by the `mixed` set-up.
    pub mixed: Option<Arc<MixedFixture>>,
}

impl Target {
    pub fn new(addr: SocketAddr, key: &CreatedKey) -> Target {
        Target {
            addr,
            key_id: key.key_id.clone(),
            secret: key.secret.clone(),
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
}

impl Workload {
    pub fn label(&self) -> String {
        match self {
            Workload::Healthz => "healthz".into(),
            Workload::TestConnection => "test.connection".into(),
            Workload::CustomerCreated { .. } => "customer.created".into(),
            Workload::VendorCreated { .. } => "vendor.created".into(),
            Workload::Mixed => "mixed".into(),
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
        }
    }
}

/// The envelope of the `test.connection` phase (the seed's example, with our own source).
pub const TEST_CONNECTION_BODY: &[u8] = br#"{"event_type":"test.connection","timestamp":"2025-01-15T10:00:00Z","source":"bench","data":{"test":true}}"#;

/// The same request every time.
struct Fixed(Vec<u8>);

impl Requests for Fixed {
    fn next(&mut self) -> Option<&[u8]> {
        Some(&self.0)
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
