//! The delivery worker. Every node runs one; each dispatches the subscriptions it holds a lease
//! on (see `store/subscriptions.rs`), so a subscriber's events flow from one place, in order.
//!
//! For each leased subscription a window follows the company's published events from the
//! subscription's cursor: events it does not want are passed over, echoes (caused by the
//! subscription owner's own key) are recorded as skipped, and the rest are sent at once,
//! several at a time, one at a time per record. Nothing is written before a send: the outcome,
//! the attempt and the cursor are recorded afterwards, in batches (`recorder.rs`). A crash
//! loses only what was sent and not yet recorded, and the next holder of the lease sends it
//! again, with the same `X-Webhook-ID` (at least once).
//!
//! A delivery that must be tried again becomes a row of the retry queue, and the record's
//! later events queue behind it until it is done. Rows (retries, test sends, manual retries,
//! `recover`) are claimed with a lease by whichever node finds them due.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde_json::json;
use tokio::sync::{mpsc, watch};

use super::health::{Health, Signal};
use super::log_cache::LogCache;
use super::recorder::{Item, OwnedEvent, RecordClear, Recorder};
use super::sender::{self, Exchange};
use super::{AttemptOutcome, Outbound, catalog, next_delay, wants};
use crate::clock;
use crate::crypto;
use crate::store::{
    DeliveryRow, DeliveryStatus, Dialect, DueDelivery, EventRow, StoreError, SubscriptionRow,
    SubscriptionStatus,
};

/// How often the worker looks for work nobody told it about (other nodes' events, retries
/// coming due).
const TICK: Duration = Duration::from_millis(100);
/// How long a lease on a subscription lasts, and how often it is renewed: a node that died
/// loses its subscriptions to another node after at most `LEASE`.
const LEASE: Duration = Duration::from_secs(10);
const RENEW_EVERY: Duration = Duration::from_secs(3);
/// Events read at once for a window, and the most a window holds unsent.
const READ_BATCH: usize = 512;
const WINDOW_CAPACITY: usize = 2_048;
/// Events published per pass.
const PUBLISH_BATCH: usize = 5_000;
/// Past this many unwritten records, the worker stops sending until the recorder catches up.
const RECORDER_BACKLOG_LIMIT: u64 = 100_000;
/// How often records blocked behind a retry are checked again (their retry may have been made
/// by another node).
const RECHECK_BLOCKED_EVERY: Duration = Duration::from_secs(5);
/// How often an empty retry queue is looked at again.
const IDLE_RETRY_CHECK: Duration = Duration::from_secs(1);
/// How long shutdown waits for sends in flight (those not finished are sent again later).
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// Events read for windows, and whether the read reached the end of what is published.
type LogRead = (Arc<Vec<Arc<EventRow>>>, bool);

/// A send that finished.
struct Done {
    subscription_id: String,
    event: Arc<EventRow>,
    exchange: Exchange,
    /// `None` for a first send from a window; the claimed row for a retry.
    claimed: Option<DeliveryRow>,
    /// The subscription as the send saw it (a retry's subscription may not be leased here).
    subscription: Arc<SubscriptionRow>,
}

/// One leased subscription's view of its company's events.
struct Window {
    sub: Arc<SubscriptionRow>,
    health: Health,
    /// Events up to here were read from the log.
    read_upto: i64,
    /// Read, wanted, not yet sent, in order.
    queue: VecDeque<Arc<EventRow>>,
    /// The last read came back short: nothing more was published then. A window that is not
    /// caught up reads again as soon as it has room; one that is waits for news (a wake-up
    /// or the tick).
    caught_up: bool,
    /// Positions sent and not yet finished.
    outstanding: BTreeSet<i64>,
    /// The cursor last handed to the recorder.
    recorded_cursor: i64,
    /// Records with a send in flight.
    busy: HashSet<String>,
    /// Records with unfinished retry rows: their events queue behind them. The value is the
    /// recorder ticket of the newest row added for the record.
    blocked: HashMap<String, u64>,
    limiter: Option<(f64, DefaultDirectRateLimiter)>,
    concurrency: Concurrency,
}

/// Sends a subscription may have in flight before its receiver has shown what it can take.
const STARTING_CONCURRENCY: usize = 64;

