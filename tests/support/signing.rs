//! The seed's `custom` inbound signature: hex HMAC-SHA256(secret, "{timestamp}.{body}") in
//! `X-Webhook-Signature`, the timestamp in `X-Webhook-Timestamp`.

use hookgate::crypto;

/// Seconds since the Unix epoch, as the timestamp header carries them.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// The seed's `custom` scheme: hex HMAC-SHA256(secret, "{timestamp}.{body}").
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    crypto::hmac_hex(
        secret.as_bytes(),
        &[timestamp.to_string().as_bytes(), b".", body],
    )
}

/// Builds complete signed `POST /webhooks/inbound` HTTP/1.1 requests as raw bytes, for clients
/// that write requests themselves (the benchmark's load generator).
#[derive(Clone)]
pub struct RawSigner {
    /// Request line and the headers that never change.
    head: String,
    secret: String,
}

impl RawSigner {
    /// Requests to `host` (`127.0.0.1:PORT`) as the API key `key_id` with `secret`.
    pub fn new(host: &str, key_id: &str, secret: &str) -> RawSigner {
        RawSigner {
            head: format!(
                "POST /webhooks/inbound HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {key_id}\r\nContent-Type: application/json\r\n"
            ),
            secret: secret.to_string(),
        }
    }

    /// Replaces `out` with the signed request carrying `body`, timestamped now.
    pub fn sign_into(&self, out: &mut Vec<u8>, body: &[u8]) {
        let ts = now();
        let signature = sign(&self.secret, ts, body);
        out.clear();
        out.extend_from_slice(self.head.as_bytes());
        out.extend_from_slice(
            format!(
                "Content-Length: {}\r\nX-Webhook-Timestamp: {ts}\r\nX-Webhook-Signature: {signature}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        out.extend_from_slice(body);
    }
}
