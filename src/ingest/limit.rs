//! Stage 4, the one place where the inbound routes (`/webhooks/inbound` and native intake) meet
//! the rate limiter: a client address that failed authentication too often is refused first;
//! every refused authentication counts against its address; an authenticated, verified request
//! counts against its key's limits; and every answer carries the `X-RateLimit-*` values of the
//! limit that judged it (the key's, else the address's).

use crate::error::ApiError;
use crate::keys::ApiKey;
use crate::ratelimit::RateStatus;
use crate::request::Reply;
use crate::state::AppState;

use super::Trace;

/// The refusal of a client address that failed authentication too often (checked before
/// anything else).
pub(crate) fn refuse_blocked_client(state: &AppState, trace: &mut Trace) -> Option<Reply> {
    let status = state.limits.auth_blocked(trace.client)?;
    let mut reply = trace.fail(ApiError::new(
        429,
        "too_many_auth_failures",
        "too many failed authentication attempts from this address; retry later",
    ));
    reply.rate = Some(status);
    Some(reply)
}

/// The answer to a missing, unknown or revoked key: counts against the client address, and
/// shows its status.
pub(crate) fn refuse_key(state: &AppState, trace: &mut Trace, error: ApiError) -> Reply {
    let status = state.limits.auth_failed(trace.client);
    let mut reply = trace.fail(error);
    reply.rate = Some(status);
    reply
}

/// The answer to a refused signature: counts against the client address, and shows the key's
/// status without using any of it.
pub(crate) fn refuse_signature(
    state: &AppState,
    trace: &mut Trace,
    key: &ApiKey,
    error: ApiError,
) -> Reply {
    state.limits.auth_failed(trace.client);
    let mut reply = trace.fail(error);
    reply.rate = Some(
        state
            .limits
            .inbound(&key.id, key.per_minute, key.per_hour)
            .peek(),
    );
    reply
}

/// The answer to an unsigned request whose event type needs a signature (known only once the
/// body is parsed, after the key's count): counts against the client address too.
pub(crate) fn refuse_unsigned(state: &AppState, trace: &mut Trace, error: ApiError) -> Reply {
    state.limits.auth_failed(trace.client);
    trace.fail(error)
}

/// Counts an authenticated, verified request against its key's limits.
pub(crate) async fn count(
    state: &AppState,
    trace: &mut Trace,
    key: &ApiKey,
) -> Result<RateStatus, Box<Reply>> {
    let rate = state
        .limits
        .check_inbound(&key.id, key.per_minute, key.per_hour)
        .await;
    if let Some(wait) = rate.retry_after {
        let e = ApiError::new(
            429,
            "rate_limited",
            format!(
                "rate limit of {} requests exceeded for this API key; retry in {wait} s",
                rate.limit
            ),
        );
        let mut reply = trace.fail(e);
        reply.rate = Some(rate);
        return Err(Box::new(reply));
    }
    Ok(rate)
}

/// Gives an answer that no limit judged the client address's values.
pub(super) fn fill_in(state: &AppState, trace: &Trace, reply: &mut Reply) {
    if reply.rate.is_none() {
        reply.rate = Some(state.limits.auth_status(trace.client));
    }
}
