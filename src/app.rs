//! Start-up: builds the shared [`AppState`] from a [`Config`] (store, master key, schemas,
//! limits) and runs the server (the HTTP edge, the delivery worker and housekeeping) until
//! shutdown. The top of the crate: nothing but the command line imports it.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::Config;
use crate::crypto::MasterKey;
use crate::keys::{CreatedKey, KeyOptions, Keys};
use crate::metrics::Metrics;
use crate::outbound::Outbound;
use crate::ratelimit::RateLimits;
use crate::store::{Store, StoreOptions, is_postgres_url};
use crate::validate::Schemas;
use crate::verify::VerifySettings;

pub use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    MasterKey(#[from] crate::crypto::MasterKeyError),
    #[error("schemas: {0}")]
    Schemas(String),
    #[error(transparent)]
    Keys(#[from] crate::keys::KeyError),
    #[error(transparent)]
    WrongMasterKey(#[from] crate::master_key::CheckError),
    #[error("cannot reach Redis for the shared rate limits (redis_url / HOOKGATE_REDIS_URL): {0}")]
    Redis(String),
    #[error("cannot listen on {0}: {1}")]
    Listen(String, std::io::Error),
}

/// Where the generated development master key lives: next to a SQLite database, or in
/// `data/` beside a PostgreSQL one.
pub(crate) fn master_key_path(config: &Config) -> PathBuf {
    if is_postgres_url(&config.database) {
        return PathBuf::from("data/master.key");
    }
    std::path::Path::new(&config.database)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| p.join("master.key"))
        .unwrap_or_else(|| PathBuf::from("master.key"))
}

/// How the configuration asks for the store to be opened.
pub(crate) fn store_options(config: &Config) -> StoreOptions {
    StoreOptions {
        database: config.database.clone(),
        max_batch: config.writer.max_batch,
        writers: config.writer.connections,
        wal_restart_bytes: config.writer.wal_restart_bytes,
        max_database_bytes: config.writer.max_database_bytes,
    }
}

/// Opens the store and loads the master key, refusing a key that is not the one the stored
/// secrets are sealed with: what both the server and the CLI need.
pub(crate) fn open_store(config: &Config) -> Result<(Store, Keys), StartError> {
    let store = Store::open(&store_options(config))?;
    let key_file = master_key_path(config);
    let (master, from_file) = MasterKey::load_or_generate(&config.master_key.0, &key_file)?;
    let origin = crate::master_key::origin(!from_file, &key_file);
    crate::master_key::verify_blocking(&store, &master, &origin)?;
    let keys = Keys::new(store.clone(), master);
    Ok((store, keys))
}

impl AppState {
    pub fn build(config: Config) -> Result<Arc<AppState>, StartError> {
        let (store, keys) = open_store(&config)?;
        if config.master_key.0.is_empty() {
            tracing::warn!(
                path = %master_key_path(&config).display(),
                "using the master key from a file next to the database (fine for development); set HOOKGATE_MASTER_KEY in production"
            );
        }
        let schemas = Schemas::compile()
            .map_err(StartError::Schemas)?
            .with_max_listed_violations(config.max_listed_violations);
        let metrics = Arc::new(Metrics::default());
        let outbound = Arc::new(Outbound::new(
            store.clone(),
            keys.clone(),
            config.outbound.clone(),
            metrics.clone(),
        ));
        Ok(Arc::new(AppState {
            outbound,
            limits: RateLimits::new(config.rate_limit.clone(), &config.redis_url),
            verify_settings: VerifySettings {
                public_url: config.public_url.clone(),
                timestamp_tolerance_secs: config.timestamp_tolerance_secs,
                dynamics_header: config.dynamics_header.to_ascii_lowercase(),
            },
            metrics,
            console: crate::admin::Sessions::new(config.console.session_idle_secs),
            providers: crate::providers::Providers::default(),
            schemas: Arc::new(schemas),
            store,
            keys,
            config,
        }))
    }

    /// On a database with no key at all, creates a `dev` company with a `dev` key so that a
    /// newcomer can send a first request. Returns it (the caller prints it once).
    pub(crate) async fn create_dev_key_if_empty(&self) -> Result<Option<CreatedKey>, StartError> {
        let count = self.store.read(|r| r.count_keys()).await?;
        if count > 0 {
            return Ok(None);
        }
        Ok(Some(
            self.keys
                .create("dev", "dev", KeyOptions::default())
                .await?,
        ))
    }
}

/// Binds the configured address and serves until `shutdown` resolves.
pub(crate) async fn serve(
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    state
        .limits
        .connect_shared()
        .await
        .map_err(|e| StartError::Redis(e.to_string()))?;
    let addr = state.config.listen.clone();
    let listener = TcpListener::bind(&addr)
        .await
        .map_err(|e| StartError::Listen(addr.clone(), e))?;
    tracing::info!(listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or(addr), "hookgate listening");
    run(listener, state, shutdown).await;
    Ok(())
}

/// Serves HTTP on `listener` and runs the delivery worker beside it, until `shutdown`.
/// In-flight requests finish first; deliveries in flight are retried after a restart.
pub async fn run(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (stop_worker, worker_stopped) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(crate::outbound::run(state.outbound.clone(), worker_stopped));
    let maintenance = tokio::spawn(maintain(state.clone()));
    crate::http::run(listener, state.clone(), shutdown).await;
    maintenance.abort();
    let _ = stop_worker.send(true);
    let _ = worker.await;
    // Every queued write, including the ingest-log rows of rejected requests that nobody
    // waited for.
    state.store.flush().await;
}

/// Periodic housekeeping: prunes history past its retention period, in small batches so that
/// intake never waits long behind a delete.
async fn maintain(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        tick.tick().await;
        if let Err(e) = crate::retention::prune(&state.store, &state.config).await {
            tracing::warn!(error = %e, "pruning old history failed");
        }
    }
}
