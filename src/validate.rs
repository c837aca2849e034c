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
pub struct ValidatedEvent {
    event_type: InboundEvent,
    data: Map<String, Value>,
}

impl ValidatedEvent {
    pub fn event_type(&self) -> InboundEvent {
        self.event_type
    }

    pub fn data(&self) -> &Map<String, Value> {
        &self.data
    }
}

/// The compiled schema of every inbound event type, indexed by [`InboundEvent`].
pub struct Schemas {
    validators: Vec<Validator>,
}

impl Schemas {
    /// Compiles every embedded schema; fails if one is invalid.
    pub fn compile() -> Result<Schemas, String> {
        // The envelope's schema is documentation only; compiling it keeps it correct.
        compile_one("envelope", ENVELOPE_SCHEMA)?;
        let validators = InboundEvent::ALL
            .iter()
            .map(|e| compile_one(e.name(), e.schema_source()))
            .collect::<Result<_, _>>()?;
        Ok(Schemas { validators })
    }

    pub fn validate(&self, event: NormalizedEvent) -> Result<ValidatedEvent, ApiError> {
        let (event_type, data) = event.into_parts();
        let validator = &self.validators[event_type as usize];
        let data = Value::Object(data);
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
                format!("{event_type} does not match its schema: {summary}"),
            )
            .with_details(errors));
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

fn collect(validator: &Validator, instance: &Value, prefix: &str) -> Vec<Value> {
    validator
        .iter_errors(instance)
        .map(|e| {
            let path = format!("{prefix}{}", e.instance_path().as_str());
            json!({"path": if path.is_empty() { "/".to_string() } else { path }, "message": e.to_string()})
        })
        .collect()
}
