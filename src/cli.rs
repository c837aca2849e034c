//! The command line: `serve`, `keys`, `tail`, `events`, `migrate`, `check-config`. Every command reads
//! the same config (file, then `HOOKGATE_*`), and works while the server is running (SQLite
//! allows one writer at a time; the others wait).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::app::{self, AppState};
use crate::clock;
use crate::config::{Config, LogFormat};
use crate::keys::KeyOptions;
use crate::store::{IngestEntry, IngestFilter};

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
    Keys(KeysCommand),
    /// Print the ingest log; with --follow, stream new entries live.
    Tail(TailArgs),
    /// Manage a company's skill library.
    #[command(subcommand)]
    Skills(SkillsCommand),
    /// Manage a company's work types.
    #[command(subcommand, name = "work-types")]
    WorkTypes(WorkTypesCommand),
    /// Inspect outbound subscriptions.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// Inspect and retry outbound deliveries.
    #[command(subcommand)]
    Deliveries(DeliveriesCommand),
    /// The event catalog.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Load and validate the configuration (and the schemas), then exit.
    CheckConfig,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create an API key (and its company, if new). Prints the secrets once.
    Create(CreateKeyArgs),
    /// List keys (no secrets).
    List {
        #[arg(long)]
        company: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key: it stops authenticating at once.
    Revoke { key_id: String },
    /// Issue a new signing secret; the old one keeps verifying during the overlap.
    Rotate {
        key_id: String,
        /// Overlap in seconds (default: config `rotation_overlap_secs`).
        #[arg(long)]
        overlap_secs: Option<i64>,
        #[arg(long)]
        json: bool,
    },
    /// Issue a new REST API token for the key; the previous token stops working.
    Token {
        key_id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum SkillsCommand {
    /// Add skills (names with spaces need quotes).
    Add {
        #[arg(long)]
        company: String,
        #[arg(required = true)]
        names: Vec<String>,
    },
    List {
        #[arg(long)]
        company: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum WorkTypesCommand {
    List {
        #[arg(long)]
        company: String,
        #[arg(long)]
        json: bool,
    },
    /// Add or change a work type (by code).
    Add {
        #[arg(long)]
        company: String,
        #[arg(long)]
        code: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        billable: bool,
        #[arg(long)]
        requires_work_order: bool,
        #[arg(long, default_value_t = 1.0)]
        multiplier: f64,
        /// Make it the company default (used when an entry names no work type).
        #[arg(long)]
        default: bool,
    },
}

#[derive(Subcommand)]
enum WebhooksCommand {
    List {
        #[arg(long)]
        company: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum DeliveriesCommand {
    List {
        /// Only this subscription.
        #[arg(long)]
        webhook: Option<String>,
        /// pending, in_flight, succeeded, failed or skipped_echo.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Send a delivery again (picked up by the running server).
    Retry { delivery_id: String },
}

#[derive(Args)]
struct CreateKeyArgs {
    #[arg(long)]
    company: String,
    /// The integration's name, e.g. `erp`.
    #[arg(long)]
    name: String,
    #[arg(long)]
    json: bool,
    /// Inbound burst limit per minute (default: config).
    #[arg(long)]
    per_minute: Option<u32>,
    /// Inbound limit per hour (default: config).
    #[arg(long)]
    per_hour: Option<u32>,
    #[arg(long)]
    square_signature_key: Option<String>,
    #[arg(long)]
    quickbooks_verifier_token: Option<String>,
    #[arg(long)]
    dynamics_key: Option<String>,
    /// Legacy senders: sign the body only, without the timestamp (weaker: a captured request
    /// can be replayed with a fresh timestamp).
    #[arg(long)]
    body_only_signing: bool,
}

#[derive(Args)]
struct TailArgs {
    /// Keep running and print new entries as they arrive.
    #[arg(long, short)]
    follow: bool,
    /// Only this API key.
    #[arg(long)]
    key: Option<String>,
    /// Only this event type.
    #[arg(long)]
    event_type: Option<String>,
    /// Only this HTTP status.
    #[arg(long)]
    status: Option<u16>,
    /// How many past entries to show first.
    #[arg(long, short = 'n', default_value_t = 20)]
    lines: usize,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Every inbound and outbound event type, with what it means.
    List {
        /// Only one direction.
        #[arg(long, value_parser = ["inbound", "outbound"])]
        direction: Option<String>,
        /// The catalog as one JSON object, schemas included (as `GET /api/v1/event-types`).
        #[arg(long)]
        json: bool,
    },
}

/// `hookgate events list`: the catalog built into the binary (needs no database).
fn events(command: EventsCommand) -> Result<(), String> {
    let EventsCommand::List { direction, json } = command;
    let catalog = crate::catalog::describe();
    if json {
        let out = match &direction {
            Some(d) => catalog[d.as_str()].clone(),
            None => catalog,
        };
        println!("{out}");
        return Ok(());
    }
    let sections = [
        ("inbound", "Inbound (event_type of POST /webhooks/inbound):"),
        (
            "outbound",
            "Outbound (subscribe by name, `<prefix>.*` or `*`):",
        ),
    ];
    for (name, title) in sections {
        if direction.as_deref().is_some_and(|d| d != name) {
            continue;
        }
        println!("{title}");
        for event in catalog[name].as_array().into_iter().flatten() {
            let description = event["description"].as_str().unwrap_or("");
            // The first sentence; the schema (--json) has the rest.
            let summary = description.split(". ").next().unwrap_or("");
            println!(
                "  {:<29} {}",
                event["event_type"].as_str().unwrap_or(""),
                summary.trim_end_matches('.')
            );
        }
    }
    Ok(())
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
        Err(message) => {
            eprintln!("hookgate: {message}");
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

async fn run(command: Command, config: Config) -> Result<(), String> {
    match command {
        Command::Serve => serve(config).await,
        Command::Keys(k) => keys(k, config).await,
        Command::Tail(t) => tail(t, config).await,
        Command::Skills(c) => skills(c, config).await,
        Command::WorkTypes(c) => work_types(c, config).await,
        Command::Webhooks(c) => webhooks(c, config).await,
        Command::Deliveries(c) => deliveries(c, config).await,
        Command::Events(c) => events(c),
        Command::Migrate => {
            app::open_store(&config).map_err(|e| e.to_string())?;
            println!(
                "database {} is at schema version {}",
                config.database,
                crate::store::latest_version()
            );
            Ok(())
        }
        Command::CheckConfig => {
            crate::validate::Schemas::compile()?;
            println!(
                "configuration is valid (listen {}, database {})",
                config.listen, config.database
            );
            Ok(())
        }
    }
}

async fn serve(config: Config) -> Result<(), String> {
    let state = AppState::build(config).map_err(|e| e.to_string())?;
    if let Some(key) = state
        .create_dev_key_if_empty()
        .await
        .map_err(|e| e.to_string())?
    {
        println!("Created a development API key (shown once):");
        println!("  X-API-Key:      {}", key.key_id);
        println!("  signing secret: {}", key.secret);
        println!("  REST API token: {}", key.api_token);
    }
    app::serve(state, shutdown_signal())
        .await
        .map_err(|e| e.to_string())
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

async fn keys(command: KeysCommand, config: Config) -> Result<(), String> {
    let (_store, keys) = app::open_store(&config).map_err(|e| e.to_string())?;
    match command {
        KeysCommand::Create(a) => {
            let options = KeyOptions {
                per_minute: a.per_minute,
                per_hour: a.per_hour,
                square_signature_key: a.square_signature_key,
                quickbooks_verifier_token: a.quickbooks_verifier_token,
                dynamics_key: a.dynamics_key,
                body_only_signing: a.body_only_signing,
            };
            let created = keys
                .create(&a.company, &a.name, options)
                .await
                .map_err(|e| e.to_string())?;
            if a.json {
                println!("{}", serde_json::to_string(&created).expect("serializable"));
            } else {
                println!("key_id:    {}", created.key_id);
                println!("secret:    {}", created.secret);
                println!("api_token: {}", created.api_token);
                println!("company:   {} ({})", created.company, created.company_id);
                println!("name:      {}", created.name);
                println!("The secret and token are shown only now.");
            }
        }
        KeysCommand::List { company, json } => {
            let list = keys
                .list(company.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            if json {
                println!("{}", serde_json::to_string(&list).expect("serializable"));
            } else {
                for k in list {
                    println!(
                        "{}  company={}  name={}  {}",
                        k.key_id,
                        k.company,
                        k.name,
                        if k.revoked { "revoked" } else { "active" }
                    );
                }
            }
        }
        KeysCommand::Revoke { key_id } => {
            keys.revoke(&key_id).await.map_err(|e| e.to_string())?;
            println!("revoked {key_id}");
        }
        KeysCommand::Rotate {
            key_id,
            overlap_secs,
            json,
        } => {
            let overlap = overlap_secs.unwrap_or(config.rotation_overlap_secs);
            let secret = keys
                .rotate(&key_id, overlap)
                .await
                .map_err(|e| e.to_string())?;
            let until = clock::now_secs() + overlap;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"key_id": key_id, "secret": secret, "previous_secret_valid_until": until})
                );
            } else {
                println!("new secret for {key_id}: {secret}");
                println!(
                    "the previous secret keeps verifying until {}",
                    clock::rfc3339_from_ms(until * 1000)
                );
            }
        }
        KeysCommand::Token { key_id, json } => {
            let token = keys
                .issue_api_token(&key_id)
                .await
                .map_err(|e| e.to_string())?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"key_id": key_id, "api_token": token})
                );
            } else {
                println!("new REST API token for {key_id}: {token}");
            }
        }
    }
    Ok(())
}

/// The id of the company called `name`, creating it (with the default work types) if new.
async fn company_id(store: &crate::store::Store, name: &str) -> Result<String, String> {
    let name = name.to_string();
    store
        .write(move |tx| {
            let id = tx.ensure_company(
                &name,
                &crate::crypto::random_id("co_", 8),
                clock::now_secs(),
            )?;
            crate::skills::ensure_default_work_types(tx, &id)?;
            Ok(id)
        })
        .await
        .map_err(|e| e.to_string())
}

async fn skills(command: SkillsCommand, config: Config) -> Result<(), String> {
    let (store, _keys) = app::open_store(&config).map_err(|e| e.to_string())?;
    match command {
        SkillsCommand::Add { company, names } => {
            let company_id = company_id(&store, &company).await?;
            let names = crate::skills::check_skill_names(&names).map_err(|e| e.message)?;
            let added = crate::skills::add_skills(&store, &company_id, names)
                .await
                .map_err(|e| e.to_string())?;
            println!("added {added} skill(s) to {company}");
        }
        SkillsCommand::List { company, json } => {
            let company_id = company_id(&store, &company).await?;
            let list = store
                .read(move |r| r.list_skills(&company_id))
                .await
                .map_err(|e| e.to_string())?;
            if json {
                println!("{}", serde_json::to_string(&list).expect("serializable"));
            } else {
                list.iter().for_each(|s| println!("{s}"));
            }
        }
    }
    Ok(())
}

async fn work_types(command: WorkTypesCommand, config: Config) -> Result<(), String> {
    let (store, _keys) = app::open_store(&config).map_err(|e| e.to_string())?;
    match command {
        WorkTypesCommand::List { company, json } => {
            let company_id = company_id(&store, &company).await?;
            let list = store
                .read(move |r| r.list_work_types(&company_id))
                .await
                .map_err(|e| e.to_string())?;
            if json {
                println!("{}", serde_json::to_string(&list).expect("serializable"));
            } else {
                for w in list {
                    println!(
                        "{:<8} {:<20} billable={} requires_work_order={} x{}{}{}",
                        w.code,
                        w.name,
                        w.billable,
                        w.requires_work_order,
                        w.multiplier,
                        if w.is_default { " default" } else { "" },
                        if w.active { "" } else { " inactive" }
                    );
                }
            }
        }
        WorkTypesCommand::Add {
            company,
            code,
            name,
            billable,
            requires_work_order,
            multiplier,
            default,
        } => {
            let company_id = company_id(&store, &company).await?;
            let input = crate::skills::WorkTypeInput {
                code,
                name,
                billable,
                requires_work_order,
                multiplier,
                is_default: default,
                active: true,
            };
            let work_type = crate::skills::check_work_type(input).map_err(|e| e.message)?;
            let code = work_type.code.clone();
            crate::skills::save_work_type(&store, &company_id, work_type)
                .await
                .map_err(|e| e.to_string())?;
            println!("saved work type {code} for {company}");
        }
    }
    Ok(())
}

async fn webhooks(command: WebhooksCommand, config: Config) -> Result<(), String> {
    let (store, _keys) = app::open_store(&config).map_err(|e| e.to_string())?;
    let WebhooksCommand::List { company, json } = command;
    let company_id = match company {
        Some(name) => Some(
            store
                .read(move |r| r.company_id_by_name(&name))
                .await
                .map_err(|e| e.to_string())?
                .ok_or("no such company")?,
        ),
        None => None,
    };
    let list = store
        .read(move |r| r.list_subscriptions(company_id.as_deref()))
        .await
        .map_err(|e| e.to_string())?;
    for s in list {
        let item = serde_json::json!({
            "id": s.id, "name": s.name, "url": s.url, "events": s.events, "status": s.status,
            "disabled_reason": s.disabled_reason, "owner_key_id": s.owner_key_id,
            "consecutive_failures": s.consecutive_failures,
        });
        if json {
            println!("{item}");
        } else {
            println!(
                "{}  {:<20} {:<9} {}  events={}{}",
                s.id,
                s.name,
                s.status,
                s.url,
                s.events.join(","),
                s.disabled_reason
                    .map(|r| format!("  ({r})"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(())
}

async fn deliveries(command: DeliveriesCommand, config: Config) -> Result<(), String> {
    let (store, keys) = app::open_store(&config).map_err(|e| e.to_string())?;
    match command {
        DeliveriesCommand::List {
            webhook,
            status,
            limit,
            json,
        } => {
            let filter = crate::store::DeliveryFilter {
                company_id: None,
                subscription_id: webhook,
                status,
                limit,
            };
            let list = store
                .read(move |r| r.list_deliveries(&filter))
                .await
                .map_err(|e| e.to_string())?;
            for d in &list {
                if json {
                    println!("{}", crate::outbound::subscriptions::delivery_view(d));
                } else {
                    println!(
                        "{}  {:<12} {:<28} attempts={} code={} {}",
                        d.id,
                        d.status,
                        d.event_type,
                        d.attempts,
                        d.last_status_code
                            .map(|c| c.to_string())
                            .unwrap_or_else(|| "-".into()),
                        d.last_error.as_deref().unwrap_or("")
                    );
                }
            }
        }
        DeliveriesCommand::Retry { delivery_id } => {
            let did = delivery_id.clone();
            let company = store
                .read(move |r| r.delivery(&did))
                .await
                .map_err(|e| e.to_string())?
                .map(|(_, company)| company)
                .ok_or_else(|| format!("no delivery {delivery_id}"))?;
            let metrics = std::sync::Arc::new(crate::metrics::Metrics::default());
            let out = crate::outbound::Outbound::new(store, keys, config.outbound.clone(), metrics);
            crate::outbound::subscriptions::retry(&out, &company, None, &delivery_id)
                .await
                .map_err(|e| e.message)?;
            println!("delivery {delivery_id} queued again");
        }
    }
    Ok(())
}

async fn tail(args: TailArgs, config: Config) -> Result<(), String> {
    let (store, _keys) = app::open_store(&config).map_err(|e| e.to_string())?;
    let mut filter = IngestFilter {
        after_id: 0,
        key_id: args.key,
        company_id: None,
        event_type: args.event_type,
        status: args.status,
        limit: 1000,
    };
    // Start `lines` matching entries back from the end.
    let last = store
        .read(|r| r.last_ingest_id())
        .await
        .map_err(|e| e.to_string())?;
    filter.after_id = last;
    if args.lines > 0 {
        let (f, n) = (filter.clone(), args.lines);
        let recent = store
            .read(move |r| r.recent_ingest_entries(&f, n))
            .await
            .map_err(|e| e.to_string())?;
        for entry in &recent {
            print_entry(entry, args.json);
        }
    }
    if !args.follow {
        return Ok(());
    }
    loop {
        let f = filter.clone();
        let entries = store
            .read(move |r| r.ingest_entries(&f))
            .await
            .map_err(|e| e.to_string())?;
        for entry in &entries {
            print_entry(entry, args.json);
            filter.after_id = entry.id;
        }
        if entries.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn print_entry(e: &IngestEntry, json: bool) {
    use std::io::Write;
    let line = if json {
        serde_json::to_string(e).expect("serializable")
    } else {
        format!(
            "{} {} {:<28} key={} addr={} code={} {:.1}ms event={} record={}",
            clock::rfc3339_from_ms(e.received_at),
            e.status,
            e.event_type.as_deref().unwrap_or("-"),
            e.key_id.as_deref().unwrap_or("-"),
            e.client_addr.as_deref().unwrap_or("-"),
            e.error_code.as_deref().unwrap_or("-"),
            e.latency_us as f64 / 1000.0,
            e.event_id.as_deref().unwrap_or("-"),
            e.record_id.as_deref().unwrap_or("-"),
        )
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
