//! The `outbound` phase (issue 11): subscribers on a local receiver under sustained maximum
//! intake. For each entry of [`SUBSCRIPTIONS`], on a fresh server: the connections send
//! `vendor.created` changes for the measured time while a probe change goes out every
//! [`PROBE_EVERY`] on a connection of its own; the receiver counts deliveries and notes when
//! each probe arrived. Figures: intake req/s, deliveries/s during the load, their ratio, the
//! probes' lag (send to arrival at the last subscription), and the backlog left.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::client::Conn;
use crate::fanout::Deliveries;
use crate::load::{Window, percentile_ms, process_cpu_secs, run_phase};
use crate::report::{Report, Row};
use crate::server::Server;
use crate::support::receiver::Arrival;
use crate::workloads::{Target, Workload};
use crate::{BoxError, CONNECTIONS, Intake};

/// Subscriptions per run, one run each (`BENCH_OUTBOUND_SUBSCRIPTIONS=1,10` runs only those).
pub const SUBSCRIPTIONS: &[usize] = &[1, 10, 100];

/// How often a probe change is sent during the load.
const PROBE_EVERY: Duration = Duration::from_millis(100);
/// Goals (issue 11).
const DELIVERY_RATIO: f64 = 0.9;
const PROBE_LAG_P99_MS: f64 = 250.0;
const FANOUT_DELIVERIES_PER_SEC: f64 = 20_000.0;
const FANOUT_INTAKE_RATIO: f64 = 0.7;
/// The name probes carry, followed by `{run}-{n}`.
const PROBE: &str = "Bench Probe ";

/// Probe send and arrival times, by (run, probe number).
#[derive(Default)]
struct Probes {
    sent: HashMap<(usize, u64), Instant>,
    /// The latest arrival and how many subscriptions it reached.
    arrived: HashMap<(usize, u64), (Instant, usize)>,
}

/// The probe number of a delivery body, if it carries one.
fn probe_of(body: &[u8]) -> Option<(usize, u64)> {
    let at = memchr::memmem::find(body, PROBE.as_bytes())?;
    let rest = &body[at + PROBE.len()..];
    let end = rest.iter().position(|b| *b == b'"')?;
    let (run, n) = std::str::from_utf8(&rest[..end]).ok()?.split_once('-')?;
    Some((run.parse().ok()?, n.parse().ok()?))
}

/// One run per entry of `counts` (subscriptions); `intake` is the no-subscriber intake of this
/// run (the `intake` phase), if measured.
pub async fn run(
    counts: &[usize],
    measure: Duration,
    intake: Option<Intake>,
    report: &mut Report,
) -> Result<(), BoxError> {
    let probes = Arc::new(Mutex::new(Probes::default()));
    let seen = probes.clone();
    let deliveries = Deliveries::start(counts.len(), move |arrival: &Arrival<'_>| {
        if let Some(probe) = probe_of(arrival.body) {
            let now = Instant::now();
            let mut probes = seen.lock().expect("probe lock");
            let entry = probes.arrived.entry(probe).or_insert((now, 0));
            entry.0 = entry.0.max(now);
            entry.1 += 1;
        }
    })
    .await;
    for (run, &subscriptions) in counts.iter().enumerate() {
        one(
            &deliveries,
            &probes,
            (run, subscriptions),
            measure,
            intake,
            report,
        )
        .await?;
    }
    Ok(())
}

