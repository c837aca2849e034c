//! The status workflows of work orders and timesheets: which moves are allowed and which
//! catalog event announces each.

use serde_json::Value;

use crate::catalog::OutboundEvent;
use crate::store::Record;

/// The stored `status` of `record`, when it parses.
fn stored<T>(record: &Record, parse: fn(&str) -> Option<T>) -> Option<T> {
    record
        .data
        .get("status")
        .and_then(Value::as_str)
        .and_then(parse)
}

/// SPEC section 7: a work order's statuses; `completed` and `cancelled` are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WorkOrderStatus {
    Draft,
    Scheduled,
    InProgress,
    OnHold,
    Completed,
    Cancelled,
}

impl WorkOrderStatus {
    pub(crate) const ALL: &'static [WorkOrderStatus] = &[
        WorkOrderStatus::Draft,
        WorkOrderStatus::Scheduled,
        WorkOrderStatus::InProgress,
        WorkOrderStatus::OnHold,
        WorkOrderStatus::Completed,
        WorkOrderStatus::Cancelled,
    ];

    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            WorkOrderStatus::Draft => "draft",
            WorkOrderStatus::Scheduled => "scheduled",
            WorkOrderStatus::InProgress => "in_progress",
            WorkOrderStatus::OnHold => "on_hold",
            WorkOrderStatus::Completed => "completed",
            WorkOrderStatus::Cancelled => "cancelled",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<WorkOrderStatus> {
        Self::ALL.iter().copied().find(|s| s.as_str() == text)
    }

    /// The work order's status (`draft` when it has none).
    pub(crate) fn of(record: &Record) -> WorkOrderStatus {
        stored(record, Self::parse).unwrap_or(WorkOrderStatus::Draft)
    }

    pub(crate) const fn is_final(self) -> bool {
        matches!(
            self,
            WorkOrderStatus::Completed | WorkOrderStatus::Cancelled
        )
    }

    /// Any status may move to any other, except out of a final one.
    pub(crate) fn allows(self, next: WorkOrderStatus) -> bool {
        self == next || !self.is_final()
    }

    /// The catalog's event for entering this status, and the verb of its payload's
    /// `<verb>_at` / `<verb>_by` fields.
    pub(crate) const fn entered(self) -> Option<(OutboundEvent, &'static str)> {
        match self {
            WorkOrderStatus::Scheduled => Some((OutboundEvent::WorkOrderScheduled, "scheduled")),
            WorkOrderStatus::InProgress => Some((OutboundEvent::WorkOrderStarted, "started")),
            WorkOrderStatus::Completed => Some((OutboundEvent::WorkOrderCompleted, "completed")),
            WorkOrderStatus::Cancelled => Some((OutboundEvent::WorkOrderCancelled, "cancelled")),
            WorkOrderStatus::Draft | WorkOrderStatus::OnHold => None,
        }
    }
}

/// A daily timesheet's workflow: draft → submitted → locked → processed, with a manager's
/// unlock (locked → draft or submitted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimesheetStatus {
    Draft,
    Submitted,
    Locked,
    Processed,
}

impl TimesheetStatus {
    pub(crate) const ALL: &'static [TimesheetStatus] = &[
        TimesheetStatus::Draft,
        TimesheetStatus::Submitted,
        TimesheetStatus::Locked,
        TimesheetStatus::Processed,
    ];

    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            TimesheetStatus::Draft => "draft",
            TimesheetStatus::Submitted => "submitted",
            TimesheetStatus::Locked => "locked",
            TimesheetStatus::Processed => "processed",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<TimesheetStatus> {
        Self::ALL.iter().copied().find(|s| s.as_str() == text)
    }

    /// The timesheet's status (`draft` when it has none).
    pub(crate) fn of(record: &Record) -> TimesheetStatus {
        stored(record, Self::parse).unwrap_or(TimesheetStatus::Draft)
    }

    /// Locked and processed timesheets accept no edits.
    pub(crate) const fn is_frozen(self) -> bool {
        matches!(self, TimesheetStatus::Locked | TimesheetStatus::Processed)
    }

    /// A manager's unlock: locked back to draft or submitted.
    pub(crate) fn is_unlock(self, next: TimesheetStatus) -> bool {
        self == TimesheetStatus::Locked
            && matches!(next, TimesheetStatus::Draft | TimesheetStatus::Submitted)
    }

    pub(crate) fn allows(self, next: TimesheetStatus) -> bool {
        use TimesheetStatus::*;
        self == next
            || self.is_unlock(next)
            || matches!(
                (self, next),
                (Draft, Submitted) | (Submitted, Draft) | (Submitted, Locked) | (Locked, Processed)
            )
    }

    /// The catalog's event for the move from `self` to `next`, if it has one, and the verb
    /// of its payload's `<verb>_at` / `<verb>_by` / `<verb>_by_name` fields.
    pub(crate) fn event_for(self, next: TimesheetStatus) -> Option<(OutboundEvent, &'static str)> {
        if self == next {
            return None;
        }
        if self.is_unlock(next) {
            return Some((OutboundEvent::TimesheetUnlocked, "unlocked"));
        }
        match next {
            TimesheetStatus::Submitted => Some((OutboundEvent::TimesheetSubmitted, "submitted")),
            TimesheetStatus::Locked => Some((OutboundEvent::TimesheetLocked, "locked")),
            TimesheetStatus::Processed => Some((OutboundEvent::TimesheetProcessed, "processed")),
            TimesheetStatus::Draft => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::InboundEvent;

    /// The statuses the inbound schemas accept are exactly these.
    fn schema_enum(event: InboundEvent) -> Vec<String> {
        event.schema()["properties"]["status"]["enum"]
            .as_array()
            .expect("a status enum")
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn statuses_match_the_schemas() {
        let work_order: Vec<&str> = WorkOrderStatus::ALL.iter().map(|s| s.as_str()).collect();
        let timesheet: Vec<&str> = TimesheetStatus::ALL.iter().map(|s| s.as_str()).collect();
        for event in [
            InboundEvent::WorkOrderCreated,
            InboundEvent::WorkOrderUpdated,
        ] {
            assert_eq!(schema_enum(event), work_order);
        }
        for event in [
            InboundEvent::TimesheetCreated,
            InboundEvent::TimesheetUpdated,
        ] {
            assert_eq!(schema_enum(event), timesheet);
        }
    }

    #[test]
    fn work_orders_never_leave_a_final_status() {
        use WorkOrderStatus::*;
        assert!(Draft.allows(Completed) && OnHold.allows(Scheduled));
        assert!(!Completed.allows(InProgress) && !Cancelled.allows(Draft));
        assert!(Completed.allows(Completed));
    }

    #[test]
    fn timesheet_workflow_and_its_events() {
        use TimesheetStatus::*;
        assert!(Draft.allows(Submitted) && Submitted.allows(Locked) && Locked.allows(Processed));
        assert!(!Draft.allows(Locked) && !Processed.allows(Draft) && !Draft.allows(Processed));
        let event = |from: TimesheetStatus, to| from.event_for(to).map(|(e, _)| e);
        assert_eq!(event(Locked, Draft), Some(OutboundEvent::TimesheetUnlocked));
        assert_eq!(
            event(Locked, Submitted),
            Some(OutboundEvent::TimesheetUnlocked)
        );
        assert_eq!(
            event(Draft, Submitted),
            Some(OutboundEvent::TimesheetSubmitted)
        );
        assert_eq!(Submitted.event_for(Draft), None);
        assert!(Locked.is_frozen() && Processed.is_frozen() && !Submitted.is_frozen());
    }
}
