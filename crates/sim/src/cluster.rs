//! A third of the seeds run the switch as a cluster's node (`corridor_cluster`): each
//! shard's journal is replicated in a simulated stream, and when the node dies a standby —
//! another node, with disks of its own — takes its shards over once its lease has expired.
//!
//! The stream, as JetStream's R3 stream with `sync_interval: always` behaves for us: an
//! append is acknowledged once a majority has it, and what it acknowledged it never loses;
//! its leader fails now and then (a fault of the plan) and appends wait out the election;
//! an append in flight when it fails may have been stored with its acknowledgement lost —
//! the node asks again and settles it by reading the subject back, as `ShardLog::append`
//! does. Appends carry the subject's length the node expects: a node whose expectation is
//! wrong (another node appended since) is fenced and stops.
//!
//! The node, as `corridor_net::switch::journaling` runs it: a batch is written and synced
//! on the node's disk, then appended, and only then released to the engine
//! (`Written::Synced`): nothing a batch gates leaves before the stream has it. A takeover
//! is `ops::startup::take_shard`: the standby's journal is brought up to the stream's — the
//! stream's records past its own written in, its own records past the stream's appended
//! (the subject did not move since: nothing was acted on meanwhile), or, diverged (it holds
//! records the stream never acknowledged, and another node appended since), set aside and
//! rebuilt from the stream — and recovered as a restart is. A node's disk may be lost with it;
//! an append it had sent may reach the stream as it dies (stored, its acknowledgement never
//! read: nothing it gates was released, and the standby reads it all the same).
//!
//! Checked besides every invariant of a seed: the engine never counts a record durable the
//! stream lacks; a takeover recovers exactly the records the stream holds; a node fenced
//! stops before anything of its last batch leaves it.

#[allow(clippy::wildcard_imports)] // the simulator's own parts
use crate::*;

/// How long a lease lives: a standby takes the shards over this long after the node died.
pub(crate) const LEASE: Duration = Duration::from_secs(3);
/// How long the stream takes to acknowledge an append, at most (microseconds).
const ACK_MAX_US: u64 = 3_000;

/// One acknowledged append: a batch of one shard's records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Appended {
    pub(crate) first_seq: u64,
    pub(crate) last_seq: u64,
    pub(crate) bytes: Vec<u8>,
    /// The node life that appended it (for the read-back settlement).
    pub(crate) life: u64,
}

/// The cluster of a seed that runs one.
pub(crate) struct Cluster {
    /// Each shard's subject.
    pub(crate) subjects: Vec<Vec<Appended>>,
    /// The stream elects a leader until then: appends wait.
    pub(crate) down_until: Duration,
    /// The standby's disks (the other node's).
    pub(crate) standby: Vec<Disk>,
    /// Per shard: the subject's length this node expects at its next append.
    pub(crate) expected: Vec<usize>,
    /// Per shard: the batches synced on the node's disk and waiting for the stream, in
    /// order (one at most: the engine writes its next batch once this one is released;
    /// more only with the planted defect).
    pub(crate) appending: Vec<VecDeque<Appended>>,
    /// Choices of the cluster's own (the draws of seeds without a cluster are unchanged).
    pub(crate) rng: Rng,
    /// Which node is serving (0 or 1), for the history.
    pub(crate) node: usize,
    /// A planted defect, for the test that shows the simulator catches it: a batch is
    /// released once synced on the node's disk, before the stream acknowledges it.
    pub(crate) release_before_ack: bool,
    /// Takeovers.
    pub(crate) takeovers: u32,
    /// Appends that reached the stream as their node died (never acknowledged to it).
    pub(crate) landed_at_death: u32,
    /// Pauses shorter than a lease, and past it.
    pub(crate) pauses: (u32, u32),
    /// Per shard: when the stream last acknowledged one of this node's appends.
    pub(crate) acked_at: Vec<Duration>,
    /// Spans in which what reached a dead node never became durable: from its issuer's
    /// shard's last acknowledged append to its death. A late approval that arrived in one
    /// left nothing recovered that says it came (the known gap `checks` describes, wider in
    /// a cluster: an election holds durability back for seconds).
    pub(crate) unreplicated: Vec<(Duration, Duration)>,
}

impl Cluster {
    pub(crate) fn new(shards: usize, rng: Rng) -> Self {
        Self {
            subjects: vec![Vec::new(); shards],
            down_until: Duration::ZERO,
            standby: (0..shards).map(|_| Disk::default()).collect(),
            expected: vec![0; shards],
            appending: vec![VecDeque::new(); shards],
            rng,
            node: 0,
            release_before_ack: false,
            takeovers: 0,
            landed_at_death: 0,
            pauses: (0, 0),
            acked_at: vec![Duration::ZERO; shards],
            unreplicated: Vec::new(),
        }
    }

    /// The last record the stream holds for shard `k`.
    pub(crate) fn last_seq(&self, k: usize) -> u64 {
        self.subjects[k].last().map_or(0, |a| a.last_seq)
    }

