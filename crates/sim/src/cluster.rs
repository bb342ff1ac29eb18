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
//! (`Written::Synced`): nothing a batch gates leaves before the stream has it. Up to
//! [`IN_FLIGHT`] batches are out at once — written one after another, in the stream
//! together, released in order (`corridor_cluster::limits::APPENDS_IN_FLIGHT`). A node that dies leaves any prefix of
//! what it had in flight in the stream; the rest may still arrive after its successor took
//! over (a partition, a pause), each expecting its own place: every node's first append is
//! preceded by a fence of markers (`ShardLog::fence`), which puts the subject past every
//! place such a message expects, so none of them goes in; a takeover fences before it reads
//! the subject (`stream::fence_taken`), so what arrives first is in what it reads. A takeover
//! is `ops::startup::take_shard`: the standby's journal is brought up to the stream's — the
//! stream's records past its own written in, its own records past the stream's appended
//! (the subject did not move since: nothing was acted on meanwhile), or, diverged (it holds
//! records the stream never acknowledged, and another node appended since), set aside and
//! rebuilt from the stream — and recovered as a restart is. A node's disk may be lost with it;
//! an append it had sent may reach the stream as it dies (stored, its acknowledgement never
//! read: nothing it gates was released, and the standby reads it all the same).
//!
//! The node's leases: renewed every second; its clock runs up to 5% fast or slow against the
//! bucket's. Paused, it wakes to judge its lease by that clock, with the margin the keeper
//! keeps (`corridor_cluster::limits::LEASE_MARGIN`); a third of the pauses end about as long
//! as a lease lives (±100 ms), where that judgment decides. A lease the bucket let expire —
//! a standby may act for the shard — that the node judges fresh is two nodes acting for one
//! shard: a violation.
//!
//! Now and then the node checkpoints a shard into its subject (covering the records up to
//! a batch it holds, not always the last), and half the time purges the messages before it
//! but the batches holding records it does not cover (`net`'s `stream_checkpoint`); a death
//! mid-way may leave a checkpoint cut short, which readers pass over. A takeover reads from
//! the last whole checkpoint and compares the journal with the stream past it (behind the
//! checkpoint: rebuilt from it, as `take_shard` does).
//!
//! Checked besides every invariant of a seed: the engine never counts a record durable the
//! stream lacks; a takeover recovers exactly the records the stream holds, and the state
//! its checkpoint and records hold (open requests, reversals, outcomes); a takeover finds
//! every record past the checkpoint it reads from; a node fenced stops before anything of
//! its last batch leaves it.

#[allow(clippy::wildcard_imports)] // the simulator's own parts
use crate::*;

/// How long a lease lives: a standby takes the shards over this long after the node died.
pub(crate) const LEASE: Duration = Duration::from_secs(3);
/// How much sooner than [`LEASE`] a node counts its lease stale by its own clock (as
/// `corridor_cluster::limits::LEASE_MARGIN`).
const LEASE_MARGIN: Duration = Duration::from_millis(500);
/// How often a node renews its leases (as `corridor_cluster::limits::LEASE_RENEW`).
const LEASE_RENEW: Duration = Duration::from_secs(1);
/// The most a node's clock runs fast or slow against the lease bucket's, in parts per
/// million (a slewed or drifting clock; far past what NTP allows).
const CLOCK_SKEW_PPM_MAX: u64 = 50_000;
/// How long the stream takes to acknowledge an append, at most (microseconds).
const ACK_MAX_US: u64 = 3_000;
/// How many batches a node has in the stream at once (as `net`'s journal loop,
/// `corridor_cluster::limits::APPENDS_IN_FLIGHT`).
pub(crate) const IN_FLIGHT: usize = 4;
/// How many markers a node's fence appends: the most any writer may have in flight (as
/// `corridor_cluster::limits::APPENDS_IN_FLIGHT_MAX`).
const FENCE: usize = 4;

