//! Rate limiting (GCRA, via governor): per API key for inbound envelopes and for the REST API,
//! and per client address for failed authentications. Computes the `X-RateLimit-*` values.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::clock;
use crate::config::RateLimitConfig;

type Limiter = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;

/// The values of the `X-RateLimit-*` headers (and `Retry-After` when limited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateStatus {
    pub limit: u32,
    pub remaining: u32,
    /// Unix seconds at which the window is full again.
    pub reset: i64,
    /// Set when the request was refused: seconds until one more is allowed.
    pub retry_after: Option<u64>,
}

impl RateStatus {
    pub fn is_limited(&self) -> bool {
        self.retry_after.is_some()
    }
}

struct Window {
    limit: u32,
    period: Duration,
    limiter: Limiter,
}

impl Window {
    fn new(limit: u32, period: Duration) -> Window {
        let limit = limit.max(1);
        let quota = Quota::with_period(period / limit)
            .expect("period is positive")
            .allow_burst(NonZeroU32::new(limit).expect("limit >= 1"));
        Window {
            limit,
            period,
            limiter: RateLimiter::direct(quota).with_middleware::<StateInformationMiddleware>(),
        }
    }

    /// Seconds until `remaining` is back to `limit`, at one cell per period/limit.
    fn refill_secs(&self, remaining: u32) -> i64 {
        let per_cell = self.period.as_secs_f64() / self.limit as f64;
        ((self.limit - remaining.min(self.limit)) as f64 * per_cell).ceil() as i64
    }
}

/// Several windows that must all allow a request (e.g. 50/minute and 1,000/hour).
pub struct MultiWindow {
    windows: Vec<Window>,
    last: Mutex<Option<RateStatus>>,
}

impl MultiWindow {
    fn new(spec: &[(u32, Duration)]) -> MultiWindow {
        MultiWindow {
            windows: spec.iter().map(|&(l, p)| Window::new(l, p)).collect(),
            last: Mutex::new(None),
        }
    }

    /// Counts one request; the answer reports the window closest to its limit.
    pub fn check(&self) -> RateStatus {
        let now = clock::now_secs();
        let mut tightest: Option<RateStatus> = None;
        for w in &self.windows {
            let status = match w.limiter.check() {
                Ok(snapshot) => {
                    let remaining = snapshot.remaining_burst_capacity();
                    RateStatus {
                        limit: w.limit,
                        remaining,
                        reset: now + w.refill_secs(remaining),
                        retry_after: None,
                    }
                }
                Err(not_until) => {
                    let wait = not_until.wait_time_from(DefaultClock::default().now());
                    RateStatus {
                        limit: w.limit,
                        remaining: 0,
                        reset: now + w.refill_secs(0),
                        retry_after: Some(wait.as_secs_f64().ceil().max(1.0) as u64),
                    }
                }
            };
            tightest = Some(match tightest {
                None => status,
                Some(t) if status.is_limited() && !t.is_limited() => status,
                Some(t)
                    if status.is_limited() == t.is_limited() && status.remaining < t.remaining =>
                {
                    status
                }
                Some(t) => t,
            });
        }
        let status = tightest.expect("at least one window");
        *self.last.lock().expect("rate status lock") = Some(status);
        status
    }

    /// The last reported status without counting a request (for answers that are not counted,
    /// such as a failed signature).
    pub fn peek(&self) -> RateStatus {
        self.last
            .lock()
            .expect("rate status lock")
            .unwrap_or_else(|| {
                let w = &self.windows[0];
                RateStatus {
                    limit: w.limit,
                    remaining: w.limit,
                    reset: clock::now_secs(),
                    retry_after: None,
                }
            })
    }
}

pub struct RateLimits {
    config: RateLimitConfig,
    inbound: RwLock<HashMap<String, Arc<MultiWindow>>>,
    rest: RwLock<HashMap<String, Arc<MultiWindow>>>,
    auth_failures: Mutex<HashMap<IpAddr, (Arc<MultiWindow>, Instant)>>,
}

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

