//! The provider catalog (`catalog.toml`, embedded): for each provider, how its requests are
//! authenticated, what one event is, and which handshakes it expects. Parsed and checked once
//! (expressions compiled, templates parsed); a bad entry fails the first use, and the unit test
//! below, rather than a request.

use std::sync::OnceLock;

use serde::Deserialize;

use super::expr::Expr;

const SOURCE: &str = include_str!("catalog.toml");

/// How a provider's body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BodyKind {
    #[default]
    Json,
    Form,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    #[default]
    Sha256,
    Sha1,
}

impl Algorithm {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "HMAC-SHA256",
            Algorithm::Sha1 => "HMAC-SHA1",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Hex,
    Base64,
}

/// Which bytes of the secret key the MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum KeyForm {
    #[default]
    Raw,
    /// Standard Webhooks: the base64-decoded part after `whsec_`.
    Whsec,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TimeUnit {
    #[default]
    S,
    Ms,
}

/// One piece of the signed content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(String),
    Body,
    Timestamp,
    Url,
    UrlDecoded,
    Method,
    Header(String),
    FormSorted,
}

/// The signed content, e.g. `{timestamp}.{body}`.
#[derive(Debug, Clone)]
pub struct Template {
    pub text: String,
    pub parts: Vec<Part>,
}

impl Template {
    fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("unclosed '{{' in {text:?}"))?
                + open;
            let name = &rest[open + 1..close];
            parts.push(match name {
                "body" => Part::Body,
                "timestamp" => Part::Timestamp,
                "url" => Part::Url,
                "url_decoded" => Part::UrlDecoded,
                "method" => Part::Method,
                "form_sorted" => Part::FormSorted,
                _ => match name.strip_prefix("header:") {
                    Some(header) => Part::Header(header.to_ascii_lowercase()),
                    None => return Err(format!("unknown placeholder {{{name}}} in {text:?}")),
                },
            });
            rest = &rest[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template {
            text: text.to_string(),
            parts,
        })
    }

    pub(crate) fn uses(&self, part: &Part) -> bool {
        self.parts.contains(part)
    }
}

/// Where a signed timestamp is and how far it may be off.
#[derive(Debug, Clone)]
pub struct TimestampSpec {
    /// `None`: in the signature header's pairs (`timestamp_key`).
    pub header: Option<String>,
    pub pair_key: Option<String>,
    pub unit: TimeUnit,
    pub tolerance_secs: i64,
}

#[derive(Debug, Clone)]
pub struct HmacSpec {
    pub algorithm: Algorithm,
    pub header: String,
    pub separator: Option<String>,
    pub prefix: Option<String>,
    /// Stripe's `t=…,v1=…`: the pair separator and the key of the signature pairs.
    pub pairs: Option<(String, String)>,
    pub timestamp: Option<TimestampSpec>,
    pub signed: Template,
    pub encoding: Encoding,
    pub key: KeyForm,
    pub body_hash_param: Option<String>,
}

#[derive(Debug)]
pub enum Scheme {
    Hmac(HmacSpec),
    /// The secret itself, in a header or a query parameter.
    SharedSecret {
        header: String,
        query: Option<String>,
    },
    /// Every event carries the secret (Microsoft Graph's clientState).
    BodySecret {
        field: Expr,
    },
}

#[derive(Debug)]
pub struct EventSpec {
    pub batch: Option<Expr>,
    pub id: Option<Expr>,
    pub type_: Option<Expr>,
}

#[derive(Debug)]
pub struct Handshake {
    pub method: String,
    pub when: Expr,
    pub answer: Expr,
    pub text: bool,
    pub hmac: Option<(String, Expr)>,
    pub unsigned: bool,
}

#[derive(Debug)]
pub struct Provider {
    pub name: String,
    pub title: String,
    pub docs: String,
    pub secret: String,
    pub body: BodyKind,
    pub reject_status: u16,
    pub empty_answers: bool,
    pub success_status: u16,
    pub scheme: Scheme,
    pub event: EventSpec,
    pub handshakes: Vec<Handshake>,
}

impl Provider {
    /// The header that carries this provider's signature or secret (never kept).
    pub fn secret_header(&self) -> Option<&str> {
        match &self.scheme {
            Scheme::Hmac(h) => Some(&h.header),
            Scheme::SharedSecret { header, .. } => Some(header),
            Scheme::BodySecret { .. } => None,
        }
    }

    /// The query parameter that may carry this provider's secret (never kept).
    pub fn secret_param(&self) -> Option<&str> {
        match &self.scheme {
            Scheme::SharedSecret { query, .. } => query.as_deref(),
            _ => None,
        }
    }

