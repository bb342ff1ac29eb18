//! What a run measured: latency histograms (corrected from the intended send time, naive
//! from the actual one), the schedule lag, outcome counts and a per-second timeline.
//!
//! Each connection keeps its own [`Recorder`]; the run merges them at the end. Every request
//! that was sent ends in exactly one outcome — answered, timed out or unanswered — so
//! `sent = answered + timeouts + unanswered` holds of every report.

use std::{collections::BTreeMap, time::Duration};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::limits::{
    DURATION_MAX, HISTOGRAM_SIGFIG, LATENCY_NS_MAX, RESPONSE_CODES_MAX, SCHEDULE_TOLERANCE_NS,
    TIMELINE_SIGFIG,
};

/// A histogram of nanoseconds from 1 ns to [`LATENCY_NS_MAX`].
///
/// # Panics
///
/// Never: the bounds are constants that hdrhistogram accepts (a unit test builds one).
#[must_use]
#[allow(clippy::expect_used)]
pub fn histogram(sigfig: u8) -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_NS_MAX, sigfig).expect("constant bounds are valid")
}

/// Outcome counts of the measured requests (warm-up excluded).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Requests sent.
    pub sent: u64,
    /// Requests whose response came (whatever its code).
    pub answered: u64,
    /// Answered requests by response code (DE 39; `none` when absent).
    pub codes: BTreeMap<String, u64>,
    /// Requests not answered within the request timeout.
    pub timeouts: u64,
    /// Requests still open when the run ended, or lost with their connection.
    pub unanswered: u64,
    /// Protocol errors: responses that matched nothing (late ones included), a wrong
    /// response type, frames that did not decode, connections lost.
    pub errors: u64,
    /// Open-loop sends not made because the connection had its in-flight maximum open.
    pub skipped: u64,
    /// Sends later than the schedule tolerance after their intended time.
    pub behind_schedule: u64,
    /// With other nodes to fail over to: connections re-made to another node after theirs
    /// went.
    pub failovers: u64,
    /// Requests repeated (their repeat MTI, the same fields) on the node failed over to:
    /// each was in flight on the connection that went.
    pub repeats: u64,
    /// A reversing partner (`--reverse-unanswered`): reversals (0420) it sent for requests
    /// that got no answer within the request timeout.
    pub reversals: u64,
    /// Of those, repeats (0421) of a reversal not acknowledged within the timeout.
    pub reversal_repeats: u64,
    /// Reversals acknowledged (0430).
    pub reversals_acknowledged: u64,
    /// Reversals never acknowledged: given up after their tries, or open at the end.
    pub reversals_unacknowledged: u64,
}

impl Counts {
    fn add(&mut self, o: &Self) {
        self.sent += o.sent;
        self.answered += o.answered;
        for (k, v) in &o.codes {
            *self.codes.entry(k.clone()).or_default() += v;
        }
        self.timeouts += o.timeouts;
        self.unanswered += o.unanswered;
        self.errors += o.errors;
        self.skipped += o.skipped;
        self.failovers += o.failovers;
        self.repeats += o.repeats;
        self.reversals += o.reversals;
        self.reversal_repeats += o.reversal_repeats;
        self.reversals_acknowledged += o.reversals_acknowledged;
        self.reversals_unacknowledged += o.reversals_unacknowledged;
        self.behind_schedule += o.behind_schedule;
    }

    /// Answers approved (DE 39 = 00).
    #[must_use]
    pub fn approved(&self) -> u64 {
        self.codes.get("00").copied().unwrap_or(0)
    }
}

/// One second of the run, while its events are still being recorded.
#[derive(Clone, Debug)]
pub struct Second {
    /// Requests sent in it.
    pub sent: u64,
    /// Responses received in it.
    pub answered: u64,
    /// Timeouts that fell in it.
    pub timeouts: u64,
    /// Errors in it.
    pub errors: u64,
    /// Corrected latency of the responses received in it (auto-resizing: an empty second
    /// costs next to nothing).
    pub latency: Histogram<u64>,
}

impl Second {
    /// A second with nothing in it.
    #[must_use]
    pub fn empty() -> Self {
        // Auto-resizing histograms accept any sigfig below 6.
        let latency = Histogram::new(TIMELINE_SIGFIG).unwrap_or_else(|_| histogram(TIMELINE_SIGFIG));
        Self { sent: 0, answered: 0, timeouts: 0, errors: 0, latency }
    }

