//! The live view: one snapshot of the switch a second, turned into rates, windowed
//! percentiles, series for the page's charts, and anomalies against a rolling baseline.
//!
//! Sans-IO like the engine: [`Monitor::observe`] takes a snapshot and the wall-clock time and
//! returns what changed; the admin thread calls it once a second and logs the changes. Every
//! collection is bounded: [`SERIES_LEN`] samples, [`WINDOW`] + 1 snapshots, [`RECENT_MAX`]
//! past anomalies, anomalies active at most one per kind per destination or link.
//!
//! Anomalies (each starts and ends with one log line, is shown on the page and is exported
//! as `corridor_anomaly_active`):
//!
//! - `approval_drop`: a destination's approval rate over the last [`WINDOW`] seconds is
//!   [`APPROVAL_DROP`] or more below its baseline (an exponentially weighted mean over about
//!   [`BASELINE_SECONDS`]), on at least [`ANSWERS_MIN`] answers;
//! - `latency_spike`: a destination's p99 over the window is [`SPIKE_FACTOR`] times its
//!   baseline p99 and above [`SPIKE_FLOOR_US`];
//! - `timeouts_rising`: a destination had [`TIMEOUTS_MIN`] or more timeouts in the window,
//!   [`SPIKE_FACTOR`] times its baseline rate;
//! - `link_flapping`: a configured link made [`FLAPS_MIN`] or more connections in the last
//!   [`FLAP_WINDOW`] seconds;
//! - `saf_growing`: store-and-forward grew by [`SAF_GROWTH_MIN`] or more over the last
//!   [`SAF_WINDOW`] seconds, or its oldest entry is older than [`SAF_AGE_MAX`].

use std::{
    collections::{BTreeMap, VecDeque},
    time::Duration,
};

use corridor_engine::metrics::{Histogram, Metrics};
use corridor_net::Snapshot;
use serde::Serialize;

use super::exposition::decline_reason;

/// Samples kept for the charts: five minutes at one a second.
pub(crate) const SERIES_LEN: usize = 300;
/// The window rates and percentiles are taken over, in samples (seconds).
pub(crate) const WINDOW: usize = 10;
/// Baselines follow about this many seconds of history.
pub(crate) const BASELINE_SECONDS: f64 = 300.0;
/// Seconds of baseline before an anomaly may be declared against it.
pub(crate) const BASELINE_WARMUP: u32 = 30;
/// Fewest answers in the window for a destination's approval rate to count.
pub(crate) const ANSWERS_MIN: u64 = 20;
/// An approval rate this far below its baseline (a fraction: 0.2 is 20 points) is a drop.
pub(crate) const APPROVAL_DROP: f64 = 0.2;
/// A p99 or a timeout rate this many times its baseline is a spike.
pub(crate) const SPIKE_FACTOR: f64 = 3.0;
/// ... and a p99 must be above this to be one (a switch at 200 µs is not spiking at 600).
pub(crate) const SPIKE_FLOOR_US: f64 = 20_000.0;
/// Fewest timeouts in the window for `timeouts_rising`.
pub(crate) const TIMEOUTS_MIN: u64 = 5;
/// Connections made within [`FLAP_WINDOW`] that make a link flap.
pub(crate) const FLAPS_MIN: u64 = 3;
/// The flapping window, in seconds.
pub(crate) const FLAP_WINDOW: usize = 60;
/// Store-and-forward growth over [`SAF_WINDOW`] that counts as growing.
pub(crate) const SAF_GROWTH_MIN: usize = 10;
/// The store-and-forward window, in seconds.
pub(crate) const SAF_WINDOW: usize = 30;
/// An oldest store-and-forward entry past this age counts as growing too.
pub(crate) const SAF_AGE_MAX: Duration = Duration::from_secs(600);
/// Past anomalies kept for the page.
pub(crate) const RECENT_MAX: usize = 50;

/// What kind of anomaly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    ApprovalDrop,
    LatencySpike,
    TimeoutsRising,
    LinkFlapping,
    SafGrowing,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::ApprovalDrop => "approval_drop",
            Self::LatencySpike => "latency_spike",
            Self::TimeoutsRising => "timeouts_rising",
            Self::LinkFlapping => "link_flapping",
            Self::SafGrowing => "saf_growing",
        }
    }
}

