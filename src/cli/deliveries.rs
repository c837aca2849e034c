//! `hookgate deliveries`: the outbound delivery log, and sending deliveries again (one, or all
//! that match a filter), through the same operations and filters as the REST API.

use anyhow::Context;
use clap::builder::PossibleValuesParser;
use clap::{ArgGroup, Args, Subcommand};
use serde_json::json;

use super::{Format, existing_company, since};
use crate::outbound::Outbound;
use crate::outbound::deliveries::{self, Filter, Scope};
use crate::outbound::subscriptions;
use crate::store::DeliveryRow;

#[derive(Subcommand)]
pub(super) enum DeliveriesCommand {
    /// List deliveries, newest first.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[command(flatten)]
        format: Format,
    },
    /// Show one delivery and every attempt made: when, how long, the answer and the kind of
    /// failure (with --json: the request and response headers and the answer's first 4 KiB).
    Show {
        /// The delivery's id (`dlv_…`).
        delivery_id: String,
        #[command(flatten)]
        format: Format,
    },
    /// Send deliveries again (the running server sends them): one by id, or every one that
    /// matches the filters (status `failed` unless --status says otherwise).
    #[command(group(ArgGroup::new("what").required(true).multiple(true)
        .args(["delivery_id", "webhook", "company", "status", "event_type", "since"])))]
    Retry {
        /// The delivery's id (`dlv_…`); without it, the filters pick the deliveries.
        #[arg(conflicts_with_all = ["webhook", "company", "status", "event_type", "since"])]
        delivery_id: Option<String>,
        #[command(flatten)]
        filter: FilterArgs,
        #[command(flatten)]
        format: Format,
    },
}

/// The filters `list` and `retry` share, checked against the same lists as the REST API's.
#[derive(Args)]
pub(super) struct FilterArgs {
    /// Only this subscription's deliveries (`wh_…`).
    #[arg(long)]
    webhook: Option<String>,
    /// Only this company's deliveries.
    #[arg(long)]
    company: Option<String>,
    /// Only deliveries in this status.
    #[arg(long, value_parser = PossibleValuesParser::new(deliveries::STATUSES))]
    status: Option<String>,
    /// Only deliveries of this event type.
    #[arg(long, value_parser = PossibleValuesParser::new(deliveries::event_types()))]
    event_type: Option<String>,
    /// Only deliveries created since: an RFC 3339 time, or a span back from now such as 2h or 7d.
    #[arg(long, value_parser = since)]
    since: Option<String>,
}

impl FilterArgs {
    async fn resolve(&self, out: &Outbound) -> anyhow::Result<(Scope, Filter)> {
        let company_id = match &self.company {
            Some(name) => Some(existing_company(&out.store, name).await?),
            None => None,
        };
        let scope = Scope {
            company_id,
            subscription_id: self.webhook.clone(),
        };
        let filter = Filter::parse(
            self.status.as_deref(),
            self.event_type.as_deref(),
            self.since.as_deref(),
        )?;
        Ok((scope, filter))
    }
}

pub(super) async fn run(command: DeliveriesCommand, out: &Outbound) -> anyhow::Result<()> {
    match command {
        DeliveriesCommand::List {
            filter,
            limit,
            format,
        } => {
            let (scope, filter) = filter.resolve(out).await?;
            for d in deliveries::list(out, &scope, &filter, limit).await? {
                print(&d, format);
            }
        }
        DeliveriesCommand::Show {
            delivery_id,
            format,
        } => {
            let d = deliveries::find(out, &Scope::default(), &delivery_id).await?;
            let attempts = deliveries::attempts(out, &d).await?;
            let mut view = deliveries::view(&d);
            view["history"] = json!(attempts.clone());
            format.emit(&view, || {
                let mut text = line(&d);
                for a in &attempts {
                    text.push_str(&format!(
                        "\n  #{} {} {:>6} ms  {:<9} {} {}",
                        a["attempt"],
                        a["at"].as_str().unwrap_or(""),
                        a["duration_ms"],
                        a["outcome"].as_str().unwrap_or(""),
                        a["status_code"]
                            .as_u64()
                            .map_or_else(|| "-".to_string(), |c| c.to_string()),
                        a["error"].as_str().map_or(String::new(), |e| format!(
                            "{e} ({})",
                            a["error_kind"].as_str().unwrap_or("")
                        )),
                    ));
                }
                text
            });
        }
        DeliveriesCommand::Retry {
            delivery_id: Some(id),
            format,
            ..
        } => {
            let owned = id.clone();
            let (_, company) = out
                .store
                .read(move |r| r.delivery(&owned))
                .await?
                .with_context(|| format!("no delivery {id}"))?;
            let d = subscriptions::retry(out, &company, None, &id).await?;
            print(&d, format);
        }
        DeliveriesCommand::Retry {
            delivery_id: None,
            filter,
            format,
        } => {
            let (scope, filter) = filter.resolve(out).await?;
            let queued = deliveries::retry_matching(out, &scope, &filter).await?;
            format.emit(&json!({"queued": queued}), || {
                format!("queued {queued} deliveries again")
            });
        }
    }
    Ok(())
}

fn print(d: &DeliveryRow, format: Format) {
    format.emit(&deliveries::view(d), || line(d));
}

/// One line of text for a delivery.
fn line(d: &DeliveryRow) -> String {
    format!(
        "{}  {:<12} {:<28} attempts={} code={} {}",
        d.id,
        d.status,
        d.event_type,
        d.attempts,
        d.last_status_code
            .map(|c| c.to_string())
            .unwrap_or_else(|| "-".into()),
        d.last_error.as_deref().unwrap_or("")
    )
}
