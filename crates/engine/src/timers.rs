//! The engine's one timer system: one FIFO queue per distinct duration.
//!
//! Every timer the engine sets is "this long from now" with a duration from the
//! configuration (a route's timeout, a link's echo interval or sign-on deadline, the
//! reversal retry, the late-response window), and the engine's clock only moves forward, so
//! within one duration deadlines arrive in order: pushing and popping are O(1), where a heap
//! of a million entries would pay a cache-missing O(log n) on both. A request answered
//! before its deadline leaves its entry behind; queues are compacted when such entries
//! outnumber the live ones, so memory follows what is live, not the rate times the timeout.
//! The number of queues is the number of distinct durations in the configuration.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use crate::link::LinkId;

/// What comes due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timer {
    /// The deadline of pending entry `(link, key)`.
    Pending(LinkId, u64),
    /// Reversal `id` waits for a link to its destination.
    Reversal(u64),
    /// `link` may be idle: echo it.
    Echo(LinkId),
    /// The late-response memory of `(link, key)` ends.
    Late(LinkId, u64),
    /// `link` must have signed on by now.
    SignOn(LinkId),
    /// A frame `link` started must be whole by now.
    Frame(LinkId),
}

/// Stale entries tolerated beyond twice the live ones before a compaction.
const COMPACT_SLACK: usize = 4096;

/// The deadlines of one timeout, in order: when, and the pending entry's key.
type Queue = VecDeque<(Instant, Timer)>;

/// The deadline queues.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    queues: Vec<(Duration, Queue)>,
    len: usize,
}

impl Timers {
    /// Queues `timer` at `now + timeout`. `live` is how many entries can still be wanted
    /// (the pending entries and the other live timers), `is_live` tells a wanted one;
    /// together they decide when to drop the stale ones.
    #[cfg(test)]
    pub(crate) fn push(
        &mut self,
        now: Instant,
        timeout: Duration,
        timer: Timer,
        live: usize,
        is_live: impl Fn(&Timer) -> bool,
    ) {
        let due = now.checked_add(timeout).unwrap_or(now);
        self.push_at(due, timeout, timer, live, is_live);
    }

    /// Queues `timer` at `due`, in the queue of `timeout`; `due` must not be later than
    /// "now + timeout" (it may be earlier: an echo measured from the last frame received).
    /// A deadline earlier than one already queued there fires with that one, a little late.
    pub(crate) fn push_at(
        &mut self,
        due: Instant,
        timeout: Duration,
        timer: Timer,
        live: usize,
        is_live: impl Fn(&Timer) -> bool,
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
        let at = q.back().map_or(due, |&(last, _)| due.max(last));
        q.push_back((at, timer));
        self.len += 1;
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.queues.iter().filter_map(|(_, q)| q.front().map(|e| e.0)).min()
    }

    /// Removes and returns the earliest entry due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        let (i, _) = self
            .queues
            .iter()
            .enumerate()
            .filter_map(|(i, (_, q))| q.front().map(|e| (i, e.0)))
            .filter(|(_, at)| *at <= now)
            .min_by_key(|(_, at)| *at)?;
        let (_, timer) = self.queues[i].1.pop_front()?;
        take_one!(self.len, "the timer count");
        Some(timer)
    }

    /// Entries queued, stale ones included.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn compact(&mut self, is_live: &impl Fn(&Timer) -> bool) {
        for (_, q) in &mut self.queues {
            q.retain(|(_, t)| is_live(t));
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
        let mut d = Timers::default();
        let l = LinkId(1);
        d.push(t0, 5 * MS, Timer::Pending(l, 1), 10, |_| true);
        d.push(t0, 2 * MS, Timer::Pending(l, 2), 10, |_| true);
        d.push(t0 + MS, 5 * MS, Timer::Pending(l, 3), 10, |_| true);
        d.push(t0 + MS, 2 * MS, Timer::Pending(l, 4), 10, |_| true);
        assert_eq!(d.next(), Some(t0 + 2 * MS));
        assert_eq!(d.pop_due(t0 + MS), None, "nothing due yet");
        let mut order = Vec::new();
        while let Some(Timer::Pending(_, k)) = d.pop_due(t0 + 10 * MS) {
            order.push(k);
        }
        assert_eq!(order, [2, 4, 1, 3]);
        assert_eq!((d.len(), d.next()), (0, None));
    }

    #[test]
    fn a_clock_stepping_back_never_loses_or_reorders_a_deadline() {
        let t0 = Instant::now();
        let mut d = Timers::default();
        d.push(t0 + 10 * MS, MS, Timer::Pending(LinkId(1), 1), 10, |_| true);
        d.push(t0, MS, Timer::Pending(LinkId(1), 2), 10, |_| true);
        assert_eq!(d.pop_due(t0 + 11 * MS), Some(Timer::Pending(LinkId(1), 1)));
        assert_eq!(d.pop_due(t0 + 11 * MS), Some(Timer::Pending(LinkId(1), 2)), "fires late, not never");
    }

    #[test]
    fn stale_entries_are_compacted_so_memory_follows_the_live_ones() {
        let t0 = Instant::now();
        let mut d = Timers::default();
        // A million requests answered at once, at most 10 live at a time.
        for k in 0..1_000_000u64 {
            d.push(
                t0,
                5 * MS,
                Timer::Pending(LinkId(1), k),
                10,
                |t| matches!(t, Timer::Pending(_, key) if key + 10 > k),
            );
        }
        assert!(d.len() <= 2 * 10 + COMPACT_SLACK + 1, "{}", d.len());
        // The live ones are all still there.
        let mut left = Vec::new();
        while let Some(Timer::Pending(_, k)) = d.pop_due(t0 + 10 * MS) {
            left.push(k);
        }
        for k in 999_990..1_000_000 {
            assert!(left.contains(&k), "live key {k} kept");
        }
    }
}