impl RateLimits {
    pub fn new(config: RateLimitConfig) -> RateLimits {
        RateLimits {
            config,
            inbound: RwLock::new(HashMap::new()),
            rest: RwLock::new(HashMap::new()),
            auth_failures: Mutex::new(HashMap::new()),
        }
    }

    /// The inbound limiter of a key, with the key's own overrides.
    pub fn inbound(
        &self,
        key_id: &str,
        per_minute: Option<u32>,
        per_hour: Option<u32>,
    ) -> Arc<MultiWindow> {
        let spec = [
            (per_minute.unwrap_or(self.config.inbound_per_minute), MINUTE),
            (per_hour.unwrap_or(self.config.inbound_per_hour), HOUR),
        ];
        get_or_insert(&self.inbound, key_id, &spec)
    }

    pub fn rest(&self, key_id: &str) -> Arc<MultiWindow> {
        let spec = [
            (self.config.rest_per_minute, MINUTE),
            (self.config.rest_per_hour, HOUR),
            (self.config.rest_per_day, DAY),
        ];
        get_or_insert(&self.rest, key_id, &spec)
    }

    /// The failed-authentication window of this address, without counting anything: the
    /// `X-RateLimit-*` values of answers given before a key is known.
    pub fn auth_status(&self, addr: IpAddr) -> RateStatus {
        let failures = self.auth_failures.lock().expect("auth limiter lock");
        match failures.get(&addr) {
            Some((window, _)) => window.peek(),
            None => RateStatus {
                limit: self.config.auth_failures_per_minute,
                remaining: self.config.auth_failures_per_minute,
                reset: clock::now_secs(),
                retry_after: None,
            },
        }
    }

    /// Whether this address has used up its failed-authentication budget (checked before any
    /// work is spent on its request).
    pub fn auth_blocked(&self, addr: IpAddr) -> Option<RateStatus> {
        let failures = self.auth_failures.lock().expect("auth limiter lock");
        let (window, _) = failures.get(&addr)?;
        let mut status = window.peek();
        let now = clock::now_secs();
        // Exhausted (not only refused): the next failure would be refused anyway, so refuse
        // before spending any work on the request.
        if (status.is_limited() || status.remaining == 0) && status.reset > now {
            status.retry_after = Some(status.retry_after.unwrap_or((status.reset - now) as u64));
            Some(status)
        } else {
            None
        }
    }

    /// Counts one failed authentication from `addr`.
    pub fn auth_failed(&self, addr: IpAddr) -> RateStatus {
        let window = {
            let mut failures = self.auth_failures.lock().expect("auth limiter lock");
            if failures.len() > 100_000 {
                failures.retain(|_, (_, seen)| seen.elapsed() < MINUTE);
            }
            let entry = failures.entry(addr).or_insert_with(|| {
                (
                    Arc::new(MultiWindow::new(&[(
                        self.config.auth_failures_per_minute,
                        MINUTE,
                    )])),
                    Instant::now(),
                )
            });
            entry.1 = Instant::now();
            entry.0.clone()
        };
        window.check()
    }
}

fn get_or_insert(
    map: &RwLock<HashMap<String, Arc<MultiWindow>>>,
    key_id: &str,
    spec: &[(u32, Duration)],
) -> Arc<MultiWindow> {
    if let Some(w) = map.read().expect("limiter map").get(key_id) {
        return w.clone();
    }
    map.write()
        .expect("limiter map")
        .entry(key_id.to_string())
        .or_insert_with(|| Arc::new(MultiWindow::new(spec)))
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_limited_with_retry_after() {
        let w = MultiWindow::new(&[(3, MINUTE), (100, HOUR)]);
        let first = w.check();
        assert_eq!((first.limit, first.remaining), (3, 2));
        w.check();
        let third = w.check();
        assert_eq!(third.remaining, 0);
        assert!(!third.is_limited());
        let fourth = w.check();
        assert!(fourth.is_limited());
        let wait = fourth.retry_after.unwrap();
        assert!((1..=20).contains(&wait), "{wait}");
    }

    #[test]
    fn reports_the_tighter_window() {
        let w = MultiWindow::new(&[(50, MINUTE), (2, HOUR)]);
        let s = w.check();
        assert_eq!((s.limit, s.remaining), (2, 1));
    }
}