/// An anomaly: active (no `ended`) or past.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct Anomaly {
    pub(crate) kind: Kind,
    /// The destination participant, the link, or `switch`.
    pub(crate) subject: String,
    /// What was seen, in words with the figures.
    pub(crate) detail: String,
    pub(crate) started_unix_ms: u64,
    pub(crate) ended_unix_ms: Option<u64>,
}

/// A start or an end, for the log.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Change {
    Started(Anomaly),
    Ended(Anomaly),
}

/// A figure for one destination over the window.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct DestinationView {
    pub(crate) name: String,
    pub(crate) answers_per_s: f64,
    pub(crate) approval_rate: Option<f64>,
    pub(crate) p50_ms: Option<f64>,
    pub(crate) p99_ms: Option<f64>,
    pub(crate) timeouts: u64,
}

/// A corridor (originator, destination) over the window.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct CorridorView {
    pub(crate) from: String,
    pub(crate) to: String,
    /// The directory's markets of the two, and the flow they make.
    pub(crate) from_market: String,
    pub(crate) to_market: String,
    pub(crate) flow: &'static str,
    pub(crate) answers: u64,
    pub(crate) p50_ms: Option<f64>,
    pub(crate) p99_ms: Option<f64>,
}

/// A configured link now.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct LinkView {
    pub(crate) name: String,
    pub(crate) participant: String,
    pub(crate) mode: &'static str,
    pub(crate) state: &'static str,
    pub(crate) connections: usize,
    pub(crate) signed_on: usize,
    pub(crate) inflight_in: u64,
    pub(crate) inflight_out: u64,
    /// Milliseconds since any of its connections last received something.
    pub(crate) idle_ms: Option<u64>,
    pub(crate) frames_in: u64,
    pub(crate) frames_out: u64,
}

/// A shard of a cluster node: its replication in the stream and its lease.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct ReplicaView {
    pub(crate) shard: u16,
    pub(crate) replicating: bool,
    /// Records synced here and not yet acknowledged by the stream.
    pub(crate) unreplicated: u64,
    /// The stream's acknowledgement after the local sync, since start.
    pub(crate) append_p50_ms: Option<f64>,
    pub(crate) append_p99_ms: Option<f64>,
    /// Since the lease was last renewed.
    pub(crate) lease_age_ms: Option<u64>,
    pub(crate) lease_taken: u64,
    pub(crate) lease_renew_failures: u64,
    /// Release marks published, and those published again because the bucket did not
    /// acknowledge them (lost).
    pub(crate) release_marks: u64,
    pub(crate) release_marks_again: u64,
}

/// Totals since start.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Totals {
    pub(crate) requests_in: u64,
    pub(crate) forwarded: u64,
    pub(crate) answered: u64,
    pub(crate) approved: u64,
    pub(crate) by_switch: u64,
    pub(crate) timeouts: u64,
    pub(crate) duplicates_replayed: u64,
}

/// What the page shows, sent once a second.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct View {
    pub(crate) at_unix_ms: u64,
    pub(crate) totals: Totals,
    pub(crate) tps: f64,
    pub(crate) approval_rate: Option<f64>,
    pub(crate) p50_ms: Option<f64>,
    pub(crate) p99_ms: Option<f64>,
    /// Switch-made declines since start, by reason.
    pub(crate) declines: BTreeMap<&'static str, u64>,
    pub(crate) destinations: Vec<DestinationView>,
    pub(crate) corridors: Vec<CorridorView>,
    pub(crate) links: Vec<LinkView>,
    pub(crate) requests_pending: usize,
    pub(crate) saf_depth: usize,
    pub(crate) saf_oldest_s: Option<f64>,
    pub(crate) exceptions: usize,
    pub(crate) draining: bool,
    /// A node of a cluster: its shards' replication and leases (empty on a single node).
    pub(crate) cluster: Vec<ReplicaView>,
    pub(crate) anomalies: Vec<Anomaly>,
    pub(crate) recent_anomalies: Vec<Anomaly>,
    /// The charts: one point a second, oldest first.
    pub(crate) series: Series,
}

/// The charts' points.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Series {
    pub(crate) t_unix_ms: VecDeque<u64>,
    pub(crate) tps: VecDeque<f64>,
    pub(crate) p99_ms: VecDeque<Option<f64>>,
    pub(crate) approval_rate: VecDeque<Option<f64>>,
}

#[derive(Clone, Debug, Default)]
struct Baseline {
    approval: Option<f64>,
    p99_us: Option<f64>,
    timeouts_per_window: Option<f64>,
    samples: u32,
}

