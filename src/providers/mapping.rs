//! Operators' mappings: per key and provider, rules that turn a provider's event into an
//! envelope (`event_type` and `data`) for the same pipeline as `/webhooks/inbound`. An event
//! no rule takes passes through as `source.{provider}.{type}`.
//!
//! A mapping is a JSON document, stored as sent and compiled when loaded:
//!
//! ```json
//! {"rules": [{"on": "customer.created", "when": "event.data.object.livemode",
//!             "event_type": "customer.created",
//!             "data": "{customer_name: event.data.object.name, email: event.data.object.email}"}]}
//! ```
//!
//! `on` matches the provider's event type (exact, `prefix.*` or `*`); `when` and `data` are
//! JMESPath over the request (`event`, `body`, `headers`, `query`, `method`). The first rule
//! that matches decides.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use super::expr::{Expr, Scope};
use crate::error::ApiError;

/// How long a loaded mapping is used before it is read again (changes made by another process,
/// such as the CLI, take effect within this).
const CACHE_TTL: Duration = Duration::from_secs(2);
const MAX_RULES: usize = 200;

/// Event types a mapping may produce: the inbound changes (searches answer the sender, which a
/// provider would not read; `test.connection` changes nothing).
pub(crate) fn mappable_event_type(name: &str) -> Option<&'static str> {
    use crate::catalog::InboundEvent;
    InboundEvent::parse(name)
        .filter(|e| !e.is_read_only() && *e != InboundEvent::TestConnection)
        .map(InboundEvent::name)
}

#[derive(Debug)]
pub(crate) struct Rule {
    on: Option<String>,
    when: Option<Expr>,
    event_type: &'static str,
    data: Expr,
}

