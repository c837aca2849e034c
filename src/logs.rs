//! The info-level lines the server writes beyond warnings and errors: one per request and one
//! per delivery attempt. Each kind is rate-limited ([`Sampler`]) so that a flood of traffic does
//! not become a flood of log lines: past the budget of a second, lines are left out and the
//! first line of the next second says how many.

use std::sync::atomic::{AtomicU64, Ordering};

/// Lines of one kind written per second at most.
pub(crate) const LINES_PER_SECOND: u64 = 100;

/// Counts lines per wall-clock second.
pub(crate) struct Sampler {
    what: &'static str,
    second: AtomicU64,
    written: AtomicU64,
    left_out: AtomicU64,
}

/// Whether to write a line, and how many the previous busy second left out.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Admit {
    pub write: bool,
    pub left_out_before: u64,
}

impl Sampler {
    pub(crate) const fn new(what: &'static str) -> Sampler {
        Sampler {
            what,
            second: AtomicU64::new(0),
            written: AtomicU64::new(0),
            left_out: AtomicU64::new(0),
        }
    }

    /// Counts one line in second `now`. Concurrent callers may overshoot the budget by a
    /// line or two at a second's edge; that is fine for logs.
    pub(crate) fn admit_at(&self, now: u64) -> Admit {
        let mut left_out_before = 0;
        let second = self.second.load(Ordering::Relaxed);
        if now != second
            && self
                .second
                .compare_exchange(second, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.written.store(0, Ordering::Relaxed);
            left_out_before = self.left_out.swap(0, Ordering::Relaxed);
        }
        let write = self.written.fetch_add(1, Ordering::Relaxed) < LINES_PER_SECOND;
        if !write {
            self.left_out.fetch_add(1, Ordering::Relaxed);
        }
        Admit {
            write,
            left_out_before,
        }
    }

    /// Counts one line now; says so in the log when an earlier second left lines out.
    pub(crate) fn admit(&self) -> bool {
        let now = crate::clock::now_secs().max(0) as u64;
        let admit = self.admit_at(now);
        if admit.left_out_before > 0 {
            tracing::info!(
                left_out = admit.left_out_before,
                budget_per_second = LINES_PER_SECOND,
                "{} lines left out (over budget)",
                self.what
            );
        }
        admit.write
    }
}

/// Requests, inbound and REST.
pub(crate) static REQUESTS: Sampler = Sampler::new("request");

/// Delivery attempts.
pub(crate) static DELIVERIES: Sampler = Sampler::new("delivery attempt");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writes_its_budget_then_the_next_says_how_many_were_left_out() {
        let sampler = Sampler::new("test");
        let written = (0..LINES_PER_SECOND + 7)
            .filter(|_| sampler.admit_at(10).write)
            .count() as u64;
        assert_eq!(written, LINES_PER_SECOND);
        assert_eq!(
            sampler.admit_at(11),
            Admit {
                write: true,
                left_out_before: 7
            }
        );
        assert_eq!(sampler.admit_at(11).left_out_before, 0);
    }
}
