//! The OpenAPI document (`openapi/openapi.json`, embedded) and the route table read from it.
//!
//! The document is the management API's router: a request under `/api/v1` is matched against
//! the document's path templates and dispatched by the matched operation's `operationId`. So
//! an endpoint cannot be served without being documented, and a documented operation without a
//! handler answers 500, which `tests/api/contract.rs` and the schemathesis run in CI catch.
//! Lists the code owns (event types, statuses) are not copied into the file: a schema that says
//! `"x-enum-from": "<list>"` gets that list as its `enum` when the document is loaded.

use std::sync::LazyLock;

use bytes::Bytes;
use serde_json::{Value, json};

use crate::catalog::{Entity, InboundEvent, OutboundEvent};
use crate::outbound::{deliveries, subscriptions};

const SOURCE: &str = include_str!("../../openapi/openapi.json");

/// Where the management API lives; other documented paths are served by `http/`.
pub(crate) const PREFIX: &str = "/api/v1";

/// The loaded document and its routes.
pub struct Document {
    /// The document as served, with every `x-enum-from` list filled in.
    pub json: Value,
    pub bytes: Bytes,
    routes: Vec<Route>,
}

#[derive(Debug)]
pub struct Route {
    pub method: String,
    pub template: String,
    pub operation_id: String,
    /// The operation says `security: []`: no token needed.
    pub public: bool,
    segments: Vec<Segment>,
}

#[derive(Debug, PartialEq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// The result of matching a request against the routes.
#[derive(Debug)]
pub(crate) enum Match<'d> {
    Found {
        route: &'d Route,
        params: Vec<(String, String)>,
    },
    /// The path exists, the method does not; the methods it has.
    MethodNotAllowed(Vec<&'d str>),
    NotFound,
}

pub static DOCUMENT: LazyLock<Document> = LazyLock::new(|| Document::load(SOURCE));

/// The values of a list named by `x-enum-from`.
fn enum_list(name: &str) -> Vec<String> {
    let list: Vec<&str> = match name {
        "inbound_event_types" => InboundEvent::NAMES.to_vec(),
        "outbound_event_types" => deliveries::event_types(),
        "emitted_event_types" => OutboundEvent::NAMES.to_vec(),
        "record_kinds" => Entity::ALL.iter().map(|e| e.kind()).collect(),
        "event_patterns" => return event_patterns(),
        "delivery_statuses" => deliveries::STATUSES.to_vec(),
        "retryable_statuses" => deliveries::RETRYABLE.to_vec(),
        "subscription_statuses" => subscriptions::STATUSES.to_vec(),
        other => panic!("openapi.json names an unknown x-enum-from list {other:?}"),
    };
    list.into_iter().map(str::to_string).collect()
}

/// What a subscription may list: `*`, every emitted type, `<entity>.*` for each entity, and
/// `source.*` or `source.<provider>.*` for providers' pass-through events.
fn event_patterns() -> Vec<String> {
    let mut patterns = vec!["*".to_string()];
    for event_type in OutboundEvent::NAMES {
        let wildcard = format!("{}.*", event_type.split('.').next().unwrap_or_default());
        if !patterns.contains(&wildcard) {
            patterns.push(wildcard);
        }
    }
    patterns.extend(OutboundEvent::NAMES.iter().map(|t| t.to_string()));
    // Providers' events that no mapping takes (native intake).
    patterns.push("source.*".to_string());
    let providers = crate::providers::catalog().names();
    patterns.extend(providers.iter().map(|p| format!("source.{p}.*")));
    patterns
}

fn fill_enums(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(name) = map.get("x-enum-from").and_then(Value::as_str) {
                let list = enum_list(name);
                map.insert("enum".into(), json!(list));
            }
            map.values_mut().for_each(fill_enums);
        }
        Value::Array(items) => items.iter_mut().for_each(fill_enums),
        _ => {}
    }
}

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];