/// One append: a batch of one shard's records, or a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Appended {
    /// A batch's first record; a checkpoint's `through` (the last record the subject held
    /// when it was appended).
    pub(crate) first_seq: u64,
    /// A batch's last record; a checkpoint's `through`.
    pub(crate) last_seq: u64,
    /// A batch's records; a checkpoint's state.
    pub(crate) bytes: Vec<u8>,
    /// The node life that appended it (for the read-back settlement).
    pub(crate) life: u64,
    /// Set on a checkpoint (see `corridor_cluster::batch`).
    pub(crate) checkpoint: Option<Ckp>,
    /// A batch holding a relayed approval: its release moves the shard's mark (only such a
    /// batch's does, as `SyncBatch::release_marked` says).
    pub(crate) release_marked: bool,
    /// When a batch was handed out (what reached the node after it is in later batches).
    pub(crate) cut_at: Duration,
}

/// A checkpoint on a subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ckp {
    /// The last record its state holds.
    pub(crate) covers: u64,
    /// Whole, or cut short (its writer died between its parts): readers pass it over.
    pub(crate) whole: bool,
}

/// Chance (in 100) that a node checkpoints its shard into the stream after an acknowledged
/// batch.
const CHECKPOINT_CHANCE: u64 = 4;

/// A shard's subject as a takeover reads it (`corridor_cluster::stream::take_read`): the
/// last whole checkpoint, and the records after it.
struct Read {
    /// The last whole checkpoint: the last record it covers, its state.
    checkpoint: Option<(u64, Vec<u8>)>,
    /// The first record of `records`.
    first: u64,
    records: Vec<u8>,
}

/// The records of `bytes` (whole records, the first numbered `first_seq`) from `from` on
/// (none when they are not whole records).
fn records_since(first_seq: u64, bytes: &[u8], from: u64) -> &[u8] {
    corridor_journal::records_since(bytes, first_seq, from).unwrap_or_default()
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
    /// Per shard: messages purged from the front of its subject (its length counts them).
    pub(crate) base: Vec<usize>,
    /// Checkpoints appended, purges, and checkpoints cut short by their writer's death.
    pub(crate) checkpoints: (u32, u32, u32),
    /// Per shard: the batches synced on the node's disk and waiting for the stream, in
    /// order (up to [`IN_FLIGHT`], and a checkpoint; more only with the planted defect).
    pub(crate) appending: Vec<VecDeque<Appended>>,
    /// Messages a dead node had sent that had not reached the stream, on their way still:
    /// (shard, the subject's length each expects, the message). They arrive after the
    /// takeover.
    pub(crate) late: Vec<(usize, usize, Appended)>,
    /// The late messages' own choices (whether one is on its way still, when it arrives),
    /// apart from the cluster's: modelling them leaves every other draw of a seed as it was.
    pub(crate) late_rng: Rng,
    /// Late messages that arrived, and that went in (none but with the planted defect).
    pub(crate) late_sent: u32,
    pub(crate) late_in: u32,
    /// The most batches one shard had in the stream at once.
    pub(crate) most_out: usize,
    /// A planted defect (tests only): a node's first append is not preceded by its fence.
    pub(crate) no_fence: bool,
    /// Choices of the cluster's own (the draws of seeds without a cluster are unchanged).
    pub(crate) rng: Rng,
    /// Which node is serving (0 or 1), for the history.
    pub(crate) node: usize,
    /// A planted defect, for the test that shows the simulator catches it: a batch is
    /// released once synced on the node's disk, before the stream acknowledges it.
    pub(crate) release_before_ack: bool,
    /// A planted defect, for the test that shows the simulator catches it: a purge takes
    /// every message before the checkpoint, the batches holding records it does not cover
    /// with them.
    pub(crate) purge_past_checkpoint: bool,
    /// A planted defect (tests only): a batch relaying an approval moves the shard's release
    /// mark no more than any other (only a life's first release marks).
    pub(crate) mark_no_approvals: bool,
    /// A planted defect (tests only): a takeover does not read the release mark (every
    /// answer recorded counts as given, as before marks).
    pub(crate) marks_unread: bool,
    /// How fast the node's clock runs against the lease bucket's, in parts per million
    /// (negative: slow).
    pub(crate) skew_ppm: i64,
    /// How much sooner than its time to live the node counts its lease stale (a planted
    /// defect sets it to zero).
    pub(crate) lease_margin: Duration,
    /// Takeovers.
    pub(crate) takeovers: u32,
    /// Appends that reached the stream as their node died (never acknowledged to it).
    pub(crate) landed_at_death: u32,
    /// Pauses shorter than a lease, and past it.
    pub(crate) pauses: (u32, u32),
    /// Per shard: when the batch the stream last acknowledged was cut (everything that
    /// reached the node before then is in the stream).
    pub(crate) acked_at: Vec<Duration>,
    /// Spans in which what reached a dead node never became durable: from its issuer's
    /// shard's last acknowledged append to its death. A late approval that arrived in one
    /// left nothing recovered that says it came (the known gap `checks` describes, wider in
    /// a cluster: an election holds durability back for seconds).
    pub(crate) unreplicated: Vec<(Duration, Duration)>,
    /// Per shard: its release mark, the last record whose gated frames a node released
    /// (`ShardLog::mark_released`: set as the node releases, never lost); a takeover's
    /// recovery takes an approval after it as never given.
    pub(crate) released: Vec<Option<u64>>,
    /// Per shard: the node life that marked it last (`ShardLog::must_mark`: a batch relaying
    /// an approval is marked, and the first a life releases whatever it holds).
    pub(crate) marked_by: Vec<Option<u64>>,
    /// Approvals takeovers found recorded after a release mark.
    pub(crate) unreleased: u64,
}