/// How many sends one subscription may have in flight. It opens up while the receiver answers
/// (one more per success, so it doubles every round trip, up to `per_subscription_concurrency`)
/// and halves on an answer that says the receiver is struggling (5xx, 429, a timeout, a refused
/// connection): a fast receiver gets the parallelism it can take, a struggling one is not piled
/// on.
#[derive(Debug)]
struct Concurrency {
    limit: usize,
    most: usize,
}

impl Concurrency {
    fn new(most: usize) -> Concurrency {
        Concurrency {
            limit: STARTING_CONCURRENCY.min(most),
            most,
        }
    }

    /// Moves the limit after an attempt's answer. A 4xx or 410 refused that delivery, not the
    /// load, and changes nothing.
    fn answered(&mut self, outcome: &AttemptOutcome) {
        match outcome {
            AttemptOutcome::Succeeded => self.succeeded(),
            AttemptOutcome::Temporary { .. } => self.struggled(),
            AttemptOutcome::Permanent { .. } | AttemptOutcome::Gone => {}
        }
    }

    fn succeeded(&mut self) {
        self.limit = (self.limit + 1).min(self.most);
    }

    fn struggled(&mut self) {
        self.limit = (self.limit / 2).max(1);
    }
}

impl Window {
    fn new(sub: SubscriptionRow, blocked: Vec<String>, most_in_flight: usize) -> Window {
        let mut window = Window {
            health: health_of(&sub),
            read_upto: sub.cursor_position,
            recorded_cursor: sub.cursor_position,
            queue: VecDeque::new(),
            caught_up: false,
            outstanding: BTreeSet::new(),
            busy: HashSet::new(),
            blocked: blocked.into_iter().map(|r| (r, 0)).collect(),
            limiter: None,
            concurrency: Concurrency::new(most_in_flight),
            sub: Arc::new(sub),
        };
        window.set_limiter();
        window
    }

    fn set_limiter(&mut self) {
        let rate = self.sub.rate_limit.filter(|r| *r > 0.0);
        match (rate, &self.limiter) {
            (Some(r), Some((current, _))) if *current == r => {}
            (Some(r), _) => self.limiter = Some((r, limiter(r))),
            (None, _) => self.limiter = None,
        }
    }

    /// Whether it should read from the log without being told of new events.
    fn wants_more(&self) -> bool {
        !self.caught_up && self.queue.len() < WINDOW_CAPACITY - READ_BATCH
    }

    /// Every event up to the returned position is handled.
    fn cursor(&self) -> i64 {
        let first_unhandled = [
            self.outstanding.first().copied(),
            self.queue.front().map(|e| e.position),
        ]
        .into_iter()
        .flatten()
        .min();
        match first_unhandled {
            Some(position) => position - 1,
            None => self.read_upto,
        }
    }
}

fn health_of(sub: &SubscriptionRow) -> Health {
    Health {
        status: sub.status,
        consecutive_failures: sub.consecutive_failures,
        disabled_reason: sub.disabled_reason.clone(),
    }
}

fn limiter(per_second: f64) -> DefaultDirectRateLimiter {
    // Clamped again here: subscriptions are checked on save, but a panic here would stop
    // the worker.
    let range = super::subscriptions::RATE_LIMIT_RANGE;
    let per_second = per_second.clamp(*range.start(), *range.end());
    let period = Duration::from_secs_f64(1.0 / per_second);
    let burst = NonZeroU32::new(per_second.ceil().max(1.0) as u32).expect("at least 1");
    RateLimiter::direct(
        Quota::with_period(period)
            .expect("positive period")
            .allow_burst(burst),
    )
}

struct Worker {
    out: Arc<Outbound>,
    recorder: Recorder,
    done: mpsc::UnboundedSender<Done>,
    windows: HashMap<String, Window>,
    /// Events read for windows, for the other windows of their company.
    log_cache: LogCache,
    /// Subscriptions this worker disabled, with the recorder ticket of that change: until it is
    /// written the store still calls them enabled, and a lease renewal must not give them a
    /// window again (it would resend from their stored cursor).
    disabled_here: HashMap<String, u64>,
    /// Sends in flight, overall and per subscription (retries of unleased ones included).
    in_flight: usize,
    in_flight_by_sub: HashMap<String, usize>,
    next_renewal: Instant,
    next_blocked_check: Instant,
    /// When the retry queue next has something due (unix ms); 0: look now.
    next_retry_due: i64,
    /// `outbound.max_deliveries_per_second`, when set.
    cap: Option<DefaultDirectRateLimiter>,
}

