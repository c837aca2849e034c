//! `hookgate keys`: create, list, revoke and rotate API keys, and issue REST tokens.

use clap::{Args, Subcommand};

use crate::app;
use crate::clock;
use crate::config::Config;
use crate::keys::KeyOptions;

#[derive(Subcommand)]
pub(super) enum KeysCommand {
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

#[derive(Args)]
pub(super) struct CreateKeyArgs {
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

pub(super) async fn run(command: KeysCommand, config: Config) -> anyhow::Result<()> {
    let (_store, keys) = app::open_store(&config)?;
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
            let created = keys.create(&a.company, &a.name, options).await?;
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
            let list = keys.list(company.as_deref()).await?;
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
            keys.revoke(&key_id).await?;
            println!("revoked {key_id}");
        }
        KeysCommand::Rotate {
            key_id,
            overlap_secs,
            json,
        } => {
            let overlap = overlap_secs.unwrap_or(config.rotation_overlap_secs);
            let secret = keys.rotate(&key_id, overlap).await?;
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
            let token = keys.issue_api_token(&key_id).await?;
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