    /// Adds `o` into this one.
    pub fn add(&mut self, o: &Self) {
        self.sent += o.sent;
        self.answered += o.answered;
        self.timeouts += o.timeouts;
        self.errors += o.errors;
        let _ = self.latency.add(&o.latency);
    }

    /// The second's row of the timeline.
    #[must_use]
    pub fn row(&self, second: u64) -> Row {
        let h = &self.latency;
        let q = |q: f64| if h.is_empty() { 0 } else { h.value_at_quantile(q) };
        Row {
            second,
            sent: self.sent,
            answered: self.answered,
            timeouts: self.timeouts,
            errors: self.errors,
            p50_ns: q(0.5),
            p99_ns: q(0.99),
            max_ns: if h.is_empty() { 0 } else { h.max() },
        }
    }
}

/// One second of the finished timeline: counts and latency of the responses received in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Row {
    /// Seconds since the end of the warm-up.
    pub second: u64,
    /// Requests sent.
    pub sent: u64,
    /// Responses received.
    pub answered: u64,
    /// Timeouts.
    pub timeouts: u64,
    /// Errors.
    pub errors: u64,
    /// Median corrected latency of the responses received, ns (0 when none).
    pub p50_ns: u64,
    /// 99th percentile, ns.
    pub p99_ns: u64,
    /// Largest, ns.
    pub max_ns: u64,
}

/// The seconds of a run, merged across recorders as they hand them over: each a small
/// auto-resizing histogram (kept for the `.hlog`) and counts.
#[derive(Debug, Default)]
pub struct Seconds {
    by_second: std::collections::BTreeMap<u64, Second>,
}

impl Seconds {
    /// Takes the seconds before `upto` out of `r` and merges them in.
    pub fn absorb(&mut self, r: &mut Recorder, upto: u64) {
        let (base, seconds) = r.take_seconds(upto);
        for (i, s) in seconds.into_iter().enumerate() {
            self.by_second.entry(base + i as u64).or_insert_with(Second::empty).add(&s);
        }
    }

    /// One row a second from second 0 to the last one seen (empty seconds included), and the
    /// latency histogram of every second that received answers.
    #[must_use]
    pub fn into_rows(self) -> (Vec<Row>, Vec<(u64, Histogram<u64>)>) {
        let mut rows: Vec<Row> = Vec::new();
        let mut intervals = Vec::new();
        for (second, s) in self.by_second {
            while (rows.len() as u64) < second {
                rows.push(Second::empty().row(rows.len() as u64));
            }
            rows.push(s.row(second));
            if !s.latency.is_empty() {
                intervals.push((second, s.latency));
            }
        }
        (rows, intervals)
    }
}

/// What one connection (or, merged, a whole run) measured.
#[derive(Clone, Debug)]
pub struct Recorder {
    /// Latency from the intended send time.
    pub corrected: Histogram<u64>,
    /// Latency from the actual send time.
    pub naive: Histogram<u64>,
    /// How late each send left after its intended time.
    pub lag: Histogram<u64>,
    /// Outcomes.
    pub counts: Counts,
    /// The seconds not yet handed to [`Seconds`], from `timeline_base` on.
    timeline: std::collections::VecDeque<Second>,
    timeline_base: u64,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// An empty recorder.
    #[must_use]
    pub fn new() -> Self {
        Self {
            corrected: histogram(HISTOGRAM_SIGFIG),
            naive: histogram(HISTOGRAM_SIGFIG),
            lag: histogram(HISTOGRAM_SIGFIG),
            counts: Counts::default(),
            timeline: std::collections::VecDeque::new(),
            timeline_base: 0,
        }
    }

    fn second(&mut self, at: Duration) -> &mut Second {
        // Bounded: a run never lasts longer than DURATION_MAX, so later events land in its
        // last second; an event for a second already collected lands in the first one kept.
        let i = at.as_secs().min(DURATION_MAX.as_secs()).max(self.timeline_base);
        let i = (i - self.timeline_base) as usize;
        while self.timeline.len() <= i {
            self.timeline.push_back(Second::empty());
        }
        &mut self.timeline[i]
    }

    /// Removes and returns the seconds before `upto`, from the first one not yet taken,
    /// with that one's number. Only the seconds that saw an event are materialized.
    pub fn take_seconds(&mut self, upto: u64) -> (u64, Vec<Second>) {
        let base = self.timeline_base;
        let n = (upto.saturating_sub(base) as usize).min(self.timeline.len());
        let out: Vec<Second> = self.timeline.drain(..n).collect();
        self.timeline_base = base.max(upto);
        (base, out)
    }

