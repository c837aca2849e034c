//! Stage 3: signature verification per `X-Webhook-Source`, in constant time.
//!
//! The only way to obtain a [`VerifiedRequest`] is [`verify`]; later stages take one, so no
//! envelope can reach parsing without having passed this stage.

use std::sync::Arc;

use bytes::Bytes;

use crate::crypto;
use crate::error::ApiError;
use crate::keys::ApiKey;

/// Header access without tying this module to an HTTP library.
pub(crate) trait Headers {
    fn get(&self, name: &str) -> Option<&str>;

    /// Every header (lower-case names), to keep a request or hand it to a provider's rules;
    /// a view of a single header lists none.
    fn all(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Custom,
    Square,
    QuickBooks,
    Dynamics365,
    Zapier,
    /// A provider's own request at its native URL, authenticated by `crate::providers`.
    Native(&'static str),
}

impl Source {
    pub(crate) fn parse(name: Option<&str>) -> Result<Source, ApiError> {
        match name.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("custom") => Ok(Source::Custom),
            Some("square") => Ok(Source::Square),
            Some("quickbooks") => Ok(Source::QuickBooks),
            Some("dynamics365") => Ok(Source::Dynamics365),
            Some("zapier") => Ok(Source::Zapier),
            Some(other) => Err(ApiError::bad_request(
                "unknown_source",
                format!(
                    "unknown X-Webhook-Source {other:?}; expected one of custom, square, quickbooks, dynamics365, zapier"
                ),
            )),
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Source::Custom => "custom",
            Source::Square => "square",
            Source::QuickBooks => "quickbooks",
            Source::Dynamics365 => "dynamics365",
            Source::Zapier => "zapier",
            Source::Native(provider) => provider,
        }
    }
}

/// Settings verification needs from the configuration.
#[derive(Debug, Clone)]
pub struct VerifySettings {
    pub public_url: String,
    pub timestamp_tolerance_secs: i64,
    pub dynamics_header: String,
}

/// A request whose key is valid and whose signature was checked. An unsigned request may only
/// carry `test.connection`; [`VerifiedRequest::require_signature`] enforces that after parsing.
pub(crate) struct VerifiedRequest {
    pub key: Arc<ApiKey>,
    pub body: Bytes,
    unsigned_reason: Option<ApiError>,
    /// What an idempotency key guards when it is not the body: a provider's event, whose
    /// mapped envelope carries the time of mapping and so differs between retries.
    idempotency_basis: Option<Bytes>,
}

impl VerifiedRequest {
    /// A request authenticated elsewhere: a provider's native request whose signature
    /// `crate::providers` checked, or an operator's replay of a kept request (whose signature
    /// is not checked again because an authenticated operator asked; the log records it).
    pub(crate) fn authenticated_elsewhere(key: Arc<ApiKey>, body: Bytes) -> VerifiedRequest {
        VerifiedRequest {
            key,
            body,
            unsigned_reason: None,
            idempotency_basis: None,
        }
    }

    /// The same request, whose idempotency key guards `basis` instead of the body.
    pub(crate) fn guarding(self, basis: Bytes) -> VerifiedRequest {
        VerifiedRequest {
            idempotency_basis: Some(basis),
            ..self
        }
    }

    /// What the request's idempotency key guards: a copy under the same key must match it.
    pub(crate) fn idempotency_basis(&self) -> &[u8] {
        self.idempotency_basis.as_deref().unwrap_or(&self.body)
    }

    pub(crate) fn signature_verified(&self) -> bool {
        self.unsigned_reason.is_none()
    }

