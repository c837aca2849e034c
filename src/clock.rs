//! Wall-clock helpers shared by every stage (unix seconds/millis and RFC 3339 text).

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

pub fn now_secs() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// RFC 3339 in UTC with second precision, e.g. `2025-01-15T14:30:00Z`.
pub fn rfc3339_from_ms(ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

/// [`rfc3339_from_ms`] for unix seconds.
pub fn rfc3339_from_secs(secs: i64) -> String {
    rfc3339_from_ms(secs.saturating_mul(1000))
}

pub fn now_rfc3339() -> String {
    rfc3339_from_ms(now_ms())
}

pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// Today's date (UTC) as `YYYY-MM-DD`.
pub fn today() -> String {
    let d = OffsetDateTime::now_utc().date();
    format!("{:04}-{:02}-{:02}", d.year(), d.month() as u8, d.day())
}
