//! The server under test: the real gateway in-process on 127.0.0.1, with its outbound delivery
//! worker, as `hookgate serve` runs it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hookgate::app::AppState;
use hookgate::config::Config;
use hookgate::keys::{CreatedKey, KeyOptions};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::BoxError;

/// A running gateway and the means to stop it.
pub struct Server {
    pub state: Arc<AppState>,
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    /// A SQLite server's database file, in a temporary directory removed after the server.
    sqlite: Option<(PathBuf, tempfile::TempDir)>,
}

impl Server {
    /// Starts a gateway on a fresh SQLite file `file_name` in a temporary directory.
    pub async fn start_sqlite(file_name: &str) -> Result<Server, BoxError> {
        let dir = tempfile::Builder::new()
            .prefix("hookgate-bench-")
            .tempdir()?;
        let database = dir.path().join(file_name);
        let mut server = Server::start(database.to_str().ok_or("temp path is not UTF-8")?).await?;
        server.sqlite = Some((database, dir));
        Ok(server)
    }

    /// The SQLite database file (`None` on PostgreSQL).
    pub fn sqlite_path(&self) -> Option<&Path> {
        self.sqlite.as_ref().map(|(path, _)| path.as_path())
    }

    /// Starts a gateway on `database` (a SQLite file path or a PostgreSQL URL).
    pub async fn start(database: &str) -> Result<Server, BoxError> {
        let database = database.to_string();
        let config = Config::load_with_env(None, |name| {
            Some(match name {
                "HOOKGATE_DATABASE" => database.clone(),
                // Fixed rather than generated: every node of a run must share it.
                "HOOKGATE_MASTER_KEY" => "5a".repeat(32),
                // No tracing subscriber is installed, so nothing is logged either way.
                "HOOKGATE_LOG_FORMAT" => "json".into(),
                "HOOKGATE_LISTEN" => "127.0.0.1:0".into(),
                "HOOKGATE_SHUTDOWN_GRACE_SECS" => "5".into(),
                // The receiver is http://127.0.0.1: the SSRF guard lets it through only with
                // these two, as the API tests set them.
                "HOOKGATE_ALLOW_HTTP_URLS" => "true".into(),
                "HOOKGATE_ALLOW_PRIVATE_URLS" => "true".into(),
                // The read phase calls the management API far beyond its default limits.
                "HOOKGATE_REST_PER_MINUTE" | "HOOKGATE_REST_PER_HOUR" | "HOOKGATE_REST_PER_DAY" => {
                    "1000000000".into()
                }
                // Any other setting as this run's environment gives it, so that a run can try
                // other values (`HOOKGATE_PER_SUBSCRIPTION_CONCURRENCY=256 cargo bench ...`).
                _ => return std::env::var(name).ok(),
            })
        })?;
        let state = AppState::build(config)?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(hookgate::app::run(listener, state.clone(), async move {
            let _ = stopped.await;
        }));
        Ok(Server {
            state,
            addr,
            stop,
            task,
            sqlite: None,
        })
    }

    /// An API key of `company` whose rate limits this run can never reach (the limiter must
    /// never answer 429).
    pub async fn unlimited_key(&self, company: &str, name: &str) -> Result<CreatedKey, BoxError> {
        Ok(self
            .state
            .keys
            .create(
                company,
                name,
                KeyOptions {
                    per_minute: Some(u32::MAX / 2),
                    per_hour: Some(u32::MAX / 2),
                    ..Default::default()
                },
            )
            .await?)
    }

    /// A single number (`SELECT COUNT(*) ...`) read through the store, so on either backend.
    pub async fn count(&self, sql: &'static str) -> Result<i64, BoxError> {
        let rows = self.state.store.read(move |r| r.query_rows(sql)).await?;
        let first = rows.first().ok_or_else(|| format!("no row: {sql}"))?;
        Ok(first.i64(0)?)
    }

    /// The group-commit writer's (batches, jobs) so far.
    pub fn batch_stats(&self) -> (u64, u64) {
        self.state.store.batch_stats()
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        if tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .is_err()
        {
            eprintln!("warning: the server did not shut down within 10 s");
        }
    }
}
