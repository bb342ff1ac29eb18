//! The switch process: its start on what its disks hold, the driver's loop around it
//! (`pump`: the flush after every input, the journal's batch cycle), its crash, and the
//! simulated disks (syncs, a full disk, a torn batch).

#[allow(clippy::wildcard_imports)] // the simulator's own parts
use crate::*;

/// The simulated disk: segments as the journal's writer would leave them, and the batch
/// being written.
#[derive(Default)]
pub(crate) struct Disk {
    /// A checkpoint file (the last record it covers, its bytes): written only by a takeover
    /// that rebuilt the journal from the stream's checkpoint (the node's own journal keeps
    /// every segment here).
    pub(crate) checkpoint: Option<(u64, Vec<u8>)>,
    pub(crate) segments: Vec<(u64, Vec<u8>)>,
    pub(crate) writing: Option<corridor_journal::SyncBatch>,
    /// When the batch being written was handed out.
    pub(crate) handed_at: Duration,
    /// Full until this time.
    pub(crate) full_until: Option<Duration>,
    /// A slow disk: its syncs take 40 times as long (2–16 ms).
    pub(crate) slow: bool,
}

impl std::fmt::Display for Durable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} open requests, {} reversals, {} outcomes",
            self.requests.len(),
            self.reversals.len(),
            self.outcomes
        )
    }
}

impl Durable {
    /// What a recovered state holds.
    pub(crate) fn of(r: &Recovery) -> Self {
        Self {
            requests: r.requests.keys().copied().collect(),
            reversals: r.reversals.keys().copied().collect(),
            exceptions: r.exceptions.keys().copied().collect(),
            outcomes: r.outcomes.len(),
            last_seq: r.last_seq,
        }
    }
}

impl Disk {
    /// The state its checkpoint holds (empty without one), as recovery loads it first.
    pub(crate) fn recovered_checkpoint(&self) -> Recovery {
        self.checkpoint.as_ref().and_then(|(_, b)| Recovery::from_checkpoint(b).ok()).unwrap_or_default()
    }

    /// Cuts a torn tail where a scan says its last whole record ends (`at`, in the last
    /// segment), as recovery does; a segment left without a whole header goes.
    pub(crate) fn cut_tail(&mut self, at: Option<usize>) {
        if let (Some(len), Some((_, last))) = (at, self.segments.last_mut()) {
            last.truncate(len);
            if last.len() < corridor_journal::limits::SEGMENT_HEADER_BYTES {
                self.segments.pop();
            }
        }
    }
}

/// What the disk held durably (see `Sim::durable`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Durable {
    pub(crate) requests: Vec<u64>,
    pub(crate) reversals: Vec<u64>,
    pub(crate) exceptions: Vec<u64>,
    pub(crate) outcomes: usize,
    pub(crate) last_seq: u64,
}

