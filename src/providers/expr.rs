//! JMESPath, the expression language of the provider catalog and of operators' mappings, over
//! one request: `{"method", "headers", "query", "body", "event"}`. The request is converted to
//! JMESPath's own value type once; each event's scope shares it.

use std::collections::BTreeMap;
use std::fmt;

use jmespath::{Rcvar, Variable};
use serde_json::Value;

/// A compiled expression with its source text.
pub struct Expr {
    text: String,
    compiled: jmespath::Expression<'static>,
}

impl Expr {
    /// Compiles `text`; the error says where the expression is wrong.
    pub(crate) fn compile(text: &str) -> Result<Expr, String> {
        jmespath::compile(text)
            .map(|compiled| Expr {
                text: text.to_string(),
                compiled,
            })
            .map_err(|e| e.to_string())
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// The expression's value in `scope`, as JSON (`null` when it names nothing).
    pub(crate) fn eval(&self, scope: &Scope) -> Result<Value, String> {
        let found = self
            .compiled
            .search(&scope.root)
            .map_err(|e| format!("expression {:?}: {e}", self.text))?;
        serde_json::to_value(&*found).map_err(|e| format!("expression {:?}: {e}", self.text))
    }

    /// Whether the expression is truthy in `scope` (JMESPath's truthiness: not null, false,
    /// or an empty string, array or object). An evaluation error counts as false.
    pub(crate) fn holds(&self, scope: &Scope) -> bool {
        self.compiled
            .search(&scope.root)
            .map(|v| v.is_truthy())
            .unwrap_or(false)
    }

    /// The expression's value as text: strings as they are, numbers and booleans as JSON,
    /// nothing for null or an empty string.
    pub(crate) fn text(&self, scope: &Scope) -> Option<String> {
        match self.eval(scope).ok()? {
            Value::Null => None,
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => Some(s),
            other => Some(other.to_string()),
        }
    }
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

/// What expressions see of one request (and, per event, the event).
#[derive(Clone)]
pub(crate) struct Scope {
    root: Rcvar,
}

fn var(value: &Value) -> Rcvar {
    Rcvar::new(Variable::from_serializable(value).unwrap_or(Variable::Null))
}

impl Scope {
    /// The request: its method, headers (lower-case names; the last value of a repeated
    /// header), query parameters and parsed body (`null` when not parsed yet).
    pub(crate) fn request(
        method: &str,
        headers: &[(String, String)],
        query: &[(String, String)],
        body: &Value,
    ) -> Scope {
        let pairs = |list: &[(String, String)], lower: bool| {
            let map: serde_json::Map<String, Value> = list
                .iter()
                .map(|(k, v)| {
                    let k = if lower {
                        k.to_ascii_lowercase()
                    } else {
                        k.clone()
                    };
                    (k, Value::String(v.clone()))
                })
                .collect();
            var(&Value::Object(map))
        };
        let mut root = BTreeMap::new();
        root.insert(
            "method".to_string(),
            var(&Value::String(method.to_string())),
        );
        root.insert("headers".to_string(), pairs(headers, true));
        root.insert("query".to_string(), pairs(query, false));
        let body = var(body);
        root.insert("body".to_string(), body.clone());
        root.insert("event".to_string(), body);
        Scope {
            root: Rcvar::new(Variable::Object(root)),
        }
    }

    /// The same request with `event` as the current event.
    pub(crate) fn with_event(&self, event: &Rcvar) -> Scope {
        let mut root = self.root.as_object().cloned().unwrap_or_default();
        root.insert("event".to_string(), event.clone());
        Scope {
            root: Rcvar::new(Variable::Object(root)),
        }
    }

    /// The list `expr` gives, as events (an expression giving null gives none; anything else
    /// that is not a list is one event).
    pub(crate) fn events(&self, expr: &Expr) -> Result<Vec<Rcvar>, String> {
        let found = expr
            .compiled
            .search(&self.root)
            .map_err(|e| format!("expression {:?}: {e}", expr.text))?;
        Ok(match &*found {
            Variable::Null => Vec::new(),
            Variable::Array(items) => items.clone(),
            _ => vec![found.clone()],
        })
    }

    /// The current event (the body without a batch).
    pub(crate) fn event(&self) -> Rcvar {
        self.root.get_field("event")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expressions_see_headers_query_body_and_event() {
        let scope = Scope::request(
            "POST",
            &[("X-GitHub-Event".into(), "issues".into())],
            &[("code".into(), "abc".into())],
            &json!({"id": 7, "items": [{"n": 1}, {"n": 2}]}),
        );
        let text = |e: &str| Expr::compile(e).unwrap().text(&scope);
        assert_eq!(
            text("headers.\"x-github-event\"").as_deref(),
            Some("issues")
        );
        assert_eq!(text("query.code").as_deref(), Some("abc"));
        assert_eq!(text("event.id").as_deref(), Some("7"));
        assert_eq!(text("body.missing"), None);
        let events = scope.events(&Expr::compile("body.items").unwrap()).unwrap();
        assert_eq!(events.len(), 2);
        let second = scope.with_event(&events[1]);
        assert_eq!(
            Expr::compile("event.n").unwrap().text(&second).as_deref(),
            Some("2")
        );
        assert!(Expr::compile("body.id == `7`").unwrap().holds(&scope));
        assert!(Expr::compile("not valid ((").is_err());
    }
}
