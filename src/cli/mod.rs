//! The command line: one file per command group (`serve`, `keys`, `tail`, `skills` and
//! `work-types`, `webhooks`, `deliveries`, `migrate` and `check-config`). Every command reads
//! the same config (file, then `HOOKGATE_*`), and works while the server is running (SQLite
//! allows one writer at a time; the others wait).

mod catalog;
mod deliveries;
mod keys;
mod serve;
mod setup;
mod tail;
mod webhooks;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::clock;
use crate::config::{Config, LogFormat};
use crate::store::Store;

#[derive(Parser)]
#[command(name = "hookgate", version, about = "Inbound webhook gateway")]
pub struct Cli {
    /// Config file (default: config/hookgate.toml if present, else built-in defaults).
    #[arg(long, global = true, env = "HOOKGATE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (creates a `dev` key on an empty database and prints it).
    Serve,
    /// Manage API keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Print the ingest log; with --follow, stream new entries live.
    Tail(tail::TailArgs),
    /// Manage a company's skill library.
    #[command(subcommand)]
    Skills(catalog::SkillsCommand),
    /// Manage a company's work types.
    #[command(subcommand, name = "work-types")]
    WorkTypes(catalog::WorkTypesCommand),
    /// Inspect outbound subscriptions.
    #[command(subcommand)]
    Webhooks(webhooks::WebhooksCommand),
    /// Inspect and retry outbound deliveries.
    #[command(subcommand)]
    Deliveries(deliveries::DeliveriesCommand),
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Load and validate the configuration (and the schemas), then exit.
    CheckConfig,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hookgate: {e}");
            return ExitCode::from(2);
        }
    };
    let serving = matches!(cli.command, Command::Serve);
    init_logging(&config, serving);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli.command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hookgate: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &Config, serving: bool) {
    let default = if serving { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve::run(config).await,
        Command::Keys(c) => keys::run(c, config).await,
        Command::Tail(a) => tail::run(a, config).await,
        Command::Skills(c) => catalog::skills(c, config).await,
        Command::WorkTypes(c) => catalog::work_types(c, config).await,
        Command::Webhooks(c) => webhooks::run(c, config).await,
        Command::Deliveries(c) => deliveries::run(c, config).await,
        Command::Migrate => setup::migrate(&config),
        Command::CheckConfig => setup::check_config(&config),
    }
}

/// The id of the company called `name`, creating it (with the default work types) if new.
async fn company_id(store: &Store, name: &str) -> anyhow::Result<String> {
    let name = name.to_string();
    Ok(store
        .write(move |tx| {
            let id = tx.ensure_company(
                &name,
                &crate::crypto::random_id("co_", 8),
                clock::now_secs(),
            )?;
            crate::skills::ensure_default_work_types(tx, &id)?;
            Ok(id)
        })
        .await?)
}
