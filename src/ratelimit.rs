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
use crate::shared_limits::SharedLimits;

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
    pub(crate) fn is_limited(&self) -> bool {
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
pub(crate) struct MultiWindow {
    windows: Vec<Window>,
    last: Mutex<Option<RateStatus>>,
}

impl MultiWindow {
    /// The windows as (limit, period), what the shared limiter checks.
    fn spec(&self) -> Vec<(u32, Duration)> {
        self.windows.iter().map(|w| (w.limit, w.period)).collect()
    }

    fn remember(&self, status: RateStatus) {
        *self.last.lock().expect("rate status lock") = Some(status);
    }
}

impl MultiWindow {
    fn new(spec: &[(u32, Duration)]) -> MultiWindow {
        MultiWindow {
            windows: spec.iter().map(|&(l, p)| Window::new(l, p)).collect(),
            last: Mutex::new(None),
        }
    }

    /// Counts one request; the answer reports the window closest to its limit.
    pub(crate) fn check(&self) -> RateStatus {
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
    pub(crate) fn peek(&self) -> RateStatus {
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

pub(crate) struct RateLimits {
    config: RateLimitConfig,
    inbound: RwLock<HashMap<String, Arc<MultiWindow>>>,
    rest: RwLock<HashMap<String, Arc<MultiWindow>>>,
    auth_failures: FailureLimiter,
    /// Limits kept in Redis for every node (`redis_url`), connected on first use.
    shared: Option<SharedSlot>,
}

/// The shared limiter, connected once and then reused.
struct SharedSlot {
    url: String,
    limits: tokio::sync::OnceCell<SharedLimits>,
    /// Unix seconds of the last warning about Redis (one a minute at most).
    warned_at: std::sync::atomic::AtomicI64,
}

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

impl RateLimits {
    /// Per-node limits; with a `redis_url`, every node shares the keys' inbound and REST
    /// limits through Redis (failed authentications stay per node: they are per address).
    pub(crate) fn new(config: RateLimitConfig, redis_url: &str) -> RateLimits {
        RateLimits {
            shared: (!redis_url.trim().is_empty()).then(|| SharedSlot {
                url: redis_url.trim().to_string(),
                limits: tokio::sync::OnceCell::new(),
                warned_at: std::sync::atomic::AtomicI64::new(0),
            }),
            auth_failures: FailureLimiter::new(
                config.auth_failures_per_minute,
                MINUTE,
                config.auth_failure_max_addresses,
            ),
            config,
            inbound: RwLock::new(HashMap::new()),
            rest: RwLock::new(HashMap::new()),
        }
    }

    /// The inbound limiter of a key, with the key's own overrides.
    pub(crate) fn inbound(
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

    pub(crate) fn rest(&self, key_id: &str) -> Arc<MultiWindow> {
        let spec = [
            (self.config.rest_per_minute, MINUTE),
            (self.config.rest_per_hour, HOUR),
            (self.config.rest_per_day, DAY),
        ];
        get_or_insert(&self.rest, key_id, &spec)
    }

    /// Counts one inbound envelope of the key against its limits (shared by every node when
    /// Redis is configured).
    pub(crate) async fn check_inbound(
        &self,
        key_id: &str,
        per_minute: Option<u32>,
        per_hour: Option<u32>,
    ) -> RateStatus {
        let local = self.inbound(key_id, per_minute, per_hour);
        self.check(&format!("in:{key_id}"), &local).await
    }

    /// Counts one REST call of the key.
    pub(crate) async fn check_rest(&self, key_id: &str) -> RateStatus {
        let local = self.rest(key_id);
        self.check(&format!("rest:{key_id}"), &local).await
    }

    async fn check(&self, subject: &str, local: &MultiWindow) -> RateStatus {
        let Some(slot) = &self.shared else {
            return local.check();
        };
        match slot.get().await {
            Ok(shared) => match shared.check(subject, &local.spec()).await {
                Ok(status) => {
                    local.remember(status);
                    return status;
                }
                Err(e) => slot.warn(&e),
            },
            Err(e) => slot.warn(&e),
        }
        // Redis is away: this node's own count keeps every node limited, if more loosely.
        local.check()
    }

    /// Connects to the shared limiter now (at start), so that a wrong `redis_url` is found at
    /// once rather than at the first request.
    pub(crate) async fn connect_shared(&self) -> Result<(), redis::RedisError> {
        match &self.shared {
            Some(slot) => slot.get().await.map(|_| ()),
            None => Ok(()),
        }
    }

    /// The failed-authentication window of this address, without counting anything: the
    /// `X-RateLimit-*` values of answers given before a key is known.
    pub(crate) fn auth_status(&self, addr: IpAddr) -> RateStatus {
        self.auth_failures.peek(addr)
    }

    /// Whether this address has used up its failed-authentication budget (checked before any
    /// work is spent on its request).
    pub(crate) fn auth_blocked(&self, addr: IpAddr) -> Option<RateStatus> {
        let status = self.auth_failures.peek(addr);
        // Exhausted (not only refused): the next failure would be refused anyway, so refuse
        // before spending any work on the request.
        status.is_limited().then_some(status)
    }

    /// Counts one failed authentication from `addr`.
    pub(crate) fn auth_failed(&self, addr: IpAddr) -> RateStatus {
        self.auth_failures.check(addr)
    }

    /// Forgets addresses whose failed-authentication window is full again; run periodically
    /// so that memory follows the addresses failing now, not every address ever seen.
    pub(crate) fn forget_recovered(&self) -> usize {
        self.auth_failures.forget_recovered()
    }
}

/// The failed-authentication limiter: GCRA per client address (as governor computes it for
/// the windows above), in a map split into shards so that a request costs one hash and one
/// short lock, whatever the number of addresses. An address is forgotten once its window is
/// full again (by [`FailureLimiter::forget_recovered`], run periodically), and at most
/// `max_addresses` are tracked at once: past that, new addresses go untracked until older ones
/// are forgotten (authentication itself stays cheap either way).
///
/// Not governor's keyed limiter: the checks made before authentication need an address's
/// state without counting a request, which it cannot give.
struct FailureLimiter {
    limit: u32,
    /// Nanoseconds per request at the sustained rate.
    interval: u64,
    epoch: Instant,
    /// Per address: the theoretical arrival time of its next request, in nanoseconds since
    /// `epoch`; the window is full again once that is in the past.
    shards: Vec<Mutex<HashMap<IpAddr, u64>>>,
    hasher: std::collections::hash_map::RandomState,
    max_per_shard: usize,
}

const SHARDS: usize = 64;

impl FailureLimiter {
    fn new(limit: u32, period: Duration, max_addresses: usize) -> FailureLimiter {
        let limit = limit.max(1);
        FailureLimiter {
            limit,
            interval: (period.as_nanos() / u128::from(limit)).max(1) as u64,
            epoch: Instant::now(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: Default::default(),
            max_per_shard: max_addresses.div_ceil(SHARDS).max(1),
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn shard(&self, key: &IpAddr) -> std::sync::MutexGuard<'_, HashMap<IpAddr, u64>> {
        use std::hash::BuildHasher;
        let index = self.hasher.hash_one(key) as usize % SHARDS;
        self.shards[index].lock().expect("auth limiter shard")
    }

    /// The status of an address at `now` given its stored arrival time, with `retry_after`
    /// set when the window is used up (the next failure would be refused).
    fn status(&self, tat: u64, now: u64) -> RateStatus {
        let tolerance = self.interval * u64::from(self.limit);
        let used_ns = tat.saturating_sub(now);
        let remaining = (tolerance.saturating_sub(used_ns) / self.interval) as u32;
        let secs = |ns: u64| ns.div_ceil(1_000_000_000);
        RateStatus {
            limit: self.limit,
            remaining,
            reset: clock::now_secs() + secs(used_ns) as i64,
            // The next request fits once one interval of the used tolerance has passed.
            retry_after: (remaining == 0)
                .then(|| secs(used_ns.saturating_sub(tolerance - self.interval)).max(1)),
        }
    }

    fn peek(&self, addr: IpAddr) -> RateStatus {
        let key = client_key(addr);
        let now = self.now();
        let tat = self.shard(&key).get(&key).copied().unwrap_or(now);
        self.status(tat, now)
    }

    fn check(&self, addr: IpAddr) -> RateStatus {
        let key = client_key(addr);
        let now = self.now();
        let tolerance = self.interval * u64::from(self.limit);
        let mut shard = self.shard(&key);
        let tat = shard.get(&key).copied().unwrap_or(now).max(now);
        let next = tat + self.interval;
        if next - now > tolerance {
            return self.status(tat, now);
        }
        // Full: a new address goes untracked until the periodic sweep makes room (sweeping
        // here would cost a shard's worth of work per request under attack).
        if shard.contains_key(&key) || shard.len() < self.max_per_shard {
            shard.insert(key, next);
        }
        // Counted, not refused: even the one that used the window up.
        RateStatus {
            retry_after: None,
            ..self.status(next, now)
        }
    }

    fn forget_recovered(&self) -> usize {
        let now = self.now();
        let mut forgotten = 0;
        for shard in &self.shards {
            let mut shard = shard.lock().expect("auth limiter shard");
            let before = shard.len();
            shard.retain(|_, tat| *tat > now);
            forgotten += before - shard.len();
            if shard.capacity() > 4 * shard.len().max(64) {
                shard.shrink_to_fit();
            }
        }
        forgotten
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().expect("auth limiter shard").len())
            .sum()
    }
}

/// The unit a client address is limited by: an IPv4 address, or an IPv6 /64 (one host
/// usually holds a whole /64, so counting single IPv6 addresses would let it rotate freely).
fn client_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

impl SharedSlot {
    async fn get(&self) -> Result<&SharedLimits, redis::RedisError> {
        self.limits
            .get_or_try_init(|| SharedLimits::connect(&self.url))
            .await
    }

    fn warn(&self, error: &redis::RedisError) {
        use std::sync::atomic::Ordering::Relaxed;
        let now = clock::now_secs();
        if now - self.warned_at.swap(now, Relaxed) >= 60 {
            tracing::warn!(error = %error, "shared rate limits unavailable; limiting per node");
        }
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
    fn failures_per_address_burst_then_block_with_retry_after() {
        let limiter = FailureLimiter::new(3, MINUTE, 1000);
        let addr: IpAddr = "203.0.113.7".parse().unwrap();
        assert_eq!(limiter.peek(addr).remaining, 3);
        let counted: Vec<(u32, bool)> = (0..3)
            .map(|_| limiter.check(addr))
            .map(|s| (s.remaining, s.is_limited()))
            .collect();
        assert_eq!(counted, [(2, false), (1, false), (0, false)]);
        let blocked = limiter.peek(addr);
        assert!(blocked.is_limited());
        assert!((1..=20).contains(&blocked.retry_after.unwrap()));
        assert!(limiter.check(addr).is_limited());
        // Another address is not affected; an IPv6 /64 counts as one client.
        assert_eq!(limiter.peek("203.0.113.8".parse().unwrap()).remaining, 3);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        limiter.check(a);
        assert_eq!(limiter.peek(b).remaining, 2);
        let mapped: IpAddr = "::ffff:203.0.113.7".parse().unwrap();
        assert!(limiter.peek(mapped).is_limited());
    }

    #[test]
    fn failure_limiter_memory_is_bounded_and_recovered_addresses_are_forgotten() {
        let limiter = FailureLimiter::new(300, MINUTE, 1000);
        for i in 0..20_000u32 {
            limiter.check(IpAddr::V4(i.into()));
        }
        assert!(limiter.len() <= 1000 + SHARDS, "{}", limiter.len());
        // One failure at 300/minute is forgotten 200 ms later.
        std::thread::sleep(Duration::from_millis(250));
        assert!(limiter.forget_recovered() > 0);
        assert_eq!(limiter.len(), 0);
    }

    #[test]
    fn reports_the_tighter_window() {
        let w = MultiWindow::new(&[(50, MINUTE), (2, HOUR)]);
        let s = w.check();
        assert_eq!((s.limit, s.remaining), (2, 1));
    }
}
