//! Stage 8: validate normalized `data` against `schemas/<event_type>.json` (JSON Schema
//! 2020-12). The schemas are embedded in the binary by the [catalog](crate::catalog) and
//! compiled once at start-up.

use jsonschema::Validator;
use serde_json::{Map, Value, json};

use crate::catalog::InboundEvent;
use crate::error::ApiError;
use crate::normalize::NormalizedEvent;

/// The envelope's own schema (documentation of the body; `data` has a schema per event type).
const ENVELOPE_SCHEMA: &str = include_str!("../schemas/envelope.json");

/// An event whose data passed its schema. Built only by [`Schemas::validate`], the only input
/// `apply` accepts.
#[derive(Debug, Clone)]
pub(crate) struct ValidatedEvent {
    event_type: InboundEvent,
    data: Map<String, Value>,
}

impl ValidatedEvent {
    pub(crate) fn event_type(&self) -> InboundEvent {
        self.event_type
    }

    pub(crate) fn data(&self) -> &Map<String, Value> {
        &self.data
    }
}

const DEFAULT_MAX_LISTED: usize = 100;

/// The compiled schema of every inbound event type, indexed by [`InboundEvent`].
pub(crate) struct Schemas {
    validators: Vec<Validator>,
    /// Most violations listed in one answer (config `max_listed_violations`).
    max_listed: usize,
}

impl Schemas {
    /// Lists at most `max` violations per answer (counting the rest).
    pub(crate) fn with_max_listed_violations(mut self, max: usize) -> Schemas {
        self.max_listed = max.max(1);
        self
    }

    /// Compiles every embedded schema; fails if one is invalid.
    pub(crate) fn compile() -> Result<Schemas, String> {
        // The envelope's schema is documentation only; compiling it keeps it correct.
        compile_one("envelope", ENVELOPE_SCHEMA)?;
        let validators = InboundEvent::ALL
            .iter()
            .map(|e| compile_one(e.name(), e.schema_source()))
            .collect::<Result<_, _>>()?;
        Ok(Schemas {
            validators,
            max_listed: DEFAULT_MAX_LISTED,
        })
    }

    pub(crate) fn validate(&self, event: NormalizedEvent) -> Result<ValidatedEvent, ApiError> {
        let (event_type, data) = event.into_parts();
        let validator = &self.validators[event_type as usize];
        let data = Value::Object(data);
        // Valid data is the common case, and is_valid does not build error values.
        if !validator.is_valid(&data) {
            let violations = Violations::collect(validator, &data, "/data", self.max_listed);
            return Err(violations.into_error(event_type.name()));
        }
        let Value::Object(data) = data else {
            unreachable!("built from an object")
        };
        Ok(ValidatedEvent { event_type, data })
    }
}

fn compile_one(name: &str, source: &str) -> Result<Validator, String> {
    let schema: Value = serde_json::from_str(source)
        .map_err(|e| format!("schemas/{name}.json is not JSON: {e}"))?;
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .map_err(|e| format!("schemas/{name}.json does not compile: {e}"))
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

    fn event(event_type: &str, data: Value) -> NormalizedEvent {
        let Value::Object(data) = data else { panic!() };
        let event_type = InboundEvent::parse(event_type).expect("a known event type");
        crate::normalize::normalize(crate::envelope::Envelope::for_test(event_type, data))
            .expect("normalizes")
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
