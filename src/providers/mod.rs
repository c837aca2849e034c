//! Native intake: providers (Stripe, GitHub, Slack, Square, …) post their own bodies, signed
//! their own way, to `POST /webhooks/inbound/{provider}/{key_id}`. The key id in the URL is
//! public; the provider's signature, checked with the key's secret for that provider, is the
//! authentication.
//!
//! Providers are data: `catalog.toml` says for each how its requests are signed, what one
//! event is (and its id, for deduplication, and its type) and which handshakes it expects;
//! the code here interprets it generically. A provider's event then becomes either an envelope,
//! through the operator's mapping for that key and provider (`mapping.rs`), which goes through
//! the same stages as `/webhooks/inbound` (parse, normalize, validate, apply, idempotency by the
//! provider's event id), or, with no rule for it, a pass-through event `source.{provider}.{type}`
//! fanned out to subscribers (never back to the key it came in on).
//!
//! Only two places know a provider by name: the key's fallback to the secrets `keys create`
//! takes for Square, QuickBooks and Dynamics 365 (`ApiKey::provider_secret`), and HubSpot's
//! list of percent-escapes it decodes before signing (`signature.rs`), which no template can
//! express.

pub mod catalog;
mod expr;
mod intake;
pub(crate) mod manage;
pub(crate) mod mapping;
mod passthrough;
pub mod signature;

pub use catalog::{Provider, catalog};
pub(crate) use intake::{Mode, NativeRequest, authenticate, native_route, preview, process};

/// State native intake keeps between requests.
#[derive(Default)]
pub struct Providers {
    pub mappings: mapping::MappingCache,
    /// Seconds added to the clock that signed timestamps are held to: zero, except in tests
    /// that replay requests a provider's SDK signed at a fixed time.
    clock_offset_secs: std::sync::atomic::AtomicI64,
}

impl Providers {
    /// Now, for signed timestamps.
    pub(crate) fn now_secs(&self) -> i64 {
        crate::clock::now_secs()
            + self
                .clock_offset_secs
                .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Makes signed timestamps be judged as if it were `secs` now (tests).
    pub fn set_now_secs(&self, secs: i64) {
        self.clock_offset_secs.store(
            secs - crate::clock::now_secs(),
            std::sync::atomic::Ordering::Relaxed,
        );
    }
}

/// The outbound type of a provider event that no mapping takes.
pub(crate) fn pass_through_type(provider: &str, provider_type: Option<&str>) -> String {
    format!(
        "source.{provider}.{}",
        provider_type
            .map(clean_type)
            .unwrap_or_else(|| "event".into())
    )
}

/// A provider's event type as part of an outbound type: lower case, `/` and spaces as `.`,
/// nothing but letters, digits, `_`, `-` and `.`.
fn clean_type(raw: &str) -> String {
    let cleaned: String = raw
        .trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '_' | '-' | '.' => c,
            '/' | ' ' | ':' => '.',
            _ => '_',
        })
        .take(120)
        .collect();
    let cleaned = cleaned.trim_matches('.');
    if cleaned.is_empty() {
        "event".into()
    } else {
        cleaned.to_string()
    }
}

/// Whether a subscription pattern names pass-through events (`source.*`, `source.stripe.*`,
/// `source.stripe.invoice.paid`) of a provider in the catalog.
pub(crate) fn is_pass_through_pattern(pattern: &str) -> bool {
    let Some(rest) = pattern.strip_prefix("source.") else {
        return false;
    };
    if rest == "*" {
        return true;
    }
    let (provider, tail) = rest.split_once('.').unwrap_or((rest, ""));
    catalog().get(provider).is_some()
        && !tail.is_empty()
        && tail
            .chars()
            .all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '-' | '.' | '*'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_through_types_are_clean_and_patterns_name_known_providers() {
        assert_eq!(
            pass_through_type("shopify", Some("orders/create")),
            "source.shopify.orders.create"
        );
        assert_eq!(
            pass_through_type("xero", Some("INVOICE.UPDATE")),
            "source.xero.invoice.update"
        );
        assert_eq!(pass_through_type("twilio", None), "source.twilio.event");
        assert!(is_pass_through_pattern("source.*"));
        assert!(is_pass_through_pattern("source.stripe.*"));
        assert!(is_pass_through_pattern("source.stripe.invoice.paid"));
        assert!(!is_pass_through_pattern("source.nobody.*"));
        assert!(!is_pass_through_pattern("source.stripe"));
    }
}