impl Baseline {
    fn follow(slot: &mut Option<f64>, x: f64) {
        let a = 1.0 / BASELINE_SECONDS;
        *slot = Some(slot.map_or(x, |b| b + a * (x - b)));
    }
}

/// The live view's state. See the module docs.
#[derive(Default)]
pub(crate) struct Monitor {
    /// The last snapshots (at most [`FLAP_WINDOW`] + 1), newest last, with their wall time.
    history: VecDeque<(u64, Snapshot)>,
    series: Series,
    baselines: BTreeMap<String, Baseline>,
    active: BTreeMap<(Kind, String), Anomaly>,
    recent: VecDeque<Anomaly>,
    view: View,
}

fn ms(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64() * 1e3)
}

fn window_hist(now: &Histogram, then: Option<&Histogram>) -> Histogram {
    match then {
        Some(t) => now.since(t),
        None => now.clone(),
    }
}

fn total_latency(m: &Metrics) -> Histogram {
    let mut h = Histogram::default();
    for d in &m.destinations {
        h.add(&d.latency);
    }
    h
}

/// One second as [`Monitor::observe`] judges it: this second's snapshot, the one before,
/// the one a window back, the oldest kept (the flap window) and the one the
/// store-and-forward window back.
struct Second<'a> {
    now: &'a Snapshot,
    prev: Option<&'a Snapshot>,
    win: Option<&'a Snapshot>,
    oldest: &'a Snapshot,
    saf_then: Option<&'a Snapshot>,
    unix_ms: u64,
}

impl Second<'_> {
    /// Participant `i`'s id, or `none`.
    fn participant(&self, i: usize) -> String {
        self.now.participant(i).to_owned()
    }
}

/// Seconds between two snapshots (at least a millisecond).
fn secs(a: &Snapshot, b: &Snapshot) -> f64 {
    a.at.saturating_duration_since(b.at).as_secs_f64().max(1e-3)
}

/// Each market corridor's row over the window (originator, destination, their markets and
/// the flow).
fn corridors(sec: &Second<'_>) -> Vec<CorridorView> {
    let (now, win) = (sec.now, sec.win);
    let participant = |i: usize| sec.participant(i);
    let m = &now.metrics;
    let mut corridors: Vec<CorridorView> = m
        .corridors
        .iter()
        .filter_map(|(&(o, d), h)| {
            let then = win.and_then(|w| w.metrics.corridors.get(&(o, d)));
            let h = window_hist(h, then);
            let market = |i: usize| now.markets.get(i).copied().flatten();
            let text =
                |m: Option<[u8; 2]>| m.map(|m| String::from_utf8_lossy(&m).into_owned()).unwrap_or_default();
            (h.count > 0).then(|| CorridorView {
                from: participant(o as usize),
                to: participant(d as usize),
                from_market: text(market(o as usize)),
                to_market: text(market(d as usize)),
                flow: corridor_engine::config::flow(market(o as usize), market(d as usize), now.home_market),
                answers: h.count,
                p50_ms: ms(h.quantile(0.5)),
                p99_ms: ms(h.quantile(0.99)),
            })
        })
        .collect();
    corridors.sort_by(|a, b| (&a.from, &a.to).cmp(&(&b.from, &b.to)));
    corridors
}

impl Monitor {
    /// The view as of the last snapshot.
    pub(crate) fn view(&self) -> &View {
        &self.view
    }

    /// Anomalies active now.
    pub(crate) fn active(&self) -> Vec<Anomaly> {
        self.active.values().cloned().collect()
    }

