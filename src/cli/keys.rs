//! `hookgate keys`: create, list, revoke, rotate and update API keys, and issue REST tokens.

use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use super::Format;
use crate::app;
use crate::clock;
use crate::config::Config;
use crate::keys::{CreatedKey, KeyOptions, ProviderSecrets};
use crate::store::SecretChange;
use crate::views;

#[derive(Subcommand)]
pub(super) enum KeysCommand {
    /// Create an API key (and its company, if new). Prints the secrets once.
    Create(CreateKeyArgs),
    /// List keys (no secrets).
    List {
        /// Only this company's keys.
        #[arg(long)]
        company: Option<String>,
        #[command(flatten)]
        format: Format,
    },
    /// Revoke a key: it stops authenticating at once.
    Revoke {
        /// The key's id (`hk_…`).
        key_id: String,
    },
    /// Issue a new signing secret; the old one keeps verifying during the overlap.
    Rotate {
        /// The key's id (`hk_…`).
        key_id: String,
        /// Overlap in seconds (default: config `rotation_overlap_secs`).
        #[arg(long)]
        overlap_secs: Option<i64>,
        #[command(flatten)]
        format: Format,
    },
    /// Issue a new REST API token for the key; the previous token stops working.
    Token {
        /// The key's id (`hk_…`).
        key_id: String,
        #[command(flatten)]
        format: Format,
    },
    /// Set, replace or remove the provider secrets of an existing key.
    Update(UpdateKeyArgs),
}

/// The provider secrets a key can hold, as `keys create` and `keys update` take them.
#[derive(Args)]
pub(super) struct ProviderArgs {
    /// Square's signature key (`X-Webhook-Source: square`).
    #[arg(long)]
    square_signature_key: Option<String>,
    /// QuickBooks' verifier token (`X-Webhook-Source: quickbooks`).
    #[arg(long)]
    quickbooks_verifier_token: Option<String>,
    /// Dynamics 365's shared key (`X-Webhook-Source: dynamics365`).
    #[arg(long)]
    dynamics_key: Option<String>,
}

#[derive(Args)]
pub(super) struct CreateKeyArgs {
    /// The company (tenant) the key belongs to; created if new.
    #[arg(long)]
    company: String,
    /// The integration's name, e.g. `erp`.
    #[arg(long)]
    name: String,
    /// Inbound burst limit per minute (default: config).
    #[arg(long)]
    per_minute: Option<u32>,
    /// Inbound limit per hour (default: config).
    #[arg(long)]
    per_hour: Option<u32>,
    #[command(flatten)]
    providers: ProviderArgs,
    #[command(flatten)]
    intake: super::providers::IntakeArgs,
    /// Legacy senders: sign the body only, without the timestamp (weaker: a captured request
    /// can be replayed with a fresh timestamp).
    #[arg(long)]
    body_only_signing: bool,
    #[command(flatten)]
    format: Format,
}