    /// What a refused request is told of the scheme (never a secret or an expected value).
    pub(crate) fn scheme_summary(&self) -> serde_json::Value {
        use serde_json::json;
        match &self.scheme {
            Scheme::Hmac(h) => json!({
                "provider": self.name,
                "scheme": format!("{} {}", match h.encoding { Encoding::Hex => "hex", Encoding::Base64 => "base64" }, h.algorithm.label()),
                "header": h.header,
                "format": header_format(h),
                "signed_content": h.signed.text,
                "timestamp": h.timestamp.as_ref().map(|t| json!({
                    "header": t.header, "pair": t.pair_key,
                    "unit": match t.unit { TimeUnit::S => "seconds", TimeUnit::Ms => "milliseconds" },
                    "tolerance_secs": t.tolerance_secs,
                })),
                "key": match h.key {
                    KeyForm::Raw => format!("the key's {} secret, as bytes", self.name),
                    KeyForm::Whsec => format!("the base64-decoded part after whsec_ of the key's {} secret", self.name),
                },
                "docs": self.docs,
            }),
            Scheme::SharedSecret { header, query } => json!({
                "provider": self.name,
                "scheme": "shared secret",
                "header": header,
                "query": query,
                "key": format!("the key's {} secret, sent as is", self.name),
                "docs": self.docs,
            }),
            Scheme::BodySecret { field } => json!({
                "provider": self.name,
                "scheme": "secret in every event",
                "field": field.as_str(),
                "key": format!("the key's {} secret", self.name),
                "docs": self.docs,
            }),
        }
    }
}

/// How the signature header is laid out, in words.
fn header_format(h: &HmacSpec) -> String {
    let one = format!("{}<signature>", h.prefix.as_deref().unwrap_or(""));
    match (&h.pairs, &h.timestamp, &h.separator) {
        (
            Some((sep, key)),
            Some(TimestampSpec {
                pair_key: Some(t), ..
            }),
            _,
        ) => {
            format!("{t}=<timestamp>{sep}{key}=<signature> ({key}= may repeat)")
        }
        (Some((sep, key)), _, _) => format!("{key}=<signature>[{sep}{key}=<signature>…]"),
        (None, _, Some(sep)) => format!("{one}[{sep}{one}…]"),
        (None, _, None) => one,
    }
}

pub struct Catalog {
    providers: Vec<Provider>,
}

impl Catalog {
    pub fn get(&self, name: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.name == name)
    }

    pub fn all(&self) -> &[Provider] {
        &self.providers
    }

    pub(crate) fn names(&self) -> Vec<&str> {
        self.providers.iter().map(|p| p.name.as_str()).collect()
    }
}