    /// Every record of shard `k`'s subject, in order, and the first one's sequence.
    fn records(&self, k: usize) -> (u64, Vec<u8>) {
        let first = self.subjects[k].first().map_or(1, |a| a.first_seq);
        (first, self.subjects[k].iter().flat_map(|a| a.bytes.iter().copied()).collect())
    }
}

/// Shard `k`'s disk, its torn tail cut as recovery cuts it: its last record's sequence and
/// its records' bytes (segment headers left out).
fn local_records(disk: &mut Disk) -> (u64, Vec<u8>) {
    let view: Vec<(u64, &[u8])> = disk.segments.iter().map(|(s, b)| (*s, b.as_slice())).collect();
    let (last, cut) = match scan_log(&view) {
        Ok(scan) => (scan.next_seq.saturating_sub(1), scan.cut().map(|(_, at)| at)),
        Err(_) => (0, None),
    };
    disk.cut_tail(cut);
    let bytes = disk
        .segments
        .iter()
        .flat_map(|(_, b)| {
            b.get(corridor_journal::limits::SEGMENT_HEADER_BYTES..).unwrap_or_default().iter().copied()
        })
        .collect();
    (last, bytes)
}

/// A new segment beginning with record `first_seq`, holding `records`.
fn segment(first_seq: u64, records: &[u8], unix_ms: u64) -> (u64, Vec<u8>) {
    let h = corridor_journal::SegmentHeader { first_seq, created_unix_ms: unix_ms };
    let mut b = h.to_bytes().to_vec();
    b.extend_from_slice(records);
    (first_seq, b)
}

impl Sim {
    /// Whether a message that reached the node at `at` was lost with it before anything it
    /// caused became durable (see [`Cluster::unreplicated`]).
    pub(crate) fn lost_unreplicated(&self, at: Duration) -> bool {
        self.cluster.as_ref().is_some_and(|c| c.unreplicated.iter().any(|&(from, to)| at > from && at <= to))
    }

    /// Shard `k`'s batch is synced on the node's disk: appended to its subject (the
    /// acknowledgement comes as [`Ev::Appended`]); with the planted defect, released at once.
    pub(crate) fn append(&mut self, k: usize, batch: Appended) {
        let Some(c) = self.cluster.as_mut() else { return };
        let ack = c.rng.micros(300, ACK_MAX_US);
        let release = c.release_before_ack;
        c.appending[k].push_back(batch);
        let first = c.appending[k].len() == 1;
        let life = self.life;
        if first {
            self.at(self.now + ack, Ev::Appended(life, k));
        }
        if release {
            self.written(k, Written::Synced);
        }
    }

    /// The stream answers shard `k`'s append of node life `life`.
    pub(crate) fn appended(&mut self, life: u64, k: usize) {
        if life != self.life || self.engine.is_none() {
            return; // the node died: its append was never acknowledged to it
        }
        let now = self.now;
        let Some(c) = self.cluster.as_mut() else { return };
        let Some(batch) = c.appending[k].front().cloned() else { return };
        if now < c.down_until {
            // An election: the append waits (stored already, its acknowledgement lost, or
            // not stored: either way the node asks again once a leader answers).
            if c.subjects[k].len() == c.expected[k] && c.rng.chance(50) {
                c.subjects[k].push(batch);
            }
            let at = c.down_until + c.rng.micros(300, ACK_MAX_US);
            self.at(at, Ev::Appended(life, k));
            return;
        }
        let (len, expected) = (c.subjects[k].len(), c.expected[k]);
        if len == expected + 1 && c.subjects[k].last() == Some(&batch) {
            // Stored before the election, its acknowledgement lost: read back, it is ours.
        } else if len == expected {
            c.subjects[k].push(batch);
        } else {
            // Another node appended since: fenced. Nothing of this batch may leave.
            self.world(format!(
                "shard {k}: the append is fenced (the subject has {len} batches, this node expected {expected}): the node stops"
            ));
            self.crash();
            return;
        }
        c.expected[k] += 1;
        c.appending[k].pop_front();
        c.acked_at[k] = now;
        let next = (!c.appending[k].is_empty()).then(|| now + c.rng.micros(300, ACK_MAX_US));
        let release = !c.release_before_ack;
        if let Some(at) = next {
            self.at(at, Ev::Appended(life, k));
        }
        if release {
            self.written(k, Written::Synced);
        }
    }