    /// Takes the snapshot of this second; returns the anomalies that started or ended.
    pub(crate) fn observe(&mut self, snap: Snapshot, unix_ms: u64) -> Vec<Change> {
        self.history.push_back((unix_ms, snap));
        while self.history.len() > FLAP_WINDOW + 1 {
            self.history.pop_front();
        }
        // Taken out while this second is judged (the judging updates the rest of `self`).
        let history = std::mem::take(&mut self.history);
        let n = history.len();
        let back = |k: usize| history.get(n.saturating_sub(1 + k)).filter(|_| n > k).map(|(_, s)| s);
        let sec = Second {
            now: &history[n - 1].1,
            prev: back(1),
            win: back(WINDOW.min(n - 1)).filter(|_| n > 1),
            oldest: &history[0].1,
            saf_then: back(SAF_WINDOW.min(n - 1)),
            unix_ms,
        };
        let (now, prev, win) = (sec.now, sec.prev, sec.win);

        // Totals and rates.
        let m = &now.metrics;
        let answered: u64 = m.destinations.iter().map(|d| d.answers.total()).sum();
        let approved: u64 = m.destinations.iter().map(|d| d.answers.approved()).sum();
        let by_switch: u64 = m.destinations.iter().map(|d| d.answers.by_switch()).sum();
        let totals = Totals {
            requests_in: now.stats.requests_in,
            forwarded: now.stats.forwarded,
            answered,
            approved,
            by_switch,
            timeouts: now.stats.timeouts,
            duplicates_replayed: now.stats.duplicates_replayed,
        };
        let tps = prev.map_or(0.0, |p| {
            (now.stats.requests_in.saturating_sub(p.stats.requests_in)) as f64 / secs(now, p)
        });
        let (w_answered, w_approved) = win.map_or((answered, approved), |w| {
            let a: u64 = w.metrics.destinations.iter().map(|d| d.answers.total()).sum();
            let b: u64 = w.metrics.destinations.iter().map(|d| d.answers.approved()).sum();
            (answered.saturating_sub(a), approved.saturating_sub(b))
        });
        let approval_rate = (w_answered > 0).then(|| w_approved as f64 / w_answered as f64);
        let all_now = total_latency(m);
        let all_win = win.map(|w| total_latency(&w.metrics));
        let overall = window_hist(&all_now, all_win.as_ref());
        // The chart's p99 is over the last second (the window smooths the table's).
        let all_prev = prev.map(|p| total_latency(&p.metrics));
        let second = window_hist(&all_now, all_prev.as_ref());

        let mut changes = Vec::new();
        let destinations = self.destinations(&sec, &mut changes);
        let corridors = corridors(&sec);
        let links = self.links(&sec, &mut changes);
        self.saf(&sec, &mut changes);
        self.push_series(&sec, tps, ms(second.quantile(0.99)), (answered, approved));

        let declines = corridor_engine::stats::DECLINE_CODES
            .iter()
            .zip(now.stats.declines.iter())
            .map(|(c, &v)| (decline_reason(c.0), v))
            .collect();
        self.view = View {
            at_unix_ms: unix_ms,
            totals,
            tps,
            approval_rate,
            p50_ms: ms(overall.quantile(0.5)),
            p99_ms: ms(overall.quantile(0.99)),
            declines,
            destinations,
            corridors,
            links,
            requests_pending: now.requests_pending,
            saf_depth: now.saf_depth,
            saf_oldest_s: now.saf_oldest.map(|d| d.as_secs_f64()),
            exceptions: now.exceptions,
            draining: now.draining,
            cluster: now
                .journal
                .replicas
                .iter()
                .map(|m| ReplicaView {
                    shard: m.shard,
                    replicating: m.replicating,
                    unreplicated: m.synced.saturating_sub(m.acknowledged),
                    append_p50_ms: ms(m.append.quantile(0.5)),
                    append_p99_ms: ms(m.append.quantile(0.99)),
                    lease_age_ms: m.lease.map(|l| {
                        u64::try_from(now.at.saturating_duration_since(l.renewed).as_millis())
                            .unwrap_or(u64::MAX)
                    }),
                    lease_taken: m.lease.map_or(0, |l| l.taken),
                    lease_renew_failures: m.lease.map_or(0, |l| l.renew_failures),
                    release_marks: m.marks,
                    release_marks_again: m.marks_again.load(std::sync::atomic::Ordering::Relaxed),
                })
                .collect(),
            anomalies: self.active(),
            recent_anomalies: self.recent.iter().rev().cloned().collect(),
            series: self.series.clone(),
        };
        self.history = history;
        changes
    }