    /// A measured request left `lag` after its intended time; `at` is the time since the
    /// warm-up ended.
    pub fn sent(&mut self, at: Duration, lag: Duration) {
        let lag_ns = nanos(lag);
        self.counts.sent += 1;
        self.lag.saturating_record(lag_ns.max(1));
        if lag_ns > SCHEDULE_TOLERANCE_NS {
            self.counts.behind_schedule += 1;
        }
        self.second(at).sent += 1;
    }

    /// A measured request was answered with `code` (`None`: no DE 39).
    pub fn answered(&mut self, at: Duration, code: Option<[u8; 2]>, corrected: Duration, naive: Duration) {
        self.counts.answered += 1;
        let key = match code {
            Some(c) if c.iter().all(u8::is_ascii_alphanumeric) => String::from_utf8_lossy(&c).into_owned(),
            Some(_) => "invalid".to_owned(),
            None => "none".to_owned(),
        };
        if self.counts.codes.len() < RESPONSE_CODES_MAX || self.counts.codes.contains_key(&key) {
            *self.counts.codes.entry(key).or_default() += 1;
        } else {
            *self.counts.codes.entry("other".to_owned()).or_default() += 1;
        }
        let c = nanos(corrected).max(1);
        self.corrected.saturating_record(c);
        self.naive.saturating_record(nanos(naive).max(1));
        let s = self.second(at);
        s.answered += 1;
        // Auto-resizing: `record` grows it (saturating_record would clamp to its current top).
        let _ = s.latency.record(c.min(LATENCY_NS_MAX));
    }

    /// A measured request timed out.
    pub fn timed_out(&mut self, at: Duration) {
        self.counts.timeouts += 1;
        self.second(at).timeouts += 1;
    }

    /// A measured request was still open at the end, or lost with its connection.
    pub fn unanswered(&mut self) {
        self.counts.unanswered += 1;
    }

    /// A protocol error.
    pub fn error(&mut self, at: Duration) {
        self.counts.errors += 1;
        self.second(at).errors += 1;
    }

    /// An open-loop send skipped at the in-flight maximum.
    pub fn skipped(&mut self) {
        self.counts.skipped += 1;
    }

    /// A connection re-made to another node, with `repeats` requests repeated there.
    pub fn failed_over(&mut self, repeats: u64) {
        self.counts.failovers += 1;
        self.counts.repeats += repeats;
    }

    /// A reversal sent for a request that got no answer (`repeat`: again, as 0421).
    pub fn reversal_sent(&mut self, repeat: bool) {
        if repeat {
            self.counts.reversal_repeats += 1;
        } else {
            self.counts.reversals += 1;
        }
    }

    /// A reversal acknowledged.
    pub fn reversal_acknowledged(&mut self) {
        self.counts.reversals_acknowledged += 1;
    }

    /// A reversal given up on, or open at the end.
    pub fn reversal_unacknowledged(&mut self) {
        self.counts.reversals_unacknowledged += 1;
    }

    /// Adds `other` into this one.
    pub fn merge(&mut self, other: &Self) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.corrected.add(&other.corrected);
        let _ = self.naive.add(&other.naive);
        let _ = self.lag.add(&other.lag);
        self.counts.add(&other.counts);
        for (i, s) in other.timeline.iter().enumerate() {
            self.second(Duration::from_secs(other.timeline_base + i as u64)).add(s);
        }
    }
}