impl Sim {
    /// An event of the switch process and its disks: a sync, a hop's bytes, its timers, a
    /// crash and restart, a full or failing disk, a wall-clock jump.
    pub(crate) fn process_event(&mut self, ev: Ev) {
        match ev {
            Ev::Synced(run, k) => {
                if run == self.run_of(k) {
                    self.synced(k);
                }
            }
            Ev::Hop(life, generation, to, bytes) => {
                let now = self.instant();
                if life == self.life {
                    if let Some(e) = self.engine.as_mut().filter(|e| e.hop_generation() == generation) {
                        e.deliver_hop(to, &bytes, now);
                    }
                }
            }
            Ev::HopCut(micros) => {
                let now = self.instant();
                let life = self.life;
                if let Some(e) = self.engine.as_mut().filter(|e| e.hop_up_now() && self.faults) {
                    let generation = e.hop_cut(now);
                    let d = Duration::from_micros(micros);
                    self.out.hop_cuts += 1;
                    self.world(format!("the hop breaks for {d:?}: what was on its way is lost"));
                    self.at(self.now + d, Ev::HopHeal(life, generation));
                }
            }
            Ev::ShardCrash(k) => {
                if self.faults && self.cluster.is_none() && self.shards > 1 && self.paused_until.is_none() {
                    self.crash_shard(k);
                }
            }
            Ev::HopHeal(life, generation) => {
                let now = self.instant();
                if life == self.life {
                    if let Some(e) = self.engine.as_mut().filter(|e| e.hop_generation() == generation) {
                        e.hop_heal(now);
                        self.world("the hop is up again");
                    }
                }
            }
            Ev::Timer(life) => {
                if life != self.life {
                    return;
                }
                if self.timer_at.is_some_and(|at| at <= self.now) {
                    self.timer_at = None;
                }
                let now = self.instant();
                if let Some(e) = self.engine.as_mut() {
                    e.handle_timeout(now);
                }
            }
            Ev::Crash => {
                if self.faults {
                    self.crash();
                }
            }
            Ev::CrashAtAnswer => {
                if self.faults {
                    self.crash_at_answer = true;
                }
            }
            Ev::Restart => {
                if self.engine.is_none() {
                    if self.cluster.is_some() {
                        self.take_over();
                        self.start_switch();
                        self.check_takeover();
                    } else {
                        self.start_switch();
                    }
                }
            }
            Ev::Appended(life, k) => self.appended(life, k),
            Ev::Late => self.late(),
            Ev::Pause(micros) => {
                if self.faults && self.engine.is_some() && self.paused_until.is_none() {
                    self.pause(Some(Duration::from_micros(micros)), 0);
                }
            }
            Ev::PauseNearLease(past) => {
                if self.faults && self.engine.is_some() && self.paused_until.is_none() {
                    self.pause(None, past);
                }
            }
            Ev::Wake => {
                self.paused_until = None;
                self.world("the node runs again");
            }
            Ev::StreamDown(micros) => {
                if self.faults {
                    let d = Duration::from_micros(micros);
                    if let Some(c) = self.cluster.as_mut() {
                        c.down_until = c.down_until.max(self.now + d);
                    }
                    self.world(format!("the stream's leader fails: appends wait {d:?} for the election"));
                }
            }
            Ev::DiskFull(micros) => {
                if self.faults {
                    // One shard's disk (which one: from the duration, no draw of its own).
                    let k = (micros % self.disks.len() as u64) as usize;
                    self.world(format!("disk {k} fills up for {:?}", Duration::from_micros(micros)));
                    self.disks[k].full_until = Some(self.now + Duration::from_micros(micros));
                }
            }
            Ev::Eio => {
                if self.faults && self.disks.iter().any(|d| d.writing.is_some()) {
                    self.world("the disk fails the batch (EIO): the switch stops");
                    self.crash();
                }
            }
            Ev::ClockJump(ms) => {
                if self.faults {
                    self.world(format!("the wall clock jumps {ms} ms"));
                    self.wall_offset_ms += ms;
                }
            }
            _ => unreachable!("`step` hands this handler its own events only"),
        }
    }

    // ----- the switch -----

    pub(crate) fn start_switch(&mut self) {
        self.life += 1;
        self.world(format!("switch starts (life {})", self.life));
        let now = self.instant();
        let clock = WallClock { at: now, unix_secs: self.unix_ms() / 1000 };
        let unix_now = self.unix_ms();
        // Each shard recovers from its own disk.
        let recovered: Vec<(u64, Recovery)> =
            (0..self.shards).map(|k| self.recover_disk(k, unix_now)).collect();
        if let Some(crashed) = self.durable_at_crash.take() {
            // Recovery reads every record that was durable, and at most the whole records
            // of the batch the crash tore (a prefix of it may have reached the disk);
            // without any of those, exactly the state that was durable. Per shard's disk.
            for (k, (before, in_batch)) in crashed.into_iter().enumerate() {
                self.check_recovered(k, &before, in_batch);
            }
        }
        let mut base = config_for(self.topology);
        for (p, &o) in base.participants.iter_mut().zip(&self.owners) {
            p.shard = Some(o);
        }
        let plan = corridor_engine::shards::ShardPlan::new(self.shards, &base);
        let mut resumed = Vec::new();
        let runs: Vec<u64> = (0..self.shards).map(|k| self.run_of(k)).collect();
        let lens: Vec<Option<u64>> = (0..self.shards).map(|k| self.disk_len(k)).collect();
        let in_flight = self.journal_in_flight();
        let switch = Switch::new(base, plan, now, |k, config| {
            let (engine, r) = shard_engine(
                k,
                config,
                (clock, now, unix_now),
                (recovered[k].0, lens[k], runs[k]),
                &recovered[k].1,
                in_flight,
            );
            self.out.crossing_recovered += r.crossing as u64;
            resumed.push(r);
            engine
        });
        if self.life > 1 {
            for (k, ((_, owed), r)) in recovered.iter().zip(&resumed).enumerate() {
                self.world(recovered_line(k, owed, r));
            }
        }
        self.engine = Some(switch);
        self.timer_at = None;
        self.net.hop_last = [self.now; 2];
        for side in SIDES {
            self.connect(side);
        }
        self.pump();
    }

