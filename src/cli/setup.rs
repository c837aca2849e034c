//! `hookgate migrate` and `hookgate check-config`: prepare and check an installation without
//! starting the server.

use std::path::Path;
use std::process::ExitCode;

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

/// Every bad setting at once (exit 2), else the effective settings with secrets hidden.
pub(super) fn check_config(path: Option<&Path>) -> ExitCode {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("hookgate: {errors}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = crate::validate::Schemas::compile() {
        eprintln!("hookgate: schemas: {e}");
        return ExitCode::FAILURE;
    }
    println!(
        "configuration is valid (listen {}, database {})",
        config.listen, config.database
    );
    println!("{}", config.effective());
    ExitCode::SUCCESS
}