#[derive(Debug, Default)]
pub(crate) struct Mapping {
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMapping {
    rules: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    on: Option<String>,
    when: Option<String>,
    event_type: String,
    data: String,
}

/// The envelope a rule made, and which rule.
pub(crate) struct Mapped {
    pub rule: usize,
    pub envelope: Value,
}

impl Mapping {
    /// Parses and compiles a mapping document; every problem is listed with its place.
    pub(crate) fn compile(document: &Value) -> Result<Mapping, ApiError> {
        let invalid = |message: String, details: Vec<Value>| {
            ApiError::bad_request("invalid_mapping", message).with_details(details)
        };
        let raw: RawMapping = serde_json::from_value(document.clone()).map_err(|e| {
            invalid(
                format!("a mapping is {{\"rules\": [{{\"on\", \"when\", \"event_type\", \"data\"}}]}}: {e}"),
                Vec::new(),
            )
        })?;
        if raw.rules.len() > MAX_RULES {
            return Err(invalid(
                format!("a mapping has at most {MAX_RULES} rules"),
                Vec::new(),
            ));
        }
        let mut problems = Vec::new();
        let mut rules = Vec::new();
        for (i, rule) in raw.rules.into_iter().enumerate() {
            let mut problem = |field: &str, message: String| {
                problems.push(json!({"path": format!("/rules/{i}/{field}"), "message": message}));
            };
            let event_type = mappable_event_type(&rule.event_type);
            if event_type.is_none() {
                problem(
                    "event_type",
                    format!(
                        "{:?} is not an inbound event type that changes records",
                        rule.event_type
                    ),
                );
            }
            let when = match rule.when.as_deref().map(Expr::compile).transpose() {
                Ok(w) => w,
                Err(e) => {
                    problem("when", e);
                    None
                }
            };
            let data = match Expr::compile(&rule.data) {
                Ok(d) => Some(d),
                Err(e) => {
                    problem("data", e);
                    None
                }
            };
            if let (Some(event_type), Some(data)) = (event_type, data) {
                rules.push(Rule {
                    on: rule.on.map(|o| o.trim().to_ascii_lowercase()),
                    when,
                    event_type,
                    data,
                });
            }
        }
        if !problems.is_empty() {
            let summary = problems
                .iter()
                .map(|p| {
                    format!(
                        "{}: {}",
                        p["path"].as_str().unwrap_or(""),
                        p["message"].as_str().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            return Err(invalid(
                format!("the mapping is not valid: {summary}"),
                problems,
            ));
        }
        Ok(Mapping { rules })
    }

    /// The envelope the first matching rule makes of the event, `None` when no rule matches,
    /// or why the matching rule cannot make one.
    pub(crate) fn apply(
        &self,
        provider: &str,
        event_type: Option<&str>,
        scope: &Scope,
    ) -> Option<Result<Mapped, ApiError>> {
        let (index, rule) = self.rules.iter().enumerate().find(|(_, r)| {
            r.on.as_deref()
                .is_none_or(|on| type_matches(on, event_type))
                && r.when.as_ref().is_none_or(|w| w.holds(scope))
        })?;
        let failed = |message: String| {
            ApiError::unprocessable("mapping_failed", message)
                .with_details(vec![json!({"rule": index, "data": rule.data.as_str()})])
        };
        Some(match rule.data.eval(scope) {
            Ok(Value::Object(data)) => Ok(Mapped {
                rule: index,
                envelope: json!({
                    "event_type": rule.event_type,
                    "timestamp": crate::clock::now_rfc3339(),
                    "source": provider,
                    "data": data,
                }),
            }),
            Ok(other) => Err(failed(format!(
                "rule {index} of the {provider} mapping made {} of this event, not an object of {} data",
                kind(&other),
                rule.event_type
            ))),
            Err(e) => Err(failed(format!(
                "rule {index} of the {provider} mapping: {e}"
            ))),
        })
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null (the expression named nothing)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn type_matches(pattern: &str, event_type: Option<&str>) -> bool {
    let Some(t) = event_type else {
        return pattern == "*";
    };
    pattern == "*"
        || pattern == t
        || pattern.strip_suffix(".*").is_some_and(|prefix| {
            t.strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('.'))
        })
}

/// Loaded mappings by (key, provider), each kept for [`CACHE_TTL`].
type Cached = (Instant, Option<Arc<Mapping>>);

#[derive(Default)]
pub struct MappingCache {
    entries: RwLock<HashMap<(String, String), Cached>>,
}

impl MappingCache {
    pub(crate) fn get(&self, key_id: &str, provider: &str) -> Option<Option<Arc<Mapping>>> {
        let entries = self.entries.read().expect("mapping cache");
        let (at, mapping) = entries.get(&(key_id.to_string(), provider.to_string()))?;
        (at.elapsed() < CACHE_TTL).then(|| mapping.clone())
    }

    pub(crate) fn put(&self, key_id: &str, provider: &str, mapping: Option<Arc<Mapping>>) {
        let mut entries = self.entries.write().expect("mapping cache");
        if entries.len() > 10_000 {
            entries.clear();
        }
        entries.insert(
            (key_id.to_string(), provider.to_string()),
            (Instant::now(), mapping),
        );
    }

    pub(crate) fn forget(&self, key_id: &str, provider: &str) {
        self.entries
            .write()
            .expect("mapping cache")
            .remove(&(key_id.to_string(), provider.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(body: Value) -> Scope {
        Scope::request("POST", &[], &[], &body)
    }

    #[test]
    fn the_first_matching_rule_makes_the_envelope() {
        let mapping = Mapping::compile(&json!({"rules": [
            {"on": "invoice.*", "event_type": "project.updated", "data": "{project_code: event.data.code}"},
            {"on": "customer.created", "when": "event.data.live", "event_type": "customer.created",
             "data": "{customer_name: event.data.name}"},
        ]}))
        .unwrap();
        let body = json!({"type": "customer.created", "data": {"name": "Acme", "live": true}});
        let mapped = mapping
            .apply("stripe", Some("customer.created"), &scope(body))
            .unwrap()
            .unwrap();
        assert_eq!(mapped.rule, 1);
        assert_eq!(mapped.envelope["event_type"], "customer.created");
        assert_eq!(mapped.envelope["data"], json!({"customer_name": "Acme"}));
        let test_mode =
            json!({"type": "customer.created", "data": {"name": "Acme", "live": false}});
        assert!(
            mapping
                .apply("stripe", Some("customer.created"), &scope(test_mode))
                .is_none()
        );
        let unmapped = json!({"type": "charge.failed"});
        assert!(
            mapping
                .apply("stripe", Some("charge.failed"), &scope(unmapped))
                .is_none()
        );
        let not_object = json!({"type": "invoice.paid", "data": {"code": "P1"}});
        let m = Mapping::compile(&json!({"rules": [
            {"on": "invoice.paid", "event_type": "project.updated", "data": "event.data.code"}]}))
        .unwrap();
        let err = m
            .apply("stripe", Some("invoice.paid"), &scope(not_object))
            .unwrap()
            .err()
            .unwrap();
        assert_eq!((err.status, err.code), (422, "mapping_failed"));
    }

    #[test]
    fn every_problem_of_a_mapping_is_listed() {
        let err = Mapping::compile(&json!({"rules": [
            {"event_type": "project.search", "data": "@"},
            {"event_type": "customer.created", "data": "{{"},
            {"event_type": "customer.created", "data": "@", "when": "(("},
        ]}))
        .err()
        .unwrap();
        assert_eq!(err.code, "invalid_mapping");
        let paths: Vec<&str> = err
            .details
            .iter()
            .filter_map(|d| d["path"].as_str())
            .collect();
        assert_eq!(
            paths,
            ["/rules/0/event_type", "/rules/1/data", "/rules/2/when"]
        );
        assert!(Mapping::compile(&json!({"rules": [], "extra": 1})).is_err());
    }
}