async fn one(
    deliveries: &Deliveries,
    probes: &Arc<Mutex<Probes>>,
    (run, subscriptions): (usize, usize),
    measure: Duration,
    intake: Option<Intake>,
    report: &mut Report,
) -> Result<(), BoxError> {
    let server = Server::start_sqlite("outbound.db").await?;
    let key = server.unlimited_key("bench", "bench").await?;
    // The subscriptions belong to another key of the same company: deliveries of changes made
    // by their own key would be skipped as echoes.
    let subscriber = server
        .state
        .keys
        .create("bench", "bench-subscriber", Default::default())
        .await?;
    let target = Target::new(server.addr, &key);
    eprintln!("outbound: {subscriptions} subscription(s)");
    let mut rest = Conn::connect(target.addr).await?;
    // The server is stopped after the run: its subscriptions need no deleting.
    deliveries
        .subscribe(
            &mut rest,
            &subscriber,
            run,
            subscriptions,
            &["vendor.created"],
        )
        .await?;
    drop(rest);
    let conns = Conn::connect_all(&[target.addr], CONNECTIONS).await?;

    let stop = Arc::new(tokio::sync::Notify::new());
    let prober = tokio::spawn(send_probes(
        target.clone(),
        run,
        probes.clone(),
        stop.clone(),
    ));
    let before = deliveries.distinct(run);
    let started = Instant::now();
    let (conns, mut inbound) = run_phase(
        &Workload::VendorCreated { run },
        &target,
        conns,
        Window::new(Duration::ZERO, measure),
    )
    .await;
    let during = deliveries.distinct(run) - before;
    let load_time = started.elapsed();
    stop.notify_one();
    let probe_result = prober.await.expect("probe task panicked");
    drop(conns);
    inbound.label = format!("outbound x{subscriptions} intake");
    report.check(&inbound);
    if let Err(e) = &probe_result {
        report.problem(format!("outbound x{subscriptions} probes: {e}"));
    }
    let probes_sent = probe_result.unwrap_or(0);

    // Everything applied, probes included, is due at every subscription.
    let expected = (inbound.all_ok + probes_sent) * subscriptions as u64;
    let backlog = expected.saturating_sub(deliveries.distinct(run));
    let (drain_started, drain_cpu, at_drain) =
        (Instant::now(), process_cpu_secs(), deliveries.distinct(run));
    let stalled = deliveries.drain(run, expected).await;
    let drain_cpu = process_cpu_secs() - drain_cpu;
    let drain_time = drain_started.elapsed();
    let delivered = deliveries.distinct(run);
    let duplicates = deliveries.requests(run).saturating_sub(delivered);
    if duplicates > 0 {
        report.problem(format!(
            "outbound x{subscriptions}: {duplicates} deliveries arrived more than once"
        ));
    }
    if stalled {
        report.problem(format!(
            "outbound x{subscriptions}: deliveries stopped with {} of {expected} missing",
            expected - delivered
        ));
    }
    server.stop().await;

    let delivery_rate = during as f64 / load_time.as_secs_f64();
    let intake_rate = inbound.rate();
    let ratio = delivery_rate / (intake_rate * subscriptions as f64);
    let probe_lags = probe_lags(probes, run, subscriptions);
    let lags: Vec<u32> = probe_lags.iter().map(|(lag, _)| *lag).collect();
    let mut intake_row = Row::of(&inbound);
    if subscriptions > 1
        && let Some(Intake { rate: base, .. }) = intake
    {
        intake_row = intake_row.goal(
            format!(">= {FANOUT_INTAKE_RATIO} of intake ({base:.0}/s)"),
            intake_rate >= FANOUT_INTAKE_RATIO * base,
        );
    }
    report.row(intake_row);
    let deliveries_row = Row::new(
        format!("outbound x{subscriptions} deliveries/s"),
        delivery_rate,
        f64::NAN,
        f64::NAN,
    );
    report.row(if subscriptions == 1 {
        deliveries_row.goal(
            format!("deliveries/intake >= {DELIVERY_RATIO} ({ratio:.2})"),
            ratio >= DELIVERY_RATIO,
        )
    } else {
        deliveries_row.goal(
            format!(">= {FANOUT_DELIVERIES_PER_SEC:.0}/s in total"),
            delivery_rate >= FANOUT_DELIVERIES_PER_SEC,
        )
    });
    let p99 = percentile_ms(&lags, 0.99);
    let lag_row = Row::new(
        format!("outbound x{subscriptions} probe lag"),
        f64::NAN,
        percentile_ms(&lags, 0.50),
        p99,
    );
    report.row(if subscriptions == 1 {
        lag_row.goal(
            format!("p99 < {PROBE_LAG_P99_MS:.0} ms"),
            p99 < PROBE_LAG_P99_MS,
        )
    } else {
        lag_row
    });
    report.note(format!(
        "outbound x{subscriptions}: {} changes and {probes_sent} probes applied in {:.1} s, {expected} deliveries due, \
         {during} received during the load ({ratio:.2} of intake per subscription), backlog {backlog} when it stopped, \
         {} still missing after draining, {duplicates} re-sent",
        inbound.all_ok,
        load_time.as_secs_f64(),
        expected.saturating_sub(delivered),
    ));
    let slowest: Vec<String> = probe_lags
        .iter()
        .rev()
        .take(3)
        .map(|(lag, n)| {
            let at = (*n as u32 * PROBE_EVERY).as_secs_f64();
            format!("{:.0} ms (sent {at:.1} s in)", f64::from(*lag) / 1000.0)
        })
        .collect();
    report.note(format!(
        "outbound x{subscriptions}: slowest probes: {}",
        slowest.join(", ")
    ));
    // What a delivery costs with nothing else running: the drain after the load.
    let drained = delivered - at_drain;
    if drained >= 1_000 {
        report.note(format!(
            "outbound x{subscriptions}: drain after the load: {drained} deliveries at {:.0}/s, {:.0} µs of CPU each (receiver included)",
            drained as f64 / drain_time.as_secs_f64(),
            drain_cpu * 1e6 / drained as f64,
        ));
    }
    // What a delivery costs: the load's CPU time less what its creates would have cost
    // without subscribers (the `intake` phase's cost per create), over the deliveries made.
    if let Some(Intake {
        cpu_per_create_us, ..
    }) = intake
        && during > 0
    {
        let creates_us = cpu_per_create_us * inbound.all_ok as f64;
        report.note(format!(
            "outbound x{subscriptions}: {:.2} cores busy; {:.0} µs of CPU per delivery beyond {cpu_per_create_us:.0} µs per create",
            inbound.cores_busy(),
            (inbound.cpu_secs * 1e6 - creates_us) / during as f64,
        ));
    }
    Ok(())
}