impl Document {
    fn load(source: &str) -> Document {
        let mut json: Value = serde_json::from_str(source).expect("openapi.json is valid JSON");
        fill_enums(&mut json);
        let default_public = json["security"].as_array().is_some_and(Vec::is_empty);
        let mut routes = Vec::new();
        let paths = json["paths"].as_object().expect("openapi.json has paths");
        for (template, item) in paths {
            let Some(local) = template.strip_prefix(PREFIX) else {
                continue;
            };
            for method in METHODS {
                let Some(operation) = item.get(*method) else {
                    continue;
                };
                routes.push(Route {
                    method: method.to_ascii_uppercase(),
                    template: template.clone(),
                    operation_id: operation["operationId"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{method} {template} has no operationId"))
                        .to_string(),
                    public: operation
                        .get("security")
                        .map_or(default_public, |s| s.as_array().is_some_and(Vec::is_empty)),
                    segments: segments(local),
                });
            }
        }
        // Literal segments win over parameters (`/a/new` over `/a/{id}`); the sort is stable, so
        // a template's methods stay together.
        routes.sort_by_key(|r| std::cmp::Reverse(r.literals()));
        let bytes = Bytes::from(serde_json::to_vec(&json).expect("JSON values serialize"));
        Document {
            json,
            bytes,
            routes,
        }
    }

    /// Every route under `/api/v1`.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The route for `method` and `path` (which starts with `/api/v1`). The most specific
    /// template that fits the path is the resource (literal segments beat parameters); its
    /// methods are the ones allowed.
    pub(crate) fn find(&self, method: &str, path: &str) -> Match<'_> {
        let local = path.strip_prefix(PREFIX).unwrap_or(path);
        let parts: Vec<&str> = local.split('/').filter(|s| !s.is_empty()).collect();
        let Some((template, _)) = self
            .routes
            .iter()
            .find_map(|r| r.bind(&parts).map(|p| (&r.template, p)))
        else {
            return Match::NotFound;
        };
        let resource = self.routes.iter().filter(|r| r.template == *template);
        let mut allowed = Vec::new();
        for route in resource {
            if route.method == method {
                let params = route.bind(&parts).expect("same template");
                return Match::Found { route, params };
            }
            allowed.push(route.method.as_str());
        }
        allowed.sort_unstable();
        Match::MethodNotAllowed(allowed)
    }
}

fn segments(template: &str) -> Vec<Segment> {
    template
        .split('/')
        .filter(|s| !s.is_empty())
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => Segment::Param(name.to_string()),
                None => Segment::Literal(s.to_string()),
            },
        )
        .collect()
}

impl Route {
    fn literals(&self) -> usize {
        self.segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count()
    }

    /// The path parameters, if `parts` fits this route's template.
    fn bind(&self, parts: &[&str]) -> Option<Vec<(String, String)>> {
        if parts.len() != self.segments.len() {
            return None;
        }
        let mut params = Vec::new();
        for (segment, part) in self.segments.iter().zip(parts) {
            match segment {
                Segment::Literal(l) if l == part => {}
                Segment::Literal(_) => return None,
                Segment::Param(name) => {
                    let value = percent_decode(part)?;
                    params.push((name.clone(), value));
                }
            }
        }
        Some(params)
    }
}

fn percent_decode(part: &str) -> Option<String> {
    percent_encoding::percent_decode_str(part)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_bind_path_parameters_and_tell_methods_apart() {
        let doc = &*DOCUMENT;
        match doc.find("POST", "/api/v1/webhooks/wh_1/retry") {
            Match::Found { route, params } => {
                assert_eq!(route.operation_id, "retryDeliveries");
                assert_eq!(params, vec![("id".to_string(), "wh_1".to_string())]);
            }
            other => panic!("{other:?}"),
        }
        match doc.find("GET", "/api/v1/webhooks/wh_1/deliveries/dlv%5F2") {
            Match::Found { route, params } => {
                assert_eq!(route.operation_id, "getDelivery");
                assert_eq!(params[1], ("delivery_id".to_string(), "dlv_2".to_string()));
            }
            other => panic!("{other:?}"),
        }
        match doc.find("DELETE", "/api/v1/skills") {
            Match::MethodNotAllowed(allowed) => assert_eq!(allowed, vec!["GET", "POST"]),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            doc.find("GET", "/api/v1/nothing"),
            Match::NotFound
        ));
        assert!(matches!(
            doc.find("GET", "/api/v1/webhooks/a/b/c/d/e"),
            Match::NotFound
        ));
    }

    #[test]
    fn lists_the_code_owns_are_filled_in() {
        let doc = &*DOCUMENT;
        let statuses = &doc.json["components"]["schemas"]["DeliveryStatus"]["enum"];
        assert_eq!(statuses, &json!(deliveries::STATUSES));
        let inbound = &doc.json["components"]["schemas"]["InboundEventType"]["enum"];
        assert_eq!(inbound, &json!(InboundEvent::NAMES));
    }

    #[test]
    fn only_the_document_itself_is_public() {
        let public: Vec<&str> = DOCUMENT
            .routes()
            .iter()
            .filter(|r| r.public)
            .map(|r| r.operation_id.as_str())
            .collect();
        assert_eq!(public, vec!["getOpenApi"]);
    }
}
