//! The closed-loop load: every connection sends its next request as soon as the last one was
//! answered, for a warm-up and then a measured window. Latency is measured per exchange, from
//! just before the request is written to the moment its full response has been read.

use std::time::{Duration, Instant};

use crate::client::{Conn, REQUEST_TIMEOUT};
use crate::workloads::{Target, Workload};

/// Produces the raw bytes of the next request on one connection.
pub trait Requests: Send {
    /// The next request, or None when this generator has sent all it had (seeding).
    fn next(&mut self) -> Option<&[u8]>;

    /// The kind of the request last returned by `next`, an index into [`Workload::kinds`].
    fn kind(&self) -> usize {
        0
    }
}

/// When a phase sends and what it keeps.
#[derive(Clone, Copy)]
pub struct Window {
    /// Sent but not measured (warms the API-key cache and the database's page cache).
    pub warmup: Duration,
    pub measure: Duration,
    /// Keep every sample's time too (see [`PhaseResult::timeline`]).
    pub timeline: bool,
}

impl Window {
    pub fn new(warmup: Duration, measure: Duration) -> Window {
        Window {
            warmup,
            measure,
            timeline: false,
        }
    }
}

/// What one phase measured.
#[derive(Default)]
pub struct PhaseResult {
    pub label: String,
    /// Responses completed within the measured window, whatever their status.
    pub responses: u64,
    /// Latencies of the 200 responses in the window, in microseconds, sorted.
    pub latencies_us: Vec<u32>,
    /// The same, per request kind (see [`Workload::kinds`]; empty for one-kind workloads).
    pub kind_latencies_us: Vec<Vec<u32>>,
    /// With [`Window::timeline`]: every 200 of the window as (milliseconds after the window
    /// began, latency in µs), unsorted.
    pub timeline: Vec<(u32, u32)>,
    /// 200 responses over the whole phase: warm-up, window and the exchanges that finished
    /// after it (each one a change applied, for the outbound phases).
    pub all_ok: u64,
    /// Non-200 responses and failed exchanges (I/O errors, timeouts) over the whole phase,
    /// warm-up included: a set-up or generator bug shows even when it only bites early.
    pub errors: u64,
    /// Statuses other than 200 seen, with counts.
    pub bad_statuses: Vec<(u16, u64)>,
    pub first_error: Option<String>,
    /// Group-commit writer activity during the phase (warm-up included).
    pub batches: u64,
    pub jobs: u64,
    /// The measured window's length (for the rate).
    pub window: Duration,
    /// CPU time the whole process (server, receiver and load generator) used during the
    /// phase, warm-up included, in seconds.
    pub cpu_secs: f64,
    /// The phase's wall-clock time, warm-up included.
    pub elapsed: Duration,
}

impl PhaseResult {
    pub fn merge(&mut self, other: PhaseResult) {
        self.responses += other.responses;
        self.cpu_secs += other.cpu_secs;
        self.elapsed += other.elapsed;
        self.latencies_us.extend(other.latencies_us);
        self.timeline.extend(other.timeline);
        if self.kind_latencies_us.len() < other.kind_latencies_us.len() {
            self.kind_latencies_us
                .resize_with(other.kind_latencies_us.len(), Vec::new);
        }
        for (mine, theirs) in self
            .kind_latencies_us
            .iter_mut()
            .zip(other.kind_latencies_us)
        {
            mine.extend(theirs);
        }
        self.all_ok += other.all_ok;
        self.errors += other.errors;
        for (status, n) in other.bad_statuses {
            self.count_status(status, n);
        }
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.batches += other.batches;
        self.jobs += other.jobs;
        self.window += other.window;
    }

    fn count_status(&mut self, status: u16, n: u64) {
        match self.bad_statuses.iter_mut().find(|(s, _)| *s == status) {
            Some((_, count)) => *count += n,
            None => self.bad_statuses.push((status, n)),
        }
    }

    /// Sorts the latencies (after merging parts).
    pub fn finish(&mut self) {
        self.latencies_us.sort_unstable();
        for latencies in &mut self.kind_latencies_us {
            latencies.sort_unstable();
        }
    }

    /// CPU time per 200 answered over the whole phase, in µs.
    pub fn cpu_per_ok_us(&self) -> f64 {
        self.cpu_secs * 1e6 / self.all_ok.max(1) as f64
    }

    /// Cores the process kept busy over the whole phase, on average.
    pub fn cores_busy(&self) -> f64 {
        self.cpu_secs / self.elapsed.as_secs_f64()
    }

    pub fn ok(&self) -> u64 {
        self.latencies_us.len() as u64
    }

    /// 200 responses per second of the measured window.
    pub fn rate(&self) -> f64 {
        self.ok() as f64 / self.window.as_secs_f64()
    }

    pub fn percentile_ms(&self, p: f64) -> f64 {
        percentile_ms(&self.latencies_us, p)
    }

    /// Requests per second and p99 of the timeline's samples in `[from, to)` (after the
    /// window began).
    pub fn slice(&self, from: Duration, to: Duration) -> (f64, f64) {
        let (from_ms, to_ms) = (from.as_millis() as u32, to.as_millis() as u32);
        let mut latencies: Vec<u32> = self
            .timeline
            .iter()
            .filter(|(at, _)| (from_ms..to_ms).contains(at))
            .map(|&(_, us)| us)
            .collect();
        latencies.sort_unstable();
        let secs = (to - from).as_secs_f64();
        (
            latencies.len() as f64 / secs,
            percentile_ms(&latencies, 0.99),
        )
    }

