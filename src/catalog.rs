//! The event catalog: every inbound event type the gateway accepts, every outbound event it
//! emits, and the kinds of record they concern. Each list is written once, here; envelope
//! parsing, schema embedding, dispatch, metrics labels, subscription patterns, the
//! `GET /api/v1/event-types` answer and `hookgate events list` all read it.
//!
//! Each event's JSON Schema is embedded from `schemas/` (inbound: the envelope's `data`;
//! outbound: `schemas/outbound/`, the whole delivered body). A schema's `description` is the
//! event's description, so the documentation has one source too.
//!
//! **Architecture Invariant:** this module knows no storage, HTTP or pipeline types; every
//! other module may use it.

use std::sync::OnceLock;

use serde_json::{Value, json};

/// Defines an event enum with its wire names and embedded schemas, in the seed's order.
macro_rules! event_enum {
    (
        $(#[$meta:meta])*
        $enum:ident, $dir:literal {
            $($variant:ident => $name:literal;)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $enum {
            $($variant),*
        }

        impl $enum {
            /// Every variant, in the catalog's order.
            pub const ALL: &'static [$enum] = &[$($enum::$variant),*];

            /// Every wire name, in the catalog's order.
            pub const NAMES: &'static [&'static str] = &[$($name),*];

            /// The wire name, e.g. `work_order.created`.
            pub const fn name(self) -> &'static str {
                match self {
                    $($enum::$variant => $name),*
                }
            }

            /// The variant named `name` exactly.
            pub fn parse(name: &str) -> Option<$enum> {
                match name {
                    $($name => Some($enum::$variant),)*
                    _ => None,
                }
            }

            /// The schema's source text, embedded from `schemas/`.
            pub const fn schema_source(self) -> &'static str {
                match self {
                    $($enum::$variant => include_str!(concat!("../schemas/", $dir, $name, ".json"))),*
                }
            }

            /// The schema, parsed once.
            pub fn schema(self) -> &'static Value {
                static PARSED: OnceLock<Vec<Value>> = OnceLock::new();
                &PARSED.get_or_init(|| {
                    $enum::ALL
                        .iter()
                        .map(|e| {
                            serde_json::from_str(e.schema_source()).unwrap_or_else(|err| {
                                panic!("schemas/{}{}.json is not JSON: {err}", $dir, e.name())
                            })
                        })
                        .collect()
                })[self as usize]
            }

            /// What the event means: its schema's `description`.
            pub fn description(self) -> &'static str {
                self.schema()["description"].as_str().unwrap_or("")
            }
        }

        impl std::fmt::Display for $enum {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

event_enum! {
    /// An event type a sender may put in an envelope's `event_type`.
    InboundEvent, "" {
        WorkOrderCreated => "work_order.created";
        WorkOrderUpdated => "work_order.updated";
        WorkOrderDeleted => "work_order.deleted";
        ProjectCreated => "project.created";
        ProjectUpdated => "project.updated";
        ProjectDeleted => "project.deleted";
        ProjectClosed => "project.closed";
        EmployeeCreated => "employee.created";
        EmployeeUpdated => "employee.updated";
        EmployeeDeleted => "employee.deleted";
        VendorCreated => "vendor.created";
        VendorUpdated => "vendor.updated";
        VendorDeleted => "vendor.deleted";
        CustomerCreated => "customer.created";
        CustomerUpdated => "customer.updated";
        CustomerDeleted => "customer.deleted";
        LocationCreated => "location.created";
        LocationUpdated => "location.updated";
        LocationDeleted => "location.deleted";
        ContactCreated => "contact.created";
        ContactUpdated => "contact.updated";
        ContactDeleted => "contact.deleted";
        TimeOffCreated => "time_off.created";
        TimeOffUpdated => "time_off.updated";
        TimeOffDeleted => "time_off.deleted";
        TimesheetCreated => "timesheet.created";
        TimesheetUpdated => "timesheet.updated";
        TimesheetDeleted => "timesheet.deleted";
        ReportDailySubmitted => "report.daily_submitted";
        ReportCompletionSubmitted => "report.completion_submitted";
        ReportCompletionApproved => "report.completion_approved";
        ProjectSearch => "project.search";
        WorkOrderSearch => "work_order.search";
        TestConnection => "test.connection";
    }
}

impl InboundEvent {
    /// Searches only read: they run on a read connection and never queue behind the writer.
    pub fn is_read_only(self) -> bool {
        matches!(
            self,
            InboundEvent::ProjectSearch | InboundEvent::WorkOrderSearch
        )
    }
}

event_enum! {
    /// An event type the gateway emits to subscriptions, with the kind of record it concerns
    /// (the `entity` of a `thin` payload).
    OutboundEvent, "outbound/" {
        WorkOrderCreated => "work_order.created";
        WorkOrderUpdated => "work_order.updated";
        WorkOrderDeleted => "work_order.deleted";
        WorkOrderStatusChanged => "work_order.status_changed";
        WorkOrderScheduled => "work_order.scheduled";
        WorkOrderStarted => "work_order.started";
        WorkOrderCompleted => "work_order.completed";
        WorkOrderCancelled => "work_order.cancelled";
        ProjectCreated => "project.created";
        ProjectUpdated => "project.updated";
        ProjectDeleted => "project.deleted";
        ProjectClosed => "project.closed";
        EmployeeCreated => "employee.created";
        EmployeeUpdated => "employee.updated";
        EmployeeDeleted => "employee.deleted";
        EmployeeAssigned => "employee.assigned";
        VendorCreated => "vendor.created";
        VendorUpdated => "vendor.updated";
        VendorDeleted => "vendor.deleted";
        CustomerCreated => "customer.created";
        CustomerUpdated => "customer.updated";
        CustomerDeleted => "customer.deleted";
        LocationCreated => "location.created";
        LocationUpdated => "location.updated";
        LocationDeleted => "location.deleted";
        ContactCreated => "contact.created";
        ContactUpdated => "contact.updated";
        ContactDeleted => "contact.deleted";
        TimeOffCreated => "time_off.created";
        TimeOffUpdated => "time_off.updated";
        TimeOffDeleted => "time_off.deleted";
        TimesheetCreated => "timesheet.created";
        TimesheetUpdated => "timesheet.updated";
        TimesheetDeleted => "timesheet.deleted";
        TimesheetSubmitted => "timesheet.submitted";
        TimesheetLocked => "timesheet.locked";
        TimesheetUnlocked => "timesheet.unlocked";
        TimesheetProcessed => "timesheet.processed";
        ReportDailySubmitted => "report.daily_submitted";
        ReportCompletionSubmitted => "report.completion_submitted";
        ReportCompletionApproved => "report.completion_approved";
        WebhookDisabled => "webhook.disabled";
        DeliveryExhausted => "delivery.exhausted";
    }
}

impl OutboundEvent {
    /// The kind of record the event concerns; its `thin` payload is `{entity, id}`.
    pub const fn entity(self) -> Entity {
        use OutboundEvent::*;
        match self {
            WorkOrderCreated
            | WorkOrderUpdated
            | WorkOrderDeleted
            | WorkOrderStatusChanged
            | WorkOrderScheduled
            | WorkOrderStarted
            | WorkOrderCompleted
            | WorkOrderCancelled => Entity::WorkOrder,
            ProjectCreated | ProjectUpdated | ProjectDeleted | ProjectClosed => Entity::Project,
            EmployeeCreated | EmployeeUpdated | EmployeeDeleted | EmployeeAssigned => {
                Entity::Employee
            }
            VendorCreated | VendorUpdated | VendorDeleted => Entity::Vendor,
            CustomerCreated | CustomerUpdated | CustomerDeleted => Entity::Customer,
            LocationCreated | LocationUpdated | LocationDeleted => Entity::Location,
            ContactCreated | ContactUpdated | ContactDeleted => Entity::Contact,
            TimeOffCreated | TimeOffUpdated | TimeOffDeleted => Entity::TimeOff,
            TimesheetCreated | TimesheetUpdated | TimesheetDeleted | TimesheetSubmitted
            | TimesheetLocked | TimesheetUnlocked | TimesheetProcessed => Entity::Timesheet,
            ReportDailySubmitted => Entity::DailyReport,
            ReportCompletionSubmitted | ReportCompletionApproved => Entity::CompletionReport,
            WebhookDisabled => Entity::Webhook,
            DeliveryExhausted => Entity::Delivery,
        }
    }

    /// Operational events: about the gateway's own subscriptions and deliveries, not about a
    /// company's records. They never go to the subscription they are about.
    pub const fn is_operational(self) -> bool {
        matches!(
            self,
            OutboundEvent::WebhookDisabled | OutboundEvent::DeliveryExhausted
        )
    }

    /// The top-level `data` fields every payload of this type carries (null when unknown):
    /// the `required` list of its schema's `data`. The schema is the one statement of a
    /// payload's shape; the emitter fills in what a record lacks.
    pub fn required_fields(self) -> &'static [String] {
        static REQUIRED: OnceLock<Vec<Vec<String>>> = OnceLock::new();
        &REQUIRED.get_or_init(|| {
            OutboundEvent::ALL
                .iter()
                .map(|e| {
                    e.schema()["properties"]["data"]["required"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .collect()
        })[self as usize]
    }
}

/// The body of every delivery to a `thin` subscription: `{entity, id}`.
pub const THIN_SCHEMA: &str = include_str!("../schemas/outbound/thin.json");

/// Event types of the seed's catalog that no inbound operation can cause (SPEC section 7):
/// never emitted, so subscribing to them is refused. A trailing `.` names a family.
pub const NOT_EMITTED: &[&str] = &[
    "po.",
    "attachment.",
    "report.generated",
    "report.scheduled",
    "report.failed",
    "timesheets.processed",
    "timesheets.processed.batch",
];

/// A kind of record in a company's store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Entity {
    WorkOrder,
    Project,
    Employee,
    Vendor,
    Customer,
    Location,
    Contact,
    TimeOff,
    Timesheet,
    DailyReport,
    CompletionReport,
    Department,
    Role,
    /// An outbound subscription (operational events).
    Webhook,
    /// One delivery to a subscription (operational events).
    Delivery,
}

impl Entity {
    pub const ALL: &'static [Entity] = &[
        Entity::WorkOrder,
        Entity::Project,
        Entity::Employee,
        Entity::Vendor,
        Entity::Customer,
        Entity::Location,
        Entity::Contact,
        Entity::TimeOff,
        Entity::Timesheet,
        Entity::DailyReport,
        Entity::CompletionReport,
        Entity::Department,
        Entity::Role,
        Entity::Webhook,
        Entity::Delivery,
    ];

    /// The stored kind, also the `entity` of a `thin` payload.
    pub const fn kind(self) -> &'static str {
        match self {
            Entity::WorkOrder => "work_order",
            Entity::Project => "project",
            Entity::Employee => "employee",
            Entity::Vendor => "vendor",
            Entity::Customer => "customer",
            Entity::Location => "location",
            Entity::Contact => "contact",
            Entity::TimeOff => "time_off",
            Entity::Timesheet => "timesheet",
            Entity::DailyReport => "daily_report",
            Entity::CompletionReport => "completion_report",
            Entity::Department => "department",
            Entity::Role => "role",
            Entity::Webhook => "webhook",
            Entity::Delivery => "delivery",
        }
    }

    /// What a new record of this kind announces itself as.
    pub const fn created_event(self) -> Option<OutboundEvent> {
        Some(match self {
            Entity::WorkOrder => OutboundEvent::WorkOrderCreated,
            Entity::Project => OutboundEvent::ProjectCreated,
            Entity::Employee => OutboundEvent::EmployeeCreated,
            Entity::Vendor => OutboundEvent::VendorCreated,
            Entity::Customer => OutboundEvent::CustomerCreated,
            Entity::Location => OutboundEvent::LocationCreated,
            Entity::Contact => OutboundEvent::ContactCreated,
            Entity::TimeOff => OutboundEvent::TimeOffCreated,
            Entity::Timesheet => OutboundEvent::TimesheetCreated,
            Entity::DailyReport => OutboundEvent::ReportDailySubmitted,
            Entity::CompletionReport => OutboundEvent::ReportCompletionSubmitted,
            Entity::Department | Entity::Role | Entity::Webhook | Entity::Delivery => return None,
        })
    }

    /// What a change of a record of this kind announces itself as.
    pub const fn updated_event(self) -> Option<OutboundEvent> {
        Some(match self {
            Entity::WorkOrder => OutboundEvent::WorkOrderUpdated,
            Entity::Project => OutboundEvent::ProjectUpdated,
            Entity::Employee => OutboundEvent::EmployeeUpdated,
            Entity::Vendor => OutboundEvent::VendorUpdated,
            Entity::Customer => OutboundEvent::CustomerUpdated,
            Entity::Location => OutboundEvent::LocationUpdated,
            Entity::Contact => OutboundEvent::ContactUpdated,
            Entity::TimeOff => OutboundEvent::TimeOffUpdated,
            Entity::Timesheet => OutboundEvent::TimesheetUpdated,
            // A pending completion report replaced by a new submission is submitted again.
            Entity::CompletionReport => OutboundEvent::ReportCompletionSubmitted,
            Entity::DailyReport
            | Entity::Department
            | Entity::Role
            | Entity::Webhook
            | Entity::Delivery => return None,
        })
    }

    /// What a deleted record of this kind announces itself as.
    pub const fn deleted_event(self) -> Option<OutboundEvent> {
        Some(match self {
            Entity::WorkOrder => OutboundEvent::WorkOrderDeleted,
            Entity::Project => OutboundEvent::ProjectDeleted,
            Entity::Employee => OutboundEvent::EmployeeDeleted,
            Entity::Vendor => OutboundEvent::VendorDeleted,
            Entity::Customer => OutboundEvent::CustomerDeleted,
            Entity::Location => OutboundEvent::LocationDeleted,
            Entity::Contact => OutboundEvent::ContactDeleted,
            Entity::TimeOff => OutboundEvent::TimeOffDeleted,
            Entity::Timesheet => OutboundEvent::TimesheetDeleted,
            Entity::DailyReport
            | Entity::CompletionReport
            | Entity::Department
            | Entity::Role
            | Entity::Webhook
            | Entity::Delivery => return None,
        })
    }
}

