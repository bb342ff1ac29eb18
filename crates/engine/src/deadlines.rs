//! Deadlines of requests in flight: one FIFO queue per distinct timeout.
//!
//! Every request forwarded on a route waits the same time, and the engine's clock only moves
//! forward, so within one timeout deadlines arrive in order: pushing and popping are O(1),
//! where a heap of a million entries would pay a cache-missing O(log n) on both. A request
//! answered before its deadline leaves its entry behind; queues are compacted when such
//! entries outnumber the live ones, so memory follows the requests in flight, not the rate
//! times the timeout. The number of queues is the number of distinct timeouts in the
//! configuration (route timeouts, the echo window, the reversal retry).

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use crate::engine::LinkId;

/// Stale entries tolerated beyond twice the live ones before a compaction.
const COMPACT_SLACK: usize = 4096;

/// The deadlines of one timeout, in order: when, and the pending entry's key.
type Queue = VecDeque<(Instant, LinkId, u64)>;

/// The deadline queues.
#[derive(Debug, Default)]
pub(crate) struct Deadlines {
    queues: Vec<(Duration, Queue)>,
    len: usize,
}

impl Deadlines {
    /// Queues the deadline `now + timeout` of `(link, key)`. `live` is how many entries can
    /// still be wanted (the requests in flight), `is_live` tells a wanted one; together they
    /// decide when to drop the stale ones.
    pub(crate) fn push(
        &mut self,
        now: Instant,
        timeout: Duration,
        link: LinkId,
        key: u64,
        live: usize,
        is_live: impl Fn(LinkId, u64) -> bool,
    ) {
        if self.len >= 2 * live + COMPACT_SLACK {
            self.compact(&is_live);
        }
        let i = match self.queues.iter().position(|(t, _)| *t == timeout) {
            Some(i) => i,
            None => {
                self.queues.push((timeout, VecDeque::new()));
                self.queues.len() - 1
            }
        };
        let q = &mut self.queues[i].1;
        // Keep the queue ordered even if a caller's clock stepped back: the deadline then
        // fires a little late, never early and never lost.
        let at = q.back().map_or(now + timeout, |&(last, _, _)| (now + timeout).max(last));
        q.push_back((at, link, key));
        self.len += 1;
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.queues.iter().filter_map(|(_, q)| q.front().map(|e| e.0)).min()
    }

    /// Removes and returns the earliest entry due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(LinkId, u64)> {
        let (i, _) = self
            .queues
            .iter()
            .enumerate()
            .filter_map(|(i, (_, q))| q.front().map(|e| (i, e.0)))
            .filter(|(_, at)| *at <= now)
            .min_by_key(|(_, at)| *at)?;
        let (_, link, key) = self.queues[i].1.pop_front()?;
        self.len -= 1;
        Some((link, key))
    }

    /// Entries queued, stale ones included.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn compact(&mut self, is_live: &impl Fn(LinkId, u64) -> bool) {
        for (_, q) in &mut self.queues {
            q.retain(|&(_, link, key)| is_live(link, key));
        }
        self.queues.retain(|(_, q)| !q.is_empty());
        self.len = self.queues.iter().map(|(_, q)| q.len()).sum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn deadlines_come_out_in_time_order_across_timeouts() {
        let t0 = Instant::now();
        let mut d = Deadlines::default();
        let l = LinkId(1);
        d.push(t0, 5 * MS, l, 1, 10, |_, _| true);
        d.push(t0, 2 * MS, l, 2, 10, |_, _| true);
        d.push(t0 + MS, 5 * MS, l, 3, 10, |_, _| true);
        d.push(t0 + MS, 2 * MS, l, 4, 10, |_, _| true);
        assert_eq!(d.next(), Some(t0 + 2 * MS));
        assert_eq!(d.pop_due(t0 + MS), None, "nothing due yet");
        let mut order = Vec::new();
        while let Some((_, k)) = d.pop_due(t0 + 10 * MS) {
            order.push(k);
        }
        assert_eq!(order, [2, 4, 1, 3]);
        assert_eq!((d.len(), d.next()), (0, None));
    }

    #[test]
    fn a_clock_stepping_back_never_loses_or_reorders_a_deadline() {
        let t0 = Instant::now();
        let mut d = Deadlines::default();
        d.push(t0 + 10 * MS, MS, LinkId(1), 1, 10, |_, _| true);
        d.push(t0, MS, LinkId(1), 2, 10, |_, _| true);
        assert_eq!(d.pop_due(t0 + 11 * MS), Some((LinkId(1), 1)));
        assert_eq!(d.pop_due(t0 + 11 * MS), Some((LinkId(1), 2)), "fires late, not never");
    }

    #[test]
    fn stale_entries_are_compacted_so_memory_follows_the_live_ones() {
        let t0 = Instant::now();
        let mut d = Deadlines::default();
        // A million requests answered at once, at most 10 live at a time.
        for k in 0..1_000_000u64 {
            d.push(t0, 5 * MS, LinkId(1), k, 10, |_, key| key + 10 > k);
        }
        assert!(d.len() <= 2 * 10 + COMPACT_SLACK + 1, "{}", d.len());
        // The live ones are all still there.
        let mut left = Vec::new();
        while let Some((_, k)) = d.pop_due(t0 + 10 * MS) {
            left.push(k);
        }
        for k in 999_990..1_000_000 {
            assert!(left.contains(&k), "live key {k} kept");
        }
    }
}