/// Runs until `shutdown` turns true.
pub(crate) async fn run(out: Arc<Outbound>, mut shutdown: watch::Receiver<bool>) {
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let (clear_tx, mut clear_rx) = mpsc::unbounded_channel();
    let recorder = Recorder::spawn(out.clone(), clear_tx);
    let mut worker = Worker {
        out: out.clone(),
        recorder,
        done: done_tx,
        windows: HashMap::new(),
        log_cache: LogCache::default(),
        disabled_here: HashMap::new(),
        in_flight: 0,
        in_flight_by_sub: HashMap::new(),
        next_renewal: Instant::now(),
        next_blocked_check: Instant::now() + RECHECK_BLOCKED_EVERY,
        next_retry_due: 0,
        cap: NonZeroU32::new(out.config.max_deliveries_per_second)
            .map(|per_second| RateLimiter::direct(Quota::per_second(per_second))),
    };
    if out.store.dialect() == Dialect::Sqlite {
        // One process owns a SQLite file: leases of an earlier run of it are void.
        if let Err(e) = out.store.write(|tx| tx.release_all_leases()).await {
            tracing::warn!(error = %e, "releasing earlier leases failed");
        }
    }
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let (mut woken, mut ticked) = (false, false);
        tokio::select! {
            _ = shutdown.changed() => {}
            Some(done) = done_rx.recv() => {
                worker.finished(done);
                while let Ok(done) = done_rx.try_recv() {
                    worker.finished(done);
                }
            }
            Some(clear) = clear_rx.recv() => worker.cleared(clear),
            () = out.wake.notified() => woken = true,
            _ = ticker.tick() => ticked = true,
        }
        if *shutdown.borrow() {
            break;
        }
        if let Err(e) = worker.step(woken, ticked).await {
            tracing::warn!(error = %e, "delivery worker step failed");
            tokio::time::sleep(TICK).await;
        }
    }
    worker.stop(&mut done_rx).await;
}

impl Worker {
    /// `woken`: told of news (new events, queued deliveries, changed subscriptions); `ticked`:
    /// the tick, which finds what nobody told this node of. A step after a finished send only
    /// dispatches, and reads only for windows that are behind.
    async fn step(&mut self, woken: bool, ticked: bool) -> Result<(), StoreError> {
        let changed = self
            .out
            .subscriptions_changed
            .swap(false, std::sync::atomic::Ordering::SeqCst);
        if changed || Instant::now() >= self.next_renewal {
            self.renew_leases().await?;
        }
        if Instant::now() >= self.next_blocked_check {
            self.recheck_blocked();
        }
        let news = woken || ticked;
        if news || self.windows.values().any(Window::wants_more) {
            // A full read means more is waiting: go on at once, a bounded number of times.
            for _ in 0..8 {
                if news {
                    self.publish().await?;
                }
                let more = self.fill_windows().await?;
                self.dispatch();
                if !more {
                    break;
                }
            }
        } else {
            self.dispatch();
        }
        if woken || self.out.retry_clock.now_ms() >= self.next_retry_due {
            self.claim_retries().await?;
        }
        Ok(())
    }

    /// Takes or renews leases and brings the windows in line with what is leased: new
    /// subscriptions get a window, changed ones their new settings, lost or disabled ones
    /// lose theirs.
    async fn renew_leases(&mut self) -> Result<(), StoreError> {
        self.next_renewal = Instant::now() + RENEW_EVERY;
        // An idle gateway with nothing to dispatch makes no writes: a read says so first.
        if self.windows.is_empty()
            && !self
                .out
                .store
                .read(|r| r.any_enabled_subscription())
                .await?
        {
            return Ok(());
        }
        let node = self.out.node_id.clone();
        let known: HashSet<String> = self.windows.keys().cloned().collect();
        let (leased, blocked) = self
            .out
            .store
            .write(move |tx| {
                let now = clock::now_ms();
                let leased = tx.lease_subscriptions(&node, now, now + LEASE.as_millis() as i64)?;
                let mut blocked = HashMap::new();
                for sub in leased.iter().filter(|s| !known.contains(&s.id)) {
                    blocked.insert(sub.id.clone(), tx.records_with_unfinished(&sub.id)?);
                }
                Ok((leased, blocked))
            })
            .await?;
        let mut blocked = blocked;
        let mut keep = HashSet::new();
        let recorder = &self.recorder;
        self.disabled_here
            .retain(|_, ticket| !recorder.is_written(*ticket));
        for sub in leased {
            if self.disabled_here.contains_key(&sub.id) {
                continue;
            }
            keep.insert(sub.id.clone());
            match self.windows.get_mut(&sub.id) {
                // Unless its cursor was moved elsewhere (re-enabled: it skips what it missed).
                Some(window) if sub.cursor_position <= window.recorded_cursor => {
                    // New settings; the health this worker tracks is newer than the stored
                    // one (the recorder may not have written its last change yet).
                    window.sub = Arc::new(sub);
                    window.set_limiter();
                }
                _ => {
                    let records = blocked.remove(&sub.id).unwrap_or_default();
                    let most = self.out.config.per_subscription_concurrency;
                    self.windows
                        .insert(sub.id.clone(), Window::new(sub, records, most));
                }
            }
        }
        self.windows.retain(|id, _| keep.contains(id));
        Ok(())
    }

