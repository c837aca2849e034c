//! REST operations of native intake and kept requests: the provider catalog, a key's mappings
//! (`/api/v1/providers/{provider}/mapping`), one ingest-log entry with its kept request
//! (`/api/v1/ingest-log/{entry_id}`) and replays, one or by filter.

use std::net::{IpAddr, Ipv4Addr};

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Answer, Call, parse_body};
use crate::clock;
use crate::error::ApiError;
use crate::inspect;
use crate::providers::{catalog, manage};
use crate::store::KeptFilter;

/// A replay asked for over REST has no client address of its own in the log.
const OPERATOR: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReplayFilter {
    status: Option<serde_json::Number>,
    since: Option<String>,
    until: Option<String>,
    key: Option<String>,
    provider: Option<String>,
    event_type: Option<String>,
    limit: Option<serde_json::Number>,
}

/// A whole number within `range` (JSON Schema's integers include `45.0`), or a 400.
fn whole(
    field: &str,
    value: Option<serde_json::Number>,
    range: std::ops::RangeInclusive<i64>,
) -> Result<Option<i64>, ApiError> {
    let Some(number) = value else {
        return Ok(None);
    };
    let whole = number.as_i64().or_else(|| {
        number
            .as_f64()
            .filter(|f| f.fract() == 0.0)
            .map(|f| f as i64)
    });
    match whole {
        Some(n) if range.contains(&n) => Ok(Some(n)),
        _ => Err(ApiError::bad_request(
            "invalid_request",
            format!(
                "{field} must be an integer from {} to {}, not {number}",
                range.start(),
                range.end()
            ),
        )),
    }
}

fn time(field: &str, value: Option<String>) -> Result<Option<i64>, ApiError> {
    value
        .map(|v| {
            clock::parse_rfc3339_ms(&v).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_request",
                    format!("{field} {v:?} is not an RFC 3339 time such as 2025-01-15T00:00:00Z"),
                )
            })
        })
        .transpose()
}

/// The filter of a bulk replay, within `company_id`.
fn replay_filter(company_id: &str, body: &[u8]) -> Result<KeptFilter, ApiError> {
    let f: ReplayFilter = parse_body(body)?;
    let limit = whole("limit", f.limit, 1..=1000)?.unwrap_or(100) as usize;
    Ok(KeptFilter {
        company_id: company_id.to_string(),
        status: whole("status", f.status, 100..=599)?.map(|s| s as u16),
        since_ms: time("since", f.since)?,
        until_ms: time("until", f.until)?,
        key_id: f.key,
        provider: f.provider,
        event_type: f.event_type,
        limit,
    })
}

impl Call<'_> {
    /// The operations of this file; `None` for any other.
    pub(super) async fn dispatch_intake(
        &self,
        operation: &str,
    ) -> Option<Result<Answer, ApiError>> {
        let (state, key) = (self.state, self.key);
        let by = format!("API key {}", key.id);
        let company = key.company_id.as_str();
        let provider = self.param("provider");
        let entry = self.param("entry_id");
        Some(match operation {
            "getIngestEntry" => inspect::find(state, Some(company), entry)
                .await
                .map(|v| Answer::one(200, v)),
            "replayIngestEntry" => inspect::replay(state, Some(company), entry, &by, OPERATOR)
                .await
                .map(|v| Answer::one(200, v)),
            "replayIngestLog" => match replay_filter(company, &self.req.body) {
                Ok(filter) => inspect::replay_matching(state, filter, &by, OPERATOR)
                    .await
                    .map(|v| Answer::one(200, v)),
                Err(e) => Err(e),
            },
            "listProviders" => Ok(Answer::many(
                catalog()
                    .all()
                    .iter()
                    .map(|p| manage::provider_view(state, p, Some(key)))
                    .collect(),
            )),
            "getProvider" => manage::known(provider)
                .map(|p| Answer::one(200, manage::provider_view(state, p, Some(key)))),
            "getProviderMapping" => manage::get_mapping(state, key, provider)
                .await
                .map(|v| Answer::one(200, v)),
            "putProviderMapping" => match parse_body::<Value>(&self.req.body) {
                Ok(document) => manage::put_mapping(state, key, provider, document)
                    .await
                    .map(|v| Answer::one(200, v)),
                Err(e) => Err(e),
            },
            "deleteProviderMapping" => manage::delete_mapping(state, key, provider)
                .await
                .map(|()| Answer::one(200, json!({"id": provider, "deleted": true}))),
            "previewProviderMapping" => match parse_body::<Value>(&self.req.body) {
                Ok(input) => manage::preview_input(state, key, provider, input)
                    .await
                    .map(|v| Answer::one(200, v)),
                Err(e) => Err(e),
            },
            _ => return None,
        })
    }
}
