//! What the engine measures beside its counters: latency histograms per destination and per
//! corridor, answers by response code and by who made them, requests in by link and message
//! class.
//!
//! Plain integers and fixed arrays, recorded in the engine's own calls (no lock, no atomic,
//! no clock read: the time is the `now` every call is given). The exporter reads a clone
//! through the switch's handle, so a scrape never touches the hot path. Every map here is
//! bounded: response codes by [`ANSWER_CODES_MAX`], corridors by [`CORRIDORS_MAX`].

use std::time::Duration;

use rustc_hash::FxHashMap;

/// Upper bounds of the latency buckets, in microseconds: tens of microseconds (a switch's
/// own cost) through seconds (a destination's timeout), roughly 1-2.5-5 per decade. A
/// final bucket, above the last bound, catches the rest (`+Inf`).
pub const LATENCY_BOUNDS_US: [u64; 21] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000, 30_000_000, 60_000_000,
];

/// Most distinct response codes counted per destination; codes past it count as
/// [`OTHER_CODE`], so a peer sending every two-character code cannot grow the metrics.
pub const ANSWER_CODES_MAX: usize = 48;

/// The response code counted for codes past [`ANSWER_CODES_MAX`].
pub const OTHER_CODE: [u8; 2] = *b"..";

/// Most corridors (originating participant, destination participant) with a histogram of
/// their own; answers on further pairs count in their destination's only.
pub const CORRIDORS_MAX: usize = 1024;

/// A latency histogram with the buckets of [`LATENCY_BOUNDS_US`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last is above every bound.
    pub buckets: [u64; LATENCY_BOUNDS_US.len() + 1],
    /// Sum of the observations, in microseconds.
    pub sum_us: u64,
    /// Number of observations.
    pub count: u64,
}

impl Histogram {
    /// Records one observation.
    pub fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = LATENCY_BOUNDS_US.partition_point(|&b| b < us);
        self.buckets[i] += 1;
        self.sum_us = self.sum_us.saturating_add(us);
        self.count += 1;
    }

    /// What was recorded since `earlier` (a snapshot of the same histogram).
    #[must_use]
    pub fn since(&self, earlier: &Self) -> Self {
        let mut out = self.clone();
        for (b, e) in out.buckets.iter_mut().zip(earlier.buckets.iter()) {
            *b = b.saturating_sub(*e);
        }
        out.sum_us = out.sum_us.saturating_sub(earlier.sum_us);
        out.count = out.count.saturating_sub(earlier.count);
        out
    }

    /// Adds `other`'s observations to this one's.
    pub fn add(&mut self, other: &Self) {
        for (b, o) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *b += o;
        }
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
        self.count += other.count;
    }

    /// The `q` quantile (0 to 1), interpolated linearly inside its bucket as Prometheus's
    /// `histogram_quantile` does; `None` when empty. Observations above the last bound are
    /// reported as that bound.
    #[must_use]
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.count == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * self.count as f64;
        let mut seen = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            if n == 0 {
                continue;
            }
            if (seen + n) as f64 >= rank {
                let Some(&upper) = LATENCY_BOUNDS_US.get(i) else {
                    return LATENCY_BOUNDS_US.last().map(|&b| Duration::from_micros(b));
                };
                let lower = if i == 0 { 0 } else { LATENCY_BOUNDS_US[i - 1] };
                let within = ((rank - seen as f64) / n as f64).clamp(0.0, 1.0);
                let us = lower as f64 + (upper - lower) as f64 * within;
                return Some(Duration::from_micros(us as u64));
            }
            seen += n;
        }
        LATENCY_BOUNDS_US.last().map(|&b| Duration::from_micros(b))
    }
}

/// Who made an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// The destination's response, relayed.
    Destination = 0,
    /// The switch (a decline, a timeout, an answer from a duplicate's stored outcome).
    Switch = 1,
}

