//! `hookgate tail`: the ingest log, optionally followed live.

use std::time::Duration;

use clap::Args;
use clap::builder::PossibleValuesParser;

use super::Format;
use crate::app;
use crate::catalog::InboundEvent;
use crate::clock;
use crate::config::Config;
use crate::store::{IngestEntry, IngestFilter};
use crate::views;

#[derive(Args)]
pub(super) struct TailArgs {
    /// Keep running and print new entries as they arrive.
    #[arg(long, short)]
    follow: bool,
    /// Only this API key.
    #[arg(long)]
    key: Option<String>,
    /// Only this event type.
    #[arg(long, value_parser = PossibleValuesParser::new(InboundEvent::NAMES))]
    event_type: Option<String>,
    /// Only this HTTP status (100 to 599).
    #[arg(long, value_parser = clap::value_parser!(u16).range(100..=599))]
    status: Option<u16>,
    /// How many past entries to show first.
    #[arg(long, short = 'n', default_value_t = 20)]
    lines: usize,
    #[command(flatten)]
    format: Format,
}

pub(super) async fn run(args: TailArgs, config: Config) -> anyhow::Result<()> {
    let (store, _keys) = app::open_store(&config)?;
    let mut filter = IngestFilter {
        after_id: 0,
        key_id: args.key,
        company_id: None,
        event_type: args.event_type,
        status: args.status,
        limit: 1000,
    };
    // Start `lines` matching entries back from the end.
    filter.after_id = store.read(|r| r.last_ingest_id()).await?;
    if args.lines > 0 {
        let (f, n) = (filter.clone(), args.lines);
        let recent = store.read(move |r| r.recent_ingest_entries(&f, n)).await?;
        for entry in &recent {
            print_entry(entry, args.format);
        }
    }
    if !args.follow {
        return Ok(());
    }
    loop {
        let f = filter.clone();
        let entries = store.read(move |r| r.ingest_entries(&f)).await?;
        for entry in &entries {
            print_entry(entry, args.format);
            filter.after_id = entry.id;
        }
        if entries.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn print_entry(e: &IngestEntry, format: Format) {
    format.emit(&views::ingest_entry(e), || {
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
    });
}