impl Cluster {
    /// Shard `k`'s `batch` is about to be released: its mark moves first when it must.
    fn mark(&mut self, k: usize, batch: &Appended) {
        let relays = batch.release_marked && !self.mark_no_approvals;
        if relays || self.marked_by[k] != Some(batch.life) {
            self.released[k] = Some(batch.last_seq);
            self.marked_by[k] = Some(batch.life);
        }
    }

    /// Whether shard `k` may send no more batches to the stream now: [`IN_FLIGHT`] are.
    pub(crate) fn stream_full(&self, k: usize) -> bool {
        self.appending[k].iter().filter(|a| a.checkpoint.is_none()).count() >= IN_FLIGHT
    }

    /// A checkpoint at the front of shard `k`'s appends says the subject holds what it holds
    /// as it goes in (`through`): the batches sent before it went in first (as `net` appends
    /// a checkpoint once the batches out are settled).
    fn through_now(&mut self, k: usize) {
        let last = self.last_seq(k);
        if let Some(a) = self.appending[k].front_mut().filter(|a| a.checkpoint.is_some()) {
            (a.first_seq, a.last_seq) = (last, last);
        }
    }

    pub(crate) fn new(shards: usize, mut rng: Rng) -> Self {
        let skew_ppm = rng.below(2 * CLOCK_SKEW_PPM_MAX + 1) as i64 - CLOCK_SKEW_PPM_MAX as i64;
        Self {
            skew_ppm,
            lease_margin: LEASE_MARGIN,
            subjects: vec![Vec::new(); shards],
            down_until: Duration::ZERO,
            standby: (0..shards).map(|_| Disk::default()).collect(),
            expected: vec![0; shards],
            base: vec![0; shards],
            checkpoints: (0, 0, 0),
            appending: vec![VecDeque::new(); shards],
            late: Vec::new(),
            late_rng: Rng::new(skew_ppm.unsigned_abs() ^ 0x1a7e_5eed),
            late_sent: 0,
            late_in: 0,
            most_out: 0,
            no_fence: false,
            rng,
            node: 0,
            release_before_ack: false,
            purge_past_checkpoint: false,
            mark_no_approvals: false,
            marks_unread: false,
            takeovers: 0,
            landed_at_death: 0,
            pauses: (0, 0),
            acked_at: vec![Duration::ZERO; shards],
            unreplicated: Vec::new(),
            released: vec![None; shards],
            marked_by: vec![None; shards],
            unreleased: 0,
        }
    }

    /// The last record the stream holds for shard `k`.
    pub(crate) fn last_seq(&self, k: usize) -> u64 {
        self.subjects[k].last().map_or(0, |a| a.last_seq)
    }

    /// Shard `k`'s subject's length, purged messages counted (its last sequence).
    pub(crate) fn len(&self, k: usize) -> usize {
        self.base[k] + self.subjects[k].len()
    }

