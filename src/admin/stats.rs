//! The console's figures, as pure functions over rows read from the store: requests per second
//! by outcome, delivery lag per time bucket, and a subscription's recent health.

use serde_json::{Value, json};

use crate::clock;
use crate::store::DeliveryOutcome;

/// The outcomes the requests chart stacks, in drawing order.
pub(crate) const OUTCOMES: [&str; 4] = ["accepted", "rejected", "rate_limited", "error"];

fn outcome_index(status: u16) -> usize {
    match status {
        200..=299 => 0,
        429 => 2,
        500.. => 3,
        _ => 1,
    }
}

/// Equal time buckets from `start` (unix ms).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Buckets {
    pub start: i64,
    pub width_ms: i64,
    pub count: usize,
}

impl Buckets {
    fn index(&self, at: i64) -> Option<usize> {
        let i = (at - self.start).div_euclid(self.width_ms);
        (0..self.count as i64).contains(&i).then_some(i as usize)
    }
}

/// Requests per second in each bucket, split by outcome (in [`OUTCOMES`] order), from
/// `(bucket index, status, count)` rows.
pub(crate) fn request_rates(counts: &[(i64, u16, i64)], b: Buckets) -> Vec<[f64; 4]> {
    let mut totals = vec![[0i64; 4]; b.count];
    for &(bucket, status, n) in counts {
        if let Some(slot) = usize::try_from(bucket).ok().and_then(|i| totals.get_mut(i)) {
            slot[outcome_index(status)] += n;
        }
    }
    let secs = b.width_ms as f64 / 1000.0;
    totals
        .iter()
        .map(|c| c.map(|n| (n as f64 / secs * 100.0).round() / 100.0))
        .collect()
}

/// The median and the largest delivery lag (ms) in each bucket; `None` where nothing was
/// delivered.
pub(crate) fn lag_percentiles(
    rows: &[(i64, i64)],
    b: Buckets,
) -> (Vec<Option<i64>>, Vec<Option<i64>>) {
    let mut lags: Vec<Vec<i64>> = vec![Vec::new(); b.count];
    for &(at, lag) in rows {
        if let Some(i) = b.index(at) {
            lags[i].push(lag);
        }
    }
    lags.iter_mut()
        .map(|l| {
            l.sort_unstable();
            (l.get(l.len() / 2).copied(), l.last().copied())
        })
        .unzip()
}

/// A subscription's health from its most recent deliveries (newest first): the share of
/// finished deliveries that succeeded, and the newest error.
pub(crate) fn subscription_health(recent: &[DeliveryOutcome]) -> Value {
    let succeeded = recent.iter().filter(|d| d.status == "succeeded").count();
    let failed = recent.iter().filter(|d| d.status == "failed").count();
    let waiting = recent
        .iter()
        .filter(|d| matches!(d.status.as_str(), "pending" | "in_flight" | "paused"))
        .count();
    let finished = succeeded + failed;
    let last_error = recent.iter().find(|d| d.last_error.is_some()).map(|d| {
        json!({
            "delivery_id": d.id,
            "error": d.last_error,
            "response_code": d.last_status_code,
            "at": clock::rfc3339_from_ms(d.updated_at),
        })
    });
    json!({
        "recent": recent.len(),
        "succeeded": succeeded,
        "failed": failed,
        "waiting": waiting,
        "success_rate": (finished > 0).then(|| succeeded as f64 / finished as f64),
        "last_error": last_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Buckets = Buckets {
        start: 10_000,
        width_ms: 2_000,
        count: 3,
    };

    #[test]
    fn rates_are_per_second_by_outcome_and_ignore_buckets_outside() {
        let counts = [
            (0, 200, 1),
            (0, 201, 1),
            (1, 401, 1),
            (1, 429, 1),
            (2, 500, 1),
            (-1, 200, 5),
            (3, 200, 5),
        ];
        let rates = request_rates(&counts, B);
        assert_eq!(rates[0], [1.0, 0.0, 0.0, 0.0]);
        assert_eq!(rates[1], [0.0, 0.5, 0.5, 0.0]);
        assert_eq!(rates[2], [0.0, 0.0, 0.0, 0.5]);
    }

    #[test]
    fn lag_median_and_max_per_bucket() {
        let rows = [(10_000, 30), (10_100, 10), (10_200, 20), (14_000, 7)];
        let (p50, max) = lag_percentiles(&rows, B);
        assert_eq!(p50, vec![Some(20), None, Some(7)]);
        assert_eq!(max, vec![Some(30), None, Some(7)]);
    }

    fn delivery(status: &str, error: Option<&str>) -> DeliveryOutcome {
        DeliveryOutcome {
            id: format!("dlv_{status}"),
            status: status.into(),
            last_status_code: error.map(|_| 500),
            last_error: error.map(str::to_string),
            updated_at: 0,
        }
    }

    #[test]
    fn health_counts_finished_deliveries_and_shows_the_newest_error() {
        let recent = [
            delivery("pending", None),
            delivery("failed", Some("HTTP 500")),
            delivery("succeeded", None),
            delivery("succeeded", None),
            delivery("skipped_echo", None),
        ];
        let h = subscription_health(&recent);
        assert_eq!(h["succeeded"], 2);
        assert_eq!(h["failed"], 1);
        assert_eq!(h["waiting"], 1);
        let rate = h["success_rate"].as_f64().unwrap();
        assert!((rate - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(h["last_error"]["error"], "HTTP 500");
        assert_eq!(subscription_health(&[])["success_rate"], Value::Null);
    }
}