#[derive(Args)]
pub(super) struct UpdateKeyArgs {
    /// The key's id (`hk_…`).
    key_id: String,
    #[command(flatten)]
    providers: ProviderArgs,
    /// Remove this provider's secret (repeatable).
    #[arg(long, value_enum)]
    remove: Vec<Provider>,
    #[command(flatten)]
    intake: super::providers::IntakeArgs,
    #[command(flatten)]
    format: Format,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Provider {
    Square,
    Quickbooks,
    Dynamics365,
}

pub(super) async fn run(command: KeysCommand, config: Config) -> anyhow::Result<()> {
    let (_store, keys) = app::open_store(&config)?;
    match command {
        KeysCommand::Create(a) => {
            let options = KeyOptions {
                per_minute: a.per_minute,
                per_hour: a.per_hour,
                square_signature_key: a.providers.square_signature_key,
                quickbooks_verifier_token: a.providers.quickbooks_verifier_token,
                dynamics_key: a.providers.dynamics_key,
                body_only_signing: a.body_only_signing,
            };
            let created = keys.create(&a.company, &a.name, options).await?;
            if !a.intake.is_empty() {
                a.intake.apply(&keys, &created.key_id).await?;
            }
            print_created_key(&created, a.format);
        }
        KeysCommand::List { company, format } => {
            for k in keys.list(company.as_deref()).await? {
                format.emit(&views::key_summary(&k), || {
                    format!(
                        "{}  company={}  name={}  {}",
                        k.key_id,
                        k.company,
                        k.name,
                        if k.revoked { "revoked" } else { "active" }
                    )
                });
            }
        }
        KeysCommand::Revoke { key_id } => {
            keys.revoke(&key_id).await?;
            println!("revoked {key_id}");
        }
        KeysCommand::Rotate {
            key_id,
            overlap_secs,
            format,
        } => {
            let overlap = overlap_secs.unwrap_or(config.rotation_overlap_secs);
            let secret = keys.rotate(&key_id, overlap).await?;
            let until = clock::rfc3339_from_secs(clock::now_secs() + overlap);
            let value =
                json!({"key_id": key_id, "secret": secret, "previous_secret_valid_until": until});
            format.emit(&value, || {
                format!(
                    "new secret for {key_id}: {secret}\nthe previous secret keeps verifying until {until}"
                )
            });
        }
        KeysCommand::Token { key_id, format } => {
            let token = keys.issue_api_token(&key_id).await?;
            format.emit(&json!({"key_id": key_id, "api_token": token}), || {
                format!("new REST API token for {key_id}: {token}")
            });
        }
        KeysCommand::Update(a) => {
            let change = |value: Option<String>, provider| match value {
                Some(secret) => SecretChange::Set(secret.into_bytes()),
                None if a.remove.contains(&provider) => SecretChange::Remove,
                None => SecretChange::Keep,
            };
            let secrets = ProviderSecrets {
                square_signature_key: change(a.providers.square_signature_key, Provider::Square),
                quickbooks_verifier_token: change(
                    a.providers.quickbooks_verifier_token,
                    Provider::Quickbooks,
                ),
                dynamics_key: change(a.providers.dynamics_key, Provider::Dynamics365),
            };
            if secrets.is_unchanged() && a.intake.is_empty() {
                anyhow::bail!(
                    "nothing to change: give --provider-secret, --remove-provider-secret, --keep-requests, --square-signature-key, --quickbooks-verifier-token, --dynamics-key or --remove"
                );
            }
            let mut key = match secrets.is_unchanged() {
                true => None,
                false => Some(keys.update_provider_secrets(&a.key_id, secrets).await?),
            };
            if !a.intake.is_empty() {
                key = Some(a.intake.apply(&keys, &a.key_id).await?);
            }
            let key = key.expect("one of them changed the key");
            let has = json!({
                "square_signature_key": key.square_signature_key.is_some(),
                "quickbooks_verifier_token": key.quickbooks_verifier_token.is_some(),
                "dynamics_key": key.dynamics_key.is_some(),
            });
            let intake = super::providers::intake_view(&key);
            a.format
                .emit(&json!({"key_id": key.id, "provider_secrets": has, "native": intake}), || {
                    let set: Vec<&str> = has
                        .as_object()
                        .expect("object")
                        .iter()
                        .filter(|(_, v)| **v == json!(true))
                        .map(|(k, _)| k.as_str())
                        .collect();
                    format!(
                        "updated {}; provider secrets now: {}; native intake secrets: {}; requests {}kept",
                        key.id,
                        if set.is_empty() {
                            "none".to_string()
                        } else {
                            set.join(", ")
                        },
                        match key.providers() {
                            p if p.is_empty() => "none".to_string(),
                            p => p.join(", "),
                        },
                        if key.keep_requests { "" } else { "not " }
                    )
                });
        }
    }
    Ok(())
}

/// A new key's parts, under the names `keys create --json`, `serve` and the README use.
pub(super) fn print_created_key(key: &CreatedKey, format: Format) {
    let value = serde_json::to_value(key).expect("serializable");
    format.emit(&value, || {
        [
            format!("key_id:     {}   (send as X-API-Key)", key.key_id),
            format!("secret:     {}   (signs requests; shown once)", key.secret),
            format!(
                "api_token:  {}   (REST API: Authorization: Bearer …; shown once)",
                key.api_token
            ),
            format!("company:    {} ({})", key.company, key.company_id),
            format!("name:       {}", key.name),
        ]
        .join("\n")
    });
}
