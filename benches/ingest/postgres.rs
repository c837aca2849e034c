//! The `postgres` phase (issue 10): signed `customer.created` intake on PostgreSQL with 1, 2
//! and 3 gateway nodes (in-process servers sharing one database, the connections spread over
//! them in turn). Runs only when `HOOKGATE_BENCH_POSTGRES` names a server
//! (`postgres://postgres@127.0.0.1:5432/test`); each run creates a database of its own on it
//! and drops it at the end.

use std::net::SocketAddr;
use std::time::Duration;

use tokio_postgres::NoTls;

use crate::client::Conn;
use crate::load::{Window, run_phase};
use crate::report::{Report, Row};
use crate::server::Server;
use crate::workloads::{Target, Workload};
use crate::{BoxError, CONNECTIONS, WARMUP};

/// Nodes per run, one run each.
const NODES: &[usize] = &[1, 2, 3];
/// Goals (issue 10): at least 5x Svix's 2,000/s on one node, p99 under 20 ms.
const SVIX_RATE: f64 = 2_000.0;
const RATE_FACTOR: f64 = 5.0;
const P99_MS: f64 = 20.0;

/// The variable naming the PostgreSQL server.
pub const ENV: &str = "HOOKGATE_BENCH_POSTGRES";

pub async fn run(server_url: &str, measure: Duration, report: &mut Report) -> Result<(), BoxError> {
    let name = format!(
        "hookgate_bench_{}",
        hookgate::crypto::random_id("", 10).to_lowercase()
    );
    admin(server_url, &format!("CREATE DATABASE {name}")).await?;
    let mut url = url::Url::parse(server_url).map_err(|e| format!("{ENV}: {e}"))?;
    url.set_path(&name);
    let result = runs(url.as_str(), measure, report).await;
    admin(
        server_url,
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    )
    .await?;
    result
}

async fn runs(database: &str, measure: Duration, report: &mut Report) -> Result<(), BoxError> {
    let mut nodes: Vec<Server> = Vec::new();
    let mut key = None;
    for (run, &count) in NODES.iter().enumerate() {
        while nodes.len() < count {
            nodes.push(Server::start(database).await?);
        }
        let created = match &key {
            Some(k) => k,
            None => key.insert(nodes[0].unlimited_key("bench", "bench").await?),
        };
        let target = Target::new(nodes[0].addr, created);
        let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
        let conns = Conn::connect_all(&addrs, CONNECTIONS).await?;
        let (conns, mut result) = run_phase(
            &Workload::CustomerCreated { run },
            &target,
            conns,
            Window::new(WARMUP, measure),
        )
        .await;
        drop(conns);
        result.label = format!("postgres {count} node{}", if count == 1 { "" } else { "s" });
        report.check(&result);
        let p99 = result.percentile_ms(0.99);
        let goal = RATE_FACTOR * SVIX_RATE;
        let row = Row::of(&result);
        report.row(if count == 1 {
            row.goal(
                format!(">= {goal:.0}/s (5x Svix), p99 < {P99_MS:.0} ms"),
                result.rate() >= goal && p99 < P99_MS,
            )
        } else {
            row
        });
    }
    for node in nodes {
        node.stop().await;
    }
    Ok(())
}

/// Runs `sql` on the server named by the variable (creating and dropping the run's database).
async fn admin(server: &str, sql: &str) -> Result<(), BoxError> {
    let (client, connection) = tokio_postgres::connect(server, NoTls)
        .await
        .map_err(|e| format!("{ENV}={server} does not answer: {e}"))?;
    let driver = tokio::spawn(connection);
    client
        .batch_execute(sql)
        .await
        .map_err(|e| format!("{sql}: {e}"))?;
    drop(client);
    let _ = driver.await;
    Ok(())
}
