//! Why a business rule refused a request, as the domain sees it. The pipeline's edge maps each
//! kind to its HTTP status and error code once (`impl From<Rejection> for ApiError`); nothing
//! here knows HTTP.

use serde_json::Value;

/// What kind of rule refused the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RejectionKind {
    /// The record to update, close or delete does not exist.
    NotFound,
    /// A record the request refers to (project, employee, work order, customer) is missing.
    ReferenceNotFound,
    /// A record with this natural key already exists.
    AlreadyExists,
    /// Work orders cannot be added to a closed project.
    ProjectClosed,
    /// The record's current status does not allow the requested one.
    InvalidStatusTransition,
    /// Project code + phase name match more than one work order.
    AmbiguousWorkOrder,
    /// A project with open work orders cannot close without `close_work_orders`.
    OpenWorkOrders,
    /// A customer still used by projects cannot be deleted.
    HasDependents,
    /// A locked or processed timesheet cannot be edited or deleted.
    TimesheetLocked,
    /// Approval of a work order without a pending completion report.
    NoPendingReport,
    /// Skills missing from the company's skill library.
    UnknownSkills,
    /// An end date before its start date.
    InvalidDateRange,
    /// A timesheet entry dated another day than its timesheet.
    EntryDateMismatch,
    /// No active work type with the given code or name (or no default).
    UnknownWorkType,
    /// A billable work type's entry without a work order.
    WorkOrderRequired,
}

/// A refused request: the rule, a message naming what is wrong, and machine-readable details.
#[derive(Debug, Clone)]
pub(crate) struct Rejection {
    pub kind: RejectionKind,
    pub message: String,
    pub details: Vec<Value>,
}

impl Rejection {
    pub(crate) fn new(kind: RejectionKind, message: impl Into<String>) -> Rejection {
        Rejection {
            kind,
            message: message.into(),
            details: Vec::new(),
        }
    }

    pub(crate) fn with_details(mut self, details: Vec<Value>) -> Rejection {
        self.details = details;
        self
    }
}
