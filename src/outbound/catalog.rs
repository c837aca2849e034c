//! The outbound event catalog: which event types the gateway emits, how subscriptions name
//! them (exact, wildcards, the seed catalog's `workorder.*` spelling), and matching.

use serde_json::json;

use crate::error::ApiError;

/// Every event type an applied change can emit.
pub const EMITTED: &[&str] = &[
    "work_order.created",
    "work_order.updated",
    "work_order.deleted",
    "work_order.status_changed",
    "work_order.scheduled",
    "work_order.started",
    "work_order.completed",
    "work_order.cancelled",
    "project.created",
    "project.updated",
    "project.deleted",
    "project.closed",
    "employee.created",
    "employee.updated",
    "employee.deleted",
    "employee.assigned",
    "vendor.created",
    "vendor.updated",
    "vendor.deleted",
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "location.created",
    "location.updated",
    "location.deleted",
    "contact.created",
    "contact.updated",
    "contact.deleted",
    "time_off.created",
    "time_off.updated",
    "time_off.deleted",
    "timesheet.created",
    "timesheet.updated",
    "timesheet.deleted",
    "timesheet.submitted",
    "timesheet.locked",
    "timesheet.unlocked",
    "timesheet.processed",
    "report.daily_submitted",
    "report.completion_submitted",
    "report.completion_approved",
    "webhook.disabled",
    "delivery.exhausted",
];

/// Catalog events that no inbound operation can cause (SPEC section 7): subscribing is a 400.
const NOT_EMITTED: &[&str] = &[
    "po.",
    "report.generated",
    "report.scheduled",
    "report.failed",
    "timesheets.processed",
    "timesheets.processed.batch",
    "attachment.",
];

/// Events the gateway sends to one subscription only (test sends, URL verification), never
/// fanned out.
pub fn is_internal(event_type: &str) -> bool {
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
pub fn parse_patterns(input: &[String]) -> Result<Vec<String>, ApiError> {
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
        let known = if p == "*" {
            true
        } else if let Some(prefix) = p.strip_suffix(".*") {
            EMITTED.iter().any(|e| e.starts_with(&format!("{prefix}.")))
        } else {
            EMITTED.contains(&p.as_str())
        };
        if !known {
            return Err(ApiError::bad_request(
                "unknown_event",
                format!("unknown event type {raw:?}"),
            )
            .with_details(EMITTED.iter().map(|e| json!(e)).collect()));
        }
        out.push(p);
    }
    Ok(out)
}

pub fn matches(patterns: &[String], event_type: &str) -> bool {
    patterns.iter().any(|p| {
        p == "*"
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
