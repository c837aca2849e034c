//! What a delivery looks like on the wire: its body (full or thin) and its headers, signed
//! with the seed's scheme and with Standard Webhooks'.

use std::borrow::Cow;

use serde_json::json;

use crate::crypto;

/// The body sent for an event: the stored envelope (`full`, borrowed) or `{"entity", "id"}`
/// (`thin`).
pub(crate) fn body<'a>(
    payload_mode: &str,
    stored_payload: &'a str,
    entity: &str,
    record_id: &str,
) -> Cow<'a, [u8]> {
    if payload_mode == "thin" {
        Cow::Owned(
            serde_json::to_vec(&json!({"entity": entity, "id": record_id}))
                .expect("JSON values serialize"),
        )
    } else {
        Cow::Borrowed(stored_payload.as_bytes())
    }
}

/// The key Standard Webhooks signs with: the base64-decoded part of a `whsec_` secret, or the
/// raw bytes of any other secret.
pub(crate) fn standard_webhooks_key(secret: &str) -> Vec<u8> {
    secret
        .strip_prefix("whsec_")
        .and_then(crypto::base64_decode)
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

/// One outbound secret, keyed once for both signature schemes: the seed's (the secret's own
/// bytes) and Standard Webhooks' ([`standard_webhooks_key`]).
pub(crate) struct SigningSecret {
    seed: crypto::HmacKey,
    standard: crypto::HmacKey,
}

impl SigningSecret {
    pub(crate) fn new(secret: &str) -> SigningSecret {
        SigningSecret {
            seed: crypto::HmacKey::new(secret.as_bytes()),
            standard: crypto::HmacKey::new(&standard_webhooks_key(secret)),
        }
    }
}

pub(crate) struct DeliveryMeta<'a> {
    pub webhook_id: &'a str,
    pub event_type: &'a str,
    pub subscription_name: &'a str,
    pub attempt: u32,
    pub timestamp: i64,
}

/// Every header of a delivery except `Content-Type` and authorization. With several secrets
/// (a rotation's overlap, current first) each header carries one signature per secret,
/// space-separated, so that receivers holding either secret verify.
pub(crate) fn headers<'a>(
    secrets: &[&SigningSecret],
    meta: &DeliveryMeta<'a>,
    body: &[u8],
) -> Vec<(&'static str, Cow<'a, str>)> {
    let ts = meta.timestamp.to_string();
    let mut seed_signature = String::with_capacity(65 * secrets.len());
    let mut standard = String::with_capacity(48 * secrets.len());
    for secret in secrets {
        if !seed_signature.is_empty() {
            seed_signature.push(' ');
            standard.push(' ');
        }
        let seed = secret.seed.sign(&[ts.as_bytes(), b".", body]);
        seed_signature.push_str(&hex::encode(seed));
        let signed =
            secret
                .standard
                .sign(&[meta.webhook_id.as_bytes(), b".", ts.as_bytes(), b".", body]);
        standard.push_str("v1,");
        standard.push_str(&crypto::base64_encode(&signed));
    }
    vec![
        ("x-webhook-signature", Cow::Owned(seed_signature)),
        ("x-webhook-timestamp", Cow::Owned(ts.clone())),
        ("x-webhook-id", Cow::Borrowed(meta.webhook_id)),
        ("x-webhook-event", Cow::Borrowed(meta.event_type)),
        ("x-webhook-retry", Cow::Owned(meta.attempt.to_string())),
        ("x-webhook-name", Cow::Borrowed(meta.subscription_name)),
        ("x-webhook-action", Cow::Borrowed(meta.event_type)),
        ("webhook-id", Cow::Borrowed(meta.webhook_id)),
        ("webhook-timestamp", Cow::Owned(ts)),
        ("webhook-signature", Cow::Owned(standard)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_reference_vector() {
        // From the Standard Webhooks specification's test vectors.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let sig = crypto::hmac_base64(
            &standard_webhooks_key(secret),
            &[
                b"msg_p5jXN8AQM9LWM0D4loKWxJek",
                b".",
                b"1614265330",
                b".",
                body,
            ],
        );
        assert_eq!(sig, "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn thin_payload_names_entity_and_id() {
        assert_eq!(
            body("thin", "{}", "work_order", "rec_1").as_ref(),
            br#"{"entity":"work_order","id":"rec_1"}"#
        );
        assert_eq!(body("full", "{\"a\":1}", "x", "y").as_ref(), b"{\"a\":1}");
    }
}