    /// Each destination's row over the window, and its anomalies judged against its
    /// baseline: approval drop, latency spike, timeouts rising.
    fn destinations(&mut self, sec: &Second<'_>, changes: &mut Vec<Change>) -> Vec<DestinationView> {
        let (now, win, unix_ms) = (sec.now, sec.win, sec.unix_ms);
        let participant = |i: usize| sec.participant(i);
        let mut destinations = Vec::new();
        let warm_secs = win.map_or(1.0, |w| secs(now, w));
        for (i, d) in now.metrics.routed() {
            if d.answers.total() == 0 && d.forwarded == 0 {
                continue;
            }
            let name = participant(i);
            let then = win.and_then(|w| w.metrics.destinations.get(i));
            let lat = window_hist(&d.latency, then.map(|t| &t.latency));
            let ans = d.answers.total().saturating_sub(then.map_or(0, |t| t.answers.total()));
            let apr = d.answers.approved().saturating_sub(then.map_or(0, |t| t.answers.approved()));
            let timeouts = d.timeouts.saturating_sub(then.map_or(0, |t| t.timeouts));
            let view = DestinationView {
                name: name.clone(),
                answers_per_s: ans as f64 / warm_secs,
                approval_rate: (ans > 0).then(|| apr as f64 / ans as f64),
                p50_ms: ms(lat.quantile(0.5)),
                p99_ms: ms(lat.quantile(0.99)),
                timeouts,
            };
            let p99_us = lat.quantile(0.99).map(|d| d.as_secs_f64() * 1e6);
            let b = self.baselines.entry(name.clone()).or_default();
            let warm = b.samples >= BASELINE_WARMUP;
            let enough = ans >= ANSWERS_MIN;
            let rate = view.approval_rate;
            // Approval drop.
            let drop = match (warm, enough, rate, b.approval) {
                (true, true, Some(r), Some(base)) if r < base - APPROVAL_DROP => Some(format!(
                    "approval rate {:.0}% over {WINDOW} s against a baseline of {:.0}%",
                    r * 100.0,
                    base * 100.0
                )),
                _ => None,
            };
            let recovered = |r: Option<f64>, base: Option<f64>| match (r, base) {
                (Some(r), Some(base)) => r >= base - APPROVAL_DROP / 2.0,
                _ => true,
            };
            let drop_ended = recovered(rate, b.approval);
            // Latency spike.
            let spike = match (warm, p99_us, b.p99_us) {
                (true, Some(p), Some(base)) if p > SPIKE_FACTOR * base && p > SPIKE_FLOOR_US => {
                    Some(format!(
                        "p99 {:.1} ms over {WINDOW} s against a baseline of {:.1} ms",
                        p / 1e3,
                        base / 1e3
                    ))
                }
                _ => None,
            };
            let spike_ended = match (p99_us, b.p99_us) {
                (Some(p), Some(base)) => p <= (SPIKE_FACTOR - 1.0) * base || p <= SPIKE_FLOOR_US,
                _ => true,
            };
            // Timeouts rising.
            let base_t = b.timeouts_per_window.unwrap_or(0.0);
            let rising = (warm && timeouts >= TIMEOUTS_MIN && timeouts as f64 > SPIKE_FACTOR * base_t)
                .then(|| format!("{timeouts} timeouts in {WINDOW} s against a baseline of {base_t:.1}"));
            let rising_ended = timeouts < TIMEOUTS_MIN / 2 + 1;
            // The baselines follow only what is not anomalous, so a long incident does not
            // become the new normal.
            let quiet = |k: Kind, this: &Self| !this.active.contains_key(&(k, name.clone()));
            let (q_drop, q_spike, q_rise) = (
                quiet(Kind::ApprovalDrop, self),
                quiet(Kind::LatencySpike, self),
                quiet(Kind::TimeoutsRising, self),
            );
            let b = self.baselines.entry(name.clone()).or_default();
            if enough && q_drop && drop.is_none() {
                if let Some(r) = rate {
                    Baseline::follow(&mut b.approval, r);
                }
            }
            if q_spike && spike.is_none() {
                if let Some(p) = p99_us {
                    Baseline::follow(&mut b.p99_us, p);
                }
            }
            if q_rise && rising.is_none() {
                Baseline::follow(&mut b.timeouts_per_window, timeouts as f64);
            }
            b.samples = b.samples.saturating_add(1);
            self.judge(Kind::ApprovalDrop, &name, drop, drop_ended, unix_ms, changes);
            self.judge(Kind::LatencySpike, &name, spike, spike_ended, unix_ms, changes);
            self.judge(Kind::TimeoutsRising, &name, rising, rising_ended, unix_ms, changes);
            destinations.push(view);
        }
        destinations
    }

