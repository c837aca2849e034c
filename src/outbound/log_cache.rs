//! Recently read events of the log, per company, shared by the windows of its subscriptions.
//! Under a backlog each window is at a place of its own, so windows rarely share a read; with
//! this, a company's events are read (and decoded) once, not once per subscription, as long as
//! its windows are within [`EVENTS_PER_COMPANY`] of each other.
//!
//! What is kept for a company is always every one of its events between two positions, so a
//! window reads from here only what the log would have given it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::store::EventRow;

/// Events kept per company, at most.
const EVENTS_PER_COMPANY: usize = 16_384;
/// Bytes of payload kept in all, at most; past it everything is dropped and kept afresh.
const MOST_BYTES: usize = 64 << 20;

#[derive(Default)]
pub(super) struct LogCache {
    companies: HashMap<String, Span>,
    bytes: usize,
}

/// Every event of a company with a position in `(after, upto]`, in order.
struct Span {
    after: i64,
    upto: i64,
    events: VecDeque<Arc<EventRow>>,
}

impl LogCache {
    /// The company's next events after `position` (at most `limit`), as far as they are
    /// kept; `None` when none of them is. The log may hold more after them.
    pub(super) fn get(
        &self,
        company: &str,
        position: i64,
        limit: usize,
    ) -> Option<Vec<Arc<EventRow>>> {
        let span = self.companies.get(company)?;
        if position < span.after || position >= span.upto {
            return None;
        }
        let start = span.events.partition_point(|e| e.position <= position);
        let end = span.events.len().min(start + limit);
        (end > start).then(|| span.events.range(start..end).cloned().collect())
    }

    /// Keeps a read of the log: `events` are all of the company's events after `position`, up
    /// to the last of them.
    pub(super) fn put(&mut self, company: &str, position: i64, events: &[Arc<EventRow>]) {
        let Some(last) = events.last() else {
            return;
        };
        let fresh = || Span {
            after: position,
            upto: position,
            events: VecDeque::new(),
        };
        let span = self
            .companies
            .entry(company.to_string())
            .or_insert_with(fresh);
        if position < span.after || position > span.upto {
            // Not adjoining what is kept: keep this read instead.
            self.bytes -= span.events.iter().map(|e| size(e)).sum::<usize>();
            *span = fresh();
        }
        for event in events.iter().filter(|e| e.position > span.upto) {
            self.bytes += size(event);
            span.events.push_back(event.clone());
        }
        span.upto = span.upto.max(last.position);
        while span.events.len() > EVENTS_PER_COMPANY {
            let dropped = span.events.pop_front().expect("longer than the limit");
            self.bytes -= size(&dropped);
            span.after = dropped.position;
        }
        if self.bytes > MOST_BYTES {
            self.companies.clear();
            self.bytes = 0;
        }
    }
}

fn size(event: &EventRow) -> usize {
    event.payload.len() + 256
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(position: i64) -> Arc<EventRow> {
        Arc::new(EventRow {
            seq: position,
            position,
            event_id: format!("evt_{position}"),
            company_id: "acme".into(),
            origin_key_id: None,
            about_subscription_id: None,
            event_type: "customer.created".into(),
            entity: "customer".into(),
            record_id: "C1".into(),
            project_code: None,
            payload: "{}".into(),
            created_at: 0,
        })
    }

    fn positions(events: Option<Vec<Arc<EventRow>>>) -> Option<Vec<i64>> {
        events.map(|e| e.iter().map(|e| e.position).collect())
    }

    #[test]
    fn answers_only_from_what_it_holds_in_full() {
        let mut cache = LogCache::default();
        // The log read after 10 gave 12, 15, 17: nothing else lies in (10, 17].
        cache.put("acme", 10, &[event(12), event(15), event(17)]);
        assert_eq!(positions(cache.get("acme", 10, 2)), Some(vec![12, 15]));
        assert_eq!(positions(cache.get("acme", 12, 2)), Some(vec![15, 17]));
        assert_eq!(positions(cache.get("acme", 13, 5)), Some(vec![15, 17]));
        // Nothing kept past 17, nothing kept before 10, another company.
        assert_eq!(positions(cache.get("acme", 17, 2)), None);
        assert_eq!(positions(cache.get("acme", 5, 1)), None);
        assert_eq!(positions(cache.get("beta", 10, 1)), None);
        // A read that adjoins extends what is kept; one that overlaps adds only what is new.
        cache.put("acme", 17, &[event(20)]);
        cache.put("acme", 15, &[event(17), event(20), event(21)]);
        assert_eq!(
            positions(cache.get("acme", 12, 4)),
            Some(vec![15, 17, 20, 21])
        );
        // A read that does not adjoin replaces it.
        cache.put("acme", 30, &[event(31)]);
        assert_eq!(positions(cache.get("acme", 12, 1)), None);
        assert_eq!(positions(cache.get("acme", 30, 1)), Some(vec![31]));
    }

    #[test]
    fn keeps_at_most_its_limit_per_company() {
        let mut cache = LogCache::default();
        let events: Vec<_> = (1..=EVENTS_PER_COMPANY as i64 + 10).map(event).collect();
        cache.put("acme", 0, &events);
        assert_eq!(positions(cache.get("acme", 0, 1)), None);
        assert_eq!(positions(cache.get("acme", 10, 1)), Some(vec![11]));
    }
}
