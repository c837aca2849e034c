//! Authentication of a provider's request as its catalog entry describes it: the signed
//! content built from the entry's template, the MAC compared in constant time with every
//! signature the header carries, the timestamp held to the replay window. A refusal teaches:
//! it names the scheme, the header read and what is signed, with the non-secret values used
//! (the timestamp, the URL), and never the expected signature.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};

use super::catalog::{
    Algorithm, Encoding, HmacSpec, KeyForm, Part, Provider, Scheme, TimeUnit, TimestampSpec,
};
use super::expr::Scope;
use crate::crypto;
use crate::error::ApiError;

/// A request as a provider sent it.
pub struct Request<'a> {
    pub method: &'a str,
    /// The path and query as received.
    pub target: &'a str,
    /// Header names in lower case.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
    /// The gateway's public base URL (what providers that sign the URL were given).
    pub public_url: &'a str,
}

impl Request<'_> {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn query(&self) -> Vec<(String, String)> {
        form_pairs(self.target.split_once('?').map(|(_, q)| q).unwrap_or(""))
    }

    /// The URL the provider was told to call: the public base URL and the request target.
    pub(crate) fn url(&self) -> String {
        format!("{}{}", self.public_url.trim_end_matches('/'), self.target)
    }
}

pub(crate) fn form_pairs(text: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(text.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Checks the request's signature (or shared secret) with `secret`. Body-secret schemes are
/// checked per event by [`verify_events`].
pub fn verify(
    provider: &Provider,
    secret: &[u8],
    req: &Request,
    now_secs: i64,
) -> Result<(), ApiError> {
    match &provider.scheme {
        Scheme::Hmac(spec) => verify_hmac(provider, spec, secret, req, now_secs),
        Scheme::SharedSecret { header, query } => {
            let sent = req
                .header(header)
                .map(str::to_string)
                .or_else(|| query.as_ref().and_then(|q| query_value(req, q)));
            let Some(sent) = sent else {
                let mut place = format!("the {header} header");
                if let Some(q) = query {
                    place.push_str(&format!(" or the ?{q}= query parameter"));
                }
                return Err(refusal(
                    provider,
                    "signature_missing",
                    format!(
                        "{} authenticates with a shared secret: send it in {place}",
                        provider.title
                    ),
                ));
            };
            if crypto::ct_eq(sent.trim().as_bytes(), secret) {
                Ok(())
            } else {
                Err(refusal(
                    provider,
                    "signature_mismatch",
                    format!(
                        "the shared secret sent in {header} does not match this key's {} secret",
                        provider.name
                    ),
                ))
            }
        }
        Scheme::BodySecret { .. } => Ok(()),
    }
}

/// Body-secret schemes: every event must carry the secret.
pub(crate) fn verify_events(
    provider: &Provider,
    secret: &[u8],
    events: &[Scope],
) -> Result<(), ApiError> {
    let Scheme::BodySecret { field } = &provider.scheme else {
        return Ok(());
    };
    for scope in events {
        match field.text(scope) {
            None => {
                return Err(refusal(
                    provider,
                    "signature_missing",
                    format!(
                        "every {} event must carry the secret at {}",
                        provider.title,
                        field.as_str()
                    ),
                ));
            }
            Some(sent) if crypto::ct_eq(sent.as_bytes(), secret) => {}
            Some(_) => {
                return Err(refusal(
                    provider,
                    "signature_mismatch",
                    format!(
                        "{} of an event does not match this key's {} secret",
                        field.as_str(),
                        provider.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn query_value(req: &Request, name: &str) -> Option<String> {
    req.query()
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// An error in the provider's refusal status, with the scheme in its details.
pub(crate) fn refusal(provider: &Provider, code: &'static str, message: String) -> ApiError {
    ApiError::new(provider.reject_status, code, message)
        .with_details(vec![provider.scheme_summary()])
}

fn verify_hmac(
    provider: &Provider,
    spec: &HmacSpec,
    secret: &[u8],
    req: &Request,
    now_secs: i64,
) -> Result<(), ApiError> {
    let Some(raw) = req.header(&spec.header) else {
        return Err(refusal(
            provider,
            "signature_missing",
            format!(
                "expected a {} signature in the {} header: the {} {} of \"{}\"",
                provider.title,
                spec.header,
                encoding_name(spec.encoding),
                spec.algorithm.label(),
                spec.signed.text
            ),
        ));
    };
    let (candidates, pair_timestamp) = split_header(spec, raw);
    let timestamp = match &spec.timestamp {
        None => None,
        Some(ts) => Some(check_timestamp(
            provider,
            ts,
            req,
            pair_timestamp,
            now_secs,
        )?),
    };
    let key = match spec.key {
        KeyForm::Raw => secret.to_vec(),
        KeyForm::Whsec => {
            crate::outbound::signing::standard_webhooks_key(&String::from_utf8_lossy(secret))
        }
    };
    let url = req.url();
    let signs_url = spec.signed.uses(&Part::Url) || spec.signed.uses(&Part::UrlDecoded);
    // Senders differ on whether the URL they sign names its default port (Twilio's own
    // validator tries both), so both forms are tried.
    let urls = if signs_url {
        url_forms(&url)
    } else {
        vec![url.clone()]
    };
    let mut macs = Vec::with_capacity(urls.len());
    for form in &urls {
        let content = signed_content(provider, spec, req, timestamp, form)?;
        macs.push(mac(spec.algorithm, &key, &content));
    }
    let matched = candidates.iter().any(|sig| {
        let decoded = match spec.encoding {
            Encoding::Hex => hex::decode(sig.trim()).ok(),
            Encoding::Base64 => crypto::base64_decode(sig.trim()),
        };
        decoded.is_some_and(|d| macs.iter().any(|m| crypto::ct_eq(&d, m)))
    });
    let body_hash_ok = match spec.body_hash_param.as_deref() {
        Some(param) if body_hash_in_query(spec, req) => {
            query_value(req, param).is_some_and(|sent| {
                crypto::ct_eq(sent.as_bytes(), crypto::sha256_hex(req.body).as_bytes())
            })
        }
        _ => true,
    };
    if matched && body_hash_ok {
        return Ok(());
    }
    let mut values = serde_json::Map::new();
    if let Some(ts) = timestamp {
        values.insert("timestamp".into(), json!(ts));
    }
    if signs_url {
        values.insert("url".into(), json!(url));
    }
    let mut message = format!(
        "the {} header does not match: {} expects the {} {} of \"{}\" keyed with this key's {} secret",
        spec.header,
        provider.title,
        encoding_name(spec.encoding),
        spec.algorithm.label(),
        spec.signed.text,
        provider.name
    );
    if !values.is_empty() {
        message.push_str(&format!(
            ", where {}",
            values
                .iter()
                .map(|(k, v)| format!("{{{k}}} = {}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(" and ")
        ));
    }
    if signs_url {
        message.push_str(" (the gateway's public_url and the request's path: check that public_url is the address the provider calls)");
    }
    if candidates.is_empty() {
        message.push_str(&format!(
            "; no signature in the header has the expected form {}",
            provider.scheme_summary()["format"].as_str().unwrap_or("")
        ));
    }
    if !body_hash_ok {
        message.push_str("; the body's SHA-256 does not match the URL's body hash");
    }
    let mut summary = provider.scheme_summary();
    summary["values_used"] = Value::Object(values);
    Err(
        ApiError::new(provider.reject_status, "signature_mismatch", message)
            .with_details(vec![summary]),
    )
}

/// The bytes the provider signed, with `url` as the request's URL.
fn signed_content(
    provider: &Provider,
    spec: &HmacSpec,
    req: &Request,
    timestamp: Option<&str>,
    url: &str,
) -> Result<Vec<u8>, ApiError> {
    let mut content = Vec::with_capacity(req.body.len() + url.len() + 64);
    for part in &spec.signed.parts {
        match part {
            Part::Text(t) => content.extend_from_slice(t.as_bytes()),
            Part::Body => content.extend_from_slice(req.body),
            Part::Timestamp => content.extend_from_slice(timestamp.unwrap_or("").as_bytes()),
            Part::Url => content.extend_from_slice(url.as_bytes()),
            Part::UrlDecoded => content.extend_from_slice(hubspot_decoded(url).as_bytes()),
            Part::Method => content.extend_from_slice(req.method.as_bytes()),
            Part::Header(name) => match req.header(name) {
                Some(v) => content.extend_from_slice(v.as_bytes()),
                None => {
                    return Err(refusal(
                        provider,
                        "signature_missing",
                        format!(
                            "the {name} header is part of what {} signs (\"{}\"); it is missing",
                            provider.title, spec.signed.text
                        ),
                    ));
                }
            },
            Part::FormSorted => {
                if !body_hash_in_query(spec, req) {
                    let mut fields = form_pairs(&String::from_utf8_lossy(req.body));
                    fields.sort();
                    fields.dedup();
                    for (k, v) in fields {
                        content.extend_from_slice(k.as_bytes());
                        content.extend_from_slice(v.as_bytes());
                    }
                }
            }
        }
    }
    Ok(content)
}

/// The URL as given, and the same with its default port named (or left out, when named).
fn url_forms(text: &str) -> Vec<String> {
    let mut forms = vec![text.to_string()];
    let Ok(url) = url::Url::parse(text) else {
        return forms;
    };
    let host = url.host_str().unwrap_or("");
    let origin = format!("{}://{host}", url.scheme());
    let other = match (url.port(), url.port_or_known_default()) {
        // The url crate drops a default port when parsing, so an explicit one is not default.
        (Some(_), _) => None,
        (None, Some(default)) => text
            .strip_prefix(&origin)
            .map(|rest| format!("{origin}:{default}{rest}")),
        (None, None) => None,
    };
    forms.extend(other);
    forms
}
/// Twilio signs a JSON body's hash in the URL instead of the body's fields.
fn body_hash_in_query(spec: &HmacSpec, req: &Request) -> bool {
    spec.body_hash_param
        .as_deref()
        .is_some_and(|p| query_value(req, p).is_some())
}

fn encoding_name(e: Encoding) -> &'static str {
    match e {
        Encoding::Hex => "hex",
        Encoding::Base64 => "base64",
    }
}

/// The signatures the header carries, and the timestamp of a pairs header.
fn split_header<'h>(spec: &HmacSpec, raw: &'h str) -> (Vec<&'h str>, Option<&'h str>) {
    if let Some((sep, sig_key)) = &spec.pairs {
        let ts_key = spec.timestamp.as_ref().and_then(|t| t.pair_key.as_deref());
        let mut sigs = Vec::new();
        let mut ts = None;
        for pair in raw.split(sep.as_str()) {
            if let Some((k, v)) = pair.trim().split_once('=') {
                if k == sig_key {
                    sigs.push(v);
                } else if Some(k) == ts_key {
                    ts = Some(v);
                }
            }
        }
        return (sigs, ts);
    }
    let pieces: Vec<&str> = match &spec.separator {
        Some(sep) => raw.split(sep.as_str()).collect(),
        None => vec![raw],
    };
    let sigs = pieces
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .filter_map(|p| match &spec.prefix {
            Some(prefix) => p.strip_prefix(prefix.as_str()),
            None => Some(p),
        })
        .collect();
    (sigs, None)
}

/// The timestamp as signed, once it is a number within the window.
fn check_timestamp<'r>(
    provider: &Provider,
    spec: &TimestampSpec,
    req: &'r Request,
    pair: Option<&'r str>,
    now_secs: i64,
) -> Result<&'r str, ApiError> {
    let place = match (&spec.header, &spec.pair_key) {
        (Some(h), _) => format!("the {h} header"),
        (None, Some(k)) => format!("the {k}= part of the signature header"),
        (None, None) => "the timestamp".to_string(),
    };
    let raw = match &spec.header {
        Some(h) => req.header(h),
        None => pair,
    }
    .map(str::trim)
    .ok_or_else(|| {
        refusal(
            provider,
            "timestamp_missing",
            format!("{} signs a timestamp: send it in {place}", provider.title),
        )
    })?;
    let value: i64 = raw.parse().map_err(|_| {
        refusal(
            provider,
            "timestamp_invalid",
            format!(
                "{place} must be an integer (unix {})",
                match spec.unit {
                    TimeUnit::S => "seconds",
                    TimeUnit::Ms => "milliseconds",
                }
            ),
        )
    })?;
    let secs = match spec.unit {
        TimeUnit::S => value,
        TimeUnit::Ms => value / 1000,
    };
    if (now_secs - secs).abs() > spec.tolerance_secs {
        return Err(refusal(
            provider,
            "timestamp_out_of_window",
            format!(
                "{place} ({raw}) is more than {} s away from the server time {now_secs}",
                spec.tolerance_secs
            ),
        ));
    }
    Ok(raw)
}

fn mac(algorithm: Algorithm, key: &[u8], content: &[u8]) -> Vec<u8> {
    match algorithm {
        Algorithm::Sha256 => crypto::hmac_sha256(key, &[content]).to_vec(),
        Algorithm::Sha1 => {
            let mut m = <Hmac<sha1::Sha1> as Mac>::new_from_slice(key)
                .expect("HMAC takes keys of any length");
            m.update(content);
            m.finalize().into_bytes().to_vec()
        }
    }
}

/// The headers that sign `req` as the provider would at `now_secs` (for `hookgate trigger`):
/// the timestamp header, and the signature (or shared secret) header. A pairs header or a
/// timestamp header is written anew; other headers of the template (ids) must be in `req`.
pub fn sign(
    provider: &Provider,
    secret: &[u8],
    req: &Request,
    now_secs: i64,
) -> Result<Vec<(String, String)>, String> {
    let spec = match &provider.scheme {
        Scheme::Hmac(spec) => spec,
        Scheme::SharedSecret { header, .. } => {
            return Ok(vec![(
                header.clone(),
                String::from_utf8_lossy(secret).into_owned(),
            )]);
        }
        Scheme::BodySecret { field } => {
            return Err(format!(
                "{} carries its secret in the body ({}); edit the body instead",
                provider.title,
                field.as_str()
            ));
        }
    };
    let timestamp = spec.timestamp.as_ref().map(|t| match t.unit {
        TimeUnit::S => now_secs.to_string(),
        TimeUnit::Ms => (now_secs * 1000).to_string(),
    });
    let key = match spec.key {
        KeyForm::Raw => secret.to_vec(),
        KeyForm::Whsec => {
            crate::outbound::signing::standard_webhooks_key(&String::from_utf8_lossy(secret))
        }
    };
    let mut headers = Vec::new();
    if let (
        Some(ts),
        Some(TimestampSpec {
            header: Some(h), ..
        }),
    ) = (&timestamp, &spec.timestamp)
    {
        headers.push((h.clone(), ts.clone()));
    }
    let content = signed_content(provider, spec, req, timestamp.as_deref(), &req.url())
        .map_err(|e| e.message)?;
    let mac = mac(spec.algorithm, &key, &content);
    let sig = match spec.encoding {
        Encoding::Hex => hex::encode(mac),
        Encoding::Base64 => crypto::base64_encode(&mac),
    };
    let value = match (&spec.pairs, &spec.timestamp, &timestamp) {
        (
            Some((sep, key)),
            Some(TimestampSpec {
                pair_key: Some(t), ..
            }),
            Some(ts),
        ) => {
            format!("{t}={ts}{sep}{key}={sig}")
        }
        (Some((_, key)), _, _) => format!("{key}={sig}"),
        _ => format!("{}{sig}", spec.prefix.as_deref().unwrap_or("")),
    };
    headers.push((spec.header.clone(), value));
    Ok(headers)
}

/// The signature of `value` as a handshake answer needs it (Zoom's encryptedToken).
pub(crate) fn handshake_mac(provider: &Provider, secret: &[u8], value: &str) -> String {
    let (algorithm, encoding) = match &provider.scheme {
        Scheme::Hmac(h) => (h.algorithm, h.encoding),
        _ => (Algorithm::Sha256, Encoding::Hex),
    };
    let mac = mac(algorithm, secret, value.as_bytes());
    match encoding {
        Encoding::Hex => hex::encode(mac),
        Encoding::Base64 => crypto::base64_encode(&mac),
    }
}

/// The URL with the percent-escapes HubSpot decodes before signing.
fn hubspot_decoded(url: &str) -> String {
    const DECODED: &[(&str, &str)] = &[
        ("%3A", ":"),
        ("%2F", "/"),
        ("%3F", "?"),
        ("%40", "@"),
        ("%21", "!"),
        ("%24", "$"),
        ("%27", "'"),
        ("%28", "("),
        ("%29", ")"),
        ("%2A", "*"),
        ("%2C", ","),
        ("%3B", ";"),
    ];
    let mut out = url.to_string();
    for (from, to) in DECODED {
        out = out
            .replace(from, to)
            .replace(&from.to_ascii_lowercase(), to);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::catalog::catalog;
    use super::*;

    fn request<'a>(
        headers: &'a [(String, String)],
        body: &'a [u8],
        target: &'a str,
    ) -> Request<'a> {
        Request {
            method: "POST",
            target,
            headers,
            body,
            public_url: "https://hooks.example.com/",
        }
    }

    #[test]
    fn github_documented_example() {
        // docs.github.com, "Validating webhook deliveries": secret, payload and signature.
        let github = catalog().get("github").unwrap();
        let headers = vec![(
            "x-hub-signature-256".to_string(),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17".to_string(),
        )];
        let req = request(&headers, b"Hello, World!", "/webhooks/inbound/github/hk_1");
        assert!(verify(github, b"It's a Secret to Everybody", &req, 0).is_ok());
        let err = verify(github, b"another secret", &req, 0).unwrap_err();
        assert_eq!((err.status, err.code), (403, "signature_mismatch"));
        assert!(err.message.contains("\"{body}\""), "{}", err.message);
        assert!(
            err.message
                .contains("X-Hub-Signature-256".to_ascii_lowercase().as_str())
        );
    }

    #[test]
    fn stripe_pairs_and_window() {
        let stripe = catalog().get("stripe").unwrap();
        let sig = crypto::hmac_hex(b"whsec_test", &[b"1000.{}"]);
        let headers = vec![(
            "stripe-signature".to_string(),
            format!("t=1000,v1=00,v1={sig},v0=ff"),
        )];
        let req = request(&headers, b"{}", "/");
        assert!(verify(stripe, b"whsec_test", &req, 1100).is_ok());
        let err = verify(stripe, b"whsec_test", &req, 2000).unwrap_err();
        assert_eq!(err.code, "timestamp_out_of_window");
        let err = verify(stripe, b"whsec_other", &req, 1000).unwrap_err();
        assert!(
            err.message.contains("{timestamp} = 1000"),
            "{}",
            err.message
        );
        assert!(!err.message.contains(&sig), "never the expected value");
    }

    #[test]
    fn xero_refuses_with_401_and_shared_secrets_compare_whole() {
        let xero = catalog().get("xero").unwrap();
        let req = request(&[], b"{}", "/");
        assert_eq!(verify(xero, b"k", &req, 0).unwrap_err().status, 401);
        let dynamics = catalog().get("dynamics365").unwrap();
        let req = request(&[], b"{}", "/x?code=d365");
        assert!(verify(dynamics, b"d365", &req, 0).is_ok());
        let req = request(&[], b"{}", "/x?code=d36");
        assert_eq!(
            verify(dynamics, b"d365", &req, 0).unwrap_err().code,
            "signature_mismatch"
        );
    }

    #[test]
    fn hubspot_decodes_listed_escapes_only() {
        assert_eq!(
            hubspot_decoded("https://h.example/a%3Ab%2fc?x=%20"),
            "https://h.example/a:b/c?x=%20"
        );
    }
}