    /// A one-line account of the errors, for the report.
    pub fn error_summary(&self) -> String {
        format!(
            "{}: {} errors; statuses {:?}; first: {}",
            self.label,
            self.errors,
            self.bad_statuses,
            self.first_error.as_deref().unwrap_or("-")
        )
    }
}

/// Nearest-rank percentile of sorted latencies (µs), in milliseconds (NaN when there are none).
pub fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted_us.len() as f64).ceil() as usize).max(1);
    sorted_us[rank - 1] as f64 / 1000.0
}

/// Runs `workload` on every connection for `window`. Returns the connections (possibly
/// replaced after errors) for the next phase.
pub async fn run_phase(
    workload: &Workload,
    target: &Target,
    conns: Vec<Conn>,
    window: Window,
) -> (Vec<Conn>, PhaseResult) {
    let (started, cpu_before) = (Instant::now(), process_cpu_secs());
    let measure_from = Instant::now() + window.warmup;
    let end = measure_from + window.measure;
    let kinds = workload.kinds().len();
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, conn)| {
            let requests = workload.requests(target, i);
            let bounds = Bounds {
                measure_from,
                end,
                kinds,
                timeline: window.timeline,
            };
            tokio::spawn(drive(conn, requests, bounds))
        })
        .collect();
    let mut conns = Vec::with_capacity(tasks.len());
    let mut result = PhaseResult {
        label: workload.label(),
        window: window.measure,
        ..Default::default()
    };
    for task in tasks {
        let (conn, part) = task.await.expect("load generator task panicked");
        conns.extend(conn);
        result.merge(part);
    }
    result.finish();
    result.cpu_secs = process_cpu_secs() - cpu_before;
    result.elapsed = started.elapsed();
    (conns, result)
}

/// CPU time this process has used so far (user and system, every thread), in seconds; from
/// `/proc/self/stat` in clock ticks of 1/100 s (`USER_HZ`, 100 on Linux), so 0 elsewhere.
pub fn process_cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // The command name (field 2) may hold spaces; the fields after it are plain numbers.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / 100.0
}

#[derive(Clone, Copy)]
struct Bounds {
    measure_from: Instant,
    end: Instant,
    kinds: usize,
    timeline: bool,
}

/// One connection's closed loop. Only exchanges that complete inside `[measure_from, end)` are
/// counted in the throughput and latencies, so the throughput is exact for the window whatever
/// the latency at its edges; errors and `all_ok` count the whole phase.
async fn drive(
    mut conn: Conn,
    mut requests: Box<dyn Requests>,
    bounds: Bounds,
) -> (Option<Conn>, PhaseResult) {
    let Bounds {
        measure_from,
        end,
        kinds,
        timeline,
    } = bounds;
    let mut result = PhaseResult {
        latencies_us: Vec::with_capacity(1 << 14),
        kind_latencies_us: vec![Vec::new(); kinds],
        ..Default::default()
    };
    loop {
        if Instant::now() >= end {
            return (Some(conn), result);
        }
        let Some(request) = requests.next() else {
            return (Some(conn), result);
        };
        let started = Instant::now();
        let outcome = tokio::time::timeout(REQUEST_TIMEOUT, conn.exchange(request)).await;
        let finished = Instant::now();
        let counted = finished >= measure_from && finished < end;
        let kind = requests.kind();
        let (healthy, error) = match outcome {
            Ok(Ok(response)) => {
                if counted {
                    result.responses += 1;
                }
                if response.status == 200 {
                    result.all_ok += 1;
                    if counted {
                        let us =
                            u32::try_from((finished - started).as_micros()).unwrap_or(u32::MAX);
                        result.latencies_us.push(us);
                        if let Some(latencies) = result.kind_latencies_us.get_mut(kind) {
                            latencies.push(us);
                        }
                        if timeline {
                            let at = (finished - measure_from).as_millis() as u32;
                            result.timeline.push((at, us));
                        }
                    }
                } else {
                    result.count_status(response.status, 1);
                }
                let error = (response.status != 200).then(|| {
                    format!(
                        "HTTP {}: {}",
                        response.status,
                        String::from_utf8_lossy(conn.body())
                    )
                });
                (!response.close, error)
            }
            Ok(Err(e)) => (false, Some(format!("I/O error: {e}"))),
            Err(_) => (
                false,
                Some(format!("no response within {REQUEST_TIMEOUT:?}")),
            ),
        };
        if let Some(error) = error {
            result.errors += 1;
            result.first_error.get_or_insert(error);
        }
        if !healthy {
            // The server closed (or we gave up on) this connection: open a new one, retrying
            // until the phase ends so that one hiccup does not silently shrink the concurrency.
            while let Err(e) = conn.reconnect().await {
                if Instant::now() >= end {
                    result.errors += 1;
                    result
                        .first_error
                        .get_or_insert(format!("reconnect failed: {e}"));
                    return (None, result);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}
