//! `hookgate migrate` and `hookgate check-config`: prepare and check an installation without
//! starting the server.

use crate::app;
use crate::config::Config;

pub(super) fn migrate(config: &Config) -> anyhow::Result<()> {
    app::open_store(config)?;
    println!(
        "database {} is at schema version {}",
        config.database,
        crate::store::latest_version()
    );
    Ok(())
}

pub(super) fn check_config(config: &Config) -> anyhow::Result<()> {
    crate::validate::Schemas::compile().map_err(anyhow::Error::msg)?;
    println!(
        "configuration is valid (listen {}, database {})",
        config.listen, config.database
    );
    Ok(())
}
