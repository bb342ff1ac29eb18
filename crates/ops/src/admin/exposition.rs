//! `GET /metrics`: a snapshot of the switch in the Prometheus text format.
//!
//! The official `prometheus-client` crate does the encoding (names, `_total` on counters,
//! units, escaping of the exposition format, `+Inf` buckets); it was chosen over `metrics`
//! because it has no global registry and lets a collector encode values read elsewhere: the
//! engine keeps plain integers and fixed-bucket histograms on its own thread, a scrape takes
//! one snapshot through the switch's handle, and this module turns that snapshot into a
//! registry's output. Nothing here runs on the switch's thread.
//!
//! Labels are bounded: configured link names and participant ids, a direction, a message
//! class digit, a response code (at most `ANSWER_CODES_MAX` per destination), a decline
//! reason, an anomaly kind. Never a PAN, STAN, RRN or terminal id.

use corridor_engine::{
    metrics::{Histogram, Source, LATENCY_BOUNDS_US},
    stats::DECLINE_CODES,
};
use corridor_net::{handle::BATCH_BOUNDS, Snapshot};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet},
    metrics::{counter::ConstCounter, gauge::ConstGauge, MetricType},
    registry::{Registry, Unit},
};

use super::monitor::Anomaly;

/// What the admin layer adds to the switch's snapshot.
#[derive(Clone, Debug, Default)]
pub(crate) struct Extra {
    /// Reloads by outcome: applied, unchanged, refused.
    pub(crate) reloads: [u64; 3],
    /// Anomalies active now.
    pub(crate) anomalies: Vec<Anomaly>,
    /// Lines the admin layer's own log left out (audit lines are never left out).
    pub(crate) log_suppressed: u64,
    /// A node of a cluster: the cluster's configuration as it serves it.
    pub(crate) config: Option<crate::shared_config::ConfigState>,
}

/// The reload outcomes, in [`Extra::reloads`] order.
pub(crate) const RELOAD_OUTCOMES: [&str; 3] = ["applied", "unchanged", "refused"];

/// The name of a decline reason (the switch-made response codes).
pub(crate) fn decline_reason(code: [u8; 2]) -> &'static str {
    match &code {
        b"12" => "invalid_transaction",
        b"13" => "invalid_amount",
        b"61" => "exceeds_limit",
        b"30" => "format_error",
        b"63" => "security_violation",
        b"68" => "timeout",
        b"91" => "destination_unavailable",
        b"92" => "no_route",
        b"94" => "duplicate",
        b"96" => "system_error",
        _ => "other",
    }
}

/// A response code as a label value: two characters, anything but a letter or digit shown
/// as `_` (a peer's DE 39 can be any two bytes).
pub(crate) fn code_label(code: [u8; 2]) -> String {
    code.iter().map(|&b| if b.is_ascii_alphanumeric() || b == b'.' { char::from(b) } else { '_' }).collect()
}

/// The exposition of `snap` and `extra`, in the Prometheus text format.
pub(crate) fn render(snap: Snapshot, extra: Extra) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotCollector { snap, extra }));
    let mut out = String::with_capacity(32 * 1024);
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

#[derive(Debug)]
struct SnapshotCollector {
    snap: Snapshot,
    extra: Extra,
}

type Labels<'a> = Vec<(&'static str, &'a str)>;