impl Source {
    /// Its label value.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Destination => "destination",
            Self::Switch => "switch",
        }
    }
}

/// Answers by response code (DE 39) and source, at most [`ANSWER_CODES_MAX`] codes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Answers {
    /// Per code: answers the destination made, answers the switch made.
    pub codes: Vec<([u8; 2], [u64; 2])>,
}

impl Answers {
    fn count(&mut self, code: [u8; 2], source: Source) {
        self.count_n(code, source, 1);
    }

    fn count_n(&mut self, code: [u8; 2], source: Source, n: u64) {
        let i = match self.codes.iter().position(|(c, _)| *c == code) {
            Some(i) => i,
            None if self.codes.len() < ANSWER_CODES_MAX - 1 || code == OTHER_CODE => {
                self.codes.push((code, [0; 2]));
                self.codes.len() - 1
            }
            None => return self.count_n(OTHER_CODE, source, n),
        };
        self.codes[i].1[source as usize] += n;
    }

    /// All answers.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.codes.iter().map(|(_, n)| n[0] + n[1]).sum()
    }

    /// Approvals (00, 08, 10, 11 and the other codes ISO 8583 counts as approved).
    #[must_use]
    pub fn approved(&self) -> u64 {
        self.codes
            .iter()
            .filter(|(c, _)| corridor_wire::ResponseCode(*c).is_approval())
            .map(|(_, n)| n[0] + n[1])
            .sum()
    }

    /// Answers the switch made.
    #[must_use]
    pub fn by_switch(&self) -> u64 {
        self.codes.iter().map(|(_, n)| n[Source::Switch as usize]).sum()
    }
}

/// One destination participant's figures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Destination {
    /// Requests forwarded to it.
    pub forwarded: u64,
    /// Answers to requests routed to it, by code and source.
    pub answers: Answers,
    /// Time from a request's arrival to its answer (relayed, or the switch's on timeout).
    pub latency: Histogram,
    /// Time from forwarding to the destination's response.
    pub destination_latency: Histogram,
    /// Requests to it that timed out.
    pub timeouts: u64,
}

impl Destination {
    fn add(&mut self, o: &Self) {
        self.forwarded += o.forwarded;
        for (code, n) in &o.answers.codes {
            for (source, &k) in [Source::Destination, Source::Switch].into_iter().zip(n) {
                if k > 0 {
                    self.answers.count_n(*code, source, k);
                }
            }
        }
        self.latency.add(&o.latency);
        self.destination_latency.add(&o.destination_latency);
        self.timeouts += o.timeouts;
    }
}

/// The engine's measurements. See the module docs.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    /// Per destination participant (by index); the last entry is for requests answered
    /// before a destination was chosen (no route, a format error, a spoofed id).
    pub destinations: Vec<Destination>,
    /// Per corridor (originating participant, destination participant): request-to-answer
    /// latency, at most [`CORRIDORS_MAX`] pairs.
    pub corridors: FxHashMap<(u32, u32), Histogram>,
    /// Per configured link: requests received, by message class (the MTI's second digit).
    pub requests_in: Vec<[u64; 10]>,
    /// Log lines left out by the throttle.
    pub log_suppressed: u64,
}

impl Metrics {
    /// Adds `o`'s figures to these (the shards' summed into the switch's): tables are
    /// indexed alike on every shard.
    pub fn add(&mut self, o: &Self) {
        let none = o.destinations.last().cloned().unwrap_or_default();
        let n = o.destinations.len().saturating_sub(1);
        if self.destinations.is_empty() {
            self.destinations.push(Destination::default());
        }
        let mine = self.destinations.len() - 1;
        if mine < n {
            let last = self.destinations.pop().unwrap_or_default();
            self.destinations.resize(n, Destination::default());
            self.destinations.push(last);
        }
        for (i, d) in o.destinations.iter().take(n).enumerate() {
            self.destinations[i].add(d);
        }
        if let Some(last) = self.destinations.last_mut() {
            last.add(&none);
        }
        for (k, h) in &o.corridors {
            if let Some(mine) = self.corridors.get_mut(k) {
                mine.add(h);
            } else if self.corridors.len() < CORRIDORS_MAX {
                self.corridors.insert(*k, h.clone());
            }
        }
        if self.requests_in.len() < o.requests_in.len() {
            self.requests_in.resize(o.requests_in.len(), [0; 10]);
        }
        for (a, b) in self.requests_in.iter_mut().zip(&o.requests_in) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
        self.log_suppressed += o.log_suppressed;
    }