    /// Asks the recorder whether records blocked behind retries are clear again.
    fn recheck_blocked(&mut self) {
        self.next_blocked_check = Instant::now() + RECHECK_BLOCKED_EVERY;
        for (id, window) in &self.windows {
            for record in window.blocked.keys() {
                self.recorder.submit(Item::CheckRecord {
                    subscription_id: id.clone(),
                    record_id: record.clone(),
                });
            }
        }
    }

    fn cleared(&mut self, clear: RecordClear) {
        if let Some(window) = self.windows.get_mut(&clear.subscription_id)
            && window
                .blocked
                .get(&clear.record_id)
                .is_some_and(|newest_row| *newest_row <= clear.ticket)
        {
            window.blocked.remove(&clear.record_id);
        }
    }

    /// Gives committed events their published positions (a read first, so that an idle
    /// worker makes no writes).
    async fn publish(&self) -> Result<(), StoreError> {
        if self.out.store.publishes_events_as_written()
            || !self.out.store.read(|r| r.has_unpublished_events()).await?
        {
            return Ok(());
        }
        loop {
            let published = self
                .out
                .store
                .write(|tx| tx.publish_events(PUBLISH_BATCH))
                .await?;
            if published < PUBLISH_BATCH {
                return Ok(());
            }
        }
    }

    /// Reads new events into windows that have room; windows of one company at the same
    /// place share one read, and those behind take what the log cache holds. Returns whether
    /// there may be more to read now.
    async fn fill_windows(&mut self) -> Result<bool, StoreError> {
        let mut more = false;
        let mut reads: HashMap<(String, i64), LogRead> = HashMap::new();
        // Companies with more than one window: only their reads are worth keeping.
        let mut seen = HashSet::new();
        let shared: HashSet<String> = self
            .windows
            .values()
            .map(|w| &w.sub.company_id)
            .filter(|company| !seen.insert(*company))
            .cloned()
            .collect();
        let ids: Vec<String> = self.windows.keys().cloned().collect();
        for id in ids {
            let window = self.windows.get_mut(&id).expect("listed above");
            if window.queue.len() >= WINDOW_CAPACITY - READ_BATCH {
                // Full: what was published meanwhile is read once it has room.
                window.caught_up = false;
                continue;
            }
            let key = (window.sub.company_id.clone(), window.read_upto);
            let (events, at_end) = match reads.get(&key) {
                Some(read) => read.clone(),
                None => {
                    let keep = shared.contains(&key.0);
                    let read = self.read_log(&key.0, key.1, keep).await?;
                    more |= !read.1;
                    reads.insert(key, read.clone());
                    read
                }
            };
            self.take_events(&id, &events, at_end);
        }
        Ok(more)
    }

    /// The company's events after `position`: from the log cache as far as it holds them (the
    /// log may hold more: not at the end), else from the log, kept in the cache if `keep`.
    async fn read_log(
        &mut self,
        company: &str,
        position: i64,
        keep: bool,
    ) -> Result<LogRead, StoreError> {
        if let Some(events) = self.log_cache.get(company, position, READ_BATCH) {
            return Ok((Arc::new(events), false));
        }
        let owned = company.to_string();
        let events: Vec<Arc<EventRow>> = self
            .out
            .store
            .read(move |r| r.events_after(&owned, position, READ_BATCH))
            .await?
            .into_iter()
            .map(Arc::new)
            .collect();
        if keep {
            self.log_cache.put(company, position, &events);
        }
        let at_end = events.len() < READ_BATCH;
        Ok((Arc::new(events), at_end))
    }

