//! `hookgate serve`: runs the gateway until SIGTERM or Ctrl-C, printing a `dev` key on the
//! first start.

use super::Format;
use super::keys::print_created_key;
use crate::app::{self, AppState};
use crate::config::Config;

pub(super) async fn run(config: Config) -> anyhow::Result<()> {
    tracing::info!(settings = %config.effective(), "effective settings");
    let state = AppState::build(config)?;
    if let Some(key) = state.create_dev_key_if_empty().await? {
        println!("Created a development API key (shown once):");
        print_created_key(&key, Format { json: false });
    }
    app::serve(state, shutdown_signal()).await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
