//! `hookgate serve`: runs the gateway until SIGTERM or Ctrl-C, printing a `dev` key on the
//! first start.

use crate::app::{self, AppState};
use crate::config::Config;

pub(super) async fn run(config: Config) -> anyhow::Result<()> {
    let state = AppState::build(config)?;
    if let Some(key) = state.create_dev_key_if_empty().await? {
        println!("Created a development API key (shown once):");
        println!("  X-API-Key:      {}", key.key_id);
        println!("  signing secret: {}", key.secret);
        println!("  REST API token: {}", key.api_token);
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
