//! The command line: one file per command group (`serve`, `keys`, `tail`, `skills` and
//! `work-types`, `webhooks`, `deliveries`, `events`, `master-key`, `migrate`, `check-config`
//! and `completions`). Every command reads the same config (file, then `HOOKGATE_*`), opens the
//! database directly (so it works while the server is running; SQLite allows one writer at a
//! time, the others wait), and calls the same operations as the REST API.
//!
//! One output form: `--json` prints JSON Lines, one compact object per line (a list prints a
//! line per item), each the same object the REST API puts in `data`. Without `--json`, text.
//! Errors go to stderr as a `hookgate: …` line (with the allowed values where there are some);
//! bad input (an unknown `--status`, a URL the API would refuse) exits with 2, any other failure
//! with 1.

mod catalog;
mod deliveries;
mod events;
mod keys;
mod master_key;
mod providers;
mod serve;
mod setup;
mod tail;
mod webhooks;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, CommandFactory, Parser, Subcommand};
use serde_json::Value;

use crate::app;
use crate::clock;
use crate::config::{Config, LogFormat};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::outbound::Outbound;
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
    /// Manage outbound subscriptions.
    #[command(subcommand)]
    Webhooks(webhooks::WebhooksCommand),
    /// Inspect and retry outbound deliveries.
    #[command(subcommand)]
    Deliveries(deliveries::DeliveriesCommand),
    /// The event catalog.
    #[command(subcommand)]
    Events(events::EventsCommand),
    /// Manage the master key that seals stored secrets.
    #[command(subcommand, name = "master-key")]
    MasterKey(master_key::MasterKeyCommand),
    /// The providers whose own webhooks the gateway takes (native intake).
    #[command(subcommand)]
    Providers(providers::ProvidersCommand),
    /// Manage keys' mappings of provider events onto envelopes.
    #[command(subcommand)]
    Mappings(providers::MappingsCommand),
    /// Show one ingest-log entry with its kept request (headers, body) and answer.
    Inspect {
        /// An ingest-log id or a request id (`req_…`).
        id: String,
        #[command(flatten)]
        format: Format,
    },
    /// Run kept requests through the pipeline again (after a fix), one or by filter.
    Replay(providers::ReplayArgs),
    /// Send a signed example of an inbound event type (or a provider's event) to a gateway.
    Trigger(providers::TriggerArgs),
    /// Forward a company's outbound events to a local URL, signed as a subscription's.
    Listen(providers::ListenArgs),
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Check the configuration (and the schemas) and print the effective settings; reports
    /// every bad value at once, naming the setting or environment variable.
    CheckConfig,
    /// Print a shell completion script, e.g. `hookgate completions bash > /etc/bash_completion.d/hookgate`.
    Completions {
        /// The shell to complete in.
        shell: clap_complete::Shell,
    },
}

/// The `--json` flag every command that prints records shares.
#[derive(Args, Clone, Copy)]
struct Format {
    /// Print JSON Lines: one object per line, the same fields as the REST API's `data`.
    #[arg(long)]
    json: bool,
}

impl Format {
    /// Prints `value` as one JSON line, or `text()` without `--json`.
    fn emit(self, value: &Value, text: impl FnOnce() -> String) {
        let line = if self.json { value.to_string() } else { text() };
        let mut out = std::io::stdout().lock();
        // A closed pipe (`| head`) is not an error worth a message.
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match cli.command {
        Command::Completions { shell } => {
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "hookgate", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Command::CheckConfig => return setup::check_config(cli.config.as_deref()),
        _ => match Config::load(cli.config.as_deref()) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("hookgate: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let serving = matches!(cli.command, Command::Serve);
    init_logging(&config, serving);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli.command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => report(&error),
    }
}

/// Prints a failure; input the API would answer 400 to exits with 2, like a bad flag.
fn report(error: &anyhow::Error) -> ExitCode {
    eprintln!("hookgate: {error:#}");
    let Some(api) = error.downcast_ref::<ApiError>() else {
        return ExitCode::FAILURE;
    };
    for detail in &api.details {
        match detail.as_str() {
            Some(text) => eprintln!("  {text}"),
            None => eprintln!("  {detail}"),
        }
    }
    if api.status == 400 {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
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
        Command::Webhooks(c) => webhooks::run(c, &outbound(&config)?).await,
        Command::Deliveries(c) => deliveries::run(c, &outbound(&config)?).await,
        Command::Events(c) => events::run(c),
        Command::MasterKey(c) => master_key::run(c, config).await,
        Command::Providers(c) => providers::providers(c, config).await,
        Command::Mappings(c) => providers::mappings(c, config).await,
        Command::Inspect { id, format } => providers::inspect(id, format.json, config).await,
        Command::Replay(a) => providers::replay(a, config).await,
        Command::Trigger(a) => providers::trigger(a, config).await,
        Command::Listen(a) => providers::listen(a, config).await,
        Command::Migrate => setup::migrate(&config),
        Command::CheckConfig | Command::Completions { .. } => unreachable!("handled before"),
    }
}

/// The outbound side, as the REST API uses it; deliveries it queues are sent by the running
/// server (its worker polls the queue).
fn outbound(config: &Config) -> anyhow::Result<Outbound> {
    let (store, keys) = app::open_store(config)?;
    let metrics = Arc::new(Metrics::default());
    Ok(Outbound::new(store, keys, config.outbound.clone(), metrics))
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

/// The id of an existing company called `name`.
async fn existing_company(store: &Store, name: &str) -> anyhow::Result<String> {
    let owned = name.to_string();
    store
        .read(move |r| r.company_id_by_name(&owned))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no company called {name:?}"))
}

/// A `--since` value: RFC 3339, or a span back from now such as `30m`, `2h` or `7d`.
fn since(text: &str) -> Result<String, String> {
    if clock::parse_rfc3339_ms(text).is_some() {
        return Ok(text.to_string());
    }
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => 0,
    };
    match number.parse::<i64>() {
        Ok(n) if seconds > 0 && n >= 0 => Ok(clock::rfc3339_from_secs(
            clock::now_secs() - n.saturating_mul(seconds),
        )),
        _ => Err(format!(
            "{text:?} is neither an RFC 3339 time (2025-01-15T14:30:00Z) nor a span such as 30m, 2h or 7d"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_argument_has_help_text() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && arg.get_help().is_none() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                if sub.get_about().is_none() {
                    missing.push(format!("{path} {} (the command)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "hookgate", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }

    #[test]
    fn since_takes_a_time_or_a_span() {
        assert_eq!(
            since("2025-01-15T14:30:00Z").unwrap(),
            "2025-01-15T14:30:00Z"
        );
        let an_hour_ago = clock::parse_rfc3339_ms(&since("1h").unwrap()).unwrap();
        assert!((clock::now_ms() - an_hour_ago - 3_600_000).abs() < 5_000);
        assert!(since("yesterday").is_err());
        assert!(since("5w").is_err());
        assert!(since("").is_err());
    }
}