    /// Fails unless the request was signed or `exempt` (only `test.connection` is).
    pub(crate) fn require_signature(&self, exempt: bool) -> Result<(), ApiError> {
        match &self.unsigned_reason {
            Some(reason) if !exempt => Err(reason.clone()),
            _ => Ok(()),
        }
    }
}

/// Verifies the request's signature for its source. `path_and_query` is the request target
/// (Square signs the public URL of it).
pub(crate) fn verify(
    key: Arc<ApiKey>,
    source: Source,
    headers: &impl Headers,
    path_and_query: &str,
    body: Bytes,
    now_secs: i64,
    settings: &VerifySettings,
) -> Result<VerifiedRequest, ApiError> {
    let unsigned_reason = match source {
        Source::Custom => verify_custom(&key, headers, &body, now_secs, settings)?,
        Source::Zapier => match headers.get("x-webhook-signature") {
            Some(_) => verify_custom(&key, headers, &body, now_secs, settings)?,
            None => Some(ApiError::new(
                403,
                "source_not_allowed",
                "the zapier source authenticates with the API key only and may only send test.connection",
            )),
        },
        Source::Square => {
            let secret = configured(&key.square_signature_key, "a Square signature key")?;
            let url = format!(
                "{}{}",
                settings.public_url.trim_end_matches('/'),
                path_and_query
            );
            verify_base64(
                headers.get("x-square-hmacsha256-signature"),
                secret,
                &[url.as_bytes(), &body],
            )?
        }
        Source::QuickBooks => {
            let secret = configured(
                &key.quickbooks_verifier_token,
                "a QuickBooks verifier token",
            )?;
            verify_base64(headers.get("intuit-signature"), secret, &[&body])?
        }
        Source::Native(provider) => {
            return Err(ApiError::bad_request(
                "unknown_source",
                format!("{provider} requests go to /webhooks/inbound/{provider}/{{key_id}}"),
            ));
        }
        Source::Dynamics365 => {
            let secret = configured(&key.dynamics_key, "a Dynamics 365 shared key")?;
            let sent = headers
                .get(&settings.dynamics_header)
                .map(str::to_string)
                .or_else(|| query_param(path_and_query, "code"));
            match sent {
                None => Some(signature_missing(&format!(
                    "the {} header or ?code= query parameter",
                    settings.dynamics_header
                ))),
                Some(sent) if crypto::ct_eq(sent.as_bytes(), secret) => None,
                Some(_) => return Err(mismatch()),
            }
        }
    };
    Ok(VerifiedRequest {
        key,
        body,
        unsigned_reason,
        idempotency_basis: None,
    })
}

fn verify_custom(
    key: &ApiKey,
    headers: &impl Headers,
    body: &[u8],
    now_secs: i64,
    settings: &VerifySettings,
) -> Result<Option<ApiError>, ApiError> {
    let Some(signatures) = headers.get("x-webhook-signature") else {
        return Ok(Some(signature_missing("the X-Webhook-Signature header")));
    };
    let timestamp = match headers.get("x-webhook-timestamp") {
        Some(raw) => Some(check_timestamp(
            raw,
            now_secs,
            settings.timestamp_tolerance_secs,
        )?),
        None if key.body_only_signing => None,
        None => {
            return Err(ApiError::new(
                403,
                "timestamp_missing",
                "X-Webhook-Timestamp (unix seconds) is required: it is part of the signed content",
            ));
        }
    };
    let candidates: Vec<[u8; 32]> = key
        .signing_secrets
        .iter()
        .map(|secret| match (timestamp, key.body_only_signing) {
            (Some(ts), false) => crypto::hmac_sha256(secret, &[ts.as_bytes(), b".", body]),
            _ => crypto::hmac_sha256(secret, &[body]),
        })
        .collect();
    let matched = signatures.split_whitespace().any(|sig| {
        let hex_sig = sig.strip_prefix("sha256=").unwrap_or(sig);
        match hex::decode(hex_sig) {
            Ok(sent) => candidates.iter().any(|c| crypto::ct_eq(&sent, c)),
            Err(_) => false,
        }
    });
    if matched {
        return Ok(None);
    }
    let signed = match (timestamp, key.body_only_signing) {
        (Some(_), false) => "{X-Webhook-Timestamp}.{body}",
        _ => "{body}",
    };
    Err(ApiError::new(
        403,
        "signature_mismatch",
        format!(
            "X-Webhook-Signature does not match: the custom scheme expects the hex HMAC-SHA256 of \"{signed}\" keyed with the key's signing secret (a sha256= prefix is optional; several signatures may be sent, separated by spaces)"
        ),
    )
    .with_details(vec![serde_json::json!({
        "scheme": "custom",
        "header": "X-Webhook-Signature",
        "signed_content": signed,
        "timestamp": timestamp,
        "encoding": "hex HMAC-SHA256",
    })]))
}

/// Returns the timestamp's text (as signed) when it is an integer within the window.
fn check_timestamp(raw: &str, now_secs: i64, tolerance: i64) -> Result<&str, ApiError> {
    let raw = raw.trim();
    let ts: i64 = raw.parse().map_err(|_| {
        ApiError::new(
            403,
            "timestamp_invalid",
            "X-Webhook-Timestamp must be unix seconds",
        )
    })?;
    if (now_secs - ts).abs() > tolerance {
        return Err(ApiError::new(
            403,
            "timestamp_out_of_window",
            format!(
                "X-Webhook-Timestamp {ts} is more than {tolerance} s away from the server time {now_secs}"
            ),
        ));
    }
    Ok(raw)
}

fn verify_base64(
    sent: Option<&str>,
    secret: &[u8],
    parts: &[&[u8]],
) -> Result<Option<ApiError>, ApiError> {
    let Some(sent) = sent else {
        return Ok(Some(signature_missing("the source's signature header")));
    };
    let expected = crypto::hmac_sha256(secret, parts);
    match crypto::base64_decode(sent.trim()) {
        Some(sent) if crypto::ct_eq(&sent, &expected) => Ok(None),
        _ => Err(mismatch()),
    }
}

fn configured<'a>(secret: &'a Option<Vec<u8>>, what: &str) -> Result<&'a [u8], ApiError> {
    secret.as_deref().ok_or_else(|| {
        ApiError::new(
            403,
            "source_not_configured",
            format!("this API key has no {what} configured for this source"),
        )
    })
}