    /// Queues the events of a read that `id` wants; echoes are recorded as skipped.
    /// `at_end`: the read reached the end of what is published.
    fn take_events(&mut self, id: &str, events: &[Arc<EventRow>], at_end: bool) {
        let Some(window) = self.windows.get_mut(id) else {
            return;
        };
        window.caught_up = at_end;
        let mut echoes = 0;
        for event in events {
            window.read_upto = event.position;
            if catalog::is_internal(&event.event_type) || !wants(&window.sub, event) {
                continue;
            }
            if event.origin_key_id.as_deref() == Some(window.sub.owner_key_id.as_str()) {
                echoes += 1;
                let delivery = new_row(&window.sub, event, DeliveryStatus::SkippedEcho);
                self.recorder.submit(Item::NewDelivery {
                    delivery,
                    company_id: window.sub.company_id.clone(),
                    attempt: None,
                });
                continue;
            }
            window.queue.push_back(event.clone());
        }
        self.out.metrics.echoes_skipped(echoes);
        self.advance_cursor(id);
    }

    /// Sends what may be sent now: within the overall and per-subscription limits and the
    /// subscription's rate limit, never two events of one record at once, and events of a
    /// record blocked behind a retry queued behind it.
    fn dispatch(&mut self) {
        if self.recorder.backlog() > RECORDER_BACKLOG_LIMIT {
            return;
        }
        let ids: Vec<String> = self.windows.keys().cloned().collect();
        for id in ids {
            self.dispatch_window(&id);
        }
    }

    fn dispatch_window(&mut self, id: &str) {
        let config = &self.out.config;
        let Some(window) = self.windows.get_mut(id) else {
            return;
        };
        // Worked out at the first send: most passes over a window send nothing.
        let mut depth = None;
        // Taken from the queue, not yet sent: up to `depth` go out together.
        let mut pipelined: Vec<Arc<EventRow>> = Vec::new();
        let mut index = 0;
        while index < window.queue.len() {
            if self.in_flight >= config.delivery_concurrency {
                break;
            }
            let record = window.queue[index].record_id.clone();
            if window.busy.contains(&record) {
                index += 1;
                continue;
            }
            if window.blocked.contains_key(&record) {
                // Behind an unfinished retry of the same record: a row of the retry queue.
                let event = window.queue.remove(index).expect("in range");
                let delivery = new_row(&window.sub, &event, DeliveryStatus::Pending);
                let ticket = self.recorder.submit(Item::NewDelivery {
                    delivery,
                    company_id: window.sub.company_id.clone(),
                    attempt: None,
                });
                window.blocked.insert(record, ticket);
                continue;
            }
            let in_flight = self.in_flight_by_sub.entry(id.to_string()).or_default();
            if *in_flight >= window.concurrency.limit {
                break;
            }
            if let Some((_, limiter)) = &window.limiter
                && limiter.check().is_err()
            {
                break; // throttled, not failed: it stays queued
            }
            if let Some(cap) = &self.cap
                && cap.check().is_err()
            {
                break; // over the overall cap: it stays queued
            }
            let event = window.queue.remove(index).expect("in range");
            window.outstanding.insert(event.position);
            window.busy.insert(record);
            *in_flight += 1;
            self.in_flight += 1;
            let depth =
                *depth.get_or_insert_with(|| sender::pipeline_depth(&self.out, &window.sub));
            pipelined.push(event);
            if pipelined.len() == depth {
                let events = std::mem::take(&mut pipelined);
                spawn_first_sends(&self.out, &self.done, &window.sub, events);
            }
        }
        if !pipelined.is_empty() {
            spawn_first_sends(&self.out, &self.done, &window.sub, pipelined);
        }
        self.advance_cursor(id);
    }

    /// Hands the window's cursor to the recorder when it moved.
    fn advance_cursor(&mut self, id: &str) {
        let Some(window) = self.windows.get_mut(id) else {
            return;
        };
        let cursor = window.cursor();
        if cursor > window.recorded_cursor {
            window.recorded_cursor = cursor;
            self.recorder.submit(Item::Cursor {
                subscription_id: id.to_string(),
                position: cursor,
            });
        }
    }

