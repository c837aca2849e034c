//! `hookgate webhooks`: outbound subscriptions, through the same operations as the REST API.
//! The operator acts for the key that owns a subscription (`--key` on create).

use std::sync::Arc;

use anyhow::Context;
use clap::builder::PossibleValuesParser;
use clap::{Args, Subcommand};
use serde_json::Value;

use super::{Format, existing_company, since};
use crate::keys::ApiKey;
use crate::outbound::Outbound;
use crate::outbound::subscriptions::{self as subs, BasicAuth, SubscriptionInput};
use crate::store::SubscriptionRow;

#[derive(Subcommand)]
pub(super) enum WebhooksCommand {
    /// List subscriptions.
    List {
        /// Only this company's subscriptions.
        #[arg(long)]
        company: Option<String>,
        #[command(flatten)]
        format: Format,
    },
    /// Show one subscription.
    Show {
        /// The subscription's id (`wh_…`).
        id: String,
        #[command(flatten)]
        format: Format,
    },
    /// Create a subscription owned by an API key (which never receives its own changes).
    Create {
        /// The owning key's id (`hk_…`); the subscription belongs to its company.
        #[arg(long)]
        key: String,
        /// A name unique in the company.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        settings: Settings,
        /// Create it disabled.
        #[arg(long)]
        disabled: bool,
        #[command(flatten)]
        format: Format,
    },
    /// Change a subscription; what is not given keeps its value.
    Update {
        /// The subscription's id (`wh_…`).
        id: String,
        /// A new name, unique in the company.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        settings: Settings,
        /// Send events of every project again (drops --project filters).
        #[arg(long, conflicts_with = "project")]
        all_projects: bool,
        /// Stop sending basic-auth credentials.
        #[arg(long, conflicts_with = "basic_auth")]
        no_basic_auth: bool,
        /// Drop the delivery rate limit.
        #[arg(long, conflicts_with = "rate_limit")]
        no_rate_limit: bool,
        #[command(flatten)]
        format: Format,
    },
    /// Delete a subscription and its waiting deliveries.
    Delete {
        /// The subscription's id (`wh_…`).
        id: String,
    },
    /// Enable a subscription (verifying its URL first when it asks for that).
    Enable {
        /// The subscription's id (`wh_…`).
        id: String,
        #[command(flatten)]
        format: Format,
    },
    /// Disable a subscription; its waiting deliveries pause.
    Disable {
        /// The subscription's id (`wh_…`).
        id: String,
        #[command(flatten)]
        format: Format,
    },
    /// Queue a `webhook.test` delivery to this subscription only.
    Test {
        /// The subscription's id (`wh_…`).
        id: String,
        #[command(flatten)]
        format: Format,
    },
    /// Replace the signing secret; the old one keeps signing beside the new one for the
    /// overlap, so receivers can switch without missing a delivery. Prints the new secret once.
    RotateSecret {
        /// The subscription's id (`wh_…`).
        id: String,
        /// The new secret (at least 24 characters); generated (`whsec_…`) when absent.
        #[arg(long)]
        secret: Option<String>,
        /// How long the old secret keeps signing, in seconds.
        #[arg(long, default_value_t = 86_400)]
        overlap_secs: i64,
        #[command(flatten)]
        format: Format,
    },
    /// Re-send every event since a time that the subscription wanted and did not receive.
    Recover {
        /// The subscription's id (`wh_…`).
        id: String,
        /// RFC 3339 time, or a span back from now such as 2h or 7d.
        #[arg(long, value_parser = since)]
        since: String,
        #[command(flatten)]
        format: Format,
    },
}

/// What create and update share.
#[derive(Args)]
pub(super) struct Settings {
    /// The HTTPS URL deliveries are POSTed to.
    #[arg(long)]
    url: Option<String>,
    /// An event type or pattern to send (`work_order.*`); repeat for more. Replaces the list on update.
    #[arg(long = "event")]
    events: Vec<String>,
    /// The signing secret (at least 24 characters; generated when creating without one).
    #[arg(long)]
    secret: Option<String>,
    /// `full` payloads (with `changes`) or `thin` ones (`{"entity", "id"}`).
    #[arg(long, value_parser = PossibleValuesParser::new(["full", "thin"]))]
    payload: Option<String>,
    /// Only events of this project code; repeat for more.
    #[arg(long)]
    project: Vec<String>,
    /// Basic-auth credentials sent with every delivery, as USER:PASSWORD.
    #[arg(long, value_name = "USER:PASSWORD", value_parser = basic_auth)]
    basic_auth: Option<BasicAuth>,
    /// At most this many deliveries per second.
    #[arg(long)]
    rate_limit: Option<f64>,
    /// POST a signed verification event first; the URL must answer 2xx within 5 s.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    verify_url: Option<bool>,
}

impl Settings {
    fn input(self) -> SubscriptionInput {
        SubscriptionInput {
            url: self.url,
            events: Some(self.events).filter(|e| !e.is_empty()),
            secret: self.secret,
            payload: self.payload,
            projects: Some(self.project).filter(|p| !p.is_empty()),
            basic_auth: self.basic_auth.map(Some),
            rate_limit: self.rate_limit.map(Some),
            verify_url: self.verify_url,
            ..SubscriptionInput::default()
        }
    }
}