/// The embedded catalog.
pub fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| parse(SOURCE).unwrap_or_else(|e| panic!("providers/catalog.toml: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    title: String,
    docs: String,
    secret: String,
    #[serde(default)]
    body: BodyKind,
    reject_status: Option<u16>,
    #[serde(default)]
    empty_answers: bool,
    success_status: Option<u16>,
    signature: RawSignature,
    #[serde(default)]
    event: RawEvent,
    #[serde(default)]
    handshakes: Vec<RawHandshake>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSignature {
    scheme: Option<String>,
    #[serde(default)]
    algorithm: Algorithm,
    header: Option<String>,
    query: Option<String>,
    field: Option<String>,
    separator: Option<String>,
    prefix: Option<String>,
    pairs: Option<String>,
    signature_key: Option<String>,
    timestamp_key: Option<String>,
    timestamp_header: Option<String>,
    #[serde(default)]
    timestamp_unit: TimeUnit,
    tolerance_secs: Option<i64>,
    signed: Option<String>,
    encoding: Option<Encoding>,
    #[serde(default)]
    key: KeyForm,
    body_hash_param: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    batch: Option<String>,
    id: Option<String>,
    #[serde(rename = "type")]
    type_: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHandshake {
    method: Option<String>,
    when: String,
    answer: String,
    content_type: Option<String>,
    hmac_field: Option<String>,
    hmac_of: Option<String>,
    #[serde(default)]
    unsigned: bool,
}

fn parse(source: &str) -> Result<Catalog, String> {
    let raw: toml::Table = source.parse().map_err(|e| format!("not TOML: {e}"))?;
    let mut providers = Vec::new();
    for (name, value) in raw {
        let entry: RawProvider = value
            .try_into()
            .map_err(|e: toml::de::Error| format!("[{name}]: {e}"))?;
        providers.push(provider(&name, entry).map_err(|e| format!("[{name}]: {e}"))?);
    }
    Ok(Catalog { providers })
}

fn expr(text: Option<String>) -> Result<Option<Expr>, String> {
    text.map(|t| Expr::compile(&t)).transpose()
}

fn provider(name: &str, raw: RawProvider) -> Result<Provider, String> {
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err("names are lower-case letters, digits and '_'".into());
    }
    let s = raw.signature;
    let scheme = match s.scheme.as_deref().unwrap_or("hmac") {
        "hmac" => {
            let header = s.header.ok_or("hmac needs a header")?;
            let pairs = match (s.pairs, s.signature_key) {
                (Some(sep), Some(key)) => Some((sep, key)),
                (None, None) => None,
                _ => return Err("pairs and signature_key go together".into()),
            };
            let tolerance = s.tolerance_secs.unwrap_or(300);
            let timestamp = match (s.timestamp_header, s.timestamp_key) {
                (None, None) => None,
                (header, pair_key) => Some(TimestampSpec {
                    header: header.map(|h| h.to_ascii_lowercase()),
                    pair_key,
                    unit: s.timestamp_unit,
                    tolerance_secs: tolerance,
                }),
            };
            let signed = Template::parse(&s.signed.ok_or("hmac needs what is signed")?)?;
            if signed.uses(&Part::Timestamp) != timestamp.is_some() {
                return Err("a signed {timestamp} needs a timestamp_header or timestamp_key, and the reverse".into());
            }
            Scheme::Hmac(HmacSpec {
                algorithm: s.algorithm,
                header: header.to_ascii_lowercase(),
                separator: s.separator,
                prefix: s.prefix,
                pairs,
                timestamp,
                signed,
                encoding: s.encoding.ok_or("hmac needs an encoding")?,
                key: s.key,
                body_hash_param: s.body_hash_param,
            })
        }
        "shared_secret" => Scheme::SharedSecret {
            header: s
                .header
                .ok_or("shared_secret needs a header")?
                .to_ascii_lowercase(),
            query: s.query,
        },
        "body_secret" => Scheme::BodySecret {
            field: Expr::compile(&s.field.ok_or("body_secret needs a field")?)?,
        },
        other => return Err(format!("unknown scheme {other:?}")),
    };
    let handshakes = raw
        .handshakes
        .into_iter()
        .map(|h| {
            Ok(Handshake {
                method: h
                    .method
                    .unwrap_or_else(|| "POST".into())
                    .to_ascii_uppercase(),
                when: Expr::compile(&h.when)?,
                answer: Expr::compile(&h.answer)?,
                text: match h.content_type.as_deref() {
                    None | Some("application/json") => false,
                    Some("text/plain") => true,
                    Some(other) => return Err(format!("unknown content_type {other:?}")),
                },
                hmac: match (h.hmac_field, h.hmac_of) {
                    (Some(field), Some(of)) => Some((field, Expr::compile(&of)?)),
                    (None, None) => None,
                    _ => return Err("hmac_field and hmac_of go together".into()),
                },
                unsigned: h.unsigned,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Provider {
        name: name.to_string(),
        title: raw.title,
        docs: raw.docs,
        secret: raw.secret,
        body: raw.body,
        reject_status: raw.reject_status.unwrap_or(403),
        empty_answers: raw.empty_answers,
        success_status: raw.success_status.unwrap_or(200),
        scheme,
        event: EventSpec {
            batch: expr(raw.event.batch)?,
            id: expr(raw.event.id)?,
            type_: expr(raw.event.type_)?,
        },
        handshakes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_catalog_parses_and_names_every_promised_provider() {
        let catalog = parse(SOURCE).unwrap();
        for name in [
            "square",
            "quickbooks",
            "dynamics365",
            "stripe",
            "github",
            "shopify",
            "slack",
            "standard_webhooks",
            "svix",
            "twilio",
            "hubspot",
            "zoom",
            "xero",
            "microsoft_graph",
            "okta",
        ] {
            assert!(catalog.get(name).is_some(), "{name} is in the catalog");
        }
    }

    #[test]
    fn templates_parse_and_refuse_unknown_placeholders() {
        let t = Template::parse("v0:{timestamp}:{body}").unwrap();
        assert_eq!(
            t.parts,
            vec![
                Part::Text("v0:".into()),
                Part::Timestamp,
                Part::Text(":".into()),
                Part::Body
            ]
        );
        let t = Template::parse("{header:Webhook-Id}.{timestamp}.{body}").unwrap();
        assert_eq!(t.parts[0], Part::Header("webhook-id".into()));
        assert!(Template::parse("{nonce}.{body}").is_err());
        assert!(Template::parse("{body").is_err());
    }

    #[test]
    fn entries_that_do_not_hold_together_are_refused() {
        let bad = r#"
            [x]
            title = "X"
            docs = "d"
            secret = "s"
            [x.signature]
            header = "h"
            signed = "{timestamp}.{body}"
            encoding = "hex"
        "#;
        let err = parse(bad).err().unwrap();
        assert!(err.contains("timestamp"), "{err}");
    }
}
