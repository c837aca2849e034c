//! `hookgate webhooks`: outbound subscriptions.

use anyhow::Context;
use clap::Subcommand;

use crate::app;
use crate::config::Config;

#[derive(Subcommand)]
pub(super) enum WebhooksCommand {
    List {
        #[arg(long)]
        company: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

pub(super) async fn run(command: WebhooksCommand, config: Config) -> anyhow::Result<()> {
    let (store, _keys) = app::open_store(&config)?;
    let WebhooksCommand::List { company, json } = command;
    let company_id = match company {
        Some(name) => Some(
            store
                .read(move |r| r.company_id_by_name(&name))
                .await?
                .context("no such company")?,
        ),
        None => None,
    };
    let list = store
        .read(move |r| r.list_subscriptions(company_id.as_deref()))
        .await?;
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