    /// Claims due rows of the retry queue and sends them.
    async fn claim_retries(&mut self) -> Result<(), StoreError> {
        let now = self.out.retry_clock.now_ms();
        let next_due = self.out.store.read(|r| r.next_delivery_due()).await?;
        match next_due {
            Some(due) if due <= now => {}
            Some(due) => {
                self.next_retry_due = due;
                return Ok(());
            }
            None => {
                // Rows can appear on other nodes too: look again in a while (a read only).
                self.next_retry_due = now + IDLE_RETRY_CHECK.as_millis() as i64;
                return Ok(());
            }
        }
        let free = self
            .out
            .config
            .delivery_concurrency
            .saturating_sub(self.in_flight);
        if free == 0 {
            self.next_retry_due = 0;
            return Ok(());
        }
        let lease = (self.out.config.delivery_timeout_secs as i64 + 5) * 1000;
        let claimed = self
            .out
            .store
            .write(move |tx| tx.claim_due(now, clock::now_ms(), lease, free))
            .await?;
        // Whatever is left is due at once.
        self.next_retry_due = if claimed.len() == free {
            0
        } else {
            now + TICK.as_millis() as i64
        };
        for due in claimed {
            self.send_claimed(due);
        }
        Ok(())
    }

    fn send_claimed(&mut self, due: DueDelivery) {
        let DueDelivery {
            delivery,
            subscription,
            event,
        } = due;
        let sub_id = subscription.id.clone();
        let in_flight = self.in_flight_by_sub.entry(sub_id.clone()).or_default();
        let window = self.windows.get(&sub_id);
        let limit = window.map_or(self.out.config.per_subscription_concurrency, |w| {
            w.concurrency.limit
        });
        // In that order: a rate check takes its token, which is wasted if the send waits.
        let held_back = *in_flight >= limit
            || window.is_some_and(|w| {
                w.limiter
                    .as_ref()
                    .is_some_and(|(_, limiter)| limiter.check().is_err())
            })
            || self.cap.as_ref().is_some_and(|cap| cap.check().is_err());
        if held_back {
            self.recorder.submit(Item::Released {
                delivery_id: delivery.id,
                at: self.out.retry_clock.now_ms() + 1_000,
            });
            return;
        }
        *in_flight += 1;
        self.in_flight += 1;
        spawn_send(
            self.out.clone(),
            self.done.clone(),
            Arc::new(subscription),
            Arc::new(event),
            Some(delivery),
        );
    }