/// A duration in nanoseconds, saturating.
#[must_use]
pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn corrected_latency_keeps_what_naive_latency_hides() {
        // A target that stalls for 100 ms once, at a constant 1000/s: the naive view sees one
        // slow request; the corrected one sees every request scheduled during the stall wait.
        let mut r = Recorder::new();
        let stall = Duration::from_millis(100);
        for i in 0..1000u64 {
            let intended = Duration::from_millis(i);
            // Requests due during the stall are sent when it ends, at 100 ms.
            let sent = if (1..100).contains(&i) { stall } else { intended };
            let done = if i == 0 { stall } else { sent.max(intended) + MS };
            r.sent(sent, sent - intended);
            r.answered(done, Some(*b"00"), done - intended, done - sent);
        }
        assert_eq!(r.counts.sent, 1000);
        assert_eq!(r.counts.approved(), 1000);
        let p99 = |h: &Histogram<u64>| h.value_at_quantile(0.99);
        // Naive: 1 ms for all but the first; corrected: about 10% of requests waited 1-100 ms.
        assert!(p99(&r.naive) < 2_000_000, "naive p99 {}", p99(&r.naive));
        assert!(p99(&r.corrected) > 90_000_000, "corrected p99 {}", p99(&r.corrected));
        assert!(r.corrected.value_at_quantile(0.5) < 2_000_000);
        // The lag of the 99 late sends is recorded and counted.
        assert_eq!(r.counts.behind_schedule, 99);
        assert_eq!(r.lag.max() / 1_000_000, 99);
    }

    #[test]
    fn merging_adds_counts_histograms_and_timelines() {
        let mut a = Recorder::new();
        let mut b = Recorder::new();
        a.sent(Duration::ZERO, Duration::ZERO);
        a.answered(Duration::from_millis(10), Some(*b"00"), MS, MS);
        b.sent(Duration::from_secs(2), Duration::ZERO);
        b.answered(Duration::from_secs(2), Some(*b"05"), 3 * MS, 2 * MS);
        b.sent(Duration::from_secs(2), Duration::ZERO);
        b.timed_out(Duration::from_secs(3));
        b.error(Duration::from_secs(3));
        a.merge(&b);
        assert_eq!(a.counts.sent, 3);
        assert_eq!(a.counts.answered + a.counts.timeouts + a.counts.unanswered, 3);
        assert_eq!(a.counts.codes, BTreeMap::from([("00".into(), 1), ("05".into(), 1)]));
        assert_eq!(a.corrected.len(), 2);
        let mut t = Seconds::default();
        t.absorb(&mut a, 4);
        let (rows, intervals) = t.into_rows();
        assert_eq!(rows.len(), 4);
        assert_eq!((rows[0].sent, rows[0].answered, rows[0].p50_ns / 100_000), (1, 1, 10));
        assert_eq!((rows[1].sent, rows[1].answered, rows[1].max_ns), (0, 0, 0));
        assert_eq!((rows[2].sent, rows[2].answered, rows[2].p99_ns / 100_000), (2, 1, 30));
        assert_eq!((rows[3].timeouts, rows[3].errors), (1, 1));
        assert_eq!(intervals.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [0, 2], "seconds with answers");
    }

    #[test]
    fn timelines_collect_across_recorders_and_keep_late_events() {
        let (mut a, mut b) = (Recorder::new(), Recorder::new());
        a.sent(Duration::from_millis(500), Duration::ZERO);
        b.sent(Duration::from_millis(700), Duration::ZERO);
        b.sent(Duration::from_millis(1500), Duration::ZERO);
        let sent = |t: &Seconds| t.by_second.values().map(|s| s.sent).collect::<Vec<_>>();
        let mut t = Seconds::default();
        t.absorb(&mut a, 1);
        t.absorb(&mut b, 1);
        assert_eq!(sent(&t), [2]);
        // An event for second 0 after it was collected lands in second 1.
        a.sent(Duration::from_millis(900), Duration::ZERO);
        t.absorb(&mut a, 2);
        t.absorb(&mut b, 2);
        assert_eq!(sent(&t), [2, 2]);
        t.absorb(&mut a, 2);
        t.absorb(&mut b, 2);
        assert_eq!(t.into_rows().0.len(), 2, "collecting again adds nothing");
        assert_eq!(a.counts.sent + b.counts.sent, 4, "counts are kept whole");
    }

    #[test]
    fn odd_response_codes_are_bounded() {
        let mut r = Recorder::new();
        r.answered(Duration::ZERO, None, MS, MS);
        r.answered(Duration::ZERO, Some([0xFF, b'0']), MS, MS);
        for i in 0..200u8 {
            let code = [b'A' + i % 26, b'A' + i / 26];
            r.answered(Duration::ZERO, Some(code), MS, MS);
        }
        assert_eq!(r.counts.codes["none"], 1);
        assert_eq!(r.counts.codes["invalid"], 1);
        assert!(r.counts.codes.len() <= RESPONSE_CODES_MAX + 1);
        assert_eq!(r.counts.codes.values().sum::<u64>(), 202);
    }

    #[test]
    fn huge_latencies_are_clamped_not_lost() {
        let mut r = Recorder::new();
        r.answered(Duration::from_secs(100_000), Some(*b"00"), Duration::from_secs(100_000), MS);
        assert_eq!(r.corrected.len(), 1);
        assert!(r.corrected.max() >= LATENCY_NS_MAX / 2);
        assert_eq!(r.timeline.len(), DURATION_MAX.as_secs() as usize + 1);
        // Empty seconds are cheap: auto-resizing histograms that never grew.
        assert!(r.timeline[0].latency.is_empty());
    }
}
