//! The one error type that reaches clients: an HTTP status, a machine-readable code, a message
//! and optional details, rendered as `{"success": false, "error": {code, message, details}}`.
//! Every stage's own error converts into it; internal failures become an opaque 500 that
//! carries only the request id (the cause is logged, never shown).

use serde_json::{Value, json};

use crate::apply::{Rejection, RejectionKind};

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub details: Vec<Value>,
}

impl ApiError {
    pub(crate) fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }

    pub(crate) fn with_details(mut self, details: Vec<Value>) -> ApiError {
        self.details = details;
        self
    }

    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(400, code, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(404, "not_found", message)
    }

    pub(crate) fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(409, code, message)
    }

    pub(crate) fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(422, code, message)
    }

    /// Logs `cause` (the request's span carries its id) and returns what clients see: 503
    /// `storage_unavailable` when the database cannot take the request now (a full disk, an
    /// I/O error; the answer carries `Retry-After`), else the opaque 500 that quotes the id of
    /// the request being served (outside a request, the CLI's operator sees the cause).
    pub(crate) fn internal(cause: &dyn Cause) -> ApiError {
        if cause.storage_unavailable() {
            tracing::warn!(error = %cause, "storage unavailable");
            return ApiError::new(
                503,
                "storage_unavailable",
                "the gateway cannot store requests right now; nothing was applied, retry later",
            );
        }
        tracing::error!(error = %cause, "internal error");
        let message = match crate::request::current_id() {
            Some(id) => format!("internal error; quote request id {id} when reporting it"),
            None => format!("internal error: {cause}"),
        };
        ApiError::new(500, "internal_error", message)
    }

    pub(crate) fn body(&self) -> Value {
        json!({
            "success": false,
            "error": {"code": self.code, "message": self.message, "details": self.details},
        })
    }
}

/// How long a client is asked to wait after a 503 (`Retry-After`).
pub(crate) const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 2;

/// The cause of an internal failure: shown only in logs, but it decides between 500 and 503.
pub(crate) trait Cause: std::fmt::Display {
    /// Whether the storage cannot take the request now (trying later may work).
    fn storage_unavailable(&self) -> bool {
        false
    }
}

impl Cause for crate::store::StoreError {
    fn storage_unavailable(&self) -> bool {
        self.is_unavailable()
    }
}

impl Cause for crate::keys::KeyError {
    fn storage_unavailable(&self) -> bool {
        matches!(self, crate::keys::KeyError::Store(e) if e.is_unavailable())
    }
}

impl Cause for &str {}

/// A task of the blocking pool that panicked.
impl Cause for tokio::task::JoinError {}

/// The message alone: what the CLI prints when an operation it shares with the REST API fails.
impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

/// The one mapping of business-rule rejections to HTTP statuses and error codes (SPEC section
/// 7: 404 for a missing target, 409 for a conflict with current state, 422 for a missing
/// reference or a rule that needs the store).
impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> ApiError {
        use RejectionKind::*;
        let (status, code) = match rejection.kind {
            NotFound => (404, "not_found"),
            AlreadyExists => (409, "already_exists"),
            ProjectClosed => (409, "project_closed"),
            InvalidStatusTransition => (409, "invalid_status_transition"),
            AmbiguousWorkOrder => (409, "ambiguous_work_order"),
            OpenWorkOrders => (409, "open_work_orders"),
            HasDependents => (409, "has_dependents"),
            TimesheetLocked => (409, "timesheet_locked"),
            NoPendingReport => (409, "no_pending_report"),
            ReferenceNotFound => (422, "reference_not_found"),
            UnknownSkills => (422, "unknown_skills"),
            InvalidDateRange => (422, "invalid_date_range"),
            EntryDateMismatch => (422, "entry_date_mismatch"),
            UnknownWorkType => (422, "unknown_work_type"),
            WorkOrderRequired => (422, "work_order_required"),
        };
        ApiError::new(status, code, rejection.message).with_details(rejection.details)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_500_quotes_the_id_of_the_request_being_served() {
        let id = crate::request::new_id();
        let error = crate::request::run_as(id.clone(), "test", async {
            ApiError::internal(&"the disk caught fire")
        })
        .await;
        assert_eq!((error.status, error.code), (500, "internal_error"));
        assert_eq!(
            error.message,
            format!("internal error; quote request id {id} when reporting it")
        );
        assert!(!error.message.contains("fire"), "the cause is not shown");
        // Outside a request (the CLI), the operator sees the cause.
        let error = ApiError::internal(&"the disk caught fire");
        assert_eq!(error.message, "internal error: the disk caught fire");
    }
}
