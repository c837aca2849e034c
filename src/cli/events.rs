//! `hookgate events list`: the event catalog built into the binary (needs no database).

use clap::Subcommand;

use super::Format;

#[derive(Subcommand)]
pub(super) enum EventsCommand {
    /// Every inbound and outbound event type, with what it means.
    List {
        /// Only one direction (with --json: one line per event of it).
        #[arg(long, value_parser = ["inbound", "outbound"])]
        direction: Option<String>,
        #[command(flatten)]
        format: Format,
    },
}

/// Without --json, a line per event with the first sentence of its description; with it, the
/// object `GET /api/v1/event-types` puts in `data` (schemas included), or with --direction a
/// line per event of that direction.
pub(super) fn run(command: EventsCommand) -> anyhow::Result<()> {
    let EventsCommand::List { direction, format } = command;
    let catalog = crate::catalog::describe();
    if format.json && direction.is_none() {
        format.emit(&catalog, String::new);
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
        if !format.json {
            println!("{title}");
        }
        for event in catalog[name].as_array().into_iter().flatten() {
            format.emit(event, || {
                let description = event["description"].as_str().unwrap_or("");
                // The first sentence; the schema (--json) has the rest.
                let summary = description.split(". ").next().unwrap_or("");
                format!(
                    "  {:<29} {}",
                    event["event_type"].as_str().unwrap_or(""),
                    summary.trim_end_matches('.')
                )
            });
        }
    }
    Ok(())
}
