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

const DEFAULT_MAX_LISTED: usize = 100;

pub struct Schemas {
    validators: HashMap<&'static str, Validator>,
    /// Most violations listed in one answer (config `max_listed_violations`).
    max_listed: usize,
}

impl Schemas {
    /// Lists at most `max` violations per answer (counting the rest).
    pub fn with_max_listed_violations(mut self, max: usize) -> Schemas {
        self.max_listed = max.max(1);
        self
    }

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
        Ok(Schemas {
            validators,
            max_listed: DEFAULT_MAX_LISTED,
        })
    }

    pub fn validate(&self, event: NormalizedEvent) -> Result<ValidatedEvent, ApiError> {
        let validator = &self.validators[event.event_type];
        let data = Value::Object(event.data);
        // Valid data is the common case, and is_valid does not build error values.
        if !validator.is_valid(&data) {
            let violations = Violations::collect(validator, &data, "/data", self.max_listed);
            return Err(violations.into_error(event.event_type));
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

/// The violations of one document, as listed in a 400: each once, at most `max_listed` of
/// them, each message cut to [`MAX_MESSAGE_CHARS`]; the rest are only counted. A large
/// document full of errors must not make an answer larger than itself.
struct Violations {
    listed: Vec<Value>,
    unlisted: usize,
}

/// Longest violation message listed; jsonschema's messages quote the offending value.
const MAX_MESSAGE_CHARS: usize = 200;

impl Violations {
    fn collect(validator: &Validator, instance: &Value, prefix: &str, max_listed: usize) -> Self {
        let mut seen = std::collections::HashSet::new();
        let mut listed = Vec::new();
        let mut unlisted = 0;
        for error in validator.iter_errors(instance) {
            if listed.len() == max_listed {
                unlisted += 1;
                continue;
            }
            let path = format!("{prefix}{}", error.instance_path().as_str());
            let message = cut(&error.to_string(), MAX_MESSAGE_CHARS);
            if seen.insert((path.clone(), message.clone())) {
                listed.push(json!({"path": path, "message": message}));
            }
        }
        Violations { listed, unlisted }
    }

    fn into_error(mut self, event_type: &str) -> ApiError {
        let total = self.listed.len() + self.unlisted;
        let first = &self.listed[0];
        let summary = format!(
            "{}: {}",
            first["path"].as_str().unwrap_or(""),
            first["message"].as_str().unwrap_or("")
        );
        let message = match total {
            1 => format!("{event_type} does not match its schema: {summary}"),
            n => format!(
                "{event_type} does not match its schema ({n} violations, listed in details): {summary}; …"
            ),
        };
        if self.unlisted > 0 {
            self.listed.push(json!({
                "omitted": self.unlisted,
                "message": format!("{} more violations not listed", self.unlisted),
            }));
        }
        ApiError::bad_request("validation_failed", message).with_details(self.listed)
    }
}

/// `text` cut to `max` characters, marked with an ellipsis when cut.
fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: &'static str, data: Value) -> NormalizedEvent {
        let Value::Object(data) = data else { panic!() };
        NormalizedEvent {
            event_type,
            timestamp: None,
            source: None,
            data,
        }
    }

    #[test]
    fn violations_are_listed_once_capped_and_counted() {
        let schemas = Schemas::compile().unwrap().with_max_listed_violations(10);
        let entries: Vec<Value> = (0..500)
            .map(|_| json!({"entry_date": "x".repeat(5000), "hours": 99}))
            .collect();
        let err = schemas
            .validate(event(
                "timesheet.created",
                json!({"emp_number": 5, "entries": entries}),
            ))
            .unwrap_err();
        assert_eq!(err.code, "validation_failed");
        assert_eq!(err.details.len(), 11, "10 listed and the count of the rest");
        let omitted = err.details[10]["omitted"].as_u64().unwrap();
        assert!(omitted >= 990, "{omitted}");
        assert!(err.message.len() < 600, "{}", err.message);
        let listed = &err.details[..10];
        for d in listed {
            assert!(d["message"].as_str().unwrap().chars().count() <= MAX_MESSAGE_CHARS + 1);
        }
        let distinct: std::collections::HashSet<String> =
            listed.iter().map(|d| d.to_string()).collect();
        assert_eq!(distinct.len(), listed.len(), "no violation twice");
        assert!(serde_json::to_vec(&err.body()).unwrap().len() < 8 * 1024);
    }

    #[test]
    fn one_violation_is_named_in_the_message() {
        let schemas = Schemas::compile().unwrap();
        let err = schemas
            .validate(event("timesheet.created", json!({"emp_number": "E1"})))
            .unwrap_err();
        assert!(err.message.contains("/data"), "{}", err.message);
        assert!(err.details.iter().all(|d| d.get("omitted").is_none()));
    }
}