/// A counter family: its name (without `_total`), help, and one value per label set.
fn counters(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    values: &[(Labels<'_>, u64)],
) -> Result<(), std::fmt::Error> {
    let mut family = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in values {
        ConstCounter::new(*v).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

fn gauges(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    values: &[(Labels<'_>, f64)],
) -> Result<(), std::fmt::Error> {
    let mut family = enc.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for (labels, v) in values {
        ConstGauge::new(*v).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

/// A latency histogram family in seconds.
fn latency(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    values: &[(Labels<'_>, &Histogram)],
) -> Result<(), std::fmt::Error> {
    let mut family = enc.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
    for (labels, h) in values {
        let mut buckets: Vec<(f64, u64)> =
            LATENCY_BOUNDS_US.iter().zip(h.buckets.iter()).map(|(&b, &n)| (b as f64 / 1e6, n)).collect();
        buckets.push((f64::MAX, h.buckets[LATENCY_BOUNDS_US.len()]));
        let sum = h.sum_us as f64 / 1e6;
        family.encode_family(labels)?.encode_histogram::<NoLabelSet>(sum, h.count, &buckets, None)?;
    }
    Ok(())
}

impl SnapshotCollector {
    /// Requests in, by link, participant and message class.
    fn requests_in(&self, enc: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = &self.snap;
        let m = &s.metrics;
        let participant = |i: usize| s.participant(i);
        let classes = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
        let mut v = Vec::new();
        for (spec, per_class) in m.requests_in.iter().enumerate() {
            let Some((name, p, _, _)) = s.specs.get(spec) else { continue };
            for (class, &n) in per_class.iter().enumerate() {
                if n > 0 {
                    v.push((
                        vec![
                            ("link", name.as_str()),
                            ("participant", participant(*p)),
                            ("mti_class", classes[class]),
                        ],
                        n,
                    ));
                }
            }
        }
        counters(
            enc,
            "corridor_requests",
            "Requests received from links (network management excluded).",
            &v,
        )?;
        Ok(())
    }

    /// Per destination: forwarded, answers by code and source, timeouts, latency.
    fn destinations(&self, enc: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = &self.snap;
        let (st, m) = (&s.stats, &s.metrics);
        let participant = |i: usize| s.participant(i);
        let dest_name = |i: usize| if i + 1 == m.destinations.len() { "none" } else { participant(i) };
        let forwarded: Vec<_> =
            m.routed().map(|(i, d)| (vec![("destination", dest_name(i))], d.forwarded)).collect();
        counters(enc, "corridor_forwarded", "Requests forwarded, by destination participant.", &forwarded)?;
        let codes: Vec<(String, usize, usize)> = m
            .destinations
            .iter()
            .enumerate()
            .flat_map(|(i, d)| {
                d.answers.codes.iter().enumerate().map(move |(j, (c, _))| (code_label(*c), i, j))
            })
            .collect();
        let mut answers = Vec::new();
        for (label, i, j) in &codes {
            let (_, n) = &m.destinations[*i].answers.codes[*j];
            for source in [Source::Destination, Source::Switch] {
                let count = n[source as usize];
                if count > 0 {
                    answers.push((
                        vec![
                            ("destination", dest_name(*i)),
                            ("source", source.name()),
                            ("code", label.as_str()),
                        ],
                        count,
                    ));
                }
            }
        }
        counters(
        enc,
        "corridor_answers",
        "Answers to originators, by destination, response code and who made them (destination or switch).",
        &answers,
    )?;
        let timeouts: Vec<_> =
            m.routed().map(|(i, d)| (vec![("destination", dest_name(i))], d.timeouts)).collect();
        counters(
            enc,
            "corridor_timeouts",
            "Requests the destination did not answer in time (answered 68, reversed).",
            &timeouts,
        )?;
        let declines: Vec<_> = DECLINE_CODES
            .iter()
            .zip(st.declines.iter())
            .map(|(c, &n)| (vec![("reason", decline_reason(c.0))], n))
            .collect();
        counters(enc, "corridor_declines", "Switch-made declines, by reason.", &declines)?;
        let routed: Vec<_> = m
            .routed()
            .filter(|(_, d)| d.latency.count > 0)
            .map(|(i, d)| (vec![("destination", dest_name(i))], &d.latency))
            .collect();
        latency(
            enc,
            "corridor_request_duration",
            "Time from a request's arrival to its answer, by destination participant.",
            &routed,
        )?;
        let dest: Vec<_> = m
            .routed()
            .filter(|(_, d)| d.destination_latency.count > 0)
            .map(|(i, d)| (vec![("destination", dest_name(i))], &d.destination_latency))
            .collect();
        latency(
            enc,
            "corridor_destination_duration",
            "Time from forwarding a request to its destination's response, by destination participant.",
            &dest,
        )?;
        Ok(())
    }

    /// Market pairs: answers per originator's and destination's market and the flow they
    /// make (the directory's markets; a participant without one is "none").
    fn market_pairs(&self, enc: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = &self.snap;
        let m = &s.metrics;
        let mut pairs: std::collections::BTreeMap<(String, String, &'static str), u64> = Default::default();
        for (&(o, d), h) in &m.corridors {
            let market = |i: u32| s.markets.get(i as usize).copied().flatten();
            let text = |mk: Option<[u8; 2]>| {
                mk.map_or_else(|| "none".to_owned(), |m| String::from_utf8_lossy(&m).into_owned())
            };
            let flow = corridor_engine::config::flow(market(o), market(d), s.home_market);
            *pairs
                .entry((text(market(o)), text(market(d)), if flow.is_empty() { "unknown" } else { flow }))
                .or_default() += h.count;
        }
        let pairs: Vec<_> = pairs
            .iter()
            .map(|((f, t, flow), n)| {
                (vec![("from_market", f.as_str()), ("to_market", t.as_str()), ("flow", *flow)], *n)
            })
            .collect();
        counters(
        enc,
        "corridor_market_answers",
        "Answers to originators, by the originator's and the destination's market and the flow (inbound, outbound, third-market, domestic).",
        &pairs,
    )?;
        Ok(())
    }

    /// Links: by state, in flight, connections and frames.
    fn links(&self, enc: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = &self.snap;
        let mut states = Vec::new();
        let mut inflight = Vec::new();
        for (spec, (name, _, dial, _)) in s.specs.iter().enumerate() {
            let conns: Vec<_> = s.links.iter().filter(|l| l.status.spec == spec).collect();
            // A link a reload removed, once its connections are gone, has no state to show.
            if !s.configured.get(spec).copied().unwrap_or(true) && conns.is_empty() {
                continue;
            }
            let connected = conns.len() as f64;
            let signed = conns.iter().filter(|l| l.status.signed_on).count() as f64;
            let draining = conns.iter().filter(|l| l.draining()).count() as f64;
            let mode = if *dial { "dial" } else { "listen" };
            states.push((vec![("link", name.as_str()), ("mode", mode), ("state", "connected")], connected));
            states.push((vec![("link", name.as_str()), ("mode", mode), ("state", "signed_on")], signed));
            states.push((vec![("link", name.as_str()), ("mode", mode), ("state", "draining")], draining));
            let out: u64 = conns.iter().map(|l| u64::from(l.status.inflight_out)).sum();
            let inn: u64 = conns.iter().map(|l| u64::from(l.status.inflight_in)).sum();
            inflight.push((vec![("link", name.as_str()), ("direction", "out")], out as f64));
            inflight.push((vec![("link", name.as_str()), ("direction", "in")], inn as f64));
        }
        gauges(
            enc,
            "corridor_link_connections",
            "Open connections of each configured link, by state.",
            None,
            &states,
        )?;
        gauges(
            enc,
            "corridor_link_inflight",
            "Requests in flight on each configured link: forwarded on it (out) or received on it (in).",
            None,
            &inflight,
        )?;
        let made: Vec<_> =
            s.specs.iter().map(|(n, _, _, c)| (vec![("link", n.as_str())], c.connections)).collect();
        counters(enc, "corridor_link_connections_opened", "Connections made (accepted or dialed).", &made)?;
        let rx: Vec<_> = s
            .specs
            .iter()
            .flat_map(|(n, _, _, c)| {
                [
                    (vec![("link", n.as_str()), ("direction", "in")], c.frames_in),
                    (vec![("link", n.as_str()), ("direction", "out")], c.frames_out),
                ]
            })
            .collect();
        counters(enc, "corridor_link_frames", "Frames received (in) and written (out), by link.", &rx)?;
        Ok(())
    }

    /// Switch-wide counters.
    fn switch_counters(&self, enc: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = &self.snap;
        let (st, m) = (&s.stats, &s.metrics);
        let one = |v: u64| [(Vec::new(), v)];
        for (name, help, value) in [
            ("corridor_relayed", "Destination responses relayed to their originator.", st.relayed),
            (
                "corridor_duplicates_replayed",
                "Repeats of completed requests answered from their stored outcome.",
                st.duplicates_replayed,
            ),
            (
                "corridor_late_responses",
                "Responses that came after their request timed out (never relayed).",
                st.late_responses,
            ),
            (
                "corridor_unmatched_responses",
                "Responses that matched nothing in flight.",
                st.unmatched_responses,
            ),
            (
                "corridor_undeliverable",
                "Answers whose originator was gone (approvals among them reversed).",
                st.undeliverable,
            ),
            (
                "corridor_unrelayable",
                "Responses that could not be encoded for their originator (answered 96).",
                st.unrelayable,
            ),
            (
                "corridor_approvals_reversed",
                "Late or undeliverable approvals the switch reversed.",
                st.approvals_reversed,
            ),
            ("corridor_saf_queued", "Reversals and advices put in store-and-forward.", st.saf_queued),
            (
                "corridor_reversals_sent",
                "Reversals and advices sent (first transmissions and repeats).",
                st.reversals_sent,
            ),
            (
                "corridor_reversals_acknowledged",
                "Reversals and advices acknowledged by their destination.",
                st.reversals_acked,
            ),
            (
                "corridor_reversals_abandoned",
                "Reversals and advices moved to the exception queue.",
                st.reversals_abandoned,
            ),
            (
                "corridor_framing_errors",
                "Frames that broke the framing (their links closed).",
                st.framing_errors,
            ),
            ("corridor_format_errors", "Bodies that broke the field dictionary.", st.format_errors),
            (
                "corridor_inflight_limit_hits",
                "Requests declined at a link's or participant's in-flight limit.",
                st.inflight_limit_hits,
            ),
            (
                "corridor_requests_held",
                "Requests held while their originator was at its in-flight limit.",
                st.requests_held,
            ),
            ("corridor_network_answered", "Network management messages answered.", st.network_answered),
            ("corridor_echo_failures", "Links closed for missing echoes.", st.echo_failures),
            ("corridor_sign_on_timeouts", "Links closed for not signing on in time.", st.sign_on_timeouts),
            ("corridor_frame_timeouts", "Links closed for a frame left unfinished.", st.frame_timeouts),
            (
                "corridor_connections_displaced",
                "Connections closed to make room for a new one at their link's connection limit.",
                st.displaced,
            ),
            (
                "corridor_unresponsive_links",
                "Links taken out of routing after timeouts in a row.",
                st.unresponsive_links,
            ),
            (
                "corridor_storage_declines",
                "Requests declined 96 because the journal's disk was full or, in a cluster, its replication was paused (stream not ready, lease not renewed).",
                st.storage_declines,
            ),
            ("corridor_journal_records", "Journal records written.", st.journal_records),
            ("corridor_journal_batches", "Journal batches written and synced.", st.journal_batches),
            (
                "corridor_log_lines_suppressed",
                "Log lines left out by aggregation (one line per link per kind per interval).",
                m.log_suppressed + self.extra.log_suppressed,
            ),
        ] {
            counters(enc, name, help, &one(value))?;
        }
        let reloads: Vec<_> = RELOAD_OUTCOMES
            .iter()
            .zip(self.extra.reloads.iter())
            .map(|(o, &n)| (vec![("outcome", *o)], n))
            .collect();
        counters(enc, "corridor_reloads", "Configuration reloads, by outcome.", &reloads)?;
        Ok(())
    }

    /// Queues and state.
    fn queues(&self, enc: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = &self.snap;
        let g = |v: f64| [(Vec::new(), v)];
        gauges(
            enc,
            "corridor_requests_pending",
            "Requests forwarded and not yet answered.",
            None,
            &g(s.requests_pending as f64),
        )?;
        gauges(
            enc,
            "corridor_saf_depth",
            "Store-and-forward entries awaiting acknowledgement.",
            None,
            &g(s.saf_depth as f64),
        )?;
        let oldest = s.saf_oldest.map_or(0.0, |d| d.as_secs_f64());
        gauges(
            enc,
            "corridor_saf_oldest_age",
            "Age of the oldest store-and-forward entry (0 when none).",
            Some(&Unit::Seconds),
            &g(oldest),
        )?;
        gauges(
            enc,
            "corridor_exceptions",
            "Entries in the exception queue, awaiting an operator.",
            None,
            &g(s.exceptions as f64),
        )?;
        gauges(
            enc,
            "corridor_draining",
            "1 while the switch drains.",
            None,
            &g(f64::from(u8::from(s.draining))),
        )?;
        if s.journaling {
            gauges(
                enc,
                "corridor_journal_disk_full",
                "1 while the journal's disk is full.",
                None,
                &g(f64::from(u8::from(s.journal.full))),
            )?;
            if let Some(replicating) = s.journal.replicating() {
                gauges(
                    enc,
                    "corridor_cluster_replicating",
                    "1 while every shard's journal is replicated in the cluster's stream (0: answers wait for it).",
                    None,
                    &g(f64::from(u8::from(replicating))),
                )?;
                self.replicas(enc)?;
            }
            if let Some(c) = &self.extra.config {
                self.cluster_config(enc, c)?;
            }
            latency(
                enc,
                "corridor_journal_sync_duration",
                "Time to write and sync one journal batch.",
                &[(Vec::new(), &s.journal.sync)],
            )?;
            let mut family = enc.encode_descriptor(
                "corridor_journal_batch_records",
                "Records per journal batch.",
                None,
                MetricType::Histogram,
            )?;
            let mut buckets: Vec<(f64, u64)> = BATCH_BOUNDS
                .iter()
                .zip(s.journal.batch_records.iter())
                .map(|(&b, &n)| (b as f64, n))
                .collect();
            buckets.push((f64::MAX, s.journal.batch_records[BATCH_BOUNDS.len()]));
            let count: u64 = s.journal.batch_records.iter().sum();
            family.encode_histogram::<NoLabelSet>(
                s.journal.batch_records_sum as f64,
                count,
                &buckets,
                None,
            )?;
        }
        let anomalies: Vec<_> = self
            .extra
            .anomalies
            .iter()
            .map(|a| (vec![("kind", a.kind.name()), ("subject", a.subject.as_str())], 1.0))
            .collect();
        gauges(
            enc,
            "corridor_anomaly_active",
            "Anomalies the switch sees now against its rolling baseline (1 while active).",
            None,
            &anomalies,
        )?;
        Ok(())
    }
}

impl SnapshotCollector {
    /// A node of a cluster: the cluster's configuration, as this node serves it.
    fn cluster_config(
        &self,
        enc: &mut DescriptorEncoder<'_>,
        c: &crate::shared_config::ConfigState,
    ) -> Result<(), std::fmt::Error> {
        gauges(
            enc,
            "corridor_cluster_config_revision",
            "The revision of the cluster's configuration this node serves.",
            None,
            &[(Vec::new(), c.revision as f64)],
        )?;
        gauges(
            enc,
            "corridor_cluster_config_latest_revision",
            "The newest revision of the cluster's configuration this node has seen published.",
            None,
            &[(Vec::new(), c.latest as f64)],
        )?;
        counters(
            enc,
            "corridor_cluster_config_applied",
            "Revisions of the cluster's configuration published by another node and applied here.",
            &[(Vec::new(), c.applied)],
        )?;
        counters(
            enc,
            "corridor_cluster_config_refused",
            "Revisions of the cluster's configuration this node could not apply (it serves the one before).",
            &[(Vec::new(), c.refused)],
        )
    }

    /// A node of a cluster: each shard's replication and lease.
    fn replicas(&self, enc: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = &self.snap;
        let shards: Vec<String> = s.journal.replicas.iter().map(|m| m.shard.to_string()).collect();
        // Each shard's value (a shard without one left out), labelled with the shard.
        fn per_shard<'a, T>(
            replicas: &'a [corridor_net::ReplicaMetrics],
            shards: &'a [String],
            f: impl Fn(&'a corridor_net::ReplicaMetrics) -> Option<T>,
        ) -> Vec<(Labels<'a>, T)> {
            replicas
                .iter()
                .zip(shards)
                .filter_map(|(m, id)| Some((vec![("shard", id.as_str())], f(m)?)))
                .collect()
        }
        let r = s.journal.replicas.as_slice();
        latency(
            enc,
            "corridor_cluster_append_duration",
            "Time from a journal batch's local sync to the cluster stream's acknowledgement of it.",
            &per_shard(r, &shards, |m| Some(&m.append)),
        )?;
        counters(
            enc,
            "corridor_cluster_append_retries",
            "Journal appends the cluster's stream did not acknowledge at the first try.",
            &per_shard(r, &shards, |m| Some(m.append_retries)),
        )?;
        counters(
            enc,
            "corridor_cluster_checkpoints",
            "Checkpoints this node appended to the shard's subject (a takeover reads from the last).",
            &per_shard(r, &shards, |m| Some(m.checkpoints)),
        )?;
        gauges(
            enc,
            "corridor_cluster_checkpoint_record",
            "The last journal record the newest checkpoint this node appended to the shard's subject covers.",
            None,
            &per_shard(r, &shards, |m| Some(m.checkpoint as f64)),
        )?;
        counters(
            enc,
            "corridor_cluster_purged_messages",
            "Messages this node purged from the shard's subject (before a checkpoint retention no longer keeps).",
            &per_shard(r, &shards, |m| Some(m.purged)),
        )?;
        counters(
            enc,
            "corridor_cluster_release_marks",
            "Release marks this node published for the shard (before a batch relaying an approval is released).",
            &per_shard(r, &shards, |m| Some(m.marks)),
        )?;
        counters(
            enc,
            "corridor_cluster_release_marks_again",
            "Release marks this node published again for the shard because the bucket did not acknowledge them.",
            &per_shard(r, &shards, |m| Some(m.marks_again.load(std::sync::atomic::Ordering::Relaxed))),
        )?;
        gauges(
            enc,
            "corridor_cluster_release_mark_record",
            "The last journal record the shard's newest release mark from this node covers.",
            None,
            &per_shard(r, &shards, |m| Some(m.marked as f64)),
        )?;
        latency(
            enc,
            "corridor_cluster_release_mark_duration",
            "Time to write a release mark to the node's NATS connection, between the stream's acknowledgement and the release.",
            &per_shard(r, &shards, |m| Some(&m.mark)),
        )?;
        gauges(
            enc,
            "corridor_cluster_unreplicated_records",
            "Journal records synced on this node's disk and not yet acknowledged by the stream (what they gate waits).",
            None,
            &per_shard(r, &shards, |m| Some(m.synced.saturating_sub(m.acknowledged) as f64)),
        )?;
        gauges(
            enc,
            "corridor_cluster_lease_age",
            "Time since this node last renewed the shard's lease (it lives 3 s unless renewed).",
            Some(&Unit::Seconds),
            &per_shard(r, &shards, |m| Some(s.at.saturating_duration_since(m.lease?.renewed).as_secs_f64())),
        )?;
        counters(
            enc,
            "corridor_cluster_lease_taken",
            "Times this node took the shard's lease: at start, and again after it expired unheld.",
            &per_shard(r, &shards, |m| Some(m.lease?.taken)),
        )?;
        counters(
            enc,
            "corridor_cluster_lease_renew_failures",
            "Renewals of the shard's lease the bucket did not answer.",
            &per_shard(r, &shards, |m| Some(m.lease?.renew_failures)),
        )
    }
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        self.requests_in(&mut enc)?;
        self.destinations(&mut enc)?;
        self.market_pairs(&mut enc)?;
        self.links(&mut enc)?;
        self.switch_counters(&mut enc)?;
        self.queues(&mut enc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_codes_from_peers_cannot_break_the_exposition_format() {
        assert_eq!(code_label(*b"00"), "00");
        assert_eq!(code_label(*b"\"\n"), "__");
        assert_eq!(code_label(*b".."), "..");
    }
}