    /// Each configured link's row, and link flapping (connections made over the flap
    /// window).
    fn links(&mut self, sec: &Second<'_>, changes: &mut Vec<Change>) -> Vec<LinkView> {
        let (now, oldest, unix_ms) = (sec.now, sec.oldest, sec.unix_ms);
        let participant = |i: usize| sec.participant(i);
        let mut links = Vec::new();
        let mut flaps = Vec::new();
        for (spec, (name, p, dial, counts)) in now.specs.iter().enumerate() {
            let conns: Vec<_> = now.links.iter().filter(|l| l.status.spec == spec).collect();
            // A link a reload removed, once its connections are gone, is not shown.
            if !now.configured.get(spec).copied().unwrap_or(true) && conns.is_empty() {
                continue;
            }
            let signed_on = conns.iter().filter(|l| l.status.signed_on).count();
            let draining = conns.iter().any(|l| l.draining());
            let state = match (conns.len(), signed_on, draining) {
                (_, _, true) => "draining",
                (0, _, _) => "down",
                (_, 0, _) => "connected",
                _ => "signed_on",
            };
            let idle_ms = conns
                .iter()
                .map(|l| now.at.saturating_duration_since(l.status.last_rx))
                .min()
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            links.push(LinkView {
                name: name.clone(),
                participant: participant(*p),
                mode: if *dial { "dial" } else { "listen" },
                state,
                connections: conns.len(),
                signed_on,
                inflight_in: conns.iter().map(|l| u64::from(l.status.inflight_in)).sum(),
                inflight_out: conns.iter().map(|l| u64::from(l.status.inflight_out)).sum(),
                idle_ms,
                frames_in: counts.frames_in,
                frames_out: counts.frames_out,
            });
            let before = oldest.specs.get(spec).map_or(0, |s| s.3.connections);
            flaps.push((name.clone(), counts.connections.saturating_sub(before)));
        }
        for (name, made) in flaps {
            let flapping =
                (made >= FLAPS_MIN).then(|| format!("{made} connections in the last {FLAP_WINDOW} s"));
            self.judge(Kind::LinkFlapping, &name, flapping, made <= 1, unix_ms, changes);
        }

        links
    }

    /// Store-and-forward growing, or its oldest entry aging.
    fn saf(&mut self, sec: &Second<'_>, changes: &mut Vec<Change>) {
        let (now, unix_ms) = (sec.now, sec.unix_ms);
        let saf_then = sec.saf_then.map_or(now.saf_depth, |s| s.saf_depth);
        let grew = now.saf_depth.saturating_sub(saf_then);
        let aged = now.saf_oldest.is_some_and(|a| a > SAF_AGE_MAX);
        let growing = if grew >= SAF_GROWTH_MIN {
            Some(format!("store-and-forward grew by {grew} to {} in {SAF_WINDOW} s", now.saf_depth))
        } else if aged {
            Some(format!(
                "the oldest store-and-forward entry is {:.0} s old",
                now.saf_oldest.unwrap_or_default().as_secs_f64()
            ))
        } else {
            None
        };
        let saf_ended = now.saf_depth <= saf_then && !aged;
        self.judge(Kind::SafGrowing, "switch", growing, saf_ended, unix_ms, changes);
    }

    /// The chart's series: this second's rate, p99 and approval rate (over the second).
    fn push_series(
        &mut self,
        sec: &Second<'_>,
        tps: f64,
        p99_ms: Option<f64>,
        (answered, approved): (u64, u64),
    ) {
        let (unix_ms, prev) = (sec.unix_ms, sec.prev);
        self.series.t_unix_ms.push_back(unix_ms);
        self.series.tps.push_back(tps);
        self.series.p99_ms.push_back(p99_ms);
        let second_rate = prev.and_then(|p| {
            let a: u64 = p.metrics.destinations.iter().map(|d| d.answers.total()).sum();
            let b: u64 = p.metrics.destinations.iter().map(|d| d.answers.approved()).sum();
            let (da, db) = (answered.saturating_sub(a), approved.saturating_sub(b));
            (da > 0).then(|| db as f64 / da as f64)
        });
        self.series.approval_rate.push_back(second_rate);
        while self.series.t_unix_ms.len() > SERIES_LEN {
            self.series.t_unix_ms.pop_front();
            self.series.tps.pop_front();
            self.series.p99_ms.pop_front();
            self.series.approval_rate.pop_front();
        }
    }