    pub(crate) fn new(participants: usize, links: usize) -> Self {
        Self {
            destinations: vec![Destination::default(); participants + 1],
            corridors: FxHashMap::default(),
            requests_in: vec![[0; 10]; links],
            log_suppressed: 0,
        }
    }

    /// Grows the per-participant and per-link tables for a configuration that added some
    /// (indices never move: see `Engine::reconfigure`).
    pub(crate) fn grow(&mut self, participants: usize, links: usize) {
        let none = self.destinations.pop().unwrap_or_default();
        if self.destinations.len() < participants {
            self.destinations.resize(participants, Destination::default());
        }
        self.destinations.push(none);
        if self.requests_in.len() < links {
            self.requests_in.resize(links, [0; 10]);
        }
    }

    /// The destination participants' figures, by participant index (the entry for requests
    /// answered before routing left out).
    pub fn routed(&self) -> impl Iterator<Item = (usize, &Destination)> {
        let n = self.destinations.len().saturating_sub(1);
        self.destinations.iter().take(n).enumerate()
    }

    /// Figures for requests answered before routing.
    #[must_use]
    pub fn unrouted(&self) -> Option<&Destination> {
        self.destinations.last()
    }

    fn dest(&mut self, destination: Option<usize>) -> &mut Destination {
        let last = self.destinations.len() - 1;
        let i = destination.filter(|&d| d < last).unwrap_or(last);
        &mut self.destinations[i]
    }

    pub(crate) fn request_in(&mut self, spec: usize, class: u8) {
        if let Some(r) = self.requests_in.get_mut(spec) {
            r[usize::from(class.min(9))] += 1;
        }
    }

    pub(crate) fn forwarded(&mut self, destination: usize) {
        self.dest(Some(destination)).forwarded += 1;
    }

    /// An answer made without a destination's latency to record (a decline, a replay).
    pub(crate) fn answer(&mut self, destination: Option<usize>, code: [u8; 2], source: Source) {
        self.dest(destination).answers.count(code, source);
    }

    /// A routed request's answer: its code and source, its latency from arrival, its
    /// destination's time when the destination answered.
    pub(crate) fn answered(&mut self, a: Answered) {
        let d = self.dest(Some(a.destination));
        d.answers.count(a.code, a.source);
        d.latency.record(a.total);
        if let Some(t) = a.destination_time {
            d.destination_latency.record(t);
        } else if a.code == corridor_wire::ResponseCode::TIMEOUT.0 {
            d.timeouts += 1;
        }
        let key = (a.origin as u32, a.destination as u32);
        if let Some(h) = self.corridors.get_mut(&key) {
            h.record(a.total);
        } else if self.corridors.len() < CORRIDORS_MAX {
            self.corridors.entry(key).or_default().record(a.total);
        }
    }
}

