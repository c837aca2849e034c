//! The `reads` phase (issue 9, "reads that stay fast as the store grows"): on a fresh
//! database seeded through the server as fast as the connections go — [`LOG_ROWS`] ingest-log
//! rows and [`PROJECTS_PER_CONN`] × 64 projects for the measured company, fewer for two others —
//! filtered ingest-log pages (`GET /api/v1/ingest-log?status=&event_type=`, and `key=`) and
//! `project.search`, exact and fuzzy, each on every connection (throughput) and then on one
//! (the latency of one reader, which the goal is about: at 64 connections on two cores the
//! latency is mostly queueing).

use std::time::{Duration, Instant};

use crate::client::Conn;
use crate::load::{PhaseResult, Window, run_phase};
use crate::report::{Report, Row};
use crate::server::Server;
use crate::workloads::{Target, Workload};
use crate::{BoxError, CONNECTIONS, WARMUP};

/// Ingest-log rows seeded for the measured company (besides its projects').
const LOG_ROWS: u64 = 100_000;
/// Projects seeded per connection for the measured company, and for each other company.
const PROJECTS_PER_CONN: u64 = 80;
const OTHER_PROJECTS_PER_CONN: u64 = 16;
/// Goal (issue 9): a filtered page, and a search, under this at the seeded scale.
const READ_P99_MS: f64 = 50.0;

pub async fn run(measure: Duration, report: &mut Report) -> Result<(), BoxError> {
    let server = Server::start_sqlite("reads.db").await?;
    let key = server.unlimited_key("bench-a", "bench").await?;
    let target = Target::new(server.addr, &key);
    let mut conns = Conn::connect_all(&[target.addr], CONNECTIONS).await?;

    // Seeding: every phase runs until each connection has sent its share.
    let started = Instant::now();
    let forever = Window::new(Duration::ZERO, Duration::from_secs(3600));
    let seed = |result: PhaseResult, report: &mut Report| {
        if result.errors > 0 {
            report.problem(format!("reads seeding: {}", result.error_summary()));
        }
    };
    for company in ["bench-b", "bench-c"] {
        let other = server.unlimited_key(company, "bench").await?;
        let other = Target::new(server.addr, &other);
        let workload = Workload::Projects {
            per_conn: OTHER_PROJECTS_PER_CONN,
        };
        let (returned, result) = run_phase(&workload, &other, conns, forever).await;
        conns = returned;
        seed(result, report);
    }
    let workload = Workload::Projects {
        per_conn: PROJECTS_PER_CONN,
    };
    let (returned, result) = run_phase(&workload, &target, conns, forever).await;
    conns = returned;
    seed(result, report);
    let workload = Workload::LogSeed {
        run: 0,
        per_conn: LOG_ROWS.div_ceil(CONNECTIONS as u64),
    };
    let (returned, result) = run_phase(&workload, &target, conns, forever).await;
    conns = returned;
    seed(result, report);
    server.state.store.flush().await;
    let rows = server.count("SELECT COUNT(*) FROM ingest_log").await?;
    let projects = server
        .count("SELECT COUNT(*) FROM records WHERE kind = 'project'")
        .await?;
    report.note(format!(
        "reads: seeded {rows} ingest-log rows and {projects} projects over 3 companies ({} for the measured one) in {:.1} s",
        PROJECTS_PER_CONN * CONNECTIONS as u64,
        started.elapsed().as_secs_f64()
    ));
    report.note(
        "reads: issue 9 sets its aims at a larger scale: filtered pages under 50 ms at 1M log rows, \
         search exact under 5 ms and fuzzy under 50 ms at 100k projects",
    );

    let workloads = [
        Workload::LogReads,
        Workload::Search {
            exact: true,
            per_conn: PROJECTS_PER_CONN,
        },
        Workload::Search {
            exact: false,
            per_conn: PROJECTS_PER_CONN,
        },
    ];
    for workload in &workloads {
        // At full concurrency: throughput, and latency that is mostly queueing on two cores.
        let (returned, result) =
            run_phase(workload, &target, conns, Window::new(WARMUP, measure)).await;
        conns = returned;
        report.phase(&result);
        // On one connection: what one reader waits, the latency the goal is about.
        let others = conns.split_off(1);
        let (returned, mut result) =
            run_phase(workload, &target, conns, Window::new(WARMUP, measure)).await;
        conns = returned;
        conns.extend(others);
        result.label = format!("  {} (1 conn)", result.label);
        report.check(&result);
        let p99 = result.percentile_ms(0.99);
        report.row(Row::of(&result).goal(format!("p99 < {READ_P99_MS:.0} ms"), p99 < READ_P99_MS));
    }
    drop(conns);
    server.stop().await;
    Ok(())
}