    /// Shard `k`'s subject as a takeover reads it; `Err` when records it needs are gone (a
    /// purge that went too far: the reader's gap check).
    fn read(&self, k: usize) -> Result<Read, String> {
        let msgs = &self.subjects[k];
        let last_whole = msgs.iter().rposition(|a| a.checkpoint.is_some_and(|c| c.whole));
        let checkpoint =
            last_whole.map(|i| (msgs[i].checkpoint.map_or(0, |c| c.covers), msgs[i].bytes.clone()));
        let covers = checkpoint.as_ref().map_or(0, |(c, _)| *c);
        let mut first = None;
        let mut records = Vec::new();
        let mut next = None;
        for a in msgs.iter().filter(|a| a.checkpoint.is_none() && a.last_seq > covers) {
            if first.is_none() && a.first_seq > covers + 1 {
                return Err(format!(
                    "shard {k}: the subject's records begin at {}, its checkpoint covers ..={covers}",
                    a.first_seq
                ));
            }
            // As the reader's `Tail`: each batch begins where the one before it ended.
            if let Some(n) = next.filter(|&n| n != a.first_seq) {
                return Err(format!("shard {k}: the subject skips from record {n} to {}", a.first_seq));
            }
            next = Some(a.last_seq + 1);
            let from = first.map_or(covers + 1, |_| a.first_seq);
            first.get_or_insert(from);
            records.extend_from_slice(records_since(a.first_seq, &a.bytes, from));
        }
        // The checkpoint says the subject held records up to its `through` when it went in:
        // those past what it covers are in batches, or the reader finds them gone.
        let through = last_whole.map_or(0, |i| msgs[i].last_seq);
        if first.is_none() && through > covers {
            return Err(format!(
                "shard {k}: the checkpoint of ..={covers} went in with records up to {through}: none is there"
            ));
        }
        Ok(Read { checkpoint, first: first.unwrap_or(covers + 1), records })
    }

    /// The state of shard `k`'s records `..=covers` as the stream holds them (its last whole
    /// checkpoint's, then its batches'): what a checkpoint of them holds.
    fn state_of(&self, k: usize, covers: u64, unix_ms: u64) -> Vec<u8> {
        let Ok(read) = self.read(k) else { return Vec::new() };
        let mut r = read.checkpoint.and_then(|(_, b)| Recovery::from_checkpoint(&b).ok()).unwrap_or_default();
        let seg = segment(read.first, &read.records, 0).1;
        if let Ok(scan) = corridor_journal::scan_segment(&seg, read.first, false) {
            let after = r.last_seq;
            for f in scan.records.iter().filter(|f| f.record.seq > after && f.record.seq <= covers) {
                let _ = r.apply(f.record.seq, &f.record, unix_ms);
            }
        }
        let mut out = Vec::new();
        r.checkpoint(&mut out);
        out
    }

    /// Shard `k`'s state as the stream holds it (what a takeover must recover).
    fn durable_of(&self, k: usize, unix_ms: u64) -> Durable {
        let last = self.last_seq(k);
        let state = self.state_of(k, last, unix_ms);
        Recovery::from_checkpoint(&state).map(|r| Durable::of(&r)).unwrap_or_default()
    }
}

