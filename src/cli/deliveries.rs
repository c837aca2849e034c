//! `hookgate deliveries`: the outbound delivery log, and sending a delivery again.

use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;

use crate::app;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::outbound::{Outbound, subscriptions};
use crate::store::DeliveryFilter;

#[derive(Subcommand)]
pub(super) enum DeliveriesCommand {
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

pub(super) async fn run(command: DeliveriesCommand, config: Config) -> anyhow::Result<()> {
    let (store, keys) = app::open_store(&config)?;
    match command {
        DeliveriesCommand::List {
            webhook,
            status,
            limit,
            json,
        } => {
            let filter = DeliveryFilter {
                company_id: None,
                subscription_id: webhook,
                status,
                limit,
            };
            let list = store.read(move |r| r.list_deliveries(&filter)).await?;
            for d in &list {
                if json {
                    println!("{}", subscriptions::delivery_view(d));
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
                .await?
                .map(|(_, company)| company)
                .with_context(|| format!("no delivery {delivery_id}"))?;
            let metrics = Arc::new(Metrics::default());
            let out = Outbound::new(store, keys, config.outbound.clone(), metrics);
            subscriptions::retry(&out, &company, None, &delivery_id).await?;
            println!("delivery {delivery_id} queued again");
        }
    }
    Ok(())
}