    /// Starts anomaly (`kind`, `subject`) when `seen` says so and it is not active; ends it
    /// when active and `ended`.
    fn judge(
        &mut self,
        kind: Kind,
        subject: &str,
        seen: Option<String>,
        ended: bool,
        unix_ms: u64,
        changes: &mut Vec<Change>,
    ) {
        let key = (kind, subject.to_owned());
        match (self.active.contains_key(&key), seen) {
            (false, Some(detail)) => {
                let a = Anomaly {
                    kind,
                    subject: subject.to_owned(),
                    detail,
                    started_unix_ms: unix_ms,
                    ended_unix_ms: None,
                };
                self.active.insert(key, a.clone());
                changes.push(Change::Started(a));
            }
            (true, _) if ended => {
                if let Some(mut a) = self.active.remove(&key) {
                    a.ended_unix_ms = Some(unix_ms);
                    self.recent.push_back(a.clone());
                    while self.recent.len() > RECENT_MAX {
                        self.recent.pop_front();
                    }
                    changes.push(Change::Ended(a));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use corridor_engine::{
        metrics::{Destination, Metrics},
        LinkCounts, LinkId, LinkStatus, Stats,
    };
    use corridor_net::{JournalMetrics, LinkSnapshot, Snapshot};

    use super::*;

    /// A world the tests advance a second at a time: one acquirer, one issuer `iss`, one
    /// dialed link, cumulative counters as the switch keeps them.
    struct World {
        t0: Instant,
        secs: u64,
        dest: Destination,
        requests: u64,
        connections: u64,
        saf: usize,
    }

    impl World {
        fn new() -> Self {
            Self {
                t0: Instant::now(),
                secs: 0,
                dest: Destination::default(),
                requests: 0,
                connections: 1,
                saf: 0,
            }
        }

        /// One second of `n` answers, `approved` of them 00, each taking `latency`, and
        /// `timeouts` timeouts.
        fn second(&mut self, n: u64, approved: u64, latency: Duration, timeouts: u64) -> Snapshot {
            self.secs += 1;
            self.requests += n + timeouts;
            let codes = &mut self.dest.answers.codes;
            if codes.is_empty() {
                codes.push((*b"00", [0, 0]));
                codes.push((*b"05", [0, 0]));
                codes.push((*b"68", [0, 0]));
            }
            codes[0].1[0] += approved;
            codes[1].1[0] += n - approved;
            codes[2].1[1] += timeouts;
            self.dest.timeouts += timeouts;
            for _ in 0..n {
                self.dest.latency.record(latency);
            }
            let mut stats = Stats::default();
            stats.requests_in = self.requests;
            let mut counts = LinkCounts::default();
            counts.connections = self.connections;
            let status = LinkStatus {
                spec: 0,
                participant: 1,
                signed_on: true,
                closing: false,
                inflight_out: 0,
                inflight_in: 0,
                held: 0,
                undelivered: 0,
                last_rx: self.t0,
                frames_in: 0,
                frames_out: 0,
            };
            Snapshot {
                at: self.t0 + Duration::from_secs(self.secs),
                stats,
                metrics: Metrics {
                    destinations: vec![Destination::default(), self.dest.clone(), Destination::default()],
                    ..Metrics::default()
                },
                specs: vec![("iss-1".into(), 1, true, counts)],
                configured: vec![true],
                participants: vec!["acq".into(), "iss".into()],
                markets: vec![None, None],
                home_market: None,
                links: vec![LinkSnapshot { id: LinkId(0), name: "iss-1".into(), status }],
                requests_pending: 0,
                saf_depth: self.saf,
                saf_oldest: None,
                exceptions: 0,
                draining: false,
                journaling: false,
                journal: JournalMetrics::default(),
            }
        }
    }

    fn run(m: &mut Monitor, w: &mut World, secs: u64, f: impl Fn(&mut World) -> Snapshot) -> Vec<Change> {
        let mut out = Vec::new();
        for _ in 0..secs {
            let snap = f(w);
            out.extend(m.observe(snap, w.secs * 1000));
        }
        out
    }

    fn kinds(c: &[Change]) -> Vec<(&'static str, bool)> {
        c.iter()
            .map(|c| match c {
                Change::Started(a) => (a.kind.name(), true),
                Change::Ended(a) => (a.kind.name(), false),
            })
            .collect()
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_drop_in_approvals_against_the_baseline_starts_and_ends_once() {
        let (mut m, mut w) = (Monitor::default(), World::new());
        assert!(
            run(&mut m, &mut w, 60, |w| w.second(100, 95, MS, 0)).is_empty(),
            "a steady baseline is quiet"
        );
        let started = run(&mut m, &mut w, 10, |w| w.second(100, 40, MS, 0));
        assert_eq!(kinds(&started), [("approval_drop", true)]);
        let Change::Started(a) = &started[0] else { unreachable!() };
        assert_eq!(a.subject, "iss");
        assert!(a.detail.contains("against a baseline of 95%"), "{}", a.detail);
        assert_eq!(m.active().len(), 1);
        assert!(
            run(&mut m, &mut w, 5, |w| w.second(100, 40, MS, 0)).is_empty(),
            "one start, not one a second"
        );
        let ended = run(&mut m, &mut w, 20, |w| w.second(100, 95, MS, 0));
        assert_eq!(kinds(&ended), [("approval_drop", false)]);
        assert!(m.active().is_empty());
        assert_eq!(m.view().recent_anomalies.len(), 1);
    }

    #[test]
    fn too_few_answers_or_no_baseline_yet_are_no_drop() {
        let (mut m, mut w) = (Monitor::default(), World::new());
        assert!(
            run(&mut m, &mut w, 10, |w| w.second(100, 10, MS, 0)).is_empty(),
            "no baseline before the warm-up"
        );
        let (mut m, mut w) = (Monitor::default(), World::new());
        run(&mut m, &mut w, 60, |w| w.second(100, 95, MS, 0));
        assert!(
            run(&mut m, &mut w, 10, |w| w.second(1, 0, MS, 0)).is_empty(),
            "one answer a second is too few to judge"
        );
    }

    #[test]
    fn a_latency_spike_and_rising_timeouts_are_seen() {
        let (mut m, mut w) = (Monitor::default(), World::new());
        run(&mut m, &mut w, 60, |w| w.second(100, 100, MS, 0));
        let c = run(&mut m, &mut w, 10, |w| w.second(100, 100, Duration::from_millis(200), 0));
        assert_eq!(kinds(&c), [("latency_spike", true)]);
        let c = run(&mut m, &mut w, 20, |w| w.second(100, 100, MS, 0));
        assert_eq!(kinds(&c), [("latency_spike", false)]);
        let c = run(&mut m, &mut w, 5, |w| w.second(100, 100, MS, 3));
        assert_eq!(kinds(&c), [("timeouts_rising", true)]);
        let c = run(&mut m, &mut w, 15, |w| w.second(100, 100, MS, 0));
        assert_eq!(kinds(&c), [("timeouts_rising", false)]);
    }

    #[test]
    fn a_flapping_link_and_a_growing_store_and_forward_are_seen() {
        let (mut m, mut w) = (Monitor::default(), World::new());
        run(&mut m, &mut w, 5, |w| w.second(10, 10, MS, 0));
        let c = run(&mut m, &mut w, 3, |w| {
            w.connections += 1;
            w.second(10, 10, MS, 0)
        });
        assert_eq!(kinds(&c), [("link_flapping", true)]);
        assert!(m.view().anomalies.iter().any(|a| a.subject == "iss-1"));
        let c = run(&mut m, &mut w, 70, |w| w.second(10, 10, MS, 0));
        assert_eq!(kinds(&c), [("link_flapping", false)]);

        let c = run(&mut m, &mut w, 15, |w| {
            w.saf += 1;
            w.second(10, 10, MS, 0)
        });
        assert_eq!(kinds(&c), [("saf_growing", true)]);
        let c = run(&mut m, &mut w, 40, |w| w.second(10, 10, MS, 0));
        assert_eq!(kinds(&c), [("saf_growing", false)]);
    }

    #[test]
    fn the_view_is_bounded_and_its_rates_are_per_second() {
        let (mut m, mut w) = (Monitor::default(), World::new());
        run(&mut m, &mut w, (SERIES_LEN + 100) as u64, |w| w.second(250, 200, MS, 0));
        let v = m.view();
        assert_eq!(v.series.tps.len(), SERIES_LEN);
        assert!((v.tps - 250.0).abs() < 1e-6, "{}", v.tps);
        assert!((v.approval_rate.unwrap() - 0.8).abs() < 1e-9);
        assert_eq!(v.destinations.len(), 1);
        assert!((v.destinations[0].answers_per_s - 250.0).abs() < 1e-6);
        assert_eq!(v.links[0].state, "signed_on");
        assert_eq!(
            (v.totals.answered, v.totals.approved),
            (250 * (SERIES_LEN as u64 + 100), 200 * (SERIES_LEN as u64 + 100))
        );
    }
}