/// Shard `k`'s disk, its torn tail cut as recovery cuts it: its last record's sequence, its
/// first segment's first record, and its records' bytes (segment headers left out).
fn local_records(disk: &mut Disk) -> (u64, u64, Vec<u8>) {
    let view: Vec<(u64, &[u8])> = disk.segments.iter().map(|(s, b)| (*s, b.as_slice())).collect();
    let covers = disk.checkpoint.as_ref().map_or(0, |(c, _)| *c);
    let (last, cut) = match scan_log(&view) {
        Ok(scan) => (scan.next_seq.saturating_sub(1).max(covers), scan.cut().map(|(_, at)| at)),
        Err(_) => (covers, None),
    };
    disk.cut_tail(cut);
    let bytes = disk
        .segments
        .iter()
        .flat_map(|(_, b)| {
            b.get(corridor_journal::limits::SEGMENT_HEADER_BYTES..).unwrap_or_default().iter().copied()
        })
        .collect();
    let first = disk.segments.first().map_or(last + 1, |(s, _)| *s);
    (last, first, bytes)
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
        if release {
            c.mark(k, &batch);
        }
        c.appending[k].push_back(batch);
        let batches = c.appending[k].iter().filter(|a| a.checkpoint.is_none()).count();
        c.most_out = c.most_out.max(batches);
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
        c.through_now(k);
        let Some(batch) = c.appending[k].front().cloned() else { return };
        if now < c.down_until {
            // An election: the append waits (stored already, its acknowledgement lost, or
            // not stored: either way the node asks again once a leader answers).
            if c.len(k) == c.expected[k] && c.rng.chance(50) {
                c.subjects[k].push(batch);
            }
            let at = c.down_until + c.rng.micros(300, ACK_MAX_US);
            self.at(at, Ev::Appended(life, k));
            return;
        }
        let (len, expected) = (c.len(k), c.expected[k]);
        if len == expected + 1 && c.subjects[k].last() == Some(&batch) {
            // Stored before the election, its acknowledgement lost: read back, it is ours.
        } else if len == expected {
            c.subjects[k].push(batch.clone());
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
        let unix_ms = self.unix_ms();
        let Some(c) = self.cluster.as_mut() else { return };
        let mut lines = Vec::new();
        let mut unreadable = None;
        let release = match batch.checkpoint {
            // A checkpoint gates nothing. Its messages before it are purged (retention
            // done) half the time: from the first batch holding a record it does not cover.
            Some(ckp) => {
                if c.rng.chance(50) {
                    // (The checkpoint is the subject's last message: just acknowledged.)
                    let msgs = &c.subjects[k];
                    let at = msgs.len().saturating_sub(1);
                    let keep = msgs[..at]
                        .iter()
                        .position(|a| a.checkpoint.is_none() && a.last_seq > ckp.covers)
                        .filter(|_| !c.purge_past_checkpoint)
                        .unwrap_or(at);
                    c.subjects[k].drain(..keep);
                    c.base[k] += keep;
                    c.checkpoints.1 += 1;
                    lines.push(format!(
                        "shard {k}: {keep} messages before the checkpoint of ..={} purged",
                        ckp.covers
                    ));
                }
                false
            }
            None => {
                // What reached the node before this batch was cut is in the stream now.
                c.acked_at[k] = batch.cut_at;
                // Now and then the journal checkpoints, and the node appends it: covering the
                // records up to a batch the subject holds (not always the last: `through`
                // may be past what it covers).
                // (As `net` appends one: once the batches out are in, alone in flight — no
                // batch is sent until it is in.)
                let alone = c.appending[k].is_empty();
                if c.rng.chance(CHECKPOINT_CHANCE) && alone {
                    let prior = c.read(k).ok().and_then(|r| r.checkpoint).map_or(0, |(covers, _)| covers);
                    let ends: Vec<u64> = c.subjects[k]
                        .iter()
                        .filter(|a| a.checkpoint.is_none() && a.last_seq > prior)
                        .map(|a| a.last_seq)
                        .collect();
                    if !ends.is_empty() {
                        let covers = ends[c.rng.below(ends.len() as u64) as usize];
                        let through = c.last_seq(k);
                        // (The node's journal checkpoints its own records; here they are
                        // the stream's, which must read whole.)
                        if let Err(why) = c.read(k) {
                            unreadable = Some(why);
                        }
                        let state = c.state_of(k, covers, unix_ms);
                        c.appending[k].push_back(Appended {
                            first_seq: through,
                            last_seq: through,
                            bytes: state,
                            life,
                            checkpoint: Some(Ckp { covers, whole: true }),
                            release_marked: false,
                            cut_at: now,
                        });
                        c.checkpoints.0 += 1;
                        lines.push(format!("shard {k}: a checkpoint of records ..={covers} appended (the subject holds ..={through})"));
                    }
                }
                if !c.release_before_ack {
                    c.mark(k, &batch);
                }
                !c.release_before_ack
            }
        };
        let next = (!c.appending[k].is_empty()).then(|| now + c.rng.micros(300, ACK_MAX_US));
        if let Some(at) = next {
            self.at(at, Ev::Appended(life, k));
        }
        for l in lines {
            self.world(l);
        }
        if let Some(why) = unreadable {
            return self.broke(None, format!("a takeover cannot read the stream: {why}"));
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
    ///
    /// `d`: how long; `None`: until the lease is `past` microseconds past its time to live
    /// (negative: short of it).
    pub(crate) fn pause(&mut self, d: Option<Duration>, past: i64) {
        let Some(c) = self.cluster.as_mut() else { return };
        // The lease was renewed up to a renewal interval before the pause: it expires in the
        // bucket once that age and the pause reach its time to live. Awake, the node judges
        // it by its own clock, skewed (`keeper::Held::stale_at`, the margin below its time
        // to live): a lease the bucket let expire — a standby may hold it — must look stale.
        let age = c.rng.micros(0, LEASE_RENEW.as_micros() as u64);
        let d = d.unwrap_or_else(|| {
            let until = i64::try_from((LEASE - age).as_micros()).unwrap_or(0) + past;
            Duration::from_micros(u64::try_from(until).unwrap_or(0))
        });
        let real = age + d;
        let ppm = u128::try_from(1_000_000 + c.skew_ppm).unwrap_or(0);
        let local =
            Duration::from_nanos(u64::try_from(real.as_nanos() * ppm / 1_000_000).unwrap_or(u64::MAX));
        let stale = local > LEASE - c.lease_margin;
        if real >= LEASE && !stale {
            let skew = c.skew_ppm;
            self.broke(
                None,
                format!(
                    "two nodes act for one shard: the node woke after {d:?} with its lease {real:?} old, expired in the \
                     bucket, and by its clock ({skew:+} ppm: {local:?}) it is fresh"
                ),
            );
            return;
        }
        if real < LEASE {
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
        // Of several in flight, any first few; the rest (each expecting its place) may still
        // arrive, after the takeover.
        for k in 0..c.appending.len() {
            // (The first's draw from the cluster's choices, as before several were modelled.)
            let mut landing = c.rng.chance(50);
            // (A checkpoint goes alone: it is the first, if any.)
            c.through_now(k);
            for (i, mut batch) in std::mem::take(&mut c.appending[k]).into_iter().enumerate() {
                let place = c.expected[k] + i;
                if i > 0 {
                    landing = landing && c.late_rng.chance(50);
                }
                landing = landing && c.len(k) == place && !c.release_before_ack;
                if landing {
                    // A checkpoint's parts: the first only, half the time.
                    if let Some(ckp) = batch.checkpoint.as_mut().filter(|_| c.rng.chance(50)) {
                        ckp.whole = false;
                        c.checkpoints.2 += 1;
                    }
                    c.subjects[k].push(batch);
                    c.landed_at_death += 1;
                } else if batch.checkpoint.is_none() && c.late_rng.chance(50) {
                    c.late.push((k, place, batch));
                }
            }
        }
        if !c.late.is_empty() {
            let after = d + c.late_rng.micros(0, 500_000);
            self.at(self.now + after, Ev::Late);
        }
        self.at(self.now + d, Ev::Restart);
    }

    /// What a dead node had sent arrives: each message goes in only where it expects to
    /// (the subject as long as when it was sent). A new owner's fence puts the subject past
    /// every such place; one that went in is the dead node's batch after the new owner's
    /// records, which the next takeover reads.
    pub(crate) fn late(&mut self) {
        let Some(c) = self.cluster.as_mut() else { return };
        let mut lines = Vec::new();
        for (k, place, batch) in std::mem::take(&mut c.late) {
            c.late_sent += 1;
            if c.len(k) == place {
                lines.push(format!(
                    "shard {k}: records {}..={} the dead node had sent went in after the takeover",
                    batch.first_seq, batch.last_seq
                ));
                c.subjects[k].push(batch);
                c.late_in += 1;
                // The serving node's next append expects what it last saw: it is fenced.
            }
        }
        for l in lines {
            self.world(l);
        }
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
        let mut failed = None;
        for k in 0..self.disks.len() {
            let (local_last, local_first, local) = local_records(&mut self.disks[k]);
            // The new owner's fence, before it reads the subject (`fence_taken`): markers
            // readers pass over.
            if !c.no_fence {
                let last = c.last_seq(k);
                let marker = Appended {
                    first_seq: last,
                    last_seq: last,
                    bytes: Vec::new(),
                    life: 0,
                    checkpoint: Some(Ckp { covers: last, whole: false }),
                    release_marked: false,
                    cut_at: self.now,
                };
                c.subjects[k].extend(std::iter::repeat_n(marker, FENCE));
            }
            let read = match c.read(k) {
                Ok(r) => r,
                Err(why) => {
                    failed.get_or_insert(why);
                    continue;
                }
            };
            let covers = read.checkpoint.as_ref().map_or(0, |(c, _)| *c);
            let disk = &mut self.disks[k];
            // As `take_shard`: set side by side from past the stream's checkpoint.
            let from = local_first.max(covers + 1);
            let streamed = records_since(read.first, &read.records, from);
            let mine = records_since(local_first, &local, from);
            let rebuild = |disk: &mut Disk, read: &Read| {
                disk.segments.clear();
                disk.checkpoint.clone_from(&read.checkpoint);
                if !read.records.is_empty() {
                    disk.segments.push(segment(read.first, &read.records, unix_ms));
                }
            };
            if covers > local_last {
                // Behind the stream's checkpoint (a lost disk, one away for long): rebuilt
                // from the checkpoint and the records after it.
                rebuild(disk, &read);
                lines.push(format!("shard {k}: the journal is behind the stream's checkpoint of ..={covers}: rebuilt from it"));
            } else if streamed.is_empty() && mine.is_empty() {
                // Nothing past the checkpoint anywhere.
            } else if streamed.starts_with(mine) {
                if streamed.len() > mine.len() {
                    let from = local_last + 1;
                    disk.segments.push(segment(from, &streamed[mine.len()..], unix_ms));
                    lines.push(format!("shard {k}: records {from}.. taken from the stream"));
                }
            } else if mine.starts_with(streamed) && local_last > c.last_seq(k) {
                // Ahead: what this journal holds past the stream is appended (the subject did
                // not move since this node left it).
                let from = c.last_seq(k) + 1;
                let rest = mine[streamed.len()..].to_vec();
                c.subjects[k].push(Appended {
                    first_seq: from,
                    last_seq: local_last,
                    bytes: rest,
                    life: 0,
                    checkpoint: None,
                    release_marked: false,
                    cut_at: self.now,
                });
                lines.push(format!(
                    "shard {k}: records {from}..={local_last} of this journal appended to the stream"
                ));
            } else {
                // Diverged: set aside, rebuilt from the stream.
                rebuild(disk, &read);
                lines.push(format!("shard {k}: the journal diverged from the stream: rebuilt from it"));
            }
            disk.writing = None;
            disk.full_until = None;
            c.expected[k] = c.len(k);
        }
        let node = c.node;
        self.world(format!(
            "node {node} takes the shards over{}",
            if lost { " (the other's disk was lost)" } else { "" }
        ));
        for l in lines {
            self.world(l);
        }
        if let Some(why) = failed {
            self.broke(None, format!("a takeover cannot read the stream: {why}"));
        }
    }

    /// After a takeover's recovery: it read exactly the records the stream holds.
    pub(crate) fn check_takeover(&mut self) {
        let unix_ms = self.unix_ms();
        let Some(c) = self.cluster.as_ref() else { return };
        let wants: Vec<Durable> = (0..self.disks.len()).map(|k| c.durable_of(k, unix_ms)).collect();
        for (k, want) in wants.into_iter().enumerate() {
            let got = self.durable(k);
            if got.last_seq != want.last_seq {
                self.broke(
                    None,
                    format!(
                        "shard {k}: the takeover recovered records up to {}; the stream holds them up to {}",
                        got.last_seq, want.last_seq
                    ),
                );
            } else if (&got.requests, &got.reversals, got.outcomes)
                != (&want.requests, &want.reversals, want.outcomes)
            {
                self.broke(
                    None,
                    format!("shard {k}: the takeover recovered {got}; the stream's checkpoint and records hold {want}"),
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