/// The whole catalog, as `GET /api/v1/event-types` puts it in `data` and `hookgate events list
/// --json` prints it.
pub fn describe() -> Value {
    let inbound: Vec<Value> = InboundEvent::ALL
        .iter()
        .map(|e| json!({"event_type": e.name(), "description": e.description(), "schema": e.schema()}))
        .collect();
    let outbound: Vec<Value> = OutboundEvent::ALL
        .iter()
        .map(|e| {
            json!({
                "event_type": e.name(),
                "entity": e.entity().kind(),
                "description": e.description(),
                "schema": e.schema(),
            })
        })
        .collect();
    let thin: Value =
        serde_json::from_str(THIN_SCHEMA).expect("schemas/outbound/thin.json is JSON");
    json!({
        "inbound": inbound,
        "outbound": outbound,
        "thin_payload_schema": thin,
        "wildcards": ["*", "<prefix>.*, e.g. work_order.* or timesheet.*"],
        "aliases": {"workorder.<event>": "work_order.<event>"},
        "not_emitted": NOT_EMITTED.iter().map(|n| match n.strip_suffix('.') {
            Some(family) => format!("{family}.*"),
            None => n.to_string(),
        }).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        for e in InboundEvent::ALL {
            assert_eq!(InboundEvent::parse(e.name()), Some(*e));
        }
        for e in OutboundEvent::ALL {
            assert_eq!(OutboundEvent::parse(e.name()), Some(*e));
        }
        assert_eq!(InboundEvent::parse("work_order.exploded"), None);
    }

    #[test]
    fn every_schema_compiles_and_describes_its_event() {
        let inbound = InboundEvent::ALL.iter().map(|e| (e.name(), e.schema()));
        let outbound = OutboundEvent::ALL.iter().map(|e| (e.name(), e.schema()));
        for (name, schema) in inbound.chain(outbound) {
            jsonschema::draft202012::new(schema)
                .unwrap_or_else(|e| panic!("{name}: schema does not compile: {e}"));
            assert!(
                !schema["description"].as_str().unwrap_or("").is_empty(),
                "{name}: schema has no description"
            );
        }
    }

    #[test]
    fn outbound_schemas_name_their_event_and_entity() {
        for e in OutboundEvent::ALL {
            let schema = e.schema();
            assert_eq!(
                schema["properties"]["event_type"]["const"],
                e.name(),
                "{e}: event_type"
            );
            assert_eq!(
                schema["$id"],
                format!("https://hookgate.dev/schemas/outbound/{e}.json")
            );
            // Operational events have no inbound event behind them.
            let required = e.required_fields();
            assert_eq!(
                required.iter().any(|f| f == "source_event_id"),
                !e.is_operational(),
                "{e}: every change's payload names its inbound event"
            );
        }
    }

    #[test]
    fn every_emitted_event_belongs_to_its_entity() {
        for &entity in Entity::ALL {
            for event in [
                entity.created_event(),
                entity.updated_event(),
                entity.deleted_event(),
            ]
            .into_iter()
            .flatten()
            {
                assert_eq!(event.entity(), entity, "{event}");
            }
        }
    }
}
