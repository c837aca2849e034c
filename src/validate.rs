//! Stage 8: validate normalized `data` against `schemas/<event_type>.json` (JSON Schema
//! 2020-12). The schemas are embedded in the binary and compiled once at start-up.

use std::collections::HashMap;

use jsonschema::Validator;
use serde_json::{Map, Value, json};

use crate::envelope::INBOUND_EVENT_TYPES;
use crate::error::ApiError;
use crate::normalize::NormalizedEvent;

macro_rules! embedded_schemas {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../schemas/", $name, ".json")))),*]
    };
}

/// Schema sources by event type (plus `envelope`), as shipped in `schemas/`.
pub const SCHEMA_SOURCES: &[(&str, &str)] = embedded_schemas![
    "envelope",
    "work_order.created",
    "work_order.updated",
    "work_order.deleted",
    "project.created",
    "project.updated",
    "project.deleted",
    "project.closed",
    "employee.created",
    "employee.updated",
    "employee.deleted",
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
    "report.daily_submitted",
    "report.completion_submitted",
    "report.completion_approved",
    "project.search",
    "work_order.search",
    "test.connection",
];

/// An event whose data passed its schema. Built only by [`Schemas::validate`].
#[derive(Debug, Clone)]
pub struct ValidatedEvent {
    pub event_type: &'static str,
    pub timestamp: Option<String>,
    pub source: Option<String>,
    pub data: Map<String, Value>,
}

pub struct Schemas {
    validators: HashMap<&'static str, Validator>,
}

impl Schemas {
    /// Compiles every embedded schema; fails if one is missing or invalid.
    pub fn compile() -> Result<Schemas, String> {
        let mut validators = HashMap::new();
        for (name, source) in SCHEMA_SOURCES {
            let schema: Value = serde_json::from_str(source)
                .map_err(|e| format!("schemas/{name}.json is not JSON: {e}"))?;
            let validator = jsonschema::draft202012::options()
                .should_validate_formats(true)
                .build(&schema)
                .map_err(|e| format!("schemas/{name}.json does not compile: {e}"))?;
            validators.insert(*name, validator);
        }
        for event_type in INBOUND_EVENT_TYPES {
            if !validators.contains_key(event_type) {
                return Err(format!("no schema for {event_type}"));
            }
        }
        Ok(Schemas { validators })
    }

    pub fn validate(&self, event: NormalizedEvent) -> Result<ValidatedEvent, ApiError> {
        let validator = &self.validators[event.event_type];
        let data = Value::Object(event.data);
        // Valid data is the common case, and is_valid does not build error values.
        let errors = if validator.is_valid(&data) {
            Vec::new()
        } else {
            collect(validator, &data, "/data")
        };
        if !errors.is_empty() {
            let summary = errors
                .iter()
                .map(|e| {
                    format!(
                        "{}: {}",
                        e["path"].as_str().unwrap_or(""),
                        e["message"].as_str().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            return Err(ApiError::bad_request(
                "validation_failed",
                format!("{} does not match its schema: {summary}", event.event_type),
            )
            .with_details(errors));
        }
        let Value::Object(data) = data else {
            unreachable!("built from an object")
        };
        Ok(ValidatedEvent {
            event_type: event.event_type,
            timestamp: event.timestamp,
            source: event.source,
            data,
        })
    }
}

fn collect(validator: &Validator, instance: &Value, prefix: &str) -> Vec<Value> {
    validator
        .iter_errors(instance)
        .map(|e| {
            let path = format!("{prefix}{}", e.instance_path().as_str());
            json!({"path": if path.is_empty() { "/".to_string() } else { path }, "message": e.to_string()})
        })
        .collect()
}
