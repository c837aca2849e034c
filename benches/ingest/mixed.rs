//! The `mixed` phase: signed entity envelopes in a fixed cycle of ten per connection: three
//! `work_order.created`, three `work_order.updated`, two `timesheet.created`, two fuzzy
//! `project.search` (see [`MIX_CYCLE`]), on records its set-up creates first.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::BoxError;
use crate::client::Conn;
use crate::load::Requests;
use crate::server::Server;
use crate::support::signing::RawSigner;
use crate::workloads::{Target, project_name_among};

/// Work orders created per connection in the set-up (updated in turn, and referred to by that
/// connection's timesheet entries).
const WORK_ORDERS_PER_CONN: usize = 4;
/// Projects in the set-up, so that fuzzy search has some names to rank.
pub const PROJECTS: usize = 48;
/// The project the work orders belong to.
const MIXED_PROJECT: &str = "PRJ-BENCH-000";
/// `project.search` terms, in turn: exact substrings and typos.
const SEARCH_TERMS: &[&str] = &[
    "Skyline",
    "Skylin Towr",
    "harbor brige",
    "Summit Office",
    "granite",
    "Bench Towr",
];

/// Request kinds, indexed by [`Requests::kind`].
pub const MIX_KINDS: &[&str] = &[
    "work_order.created",
    "work_order.updated",
    "timesheet.created",
    "project.search",
];
/// The order of [`MIX_KINDS`] within one cycle of ten requests: 30/30/20/20. Each connection
/// starts at a different point of the cycle, so all kinds are in flight at any moment.
const MIX_CYCLE: [usize; 10] = [0, 1, 2, 3, 0, 1, 2, 3, 0, 1];

/// Records created by [`setup`] for the phase to refer to.
pub struct MixedFixture {
    /// `emp_number` of each connection's own employee (its timesheets never collide).
    employees: Vec<String>,
    /// Each connection's own work orders: it updates them in turn (no two connections update
    /// the same one, so each update's new value is known to differ from the stored one) and
    /// books its timesheet entries on them.
    work_orders: Vec<Vec<String>>,
}

/// The generator of one connection. Every body is unique and signed on its own.
pub struct MixedRequests {
    signer: RawSigner,
    fixture: Arc<MixedFixture>,
    conn: usize,
    sent: u64,
    /// Requests generated so far of each kind (numbers the creates, dates the timesheets).
    per_kind: [u64; MIX_KINDS.len()],
    kind: usize,
    body: String,
    request: Vec<u8>,
}

impl MixedRequests {
    pub fn new(target: &Target, conn: usize) -> MixedRequests {
        MixedRequests {
            signer: target.signer(),
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
        }
    }
}

impl Requests for MixedRequests {
    fn next(&mut self) -> Option<&[u8]> {
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
        Some(&self.request)
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

/// `work_order.updated` requests answered 200, and `work_order.updated` events emitted: an
/// update that changed nothing answers 200 but emits no event, so equal counts show that every
/// update of the phase did real work.
pub async fn count_updates(server: &Server) -> Result<UpdateCheck, BoxError> {
    Ok(UpdateCheck {
        answered: server
            .count("SELECT COUNT(*) FROM ingest_log WHERE event_type = 'work_order.updated' AND status = 200")
            .await?,
        emitted: server
            .count("SELECT COUNT(*) FROM events WHERE event_type = 'work_order.updated'")
            .await?,
    })
}

#[derive(Clone, Copy)]
pub struct UpdateCheck {
    pub answered: i64,
    pub emitted: i64,
}

/// Sends one signed set-up request and returns its JSON body; anything but a 200 is an error.
pub async fn send_ok(
    conn: &mut Conn,
    signer: &RawSigner,
    request: &mut Vec<u8>,
    body: &str,
) -> Result<serde_json::Value, BoxError> {
    signer.sign_into(request, body.as_bytes());
    let (status, answer) = conn
        .call(request)
        .await
        .map_err(|e| format!("set-up request failed ({e}): {body}"))?;
    if status != 200 {
        return Err(format!("set-up request got HTTP {status} {answer} for {body}").into());
    }
    Ok(answer)
}

/// Project `i` of the set-up: 0 is the one the work orders belong to, the others give fuzzy
/// search names to rank.
fn project_body(i: usize) -> String {
    // The set-up's projects are every combination of the first 8 prefixes and 6 suffixes.
    let name = if i == 0 {
        "Bench Tower Construction".to_string()
    } else {
        project_name_among(i - 1, 8, 6)
    };
    format!(
        r#"{{"event_type":"project.created","timestamp":"2025-01-10T09:00:00Z","source":"bench","data":{{"project_code":"PRJ-BENCH-{i:03}","project_name":"{name}","customer_name":"Bench Customer {i}","location_name":"Bench Site {i}"}}}}"#
    )
}

/// Creates what the phase refers to, through the inbound API: [`PROJECTS`] projects, then on
/// every connection at once its employee and its [`WORK_ORDERS_PER_CONN`] work orders.
pub async fn setup(
    target: &Target,
    mut conns: Vec<Conn>,
) -> Result<(Vec<Conn>, MixedFixture), BoxError> {
    let signer = target.signer();
    let mut request = Vec::new();
    // First, alone: every work order below belongs to it.
    send_ok(&mut conns[0], &signer, &mut request, &project_body(0)).await?;
    let count = conns.len();
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, mut conn)| {
            let signer = signer.clone();
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
    let mut conns = Vec::with_capacity(count);
    let mut fixture = MixedFixture {
        employees: Vec::with_capacity(count),
        work_orders: Vec::with_capacity(count),
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
