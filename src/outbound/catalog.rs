//! Subscription patterns over the [event catalog](crate::catalog): which event types a
//! subscription may name (exact, wildcards `*` and `<prefix>.*`, the seed catalog's
//! `workorder.*` spelling), and whether a pattern matches an emitted event.

use serde_json::json;

use crate::catalog::{NOT_EMITTED, OutboundEvent};
use crate::error::ApiError;

/// Events the gateway sends to one subscription only (test sends, URL verification), never
/// fanned out.
pub(crate) fn is_internal(event_type: &str) -> bool {
    matches!(event_type, "webhook.test" | "webhook.verification")
}

/// Canonical form of one pattern: the catalog's `workorder.` spelling becomes `work_order.`.
fn canonical(pattern: &str) -> String {
    let p = pattern.trim().to_ascii_lowercase();
    match p.strip_prefix("workorder.") {
        Some(rest) => format!("work_order.{rest}"),
        None => p,
    }
}

/// Validates and canonicalizes a subscription's event list.
pub(crate) fn parse_patterns(input: &[String]) -> Result<Vec<String>, ApiError> {
    if input.is_empty() {
        return Err(ApiError::bad_request(
            "events_required",
            "subscribe to at least one event type",
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(input.len());
    for raw in input {
        let p = canonical(raw);
        if out.contains(&p) {
            return Err(ApiError::bad_request(
                "duplicate_event",
                format!("event {raw:?} is listed more than once"),
            )
            .with_details(vec![json!(raw)]));
        }
        if NOT_EMITTED
            .iter()
            .any(|n| p.starts_with(n) || p == n.trim_end_matches('.'))
        {
            return Err(ApiError::bad_request(
                "event_not_emitted",
                format!("{raw:?} is in the catalog but no inbound operation causes it, so it is never sent"),
            )
            .with_details(vec![json!(raw)]));
        }
        // A provider's events that no mapping takes are named like source.stripe.*.
        let known = p == "*"
            || crate::providers::is_pass_through_pattern(&p)
            || OutboundEvent::ALL
                .iter()
                .any(|e| matches(std::slice::from_ref(&p), e.name()));
        if !known {
            return Err(ApiError::bad_request(
                "unknown_event",
                format!("unknown event type {raw:?}"),
            )
            .with_details(OutboundEvent::ALL.iter().map(|e| json!(e.name())).collect()));
        }
        out.push(p);
    }
    Ok(out)
}

/// Whether one of the patterns takes the event type. `*` means every record event, not the
/// providers' pass-through events: those are asked for by name (`source.*`).
pub(crate) fn matches(patterns: &[String], event_type: &str) -> bool {
    let pass_through = event_type.starts_with("source.");
    patterns.iter().any(|p| {
        (p == "*" && !pass_through)
            || p == event_type
            || p.strip_suffix(".*").is_some_and(|prefix| {
                event_type
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('.'))
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(list: &[&str]) -> Result<Vec<String>, &'static str> {
        parse_patterns(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).map_err(|e| e.code)
    }

    #[test]
    fn patterns_are_checked_and_canonicalized() {
        assert_eq!(
            parse(&["workorder.created", "project.*"]).unwrap(),
            ["work_order.created", "project.*"]
        );
        assert_eq!(
            parse(&["work_order.created", "workorder.created"]),
            Err("duplicate_event")
        );
        assert_eq!(parse(&["po.created"]), Err("event_not_emitted"));
        assert_eq!(parse(&["report.generated"]), Err("event_not_emitted"));
        assert_eq!(
            parse(&["timesheets.processed.batch"]),
            Err("event_not_emitted")
        );
        assert_eq!(parse(&["work_order.exploded"]), Err("unknown_event"));
        assert_eq!(parse(&[]), Err("events_required"));
    }

    #[test]
    fn wildcards_match_by_prefix() {
        let p = vec!["work_order.*".to_string()];
        assert!(matches(&p, "work_order.status_changed"));
        assert!(!matches(&p, "work_orders.created"));
        assert!(matches(&["*".to_string()], "timesheet.locked"));
    }
}
