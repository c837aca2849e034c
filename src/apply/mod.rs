//! Stage 9: apply a validated event to the company's records, inside the writer's
//! transaction, together with the outbound events it causes (the transactional outbox, tagged
//! with the originating key). Searches are the exception: they are reads and run on a read
//! connection, never queueing behind the writer.
//!
//! **Architecture invariant:** this module never sees raw request bytes or HTTP types; it gets a
//! [`ValidatedEvent`] and talks to storage only through [`WriteTx`] / [`ReadConn`].

mod directory;
mod op;
mod payload;
mod projects;
mod rejection;
mod reports;
mod search;
mod status;
mod time;
mod work_orders;

use serde_json::{Map, Value};

use crate::catalog::InboundEvent;
use crate::store::{ReadConn, StoreError, WriteTx};
use crate::validate::ValidatedEvent;
use op::Op;

pub use op::natural_key;
pub(crate) use rejection::{Rejection, RejectionKind};

/// Who is applying the event, and the ids it gets.
#[derive(Debug, Clone)]
pub(crate) struct ApplyContext {
    pub company_id: String,
    pub key_id: String,
    /// The integration's name (e.g. `erp`): who did it, as payloads' `*_by_name` say.
    pub key_name: String,
    /// The id of the inbound event (answered to the sender and named by every outbound event
    /// it causes, as `source_event_id`).
    pub event_id: String,
    pub now_ms: i64,
    pub signature_verified: bool,
}

/// A successful apply: the success body's message, record id and extra fields.
#[derive(Debug, Clone)]
pub(crate) struct Applied {
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
pub(crate) enum DomainError {
    #[error("{}", .0.message)]
    Rejected(Rejection),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<Rejection> for DomainError {
    fn from(r: Rejection) -> Self {
        DomainError::Rejected(r)
    }
}

type Data = Map<String, Value>;
type Outcome = Result<Applied, DomainError>;
type Handler = fn(&Op, &Data) -> Outcome;

/// What a validated event asks for: a change (in the writer's transaction) or a search (on a
/// read connection, never queueing behind the writer). Built only by [`route`].
pub enum Route {
    Change(Change),
    Search(Search),
}

/// A validated event that changes records, with the operation that applies it.
pub struct Change {
    event: ValidatedEvent,
    handler: Handler,
}

impl Change {
    pub(crate) fn event_type(&self) -> InboundEvent {
        self.event.event_type()
    }
}

/// A validated search, with what it searches.
pub struct Search {
    event: ValidatedEvent,
    target: search::Target,
}

/// Dispatch: the one place that says which operation each inbound event type runs.
pub(crate) fn route(event: ValidatedEvent) -> Route {
    use InboundEvent::*;
    let handler: Handler = match event.event_type() {
        WorkOrderCreated => work_orders::create,
        WorkOrderUpdated => work_orders::update,
        WorkOrderDeleted => work_orders::delete,
        ProjectCreated => projects::create,
        ProjectUpdated => projects::update,
        ProjectDeleted => projects::delete,
        ProjectClosed => projects::close,
        EmployeeCreated => directory::employee_create,
        EmployeeUpdated => directory::employee_update,
        EmployeeDeleted => directory::employee_delete,
        VendorCreated => directory::vendor_create,
        VendorUpdated => directory::vendor_update,
        VendorDeleted => directory::vendor_delete,
        CustomerCreated => directory::customer_create,
        CustomerUpdated => directory::customer_update,
        CustomerDeleted => directory::customer_delete,
        LocationCreated => directory::location_create,
        LocationUpdated => directory::location_update,
        LocationDeleted => directory::location_delete,
        ContactCreated => directory::contact_create,
        ContactUpdated => directory::contact_update,
        ContactDeleted => directory::contact_delete,
        TimeOffCreated => time::time_off_create,
        TimeOffUpdated => time::time_off_update,
        TimeOffDeleted => time::time_off_delete,
        TimesheetCreated => time::timesheet_create,
        TimesheetUpdated => time::timesheet_update,
        TimesheetDeleted => time::timesheet_delete,
        ReportDailySubmitted => reports::daily_submitted,
        ReportCompletionSubmitted => reports::completion_submitted,
        ReportCompletionApproved => reports::completion_approved,
        TestConnection => test_connection,
        ProjectSearch => {
            return Route::Search(Search {
                event,
                target: search::Target::Projects,
            });
        }
        WorkOrderSearch => {
            return Route::Search(Search {
                event,
                target: search::Target::WorkOrders,
            });
        }
    };
    Route::Change(Change { event, handler })
}

/// `test.connection` changes nothing; it says whether the request was signed.
fn test_connection(op: &Op, _: &Data) -> Outcome {
    Ok(Applied::new(
        "Webhook processed successfully",
        crate::crypto::sortable_id("rec_"),
    )
    .with("signature_verified", Value::Bool(op.ctx.signature_verified)))
}

/// Applies a change. On an error, the caller must undo the job's writes
/// ([`WriteTx::undo_job_writes`]): a failing operation may have written part of its change.
pub(crate) fn apply(
    tx: &WriteTx,
    ctx: &ApplyContext,
    change: &Change,
) -> Result<Applied, DomainError> {
    let op = Op::new(tx, ctx);
    (change.handler)(&op, change.event.data()).map(|mut applied| {
        applied.events = op.emitted.get();
        applied
    })
}

/// `project.search` and `work_order.search`, on a read connection.
pub(crate) fn search(
    conn: &ReadConn,
    company_id: &str,
    search: &Search,
) -> Result<Value, DomainError> {
    search::run(conn, company_id, search.target, search.event.data())
}