    /// The node stops for `d`. Shorter than its lease, it goes on where it stopped: what
    /// came meanwhile waits (see `Sim::step`), its timers fire late. Longer, the standby
    /// takes its shards over; awake, the node finds its lease stale by its own clock and
    /// releases nothing before the keeper finds it lost, then stops (`net`'s
    /// `lease_fresh`): as far as anyone outside it can tell, it died when it stopped, with
    /// what it had sent to the stream landing there.
    pub(crate) fn pause(&mut self, d: Duration) {
        let Some(c) = self.cluster.as_mut() else { return };
        if d < LEASE {
            c.pauses.0 += 1;
            self.world(format!("the node pauses for {d:?} (shorter than its lease)"));
            self.paused_until = Some(self.now + d);
            self.at(self.now + d, Ev::Wake);
        } else {
            c.pauses.1 += 1;
            self.world(format!(
                "the node pauses for {d:?}, past its lease: the standby takes over; awake, it releases nothing and stops"
            ));
            self.crash();
        }
    }

    /// The node died: the standby takes its shards over once its lease has expired.
    pub(crate) fn standby_takes_over_later(&mut self) {
        let issuers = self.owners[1];
        let Some(c) = self.cluster.as_mut() else { return };
        let since = c.acked_at.get(issuers).copied().unwrap_or_default();
        c.unreplicated.push((since, self.now));
        let d = LEASE + c.rng.micros(0, 100_000);
        // An append the node had sent may have reached the stream before it died (stored,
        // its acknowledgement never read): nothing it gates was released, and the standby
        // reads it all the same.
        for k in 0..c.appending.len() {
            let landed = c.rng.chance(50);
            if let Some(batch) = c.appending[k].pop_front() {
                if landed && c.subjects[k].len() == c.expected[k] && !c.release_before_ack {
                    c.subjects[k].push(batch);
                    c.landed_at_death += 1;
                }
            }
        }
        c.appending.iter_mut().for_each(VecDeque::clear);
        self.at(self.now + d, Ev::Restart);
    }

    /// The standby becomes the serving node: the nodes' disks change places (the dead one's
    /// lost with it, sometimes), and each shard's journal is brought up to the stream's.
    pub(crate) fn take_over(&mut self) {
        let unix_ms = self.unix_ms();
        let Some(c) = self.cluster.as_mut() else { return };
        let lost = c.rng.chance(20);
        std::mem::swap(&mut self.disks, &mut c.standby);
        if lost {
            c.standby.iter_mut().for_each(|d| *d = Disk::default());
        }
        c.node = 1 - c.node;
        c.takeovers += 1;
        c.acked_at.iter_mut().for_each(|t| *t = self.now);
        let mut lines = Vec::new();
        for k in 0..self.disks.len() {
            let (local_last, local) = local_records(&mut self.disks[k]);
            let (first, streamed) = c.records(k);
            let disk = &mut self.disks[k];
            if streamed.is_empty() && local.is_empty() {
                // Nothing anywhere yet.
            } else if streamed.starts_with(&local) {
                if streamed.len() > local.len() {
                    let from = local_last + 1;
                    disk.segments.push(segment(from, &streamed[local.len()..], unix_ms));
                    lines.push(format!("shard {k}: records {from}.. taken from the stream"));
                }
            } else if local.starts_with(&streamed) && local_last > c.last_seq(k) {
                // Ahead: what this journal holds past the stream is appended (the subject did
                // not move since this node left it).
                let from = c.last_seq(k) + 1;
                let rest = local[streamed.len()..].to_vec();
                c.subjects[k].push(Appended { first_seq: from, last_seq: local_last, bytes: rest, life: 0 });
                lines.push(format!(
                    "shard {k}: records {from}..={local_last} of this journal appended to the stream"
                ));
            } else {
                // Diverged: set aside, rebuilt from the stream.
                disk.segments.clear();
                if !streamed.is_empty() {
                    disk.segments.push(segment(first, &streamed, unix_ms));
                }
                lines.push(format!("shard {k}: the journal diverged from the stream: rebuilt from it"));
            }
            disk.writing = None;
            disk.full_until = None;
            c.expected[k] = c.subjects[k].len();
        }
        let node = c.node;
        self.world(format!(
            "node {node} takes the shards over{}",
            if lost { " (the other's disk was lost)" } else { "" }
        ));
        for l in lines {
            self.world(l);
        }
    }

    /// After a takeover's recovery: it read exactly the records the stream holds.
    pub(crate) fn check_takeover(&mut self) {
        let Some(c) = self.cluster.as_ref() else { return };
        let wants: Vec<u64> = (0..self.disks.len()).map(|k| c.last_seq(k)).collect();
        for (k, want) in wants.into_iter().enumerate() {
            let got = self.durable(k).last_seq;
            if got != want {
                self.broke(
                    None,
                    format!("shard {k}: the takeover recovered records up to {got}; the stream holds them up to {want}"),
                );
            }
        }
    }

    /// At the node's death: it counted no record durable that the stream lacks.
    pub(crate) fn check_replicated(&mut self, k: usize, believed: u64) {
        let Some(c) = self.cluster.as_ref() else { return };
        if c.release_before_ack {
            return;
        }
        let held = c.last_seq(k);
        if believed > held {
            self.broke(
                None,
                format!("shard {k}: the node counted records up to {believed} durable; the stream holds them up to {held}"),
            );
        }
    }
}