    /// Records a finished send and frees its slot.
    fn finished(&mut self, done: Done) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if let Some(n) = self.in_flight_by_sub.get_mut(&done.subscription_id) {
            *n = n.saturating_sub(1);
        }
        let Done {
            subscription_id,
            event,
            exchange,
            claimed,
            subscription,
        } = done;
        let now = self.out.retry_clock.now_ms();
        let schedule = &self.out.config.retry_schedule;
        let attempts_before = claimed.as_ref().map_or(0, |d| d.attempts);
        let (next, signal) = match &exchange.outcome {
            AttemptOutcome::Succeeded => (None, Signal::Succeeded),
            AttemptOutcome::Temporary {
                reason,
                retry_after,
            } => (
                next_delay(schedule, attempts_before + 1, *retry_after)
                    .map(|d| now + d.as_millis() as i64),
                Signal::Failed {
                    reason: reason.clone(),
                },
            ),
            AttemptOutcome::Permanent { reason } => (
                None,
                Signal::Failed {
                    reason: reason.clone(),
                },
            ),
            AttemptOutcome::Gone => (None, Signal::Gone),
        };
        if let Some(window) = self.windows.get_mut(&subscription_id) {
            window.concurrency.answered(&exchange.outcome);
        }
        let status = match (&exchange.outcome, next) {
            (AttemptOutcome::Succeeded, _) => DeliveryStatus::Succeeded,
            (_, Some(_)) => DeliveryStatus::Pending,
            _ => DeliveryStatus::Failed,
        };
        let mut delivery = claimed
            .clone()
            .unwrap_or_else(|| new_row(&subscription, &event, status));
        delivery.status = status;
        delivery.attempts = attempts_before + 1;
        delivery.next_attempt_at = next;
        delivery.last_status_code = exchange.record.status_code;
        delivery.last_error = exchange.record.error.clone();
        delivery.last_response_ms = Some(exchange.record.duration_ms);
        delivery.updated_at = now;
        let outcome = match status {
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Pending => "retrying",
            _ => "failed",
        };
        self.out
            .metrics
            .delivery(outcome, (exchange.record.duration_ms.max(0) as u64) * 1000);
        if crate::logs::DELIVERIES.admit() {
            tracing::info!(
                delivery = %delivery.id,
                subscription = %subscription.id,
                event_type = %event.event_type,
                attempt = attempts_before + 1,
                outcome,
                status = exchange.record.status_code.map(i64::from).unwrap_or(-1),
                response_ms = exchange.record.duration_ms,
                error = exchange.record.error.as_deref().unwrap_or("-"),
                "delivery attempt"
            );
        }
        if status == DeliveryStatus::Failed {
            self.tell_company(exhausted_event(&subscription, &delivery));
        }
        let mut attempt = exchange.record;
        attempt.delivery_id = delivery.id.clone();
        attempt.attempt = attempts_before;
        let record_id = event.record_id.clone();
        match claimed {
            None => {
                let ticket = self.recorder.submit(Item::NewDelivery {
                    delivery,
                    company_id: subscription.company_id.clone(),
                    attempt: Some(attempt),
                });
                if let Some(window) = self.windows.get_mut(&subscription_id) {
                    window.outstanding.remove(&event.position);
                    window.busy.remove(&record_id);
                    if status == DeliveryStatus::Pending {
                        window.blocked.insert(record_id, ticket);
                    }
                }
                if let Some(at) = next {
                    self.next_retry_due = self.next_retry_due.min(at);
                }
                self.advance_cursor(&subscription_id);
            }
            Some(_) => {
                let finished = status != DeliveryStatus::Pending;
                self.recorder.submit(Item::Attempted { delivery, attempt });
                if finished {
                    self.recorder.submit(Item::CheckRecord {
                        subscription_id: subscription_id.clone(),
                        record_id,
                    });
                }
                // Its next row may be due at once.
                self.next_retry_due = 0;
            }
        }
        self.apply_signal(&subscription, &signal);
    }

    /// Moves the subscription's health along; stores it only when it changed.
    fn apply_signal(&mut self, subscription: &SubscriptionRow, signal: &Signal) {
        let threshold = self.out.config.disable_after_failures;
        let before = self
            .windows
            .get(&subscription.id)
            .map_or_else(|| health_of(subscription), |w| w.health.clone());
        let after = before.after(signal, threshold);
        if after == before {
            return;
        }
        if after.disables(&before) {
            self.out.metrics.subscription_disabled();
            tracing::warn!(subscription = %subscription.id, name = %subscription.name,
                reason = after.disabled_reason.as_deref().unwrap_or(""), "subscription disabled");
            self.tell_company(disabled_event(subscription, &after));
        }
        let disabled = after.status == SubscriptionStatus::Disabled;
        if disabled {
            // It sends nothing more; enabled again, it starts afresh from the store.
            self.windows.remove(&subscription.id);
        } else if let Some(window) = self.windows.get_mut(&subscription.id) {
            window.health = after.clone();
        }
        let ticket = self.recorder.submit(Item::Health {
            subscription_id: subscription.id.clone(),
            health: after,
        });
        if disabled {
            self.disabled_here.insert(subscription.id.clone(), ticket);
        }
    }

    fn tell_company(&self, event: OwnedEvent) {
        self.recorder.submit(Item::Event(event));
        self.out.wake.notify_one();
    }

    /// Shutdown: lets sends in flight finish for a moment, writes what is recorded, and gives
    /// the leases up so that another node takes over at once.
    async fn stop(mut self, done: &mut mpsc::UnboundedReceiver<Done>) {
        let deadline = tokio::time::Instant::now() + SHUTDOWN_WAIT;
        while self.in_flight > 0 {
            match tokio::time::timeout_at(deadline, done.recv()).await {
                Ok(Some(finished)) => self.finished(finished),
                _ => break,
            }
        }
        self.recorder.flush().await;
        let node = self.out.node_id.clone();
        if let Err(e) = self
            .out
            .store
            .write(move |tx| tx.release_subscriptions(&node))
            .await
        {
            tracing::warn!(error = %e, "releasing subscription leases failed");
        }
    }
}

/// A delivery row for `event` to `sub`, as it stands before any attempt.
fn new_row(sub: &SubscriptionRow, event: &EventRow, status: DeliveryStatus) -> DeliveryRow {
    let now = clock::now_ms();
    DeliveryRow {
        id: crypto::sortable_id("dlv_"),
        subscription_id: sub.id.clone(),
        event_seq: event.seq,
        event_id: event.event_id.clone(),
        event_type: event.event_type.clone(),
        record_id: event.record_id.clone(),
        status,
        attempts: 0,
        next_attempt_at: (status == DeliveryStatus::Pending).then_some(now),
        last_status_code: None,
        last_error: None,
        last_response_ms: None,
        created_at: now,
        updated_at: now,
    }
}

