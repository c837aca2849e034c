//! The `sustained` phase (issue 9, "bounded files"): `BENCH_SUSTAINED_SECS` (default 60) of
//! signed `customer.created` at full speed on a fresh SQLite database, sampling the size of its
//! `-wal` file every [`SAMPLE_EVERY`]. Figures: the peak WAL size, the overall rate, and rate
//! and p99 of the first against the last [`EDGE`] of the run.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::client::Conn;
use crate::load::{Window, run_phase};
use crate::report::{Report, Row};
use crate::server::Server;
use crate::workloads::{Target, Workload};
use crate::{BoxError, CONNECTIONS, WARMUP};

pub const DEFAULT_SECS: u64 = 60;
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// The start and the end compared (shorter when the run is under twice this).
const EDGE: Duration = Duration::from_secs(10);
/// Goal (issue 9): the WAL stays under this at all times.
const WAL_LIMIT_BYTES: u64 = 256 * 1024 * 1024;

pub async fn run(secs: Duration, report: &mut Report) -> Result<(), BoxError> {
    let server = Server::start_sqlite("sustained.db").await?;
    let key = server.unlimited_key("bench", "bench").await?;
    let target = Target::new(server.addr, &key);
    let conns = Conn::connect_all(&[target.addr], CONNECTIONS).await?;

    let mut wal = server
        .sqlite_path()
        .expect("started on SQLite")
        .as_os_str()
        .to_owned();
    wal.push("-wal");
    let (peak, stop) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let sampler = tokio::spawn(sample_wal(wal.into(), peak.clone(), stop.clone()));
    let window = Window {
        warmup: WARMUP,
        measure: secs,
        timeline: true,
    };
    let (conns, mut result) = run_phase(
        &Workload::CustomerCreated { run: 0 },
        &target,
        conns,
        window,
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.await.expect("WAL sampler panicked");
    drop(conns);
    server.stop().await;

    let edge = EDGE.min(secs / 2);
    let (first_rate, first_p99) = result.slice(Duration::ZERO, edge);
    let (last_rate, last_p99) = result.slice(secs - edge, secs);
    let peak = peak.load(Ordering::Relaxed);
    result.label = format!("sustained {} s", secs.as_secs());
    result.timeline = Vec::new();
    report.phase(&result);
    report.row(
        Row::new(
            format!("  WAL peak {:.1} MiB", peak as f64 / (1024.0 * 1024.0)),
            f64::NAN,
            f64::NAN,
            f64::NAN,
        )
        .goal(
            format!("< {} MiB", WAL_LIMIT_BYTES / 1024 / 1024),
            peak < WAL_LIMIT_BYTES,
        ),
    );
    let edge_s = edge.as_secs_f64();
    report.row(Row::new(
        format!("  first {edge_s} s"),
        first_rate,
        f64::NAN,
        first_p99,
    ));
    report.row(
        Row::new(format!("  last {edge_s} s"), last_rate, f64::NAN, last_p99).goal(
            format!("p99 <= first's ({first_p99:.2} ms) +10%"),
            last_p99 <= first_p99 * 1.1,
        ),
    );
    report.note(format!(
        "sustained: {} creates in {} s, WAL sampled {samples} times every {} ms, peak {peak} bytes",
        result.all_ok,
        secs.as_secs(),
        SAMPLE_EVERY.as_millis()
    ));
    Ok(())
}

/// Samples the size of `wal` into `peak` until `stop`; how many samples were taken.
async fn sample_wal(wal: PathBuf, peak: Arc<AtomicU64>, stop: Arc<AtomicBool>) -> u64 {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    let mut samples = 0;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let size = tokio::fs::metadata(&wal).await.map_or(0, |m| m.len());
        peak.fetch_max(size, Ordering::Relaxed);
        samples += 1;
    }
    samples
}