/// One routed request's answer, for [`Metrics::answered`].
pub(crate) struct Answered {
    pub(crate) origin: usize,
    pub(crate) destination: usize,
    pub(crate) code: [u8; 2],
    pub(crate) source: Source,
    pub(crate) total: Duration,
    pub(crate) destination_time: Option<Duration>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_resolve_tens_of_microseconds_through_seconds() {
        let mut h = Histogram::default();
        h.record(Duration::from_micros(9));
        h.record(Duration::from_micros(10));
        h.record(Duration::from_micros(11));
        h.record(Duration::from_millis(3));
        h.record(Duration::from_secs(120));
        assert_eq!(h.buckets[0], 2, "bounds are inclusive (le)");
        assert_eq!(h.buckets[1], 1);
        assert_eq!(h.buckets[8], 1, "3 ms is in (2.5 ms, 5 ms]");
        assert_eq!(h.buckets[LATENCY_BOUNDS_US.len()], 1, "past the last bound: +Inf");
        assert_eq!(h.count, 5);
        assert_eq!(h.sum_us, 9 + 10 + 11 + 3_000 + 120_000_000);
    }

    #[test]
    fn quantiles_interpolate_within_a_bucket_like_prometheus() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.5), None);
        for _ in 0..100 {
            h.record(Duration::from_micros(300)); // (250, 500]
        }
        let p50 = h.quantile(0.5).unwrap_or_default().as_micros();
        assert_eq!(p50, 375, "halfway through (250, 500]");
        h.record(Duration::from_secs(2));
        let p999 = h.quantile(0.999).unwrap_or_default();
        assert!(p999 > Duration::from_secs(1) && p999 <= Duration::from_micros(2_500_000), "{p999:?}");
        let d = h.since(&h.clone());
        assert_eq!(d.count, 0);
    }

    #[test]
    fn response_codes_are_bounded() {
        let mut a = Answers::default();
        for i in 0..200u8 {
            a.count([b'A' + i % 26, b'A' + i / 26], Source::Destination);
        }
        assert_eq!(a.codes.len(), ANSWER_CODES_MAX);
        assert_eq!(a.total(), 200);
        let other = a.codes.iter().find(|(c, _)| *c == OTHER_CODE).map(|(_, n)| n[0]);
        assert_eq!(other, Some(200 - (ANSWER_CODES_MAX as u64 - 1)));
        a.count(*b"00", Source::Switch);
        assert_eq!(a.approved(), 0, "00 arrived past the bound: counted as other");
    }

    #[test]
    fn shards_figures_add_up() {
        let mut a = Metrics::new(2, 1);
        let mut b = Metrics::new(3, 2);
        a.answered(Answered {
            origin: 0,
            destination: 1,
            code: *b"00",
            source: Source::Destination,
            total: Duration::from_millis(1),
            destination_time: None,
        });
        b.answered(Answered {
            origin: 0,
            destination: 1,
            code: *b"00",
            source: Source::Destination,
            total: Duration::from_millis(2),
            destination_time: None,
        });
        b.answer(None, *b"92", Source::Switch);
        b.request_in(1, 2);
        a.add(&b);
        assert_eq!(a.destinations.len(), 4, "grown to the larger table, the unrouted entry last");
        assert_eq!(a.destinations[1].latency.count, 2);
        assert_eq!(a.destinations[1].answers.approved(), 2);
        assert_eq!(a.unrouted().map(|d| d.answers.by_switch()), Some(1));
        assert_eq!(a.corridors[&(0, 1)].count, 2);
        assert_eq!(a.requests_in[1][2], 1);
    }

    #[test]
    fn corridors_are_bounded() {
        let mut m = Metrics::new(2, 1);
        for o in 0..(CORRIDORS_MAX + 10) {
            m.answered(Answered {
                origin: o,
                destination: 0,
                code: *b"00",
                source: Source::Destination,
                total: Duration::from_millis(1),
                destination_time: Some(Duration::from_millis(1)),
            });
        }
        assert_eq!(m.corridors.len(), CORRIDORS_MAX);
        assert_eq!(m.destinations[0].latency.count, CORRIDORS_MAX as u64 + 10);
        m.answer(None, *b"92", Source::Switch);
        assert_eq!(m.unrouted().map(|d| d.answers.by_switch()), Some(1));
    }
}