fn spawn_send(
    out: Arc<Outbound>,
    done: mpsc::UnboundedSender<Done>,
    subscription: Arc<SubscriptionRow>,
    event: Arc<EventRow>,
    claimed: Option<DeliveryRow>,
) {
    tokio::spawn(async move {
        let attempt = claimed.as_ref().map_or(0, |d| d.attempts);
        let exchange = sender::deliver(&out, &subscription, &event, attempt).await;
        // Its arrival wakes the worker's loop.
        let _ = done.send(Done {
            subscription_id: subscription.id.clone(),
            event,
            exchange,
            claimed,
            subscription,
        });
    });
}

/// Sends first attempts of events to one subscription: one alone, several pipelined on one
/// connection (their sends finish together).
fn spawn_first_sends(
    out: &Arc<Outbound>,
    done: &mpsc::UnboundedSender<Done>,
    subscription: &Arc<SubscriptionRow>,
    mut events: Vec<Arc<EventRow>>,
) {
    if events.len() == 1 {
        let event = events.pop().expect("one event");
        return spawn_send(out.clone(), done.clone(), subscription.clone(), event, None);
    }
    let (out, done, subscription) = (out.clone(), done.clone(), subscription.clone());
    tokio::spawn(async move {
        let exchanges = sender::deliver_pipelined(&out, &subscription, &events).await;
        for (event, exchange) in events.into_iter().zip(exchanges) {
            let _ = done.send(Done {
                subscription_id: subscription.id.clone(),
                event,
                exchange,
                claimed: None,
                subscription: subscription.clone(),
            });
        }
    });
}

/// `webhook.disabled`: tells the company's other subscribers that one was disabled, and why.
fn disabled_event(sub: &SubscriptionRow, health: &Health) -> OwnedEvent {
    operational_event(
        sub,
        "webhook.disabled",
        &sub.id,
        json!({
            "subscription_id": sub.id,
            "name": sub.name,
            "url": sub.url,
            "reason": health.disabled_reason,
            "consecutive_failures": health.consecutive_failures,
        }),
    )
}

/// `delivery.exhausted`: a delivery was given up (a permanent failure, or every retry failed).
fn exhausted_event(sub: &SubscriptionRow, delivery: &DeliveryRow) -> OwnedEvent {
    operational_event(
        sub,
        "delivery.exhausted",
        &delivery.id,
        json!({
            "delivery_id": delivery.id,
            "subscription_id": sub.id,
            "name": sub.name,
            "event_id": delivery.event_id,
            "event_type": delivery.event_type,
            "record_id": delivery.record_id,
            "attempts": delivery.attempts,
            "last_status_code": delivery.last_status_code,
            "reason": delivery.last_error,
        }),
    )
}

fn operational_event(
    sub: &SubscriptionRow,
    event_type: &'static str,
    record_id: &str,
    data: serde_json::Value,
) -> OwnedEvent {
    let now = clock::now_ms();
    let event_id = crypto::sortable_id("evt_");
    OwnedEvent {
        payload: json!({
            "event_id": event_id,
            "event_type": event_type,
            "timestamp": clock::rfc3339_from_ms(now),
            "company_id": sub.company_id,
            "data": data,
        }),
        event_id,
        company_id: sub.company_id.clone(),
        about_subscription_id: sub.id.clone(),
        event_type,
        entity: "webhook",
        record_id: record_id.to_string(),
        created_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_opens_up_on_successes_and_halves_when_the_receiver_struggles() {
        let mut c = Concurrency::new(512);
        assert_eq!(c.limit, STARTING_CONCURRENCY);
        for _ in 0..STARTING_CONCURRENCY {
            c.succeeded();
        }
        assert_eq!(
            c.limit,
            2 * STARTING_CONCURRENCY,
            "one more per success: doubled after a round trip"
        );
        for _ in 0..10_000 {
            c.succeeded();
        }
        assert_eq!(c.limit, 512, "never past the configured most");
        c.struggled();
        assert_eq!(c.limit, 256);
        for _ in 0..20 {
            c.struggled();
        }
        assert_eq!(c.limit, 1, "always one send at least");
        assert_eq!(Concurrency::new(4).limit, 4, "a lower most caps the start");
    }
}