    /// What tells shard `k`'s disk events of this run from those of its runs before: the
    /// switch's life and the shard's restarts alone.
    pub(crate) fn run_of(&self, k: usize) -> u64 {
        (self.life << 16) | self.shard_runs.get(k).copied().unwrap_or(0)
    }

    /// The length of disk `k`'s last segment.
    fn disk_len(&self, k: usize) -> Option<u64> {
        self.disks[k].segments.last().map(|(_, b)| b.len() as u64)
    }

    /// Disk `k` recovered as a start reads it: its torn tail cut; the next record's number
    /// and what the journal owes.
    fn recover_disk(&mut self, k: usize, unix_now: u64) -> (u64, Recovery) {
        let disk = &mut self.disks[k];
        let view: Vec<(u64, &[u8])> = disk.segments.iter().map(|(s, b)| (*s, b.as_slice())).collect();
        let (next, owed, last_len) = match scan_log(&view) {
            Ok(scan) => {
                let mut owed = disk.recovered_checkpoint();
                // In a cluster, as `take_shard`: the shard's release mark.
                owed.released = self.cluster.as_ref().filter(|c| !c.marks_unread).and_then(|c| c.released[k]);
                let _ = owed.fold(&scan, unix_now);
                let cut = scan.cut();
                let next = scan.next_seq.max(owed.last_seq + 1);
                (next, owed, cut.map(|(_, at)| at as u64))
            }
            Err(_) => (1, Recovery::default(), None),
        };
        disk.cut_tail(last_len.map(|l| l as usize));
        if let Some(c) = self.cluster.as_mut() {
            c.unreleased += owed.unreleased;
        }
        (next, owed)
    }

    /// Disk `k` as its node dies: what it holds durably — the switch must not have counted
    /// more (`believed`, its last record counted durable).
    fn counted_durable(&mut self, k: usize, believed: u64) -> Durable {
        let before = self.durable(k);
        if believed > before.last_seq {
            self.broke(
                None,
                format!(
                    "shard {k}: the switch counted records up to {believed} durable; the disk holds them up to {}",
                    before.last_seq
                ),
            );
        }
        before
    }

    /// The batch disk `k` was writing as its node died: lost, or torn (a prefix of it on
    /// disk). How many records it held.
    fn tear(&mut self, k: usize) -> u64 {
        let in_batch = self.disks[k].writing.as_ref().map_or(0, |b| b.last_seq + 1 - b.first_seq);
        if let Some(b) = self.disks[k].writing.take() {
            if self.rng.chance(50) {
                let cut = self.rng.below(b.bytes.len() as u64 + 1) as usize;
                let disk = &mut self.disks[k];
                if let Some(h) = b.new_segment {
                    disk.segments.push((h.first_seq, h.to_bytes().to_vec()));
                }
                if let Some((_, seg)) = disk.segments.last_mut() {
                    seg.extend_from_slice(&b.bytes[..cut]);
                }
            }
        }
        in_batch
    }

    /// Disk `k` recovered after its node's death: every record that was durable (`before`)
    /// and at most the whole records of the batch the death tore (`in_batch`; a prefix of it
    /// may have reached the disk) — without any of those, exactly the state that was durable.
    fn check_recovered(&mut self, k: usize, before: &Durable, in_batch: u64) {
        let after = self.durable(k);
        let (lo, hi) = (before.last_seq, before.last_seq + in_batch);
        if !(lo..=hi).contains(&after.last_seq) || (after.last_seq == lo && after != *before) {
            self.broke(
                None,
                format!(
                    "shard {k}: recovery read records up to {} ({after}); the disk held {lo} durably ({before}) \
                     and the torn batch {in_batch} more",
                    after.last_seq
                ),
            );
        }
    }