fn signature_missing(what: &str) -> ApiError {
    ApiError::new(
        403,
        "signature_missing",
        format!("missing signature: send {what}"),
    )
}

fn mismatch() -> ApiError {
    ApiError::new(
        403,
        "signature_mismatch",
        "signature does not match the request",
    )
}

fn query_param(path_and_query: &str, name: &str) -> Option<String> {
    let query = path_and_query.split_once('?')?.1;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz_targets::{sample_key as key, sample_settings as settings};
    use std::collections::HashMap;

    struct H(HashMap<&'static str, String>);
    impl Headers for H {
        fn get(&self, name: &str) -> Option<&str> {
            self.0.get(name).map(String::as_str)
        }
    }

    fn run(
        source: Source,
        headers: &[(&'static str, String)],
        target: &str,
        body: &'static str,
    ) -> Result<bool, &'static str> {
        let h = H(headers.iter().cloned().collect());
        verify(
            key(),
            source,
            &h,
            target,
            Bytes::from_static(body.as_bytes()),
            1_000_000,
            &settings(),
        )
        .map(|v| v.signature_verified())
        .map_err(|e| e.code)
    }

    #[test]
    fn custom_signs_timestamp_and_body_and_accepts_old_secret_and_prefix() {
        let sig = crypto::hmac_hex(b"old-secret", &[b"1000000.{}"]);
        let ok = run(
            Source::Custom,
            &[
                ("x-webhook-signature", format!("deadbeef sha256={sig}")),
                ("x-webhook-timestamp", "1000000".into()),
            ],
            "/webhooks/inbound",
            "{}",
        );
        assert_eq!(ok, Ok(true));
        // The same signature with another timestamp does not verify.
        let replay = run(
            Source::Custom,
            &[
                ("x-webhook-signature", sig.clone()),
                ("x-webhook-timestamp", "1000001".into()),
            ],
            "/",
            "{}",
        );
        assert_eq!(replay, Err("signature_mismatch"));
        let stale = run(
            Source::Custom,
            &[
                ("x-webhook-signature", sig),
                ("x-webhook-timestamp", "999000".into()),
            ],
            "/",
            "{}",
        );
        assert_eq!(stale, Err("timestamp_out_of_window"));
    }

    #[test]
    fn square_signs_notification_url_and_body() {
        let sig = crypto::hmac_base64(
            b"sq-key",
            &[b"https://hooks.example.com/webhooks/inbound?x=1", b"{}"],
        );
        assert_eq!(
            run(
                Source::Square,
                &[("x-square-hmacsha256-signature", sig.clone())],
                "/webhooks/inbound?x=1",
                "{}"
            ),
            Ok(true)
        );
        assert_eq!(
            run(
                Source::Square,
                &[("x-square-hmacsha256-signature", sig)],
                "/webhooks/inbound",
                "{}"
            ),
            Err("signature_mismatch")
        );
    }

    #[test]
    fn quickbooks_and_dynamics() {
        let sig = crypto::hmac_base64(b"qb-token", &[b"{}"]);
        assert_eq!(
            run(Source::QuickBooks, &[("intuit-signature", sig)], "/", "{}"),
            Ok(true)
        );
        assert_eq!(
            run(
                Source::Dynamics365,
                &[],
                "/webhooks/inbound?code=d365",
                "{}"
            ),
            Ok(true)
        );
        assert_eq!(
            run(
                Source::Dynamics365,
                &[("x-dynamics-key", "nope".into())],
                "/",
                "{}"
            ),
            Err("signature_mismatch")
        );
        assert_eq!(run(Source::Dynamics365, &[], "/", "{}"), Ok(false));
        // Percent-encoded, and a stray '%' before a multi-byte character is no crash.
        assert_eq!(
            run(Source::Dynamics365, &[], "/?code=d%33%365", "{}"),
            Ok(true)
        );
        assert_eq!(
            run(Source::Dynamics365, &[], "/?code=%aé", "{}"),
            Err("signature_mismatch")
        );
    }
}
