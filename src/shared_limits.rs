//! Rate limits shared by every node: the same GCRA as the local limiter, with its state in
//! Redis (`redis_url`), so that a key's limits hold in aggregate however many nodes serve it.
//! One Lua script checks every window of a request (per minute, per hour, ...) and counts it
//! in all of them only when all allow it, atomically, on Redis's clock.

use std::time::Duration;

use redis::aio::ConnectionManager;

use crate::clock;
use crate::ratelimit::RateStatus;

/// KEYS: one per window. ARGV: per window, its limit and period (ms). Returns
/// `{allowed, retry_after_ms, remaining_1, full_in_ms_1, remaining_2, ...}`.
const GCRA: &str = r#"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local allowed, retry = 1, 0
local windows = {}
for i = 1, #KEYS do
  local limit, period = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local interval = period / limit
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  if tat < now then tat = now end
  local next_tat = tat + interval
  if next_tat - now > period then
    allowed = 0
    retry = math.max(retry, next_tat - period - now)
  end
  windows[i] = {tat, next_tat, interval, period}
end
local out = {allowed, math.ceil(retry)}
for i = 1, #KEYS do
  local w = windows[i]
  local tat = w[1]
  if allowed == 1 then
    tat = w[2]
    redis.call('SET', KEYS[i], string.format('%.3f', tat), 'PX', math.ceil(w[4]))
  end
  out[#out + 1] = math.max(0, math.floor((w[4] - (tat - now)) / w[3]))
  out[#out + 1] = math.ceil(tat - now)
end
return out
"#;

/// A connection to the Redis that holds the shared limits.
#[derive(Clone)]
pub struct SharedLimits {
    conn: ConnectionManager,
    script: std::sync::Arc<redis::Script>,
}

impl SharedLimits {
    /// Connects (and reconnects by itself when the connection drops).
    pub async fn connect(url: &str) -> Result<SharedLimits, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let conn = tokio::time::timeout(Duration::from_secs(5), ConnectionManager::new(client))
            .await
            .map_err(|_| {
                redis::RedisError::from((redis::ErrorKind::Io, "connecting to Redis timed out"))
            })??;
        Ok(SharedLimits {
            conn,
            script: std::sync::Arc::new(redis::Script::new(GCRA)),
        })
    }

    /// Counts one request of `subject` against every window; the answer reports the window
    /// closest to its limit, as the local limiter does.
    pub async fn check(
        &self,
        subject: &str,
        windows: &[(u32, Duration)],
    ) -> Result<RateStatus, redis::RedisError> {
        let mut invocation = self.script.prepare_invoke();
        for (limit, period) in windows {
            invocation
                .key(format!("hookgate:rl:{subject}:{}", period.as_secs()))
                .arg(limit.max(&1))
                .arg(period.as_millis() as u64);
        }
        let mut conn = self.conn.clone();
        let answer: Vec<i64> = invocation.invoke_async(&mut conn).await?;
        Ok(status_from(&answer, windows))
    }
}

/// Reads the script's answer: the tightest window's headers.
fn status_from(answer: &[i64], windows: &[(u32, Duration)]) -> RateStatus {
    let allowed = answer.first().copied().unwrap_or(1) == 1;
    let retry_ms = answer.get(1).copied().unwrap_or(0);
    let now = clock::now_secs();
    let mut tightest: Option<RateStatus> = None;
    for (i, (limit, _)) in windows.iter().enumerate() {
        let remaining = answer.get(2 + 2 * i).copied().unwrap_or(0).max(0) as u32;
        let full_in_ms = answer.get(3 + 2 * i).copied().unwrap_or(0).max(0);
        let status = RateStatus {
            limit: *limit,
            remaining: remaining.min(*limit),
            reset: now + (full_in_ms + 999) / 1000,
            retry_after: None,
        };
        if tightest.is_none_or(|t| status.remaining < t.remaining) {
            tightest = Some(status);
        }
    }
    let mut status = tightest.unwrap_or(RateStatus {
        limit: 0,
        remaining: 0,
        reset: now,
        retry_after: None,
    });
    if !allowed {
        status.remaining = 0;
        status.retry_after = Some(((retry_ms + 999) / 1000).max(1) as u64);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tightest_window_is_reported() {
        let windows = [
            (50, Duration::from_secs(60)),
            (1000, Duration::from_secs(3600)),
        ];
        let ok = status_from(&[1, 0, 49, 1200, 30, 5000], &windows);
        assert_eq!((ok.limit, ok.remaining, ok.retry_after), (1000, 30, None));
        let refused = status_from(&[0, 1500, 0, 60000, 900, 5000], &windows);
        assert_eq!((refused.remaining, refused.retry_after), (0, Some(2)));
    }
}