    /// The node running shard `k` alone dies (shards split between nodes) and starts again
    /// on its disk at once, while the other shard runs on: the connections of its
    /// participants close, its batch being written is lost or torn, its state is what its
    /// disk recovers, and the hop between the shards is down for up to 2 s (the node
    /// starting, the other's hop finding it again) — what was on its way is lost.
    pub(crate) fn crash_shard(&mut self, k: usize) {
        let Some(switch) = self.engine.as_ref() else { return };
        let believed = switch.journal_durable(k).unwrap_or(0);
        let mine: Vec<Side> = SIDES.into_iter().filter(|s| switch.owner(s.spec()) == k).collect();
        self.out.shard_crashes += 1;
        self.world(format!("shard {k}'s node dies; shard {} runs on", 1 - k));
        let before = self.counted_durable(k, believed);
        for &side in &mine {
            if let Some(&(_, generation)) = self.net.links.get(&side) {
                self.net.crashed.insert(generation);
                self.disconnect(side);
            }
        }
        let in_batch = self.tear(k);
        // Its own run from now: what its disk was doing for the last one is nothing now.
        self.shard_runs[k] += 1;
        let now = self.instant();
        let unix_now = self.unix_ms();
        let clock = WallClock { at: now, unix_secs: unix_now / 1000 };
        let (next, owed) = self.recover_disk(k, unix_now);
        self.check_recovered(k, &before, in_batch);
        let (len, run) = (self.disk_len(k), self.run_of(k));
        let mut resumed = None;
        let in_flight = self.journal_in_flight();
        let Some(switch) = self.engine.as_mut() else { return };
        let generation = switch.restart_shard(k, now, |config| {
            let (engine, r) =
                shard_engine(k, config, (clock, now, unix_now), (next, len, run), &owed, in_flight);
            resumed = Some(r);
            engine
        });
        if let Some(r) = resumed {
            self.out.crossing_recovered += r.crossing as u64;
            self.world(recovered_line(k, &owed, &r));
        }
        let d = self.rng.micros(10_000, 2_000_000);
        let life = self.life;
        self.at(self.now + d, Ev::HopHeal(life, generation));
        for side in mine {
            self.connect(side);
        }
        self.pump();
    }

    /// After every input: bytes out to peers, engine events, the journal's next batch, the
    /// next timer.
    pub(crate) fn pump(&mut self) {
        for round in 0.. {
            if round >= PUMP_ROUNDS_MAX {
                self.stuck =
                    Some(format!("the switch's outputs did not settle after {PUMP_ROUNDS_MAX} rounds"));
                return;
            }
            let mut progress = false;
            let now = self.instant();
            let Some(engine) = self.engine.as_mut() else { return };
            let flushed = engine.flush(now);
            let hops = std::mem::take(&mut engine.hop_out);
            let engine_generation = engine.hop_generation();
            if let Some(why) = engine.hop_closed.take() {
                self.broke(None, why);
            }
            for (from, bytes) in hops {
                // In order on each hop, after a lane's hand-off between threads.
                progress = true;
                let d = self.rng.micros(1, 300);
                let at = (self.now + d).max(self.net.hop_last[from]);
                self.net.hop_last[from] = at;
                let (life, generation) = (self.life, engine_generation);
                self.at(at, Ev::Hop(life, generation, 1 - from, bytes.to_vec()));
            }
            for (link, out) in flushed.outputs {
                progress = true;
                if let Some(side) = self.side_of(link) {
                    self.net.unwritten.entry(side).or_default().extend_from_slice(&out);
                    self.write(side);
                }
            }
            for link in flushed.close {
                progress = true;
                if let Some(side) = self.side_of(link) {
                    self.world(format!("the switch closes {side:?}'s connection"));
                    self.disconnect(side);
                } else if let Some(e) = self.engine.as_mut() {
                    e.link_down(link, self.t0 + self.now);
                }
            }
            for link in flushed.resume {
                progress = true;
                self.feed(link);
            }
            let now = self.instant();
            let unix_ms = self.unix_ms();
            for k in 0..self.disks.len() {
                if self.journal_busy(k) {
                    continue;
                }
                let Some(engine) = self.engine.as_mut() else { return };
                match engine.poll_journal(k, now, unix_ms) {
                    Some(JournalStep::Write(batch)) => {
                        (self.disks[k].writing, self.disks[k].handed_at) = (Some(batch), self.now);
                        let d = self.rng.micros(50, 400) * if self.disks[k].slow { 40 } else { 1 };
                        let run = self.run_of(k);
                        self.at(self.now + d, Ev::Synced(run, k));
                        progress = true;
                    }
                    Some(JournalStep::LookAgain) => {
                        // Taking the reserve back succeeds once the disk has room.
                        let room = self.disks[k].full_until.is_none_or(|t| t <= self.now);
                        engine.journal_looked(k, room, now);
                        if room {
                            self.world(format!("journal {k}: disk space is back"));
                        }
                        progress = true;
                    }
                    None => {}
                }
            }
            let next = self.engine.as_ref().and_then(|e| e.poll_timeout(|k| self.journal_busy(k)));
            if let Some(t) = next {
                let due = t.saturating_duration_since(self.t0);
                if self.timer_at.is_none_or(|at| due < at) {
                    self.timer_at = Some(due);
                    let life = self.life;
                    self.at(due, Ev::Timer(life));
                }
            }
            if !progress {
                return;
            }
        }
    }

