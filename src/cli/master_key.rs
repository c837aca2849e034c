//! `hookgate master-key rotate`: re-seal every stored secret under a new master key.

use anyhow::Context;
use clap::Subcommand;

use crate::app;
use crate::config::Config;
use crate::crypto::MasterKey;

#[derive(Subcommand)]
pub(super) enum MasterKeyCommand {
    /// Re-seal every stored secret under a new master key (stop the server first; start it
    /// again with the new key).
    Rotate {
        /// The new key: 64 hex characters (e.g. `openssl rand -hex 32`).
        #[arg(long, env = "HOOKGATE_NEW_MASTER_KEY", hide_env_values = true)]
        new_key: String,
    },
}

/// Re-seals every secret under the new key. A key kept in the development key file is
/// replaced there too: written beside it first, moved over it once the database committed.
pub(super) async fn run(command: MasterKeyCommand, config: Config) -> anyhow::Result<()> {
    let MasterKeyCommand::Rotate { new_key } = command;
    let new = MasterKey::from_hex(&new_key)
        .map_err(|_| anyhow::anyhow!("--new-key must be 64 hex characters"))?;
    let (store, _keys) = app::open_store(&config)?;
    let key_file = app::master_key_path(&config);
    let (current, from_file) = MasterKey::load_or_generate(&config.master_key.0, &key_file)?;
    let pending = key_file.with_extension("key.new");
    if from_file {
        let _ = std::fs::remove_file(&pending);
        crate::crypto::write_private(&pending, new_key.trim())
            .with_context(|| format!("cannot write {}", pending.display()))?;
    }
    let count = crate::master_key::rotate(&store, current, new).await?;
    println!("re-sealed {count} secret(s) under the new master key");
    if from_file {
        std::fs::rename(&pending, &key_file)
            .with_context(|| format!("move {} to {}", pending.display(), key_file.display()))?;
        println!("the new key is in {}", key_file.display());
    } else {
        println!("start hookgate with HOOKGATE_MASTER_KEY set to the new key");
    }
    Ok(())
}