fn basic_auth(text: &str) -> Result<BasicAuth, String> {
    let (username, password) = text.split_once(':').ok_or("expected USER:PASSWORD")?;
    Ok(BasicAuth {
        username: username.to_string(),
        password: password.to_string(),
    })
}

pub(super) async fn run(command: WebhooksCommand, out: &Outbound) -> anyhow::Result<()> {
    match command {
        WebhooksCommand::List { company, format } => {
            let company_id = match company {
                Some(name) => Some(existing_company(&out.store, &name).await?),
                None => None,
            };
            let list = out
                .store
                .read(move |r| r.list_subscriptions(company_id.as_deref()))
                .await?;
            for s in &list {
                print(out, s, format);
            }
        }
        WebhooksCommand::Show { id, format } => {
            let (sub, _) = owned(out, &id).await?;
            print(out, &sub, format);
        }
        WebhooksCommand::Create {
            key,
            name,
            settings,
            disabled,
            format,
        } => {
            let owner = out
                .keys
                .find(&key)
                .await?
                .filter(|k| !k.revoked)
                .with_context(|| format!("no active API key {key}"))?;
            let input = SubscriptionInput {
                name: Some(name),
                enabled: Some(!disabled),
                ..settings.input()
            };
            let created = subs::create(out, &owner, input).await?;
            format.emit(&created, || {
                format!(
                    "created {}\nsecret: {}   (signs deliveries; shown once)",
                    line_of(&created),
                    created["secret"].as_str().unwrap_or_default()
                )
            });
        }
        WebhooksCommand::Update {
            id,
            name,
            settings,
            all_projects,
            no_basic_auth,
            no_rate_limit,
            format,
        } => {
            let (_, owner) = owned(out, &id).await?;
            let mut input = SubscriptionInput {
                name,
                ..settings.input()
            };
            if all_projects {
                input.projects = Some(Vec::new());
            }
            if no_basic_auth {
                input.basic_auth = Some(None);
            }
            if no_rate_limit {
                input.rate_limit = Some(None);
            }
            let sub = subs::update(out, &owner, &id, input).await?;
            print(out, &sub, format);
        }
        WebhooksCommand::Delete { id } => {
            let (_, owner) = owned(out, &id).await?;
            subs::delete(out, &owner, &id).await?;
            println!("deleted {id}");
        }
        WebhooksCommand::Enable { id, format } => set_enabled(out, &id, true, format).await?,
        WebhooksCommand::Disable { id, format } => set_enabled(out, &id, false, format).await?,
        WebhooksCommand::Test { id, format } => {
            let (_, owner) = owned(out, &id).await?;
            let queued = subs::test_send(out, &owner, &id).await?;
            format.emit(&queued, || {
                format!(
                    "queued test delivery {} (event {})",
                    queued["delivery_id"].as_str().unwrap_or_default(),
                    queued["event_id"].as_str().unwrap_or_default()
                )
            });
        }
        WebhooksCommand::RotateSecret {
            id,
            secret,
            overlap_secs,
            format,
        } => {
            let (_, owner) = owned(out, &id).await?;
            let rotated = subs::rotate_secret(out, &owner, &id, secret, overlap_secs).await?;
            format.emit(&rotated, || {
                format!(
                    "{}\nnew secret (shown once): {}\nthe old one signs too until {}",
                    line_of(&rotated),
                    rotated["secret"].as_str().unwrap_or_default(),
                    rotated["secret_rotation_overlap_until"]
                        .as_str()
                        .unwrap_or("now (no overlap)")
                )
            });
        }
        WebhooksCommand::Recover { id, since, format } => {
            let (_, owner) = owned(out, &id).await?;
            let queued = subs::recover(out, &owner, &id, &since).await?;
            format.emit(&queued, || {
                format!("queued {} deliveries to {id}", queued["queued"])
            });
        }
    }
    Ok(())
}

/// The subscription and the key that owns it, whose company every operation is scoped to.
async fn owned(out: &Outbound, id: &str) -> anyhow::Result<(SubscriptionRow, Arc<ApiKey>)> {
    let owned_id = id.to_string();
    let sub = out
        .store
        .read(move |r| r.subscription_by_id(&owned_id))
        .await?
        .with_context(|| format!("no subscription {id}"))?;
    let owner = out
        .keys
        .find(&sub.owner_key_id)
        .await?
        .with_context(|| format!("the key {} that owns {id} is gone", sub.owner_key_id))?;
    Ok((sub, owner))
}

async fn set_enabled(
    out: &Outbound,
    id: &str,
    enabled: bool,
    format: Format,
) -> anyhow::Result<()> {
    let (_, owner) = owned(out, id).await?;
    let sub = subs::set_enabled(out, &owner, id, enabled).await?;
    print(out, &sub, format);
    Ok(())
}

fn print(out: &Outbound, sub: &SubscriptionRow, format: Format) {
    let view = subs::view(sub, out);
    format.emit(&view, || line_of(&view));
}

/// One line of text for a subscription's view.
fn line_of(view: &Value) -> String {
    let text = |field: &str| view[field].as_str().unwrap_or("-").to_string();
    let events: Vec<&str> = view["events"]
        .as_array()
        .map(|e| e.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    format!(
        "{}  {:<20} {:<9} {}  events={}{}",
        text("id"),
        text("name"),
        text("status"),
        text("url"),
        events.join(","),
        view["disabled_reason"]
            .as_str()
            .map(|r| format!("  ({r})"))
            .unwrap_or_default()
    )
}