    // ----- the loop -----

    pub(crate) fn crash(&mut self) {
        let Some(switch) = self.engine.take() else { return };
        self.out.crashes += 1;
        self.net.crashed.extend(self.net.links.values().map(|&(_, generation)| generation));
        self.world("switch crashes");
        let mut at_crash = Vec::with_capacity(self.disks.len());
        for k in 0..self.disks.len() {
            let believed = switch.journal_durable(k).unwrap_or(0);
            self.check_replicated(k, believed);
            let before = self.counted_durable(k, believed);
            let in_batch = self.tear(k);
            at_crash.push((before, in_batch));
        }
        self.held_at_crash =
            self.net.unwritten.iter().filter(|(_, u)| !u.is_empty()).map(|(&s, _)| s).collect();
        for side in SIDES {
            if self.net.links.contains_key(&side) {
                self.disconnect(side);
            }
        }
        if self.cluster.is_some() {
            // Another node takes over, from the stream: what recovery must read is the
            // stream's (checked at the takeover).
            self.standby_takes_over_later();
            return;
        }
        self.durable_at_crash = Some(at_crash);
        let issuers = self.owners[1];
        let since = self.synced_at.get(issuers).copied().unwrap_or_default();
        self.unsynced.push((since, self.now));
        let d = self.rng.micros(1_000, 500_000);
        self.at(self.now + d, Ev::Restart);
    }

    /// Whether shard `k` takes no batch now: its disk writes one at a time, and in a cluster
    /// as many as may be are in the stream (the ones before a batch being written are).
    fn journal_busy(&self, k: usize) -> bool {
        self.disks[k].writing.is_some() || self.cluster.as_ref().is_some_and(|c| c.stream_full(k))
    }

    /// How many journal batches a shard has out at once: a cluster's node has several in
    /// the stream ([`cluster::IN_FLIGHT`]), a node alone one on its disk.
    fn journal_in_flight(&self) -> usize {
        if self.cluster.is_some() {
            cluster::IN_FLIGHT
        } else {
            1
        }
    }

    /// Whether an approval that reached the switch at `at` was lost with a crash before any
    /// record it caused became durable (see [`Sim::unsynced`]).
    pub(crate) fn lost_unsynced(&self, at: Duration) -> bool {
        self.unsynced.iter().any(|&(from, to)| at > from && at <= to)
    }

