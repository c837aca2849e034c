//! Stage 9: apply a validated event to the company's records, inside the writer's
//! transaction, together with the outbound events it causes (the transactional outbox, tagged
//! with the originating key). Searches are the exception: they are reads and run on a read
//! connection, never queueing behind the writer.
//!
//! **Architecture invariant:** this module never sees raw request bytes or HTTP types; it gets a
//! [`ValidatedEvent`] and talks to storage only through [`WriteTx`] / [`ReadConn`].

mod directory;
mod op;
mod projects;
mod reports;
mod search;
mod time;
mod work_orders;

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::store::{ReadConn, StoreError, WriteTx};
use crate::validate::ValidatedEvent;
use op::Op;

pub use op::natural_key;

/// Who is applying the event, and the ids it gets.
#[derive(Debug, Clone)]
pub struct ApplyContext {
    pub company_id: String,
    pub key_id: String,
    pub event_id: String,
    pub now_ms: i64,
    pub signature_verified: bool,
}

/// A successful apply: the success body's message, record id and extra fields.
#[derive(Debug, Clone)]
pub struct Applied {
    pub message: &'static str,
    pub record_id: String,
    pub extra: Map<String, Value>,
    /// How many outbound events the change wrote.
    pub events: usize,
}

impl Applied {
    fn new(message: &'static str, record_id: impl Into<String>) -> Applied {
        Applied {
            message,
            record_id: record_id.into(),
            extra: Map::new(),
            events: 0,
        }
    }

    fn with(mut self, field: &str, value: Value) -> Applied {
        self.extra.insert(field.to_string(), value);
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("{}", .0.message)]
    Rejected(ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ApiError> for DomainError {
    fn from(e: ApiError) -> Self {
        DomainError::Rejected(e)
    }
}

/// Whether the event only reads (searches): those never go through the writer.
pub fn is_read_only(event_type: &str) -> bool {
    event_type.ends_with(".search")
}

/// Applies the event. On an error, the caller must undo the job's writes
/// ([`WriteTx::undo_job_writes`]): a failing operation may have written part of its change.
pub fn apply(
    tx: &WriteTx,
    ctx: &ApplyContext,
    event: &ValidatedEvent,
) -> Result<Applied, DomainError> {
    let op = Op {
        tx,
        ctx,
        emitted: std::cell::Cell::new(0),
        seen: Default::default(),
    };
    let data = &event.data;
    let applied = match event.event_type {
        "work_order.created" => work_orders::create(&op, data),
        "work_order.updated" => work_orders::update(&op, data),
        "work_order.deleted" => work_orders::delete(&op, data),
        "project.created" => projects::create(&op, data),
        "project.updated" => projects::update(&op, data),
        "project.deleted" => projects::delete(&op, data),
        "project.closed" => projects::close(&op, data),
        "employee.created" => directory::employee_create(&op, data),
        "employee.updated" => directory::employee_update(&op, data),
        "employee.deleted" => directory::employee_delete(&op, data),
        "vendor.created" => directory::vendor_create(&op, data),
        "vendor.updated" => directory::vendor_update(&op, data),
        "vendor.deleted" => directory::vendor_delete(&op, data),
        "customer.created" => directory::customer_create(&op, data),
        "customer.updated" => directory::customer_update(&op, data),
        "customer.deleted" => directory::customer_delete(&op, data),
        "location.created" => directory::location_create(&op, data),
        "location.updated" => directory::location_update(&op, data),
        "location.deleted" => directory::location_delete(&op, data),
        "contact.created" => directory::contact_create(&op, data),
        "contact.updated" => directory::contact_update(&op, data),
        "contact.deleted" => directory::contact_delete(&op, data),
        "time_off.created" => time::time_off_create(&op, data),
        "time_off.updated" => time::time_off_update(&op, data),
        "time_off.deleted" => time::time_off_delete(&op, data),
        "timesheet.created" => time::timesheet_create(&op, data),
        "timesheet.updated" => time::timesheet_update(&op, data),
        "timesheet.deleted" => time::timesheet_delete(&op, data),
        "report.daily_submitted" => reports::daily_submitted(&op, data),
        "report.completion_submitted" => reports::completion_submitted(&op, data),
        "report.completion_approved" => reports::completion_approved(&op, data),
        "test.connection" => Ok(Applied::new(
            "Webhook processed successfully",
            crate::crypto::sortable_id("rec_"),
        )
        .with("signature_verified", Value::Bool(ctx.signature_verified))),
        other => {
            Err(ApiError::new(501, "not_implemented", format!("{other} cannot be applied")).into())
        }
    };
    applied.map(|mut a| {
        a.events = op.emitted.get();
        a
    })
}

/// `project.search` and `work_order.search`, on a read connection.
pub fn search(
    conn: &ReadConn,
    company_id: &str,
    event: &ValidatedEvent,
) -> Result<Value, DomainError> {
    search::run(conn, company_id, event)
}