/// Sends a probe change every [`PROBE_EVERY`] until `stop`; how many were applied.
async fn send_probes(
    target: Target,
    run: usize,
    probes: Arc<Mutex<Probes>>,
    stop: Arc<tokio::sync::Notify>,
) -> Result<u64, BoxError> {
    let mut conn = Conn::connect(target.addr).await?;
    let signer = target.signer();
    let mut request = Vec::new();
    let mut tick = tokio::time::interval(PROBE_EVERY);
    let mut n = 0;
    loop {
        tokio::select! {
            _ = stop.notified() => return Ok(n),
            _ = tick.tick() => {}
        }
        let body = format!(
            r#"{{"event_type":"vendor.created","timestamp":"2025-01-15T08:00:00Z","source":"bench","data":{{"vendor_name":"{PROBE}{run}-{n}","type":"subcontractor","city":"Chicago","state":"IL"}}}}"#
        );
        signer.sign_into(&mut request, body.as_bytes());
        let sent = Instant::now();
        probes
            .lock()
            .expect("probe lock")
            .sent
            .insert((run, n), sent);
        let (status, answer) = conn.call(&request).await?;
        if status != 200 {
            return Err(format!("probe answered HTTP {status} {answer}").into());
        }
        n += 1;
    }
}

/// Each probe's lag in µs with its number, sorted by lag: until it reached every subscription,
/// or until now for one that did not (a lower bound).
fn probe_lags(probes: &Mutex<Probes>, run: usize, subscriptions: usize) -> Vec<(u32, u64)> {
    let probes = probes.lock().expect("probe lock");
    let now = Instant::now();
    let mut lags: Vec<(u32, u64)> = probes
        .sent
        .iter()
        .filter(|((r, _), _)| *r == run)
        .map(|(probe, sent)| {
            let arrived = match probes.arrived.get(probe) {
                Some(&(at, count)) if count >= subscriptions => at,
                _ => now,
            };
            let lag = u32::try_from((arrived - *sent).as_micros()).unwrap_or(u32::MAX);
            (lag, probe.1)
        })
        .collect();
    lags.sort_unstable();
    lags
}