    /// Shard `k`'s batch reaches its disk, or (the disk full) waits and is tried again.
    pub(crate) fn synced(&mut self, k: usize) {
        if self.engine.is_none() {
            return;
        }
        let result = if self.disks[k].full_until.is_some_and(|t| t > self.now) {
            // Nothing to release here: the batch waits and is written again.
            Written::NoSpace { released: false }
        } else {
            let disk = &mut self.disks[k];
            let mut replicate = None;
            if let Some(b) = disk.writing.take() {
                if let Some(h) = b.new_segment {
                    disk.segments.push((h.first_seq, h.to_bytes().to_vec()));
                }
                if let Some((_, seg)) = disk.segments.last_mut() {
                    seg.extend_from_slice(&b.bytes);
                }
                replicate = Some(cluster::Appended {
                    first_seq: b.first_seq,
                    last_seq: b.last_seq,
                    bytes: b.bytes,
                    life: self.life,
                    checkpoint: None,
                    release_marked: b.release_marked,
                    cut_at: disk.handed_at,
                });
            }
            if self.synced_at.len() <= k {
                self.synced_at.resize(k + 1, Duration::ZERO);
            }
            self.synced_at[k] = self.now;
            if let (Some(batch), true) = (replicate, self.cluster.is_some()) {
                // Synced here; released once the stream has it (see `cluster`).
                self.append(k, batch);
                return;
            }
            Written::Synced
        };
        self.written(k, result);
    }

    /// Shard `k`'s batch is written (`result`): the engine is told, and a batch that waits
    /// for room is tried again when it says.
    pub(crate) fn written(&mut self, k: usize, result: Written) {
        let now = self.instant();
        let Some(engine) = self.engine.as_mut() else { return };
        let was_full = engine.journal_full(k);
        let after = engine.journal_written(k, result, now);
        if !was_full && engine.journal_full(k) {
            self.world(format!("journal {k}: the disk is full (ENOSPC): the batch waits"));
        }
        if let AfterWrite::Again(at) = after {
            let run = self.run_of(k);
            self.at(at.saturating_duration_since(self.t0), Ev::Synced(run, k));
        }
    }

    /// What the disk holds durably, as recovery reads it: open requests, stored reversals,
    /// exceptions, how many outcomes, the last sequence number.
    pub(crate) fn durable(&self, k: usize) -> Durable {
        let view: Vec<(u64, &[u8])> =
            self.disks[k].segments.iter().map(|(s, b)| (*s, b.as_slice())).collect();
        let Ok(scan) = scan_log(&view) else { return Durable::default() };
        let mut r = self.disks[k].recovered_checkpoint();
        let _ = r.fold(&scan, self.unix_ms());
        Durable::of(&r)
    }
}

/// What the history says of shard `k`'s recovery: what its disk owed, and what resuming did.
fn recovered_line(k: usize, owed: &Recovery, r: &corridor_engine::Resumed) -> String {
    format!(
        "shard {k} recovered: {} open requests, {} stored reversals, {} outcomes; {r:?}",
        owed.requests.len(),
        owed.reversals.len(),
        owed.outcomes.len()
    )
}

/// Shard `k`'s engine for `config`, with its journal going on from record `next` (its last
/// segment `len` bytes long; nonces of its own for `run`), anchored to `at` (the clock, now,
/// the wall clock's ms), and what `owed` says the last run left resumed.
fn shard_engine(
    k: usize,
    config: Config,
    (clock, now, unix_now): (WallClock, Instant, u64),
    (next, len, run): (u64, Option<u64>, u64),
    owed: &Recovery,
    in_flight: usize,
) -> (Engine, corridor_engine::Resumed) {
    let policy =
        GroupCommit { segment_bytes: corridor_journal::limits::SEGMENT_BYTES_MIN, ..GroupCommit::default() };
    let mut nonce = [0u8; 8];
    nonce.copy_from_slice(&(run * 16 + k as u64).to_be_bytes());
    let key = PanKey::new(1, &[0x5A; 32]).unwrap_or_else(|_| unreachable!("a 32-byte key"));
    let journal = Journal::new(policy, next, len, key, nonce);
    let mut engine = Engine::with_journal(config, clock, journal);
    engine.set_journal_batches_in_flight(in_flight);
    // Before resuming: the entries it resumes are this shard's.
    engine.set_shard(k);
    let r = engine.resume(owed, now, unix_now);
    (engine, r)
}
