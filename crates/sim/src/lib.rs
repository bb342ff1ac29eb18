//! Corridor's deterministic simulator: the engine and its journal in one loop with simulated
//! time, links, peers and disk. One seed drives every choice, so a seed replays a run
//! exactly. No tokio, no sockets.
//!
//! What a seed chooses: the topology's wires (each side native, or a classic length header
//! with an ISO 8583:1987 dialect), the issuer's two links, the echo interval, whether the
//! acquirers' links need a sign-on; two terminals — an acquirer's, and one behind a network
//! participant that forwards for another institution (DE 33) — each of which signs on (and
//! off and on again), sends purchases and authorizations for a few simulated seconds (on a
//! native wire as twin terminals: each two requests one STAN and one DE 7 from two DE 41s,
//! as terminals numbering their own requests send them), sends
//! completion advices after some approvals (repeated until acknowledged), repeats some
//! requests it had answered, and either reverses every one it got no answer to (repeating
//! its reversal until acknowledged) or forgets them (so only the switch's own reversals
//! protect it) — on a seed without crashes, or as a cluster's node, which dies as `kill -9`
//! kills it (the kernel sends what it wrote; its release mark says what it never sent),
//! unless it died holding bytes for the terminal not yet written; an issuer that approves
//! (after 1–800 ms), declines, never answers, answers after the timeout (often after it has
//! acknowledged the switch's reversal of that request: an approval that then stands until
//! a reversal comes after it), answers twice, or answers on its other link, and acknowledges
//! most reversals; links that drop, stall (a
//! reader that stops reading: the switch's writes go partly or not at all), deliver in
//! 1–7-byte pieces, or carry garbage; a disk that syncs in 50–400 µs, fills up (ENOSPC: the
//! batch waits, new requests are declined 96) and fails (EIO: the switch stops, the batch
//! torn); switch crashes (everything not synced is lost, the batch being written may be
//! torn) and restarts from what the disk holds — on a third of the two-shard seeds (from a
//! stream of their own) one shard's disk slow (syncs 40 times as long) and a crash at the
//! moment a terminal gets a switch-made answer while a shard's batch is still being written, the crash that finds an answer sent on a record of the other
//! shard that is not yet durable (a hop adds no durable step: a request another shard sent
//! is forwarded, and its destination's answer sent back, before this shard's records are); route reloads (a new timeout) and reloads of
//! the whole configuration (the engine's `reconfigure`: in-flight limits raised, a link's
//! connections retired — drained, then closed — as `SIGHUP` does); jumps of the
//! wall clock (the monotonic clock never jumps). Half the seeds (from a stream of their own,
//! so every other draw is as it was) run the switch as two shards, each participant on
//! either, each shard with its own journal on its own disk (a full or failing disk is one
//! shard's), joined by a hop whose bytes arrive in order after 1–300 µs (`switch`) and which,
//! on two fifths of them (a stream of their own), breaks once or twice for up to 3 s as a hop
//! between nodes would (both ends' links down, what was on its way lost, then up again); on
//! three tenths of those outside a cluster, the node running one shard alone dies once or
//! twice and starts again on its disk while the other shard runs on, as when shards are
//! split between nodes (its connections and state lost, its torn batch cut, the hop down
//! for up to 2 s; with the crossing requests a restart finds taken as reversed there
//! instead of left to the other shard, seed 4 loses an approval). A third
//! (again from a stream of their own) run it as a cluster's node (`cluster`): each shard's
//! journal replicated in a simulated stream whose leader fails now and then, nothing a
//! batch gates released before the stream acknowledges it, and each crash taken over by a
//! standby 3 s later (a lease) from the stream, on disks of its own, reading from the
//! shard's last checkpoint in the stream (checkpoints appended now and then, the messages
//! before them purged); the node is paused now and then, shorter than its lease (it goes
//! on, late), past it (taken over) or about as long (its clock, skewed, must judge its lease
//! stale before the bucket lets it expire). Then the faults stop and the run settles.
//!
//! Invariants. On every step: no request answered twice; an answer carries its request's
//! RRN (correlation restored; no participant gets another's answer); no purchase forwarded
//! twice; no reversal reaches the issuer before its purchase; the engine's maps and the
//! bytes it has written and not yet delivered within their bounds; no shard closes its hop.
//! At the end of every seed:
//! no approval lost (the issuer approved, the terminal never got that approval, and no
//! reversal reached the issuer after the approval went out); no approval the terminal got
//! reversed by the switch (unless the terminal reversed it itself); every reversal the switch acknowledged reached the
//! issuer; every advice the switch acknowledged reached the issuer; every reversal the
//! terminal made was acknowledged; a repeat of an answered purchase got the first answer;
//! the run settled (nothing owed, no livelock). At a crash and its restart: the switch
//! counted no record durable that the disk lacks, and recovery read every durable record and
//! at most the whole records of the torn batch. Each failure names the seed, the step, the
//! RRN's history and the switch's.
//!
//! # Layout
//!
//! As TigerBeetle's `src/testing/`, a file per stubbed component and per checker:
//!
//! - this file: the world (`Sim`), its event queue and the step that dispatches each event;
//! - `plan`: a seed's topology and faults; `topology`: wires, configuration, routes;
//! - `process`: the switch process — its start on its disks, the driver's loop around it
//!   (`corridor_engine::driver`: the flush after every input, the journal's batch cycle),
//!   its crash — and the simulated disks;
//! - `switch`: the switch as one engine or two shards joined by a hop;
//! - `cluster`: the switch as a cluster's node — the stream and its checkpoints, the
//!   replication gate, the standby's takeover;
//! - `network`: connections, latency, fragments, stalls, drops;
//! - `terminal`, `issuer`: the simulated peers; `messages`: what they send and read;
//! - `checks`: the bounds on every step and the invariants at the end of a seed;
//! - `rng`: the seed's one source of choices; `ops`: the simulated operations checks.

#![forbid(unsafe_code)]

mod checks;
mod cluster;
mod issuer;
mod messages;
mod network;
pub mod ops;
mod plan;
mod process;
mod rng;
mod switch;
mod terminal;
mod topology;

use std::{
    cmp::Reverse,
    collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque},
    time::{Duration, Instant},
};

#[allow(clippy::wildcard_imports)] // the simulator's own parts
use self::{issuer::*, messages::*, process::*, terminal::*, topology::*};
use bytes::BytesMut;
use corridor_engine::{
    driver::{AfterWrite, JournalStep, Written},
    AtLimit, Config, Engine, Journal, LinkId, LinkSpec, Participant, Roles, Route, RouteKey, RouteTable,
    Settings, WallClock,
};
use corridor_journal::{recovery::Recovery, request::PanKey, scan_log, GroupCommit};
use corridor_wire::{de, Dialect, LengthHeader, Message, Mti, OwnedMessage, Wire, FRAME_BYTES_MAX};
pub use rng::Rng;
use switch::Switch;

/// How long the terminal sends, in simulated time.
pub const LOAD: Duration = Duration::from_secs(4);
/// The longest a seed may take to settle after the load, in simulated time: the switch's
/// own retry and failure detection (reversals back off to 4 s; a dead link is found by its
/// echoes) settle every seed well within it, so a link that stays up and useless — one that
/// lost its framing, say — is caught as a seed that does not settle.
pub const SETTLE_MAX: Duration = Duration::from_secs(60);
/// The route's timeout.
const TIMEOUT: Duration = Duration::from_secs(2);
/// A purchase unanswered this long is reversed by the terminal.
const GIVE_UP: Duration = Duration::from_secs(3);
/// Declines the switch makes before it takes a request: no outcome (SPEC §9).
const ADMISSION_DECLINES: [&str; 6] = ["91", "92", "94", "63", "30", "96"];
/// Most events a seed may take (a livelock is reported, not waited for).
pub const STEPS_MAX: u64 = 2_000_000;
/// Most rounds the switch's outputs may take to settle after one input.
const PUMP_ROUNDS_MAX: u32 = 10_000;
/// Most history lines kept per RRN.
const HISTORY_MAX: usize = 24;

const UNIX: u64 = 1_795_644_930;
/// The wires a side may speak.
const WIRES: [Wire; 4] = [
    Wire::NATIVE,
    Wire::classic(LengthHeader::Bin2, Dialect::Iso87Ascii),
    Wire::classic(LengthHeader::Ascii4, Dialect::Iso87Hex),
    Wire::classic(LengthHeader::Bin4, Dialect::Iso87Ascii),
];
/// How long a disk that filled up stays full, at most.
const DISK_FULL_MAX: Duration = Duration::from_millis(800);
/// The acquirer link's in-flight limit.
const ACQ_INFLIGHT_MAX: u32 = 96;
/// A retired connection is closed at the latest this long after the reload.
const RETIRE_WAIT: Duration = Duration::from_secs(2);
/// How often retired connections are looked at (the network layer's drain poll).
const RETIRE_TICK: Duration = Duration::from_millis(100);

/// Which side of the switch (and which of the issuer's links).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Side {
    /// The acquirer's terminal.
    Acq,
    Iss,
    Iss2,
    /// A network forwarding for another acquirer: a participant of its own, with its own
    /// terminal.
    Net,
}

const SIDES: [Side; 4] = [Side::Acq, Side::Iss, Side::Iss2, Side::Net];

impl Side {
    const fn spec(self) -> usize {
        match self {
            Self::Acq => 0,
            Self::Iss => 1,
            Self::Iss2 => 2,
            Self::Net => 3,
        }
    }

    const fn issuer(self) -> bool {
        matches!(self, Self::Iss | Self::Iss2)
    }
}

/// The institution the network forwards for (DE 32) and its own id (DE 33).
const NET_ACQUIRER: &str = "22345678";
const NET_FORWARDER: &str = "99887766";
/// The network's terminal numbers its requests from here (RRNs never meet the acquirer's).
const NET_FIRST: u32 = 5_000_000;

/// Something due at a simulated time.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    /// A terminal's next send.
    Send(Side),
    /// A terminal's look at what it gave up on and what to reverse.
    TerminalTick(Side),
    /// Bytes reach the switch from a side (connection generation).
    ToSwitch(Side, u64, Vec<u8>),
    /// Bytes reach a peer from the switch (connection generation).
    /// The next bytes the switch wrote reach a peer (connection generation).
    ToPeer(Side, u64),
    /// A shard's disk's sync of the batch being written completes, or fails for want of
    /// space (switch life, shard).
    Synced(u64, usize),
    /// What one shard wrote on its hop reaches the other (switch life, hop generation,
    /// receiving shard).
    Hop(u64, u64, usize, Vec<u8>),
    /// The hop between the two shards breaks for this long (microseconds), as a network
    /// hop between nodes would: both ends' links go down, what was on its way is lost.
    HopCut(u64),
    /// The hop comes up again (switch life, the generation it was cut at).
    HopHeal(u64, u64),
    /// On two shards, the node running this one alone dies and starts again on its disk,
    /// while the other shard runs on (shards split between nodes): its connections and
    /// its state are lost, its hop breaks until the restart is over.
    ShardCrash(usize),
    /// The engine's timers (switch life).
    Timer(u64),
    /// A peer drops its connection.
    Drop(Side),
    /// A peer connects again.
    Connect(Side),
    /// The switch process dies.
    Crash,
    /// What a dead cluster node had sent and had not reached the stream arrives there.
    Late,
    /// From now on the switch process dies as the terminal gets a switch-made answer to a
    /// purchase while a shard's batch is still being written (once).
    CrashAtAnswer,
    /// It starts again on its disk.
    Restart,
    /// A peer stops reading for this long (microseconds).
    Stall(Side, u64),
    /// The switch may write to a peer again (connection generation).
    Writable(Side, u64),
    /// A peer sends bytes that are no frame.
    Garbage(Side),
    /// The disk fills up for this long (microseconds).
    DiskFull(u64),
    /// The disk fails the batch being written (EIO): the switch stops.
    Eio,
    /// A cluster's stream answers a shard's append (node life, shard).
    Appended(u64, usize),
    /// A cluster's stream loses its leader: appends wait this long (microseconds) for the
    /// election.
    StreamDown(u64),
    /// A cluster's node stops for this long (microseconds: `SIGSTOP`, a stall).
    Pause(u64),
    /// A cluster's node stops until its lease is this far past its time to live
    /// (microseconds; negative: short of it): the boundary its own clock must judge right.
    PauseNearLease(i64),
    /// The paused node runs again.
    Wake,
    /// The wall clock jumps by this many milliseconds (either way).
    ClockJump(i64),
    /// The route table is reloaded with this timeout (milliseconds).
    Reload(u64),
    /// The whole configuration is reloaded (the engine's `reconfigure`, as `SIGHUP` does):
    /// the listening links' in-flight limit raised to this, and this link's connections
    /// retired (drained, then closed; its peer connects again).
    Reconfigure(u32, Option<Side>),
    /// Closes the retired connections that have drained (the network layer's retire loop).
    RetireTick,
    /// A terminal signs on (0800/001).
    SignOn(Side),
    /// A terminal signs off (0800/002), and on again a little later.
    SignOff(Side),
}

/// A failed invariant.
#[derive(Clone, Debug)]
pub struct Violation {
    /// The seed.
    pub seed: u64,
    /// The step (event number) it broke at.
    pub step: u64,
    /// What broke.
    pub what: String,
    /// The history of the transaction it broke on.
    pub history: Vec<String>,
    /// The faults left out of the seed's plan (see [`Sim::without`]).
    pub without: Vec<usize>,
}

impl Violation {
    /// The invariant's kind: its text up to the first digit (numbers differ between runs).
    #[must_use]
    pub fn kind(&self) -> String {
        self.what.split(|c: char| c.is_ascii_digit()).next().unwrap_or_default().to_owned()
    }

    /// The command that replays it.
    #[must_use]
    pub fn replay(&self) -> String {
        if self.without.is_empty() {
            format!("corridor-sim --seed {}", self.seed)
        } else {
            let w: Vec<String> = self.without.iter().map(ToString::to_string).collect();
            format!("corridor-sim --seed {} --without {}", self.seed, w.join(","))
        }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "seed {}, step {}: {}", self.seed, self.step, self.what)?;
        for h in &self.history {
            writeln!(f, "  {h}")?;
        }
        writeln!(f, "replay: {}", self.replay())?;
        write!(f, "shrink: corridor-sim --seed {} --shrink", self.seed)
    }
}

/// What a seed did.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Purchases the terminal sent.
    pub sent: u32,
    /// Approvals it received.
    pub approvals: usize,
    /// Purchases it reversed.
    pub reversed: usize,
    /// Of what it sent, authorizations (0100).
    pub authorizations: usize,
    /// Its advices the switch acknowledged.
    pub advised: usize,
    /// Sign-ons and sign-offs the switch answered.
    pub sign_ons: u32,
    /// See `sign_ons`.
    pub sign_offs: u32,
    /// Approvals the issuer sent after it had applied (acknowledged) a reversal of the same
    /// purchase, on the connection the purchase came on.
    pub approved_after_reversal: u32,
    /// Crashes of the switch.
    pub crashes: u32,
    /// Of them, crashes as the terminal got a switch-made answer while a shard's batch was
    /// still being written.
    pub crashes_at_answer: u32,
    /// Requests another shard sent that a restart found forwarded and unanswered here: left
    /// to that shard to reverse (`Resumed::crossing`).
    pub crossing_recovered: u64,
    /// On two shards: times the hop between them broke (and came up again).
    pub hop_cuts: u32,
    /// On two shards: deaths of one shard's node while the other ran on.
    pub shard_crashes: u32,
    /// On a cluster's seed: takeovers by the standby (each crash is one).
    pub takeovers: u32,
    /// On a cluster's seed: appends that reached the stream as their node died.
    pub landed_at_death: u32,
    /// On a cluster's seed: appends a dead node had sent that arrived after the takeover,
    /// and of those that went in (none: the new owner's fence).
    pub late: (u32, u32),
    /// On a cluster's seed: the most batches a shard had in the stream at once.
    pub most_out: usize,
    /// On a cluster's seed: approvals a takeover found recorded after the shard's release
    /// mark (never given to their originators), left open and reversed.
    pub unreleased: u64,
    /// Purchases a terminal that forgets forgot while its cluster's node was down (the
    /// release mark alone protecting it).
    pub forgot_at_death: u64,
    /// On a cluster's seed: pauses of the node shorter than its lease (it goes on), and
    /// longer (the standby takes over; awake, it finds its lease stale and stops).
    pub pauses: (u32, u32),
    /// On a cluster's seed: checkpoints appended to the stream, purges of what was before
    /// one, and checkpoints cut short by their writer's death.
    pub checkpoints: (u32, u32, u32),
    /// Whether the seed ran the switch as a cluster's node.
    pub cluster: bool,
    /// Events processed.
    pub steps: u64,
    /// Simulated time at the end.
    pub simulated: Duration,
}

/// One seed's world.
pub struct Sim {
    seed: u64,
    rng: Rng,
    t0: Instant,
    now: Duration,
    seq: u64,
    queue: BinaryHeap<Reverse<(Duration, u64, Ev)>>,
    engine: Option<Switch>,
    life: u64,
    /// Per shard, its restarts alone (`Ev::ShardCrash`) so far: with the switch's life, what
    /// tells a shard's disk events of its last run from its own.
    shard_runs: Vec<u64>,
    /// The seed's shards (1 or 2) and the owner of each participant (acq, iss, net).
    shards: usize,
    owners: [usize; 3],
    /// The simulated network (see `network`).
    net: network::Network,
    timer_at: Option<Duration>,
    /// Each shard's disk.
    disks: Vec<Disk>,
    /// The terminal whose turn it is (see `activate`), and the other one.
    terminal: Terminal,
    parked: Terminal,
    issuer: Issuer,
    history: BTreeMap<u32, Vec<String>>,
    /// The switch's and the links' own history: crashes, restarts, drops.
    world: Vec<String>,
    out: Outcome,
    load_over: bool,
    faults: bool,
    /// Set when a bound of the loop itself was hit (a livelock).
    stuck: Option<String>,
    /// The first invariant broken on a step.
    broken: Option<(u64, Option<u32>, String)>,
    topology: Topology,
    /// The wall clock's offset from the monotonic one, in milliseconds.
    wall_offset_ms: i64,
    /// Faults of the plan left out.
    without: Vec<usize>,
    /// How many faults the plan has.
    plan_len: usize,
    /// What was durable when the switch crashed, and how many records the batch it tore
    /// had: recovery must read that, and at most those.
    durable_at_crash: Option<Vec<(Durable, u64)>>,
    /// A seed that runs the switch as a cluster's node: the stream and the standby.
    cluster: Option<cluster::Cluster>,
    /// While the node is paused: until when.
    paused_until: Option<Duration>,
    /// Armed by [`Ev::CrashAtAnswer`]: the next switch-made answer the terminal gets while a
    /// shard's batch is being written crashes the switch.
    crash_at_answer: bool,
    /// The sides the switch held bytes for, not yet written, when it last crashed: a node's
    /// death loses them, and no mark can say they did not leave (see `give_up`).
    held_at_crash: BTreeSet<Side>,
    /// Per shard: when its disk last took a batch (synced).
    synced_at: Vec<Duration>,
    /// Spans in which what reached the switch never became durable before it crashed: from
    /// the issuer's shard's last synced batch to the crash. Outside a cluster, the known gap
    /// `checks` describes — a late approval whose second reversal was not yet durable is
    /// lost with the crash — is this span; with the disk full it lasts as long as the disk
    /// does (this disk has no reserve to release).
    unsynced: Vec<(Duration, Duration)>,
}

impl Sim {
    /// The world of `seed`, ready to run.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self::without(seed, &[])
    }

    fn unix_ms(&self) -> u64 {
        ((UNIX * 1000 + self.now.as_millis() as u64) as i64 + self.wall_offset_ms).max(0) as u64
    }

    /// Records the first invariant broken on a step.
    fn broke(&mut self, n: Option<u32>, what: String) {
        if self.broken.is_none() {
            self.broken = Some((self.out.steps, n, what));
        }
    }

    fn at(&mut self, when: Duration, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((when.max(self.now), self.seq, ev)));
    }

    fn instant(&self) -> Instant {
        self.t0 + self.now
    }

    fn note(&mut self, n: u32, what: impl Into<String>) {
        let h = self.history.entry(n).or_default();
        if h.len() < HISTORY_MAX {
            h.push(format!("{:>10.3} ms  {}", self.now.as_secs_f64() * 1000.0, what.into()));
        }
    }

    fn world(&mut self, what: impl Into<String>) {
        if self.world.len() < 4 * HISTORY_MAX {
            self.world.push(format!("{:>10.3} ms  {}", self.now.as_secs_f64() * 1000.0, what.into()));
        }
    }

    fn step(&mut self, ev: Ev) {
        if self.paused_until.is_some_and(|t| t > self.now)
            && matches!(
                ev,
                Ev::ToSwitch(..)
                    | Ev::Writable(..)
                    | Ev::Drop(_)
                    | Ev::Connect(_)
                    | Ev::Garbage(_)
                    | Ev::Synced(..)
                    | Ev::Hop(..)
                    | Ev::HopCut(_)
                    | Ev::HopHeal(..)
                    | Ev::ShardCrash(_)
                    | Ev::Timer(_)
                    | Ev::Appended(..)
                    | Ev::Reload(_)
                    | Ev::Reconfigure(..)
                    | Ev::RetireTick
            )
        {
            // The node is stopped: what would make it run waits, in order, until it wakes
            // (the kernel holds its sockets' bytes and its disk's completions meanwhile).
            // Awake, it reads what arrived before it judges a timeout, as `net` does: its
            // timers come a microsecond after the rest — and so do a peer's drop, reconnect
            // or garbage drawn for the pause (the fault falls at the wake instead, after the
            // bytes the peer sent before it).
            let at = self.paused_until.unwrap_or(self.now);
            let late = matches!(ev, Ev::Timer(_) | Ev::Drop(_) | Ev::Connect(_) | Ev::Garbage(_));
            let at = if late { at + Duration::from_micros(1) } else { at };
            self.at(at, ev);
            return;
        }
        match ev {
            Ev::Send(_) | Ev::TerminalTick(_) | Ev::SignOn(_) | Ev::SignOff(_) => self.terminal_event(ev),
            Ev::ToSwitch(..)
            | Ev::ToPeer(..)
            | Ev::Writable(..)
            | Ev::Drop(_)
            | Ev::Connect(_)
            | Ev::Stall(..)
            | Ev::Garbage(_) => self.network_event(ev),
            Ev::Synced(..)
            | Ev::Hop(..)
            | Ev::Timer(_)
            | Ev::Crash
            | Ev::CrashAtAnswer
            | Ev::Restart
            | Ev::DiskFull(_)
            | Ev::Eio
            | Ev::Appended(..)
            | Ev::Late
            | Ev::StreamDown(_)
            | Ev::HopCut(_)
            | Ev::HopHeal(..)
            | Ev::ShardCrash(_)
            | Ev::Pause(_)
            | Ev::PauseNearLease(_)
            | Ev::Wake
            | Ev::ClockJump(_) => self.process_event(ev),
            Ev::Reload(_) | Ev::Reconfigure(..) | Ev::RetireTick => self.operator_event(ev),
        }
        if self.paused_until.is_none() {
            self.pump();
        }
        self.check_bounds();
    }

    /// An operator's event: a reload of the routes or of the whole configuration, and the
    /// look at what is retiring.
    pub(crate) fn operator_event(&mut self, ev: Ev) {
        match ev {
            Ev::Reload(ms) => {
                if let Some(e) = self.engine.as_mut() {
                    e.reload_routes(routes(Duration::from_millis(ms)));
                    self.world(format!("routes reloaded: timeout {ms} ms"));
                }
            }
            Ev::Reconfigure(limit, retire) => {
                let now = self.instant();
                if let Some(e) = self.engine.as_mut() {
                    let retired: Vec<usize> = retire.map(Side::spec).into_iter().collect();
                    let change = |c: &mut Config| {
                        for spec in [Side::Acq.spec(), Side::Net.spec()] {
                            c.links[spec].inflight_max = limit;
                        }
                    };
                    if let Err(why) = e.reconfigure(change, &retired, now + RETIRE_WAIT, now) {
                        self.broke(
                            None,
                            format!("the engine refused a reload of its own configuration: {why}"),
                        );
                    }
                    self.world(format!(
                        "configuration reloaded: in-flight limit {limit}, retiring {retire:?}"
                    ));
                    self.at(self.now + RETIRE_TICK, Ev::RetireTick);
                }
            }
            Ev::RetireTick => {
                let now = self.instant();
                if let Some(e) = self.engine.as_mut() {
                    e.poll_retired(now);
                    if e.retiring() > 0 {
                        self.at(self.now + RETIRE_TICK, Ev::RetireTick);
                    }
                }
            }
            _ => unreachable!("`step` hands this handler its own events only"),
        }
    }

    /// Runs the seed to its end and checks it.
    ///
    /// # Errors
    ///
    /// The first invariant that does not hold.
    pub fn run(mut self) -> Result<Outcome, Violation> {
        while let Some(Reverse((when, _, ev))) = self.queue.pop() {
            self.now = when;
            self.out.steps += 1;
            if self.now > LOAD {
                self.faults = false;
            }
            self.step(ev);
            if self.out.steps >= STEPS_MAX && self.stuck.is_none() {
                self.stuck = Some(format!("{STEPS_MAX} events without settling"));
            }
            if self.settled() || self.now > LOAD + SETTLE_MAX || self.stuck.is_some() || self.broken.is_some()
            {
                break;
            }
        }
        self.out.simulated = self.now;
        if let Some(c) = &self.cluster {
            (self.out.cluster, self.out.takeovers, self.out.landed_at_death) =
                (true, c.takeovers, c.landed_at_death);
            self.out.pauses = c.pauses;
            (self.out.late, self.out.most_out) = ((c.late_sent, c.late_in), c.most_out);
            self.out.checkpoints = c.checkpoints;
            self.out.unreleased = c.unreleased;
        }
        self.check()?;
        self.out.approvals = self.terminals().iter().map(|t| t.approvals.len()).sum();
        self.out.reversed = self.terminals().iter().map(|t| t.reversed_acked.len()).sum();
        self.out.authorizations = self.terminals().iter().map(|t| t.authorizations.len()).sum();
        self.out.advised = self.terminals().iter().map(|t| t.advised_acked.len()).sum();
        Ok(self.out.clone())
    }
}

/// Runs seeds `from..from + n`, on every core (each seed is a world of its own: the
/// outcomes are those of one seed after another, in seed order); a violation stops the
/// thread that found it, and the lowest seed's is reported.
///
/// # Errors
///
/// The lowest seed whose run breaks an invariant.
pub fn run_seeds(from: u64, n: u64) -> Result<Vec<Outcome>, Violation> {
    let threads =
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get).min(SIM_THREADS_MAX);
    let threads = u64::try_from(threads).unwrap_or(1).clamp(1, n.max(1));
    // Thread `t` runs seeds `from + t`, `from + t + threads`, …: each gets its share of
    // the slow seeds wherever they fall.
    let runs: Vec<Result<Vec<(u64, Outcome)>, Violation>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (from + t..from + n)
                        .step_by(usize::try_from(threads).unwrap_or(1))
                        .map(|s| Sim::new(s).run().map(|o| (s, o)))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    });
    let mut outcomes = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    let mut first_violation: Option<Violation> = None;
    for run in runs {
        match run {
            Ok(o) => outcomes.extend(o),
            Err(v) if first_violation.as_ref().is_none_or(|f| v.seed < f.seed) => first_violation = Some(v),
            Err(_) => {}
        }
    }
    if let Some(v) = first_violation {
        return Err(v);
    }
    outcomes.sort_by_key(|(s, _)| *s);
    Ok(outcomes.into_iter().map(|(_, o)| o).collect())
}

/// The most threads [`run_seeds`] runs seeds on.
const SIM_THREADS_MAX: usize = 16;

/// A summary of outcomes, for printing.
#[must_use]
pub fn totals(outcomes: &[Outcome]) -> BTreeMap<&'static str, u64> {
    let mut t = BTreeMap::new();
    for o in outcomes {
        *t.entry("requests (purchases and authorizations)").or_default() += u64::from(o.sent);
        *t.entry("of them authorizations").or_default() += o.authorizations as u64;
        *t.entry("advices acknowledged").or_default() += o.advised as u64;
        *t.entry("terminal sign-ons answered").or_default() += u64::from(o.sign_ons);
        *t.entry("terminal sign-offs answered").or_default() += u64::from(o.sign_offs);
        *t.entry("approvals delivered").or_default() += o.approvals as u64;
        *t.entry("reversed by the terminal").or_default() += o.reversed as u64;
        *t.entry("crashes").or_default() += u64::from(o.crashes);
        *t.entry("crashes as the terminal got a switch-made answer").or_default() +=
            u64::from(o.crashes_at_answer);
        *t.entry("requests another shard sent, left to it by a restart").or_default() += o.crossing_recovered;
        *t.entry("hop breaks between two shards").or_default() += u64::from(o.hop_cuts);
        *t.entry("deaths of one shard's node, the other running on").or_default() +=
            u64::from(o.shard_crashes);
        *t.entry("seeds run as a cluster's node").or_default() += u64::from(o.cluster);
        *t.entry("takeovers by a standby from the stream").or_default() += u64::from(o.takeovers);
        *t.entry("appends that reached the stream as their node died").or_default() +=
            u64::from(o.landed_at_death);
        *t.entry("appends of a dead node arriving after the takeover").or_default() += u64::from(o.late.0);
        *t.entry("of those, taken by the stream").or_default() += u64::from(o.late.1);
        let most: &mut u64 = t.entry("the most batches of a shard in the stream at once").or_default();
        *most = (*most).max(o.most_out as u64);
        *t.entry("approvals recorded after the release mark, reversed at a takeover").or_default() +=
            o.unreleased;
        *t.entry("purchases a terminal forgot while its node was down").or_default() += o.forgot_at_death;
        *t.entry("node pauses shorter than a lease").or_default() += u64::from(o.pauses.0);
        *t.entry("node pauses past its lease").or_default() += u64::from(o.pauses.1);
        *t.entry("checkpoints appended to the stream").or_default() += u64::from(o.checkpoints.0);
        *t.entry("purges of the stream before a checkpoint").or_default() += u64::from(o.checkpoints.1);
        *t.entry("checkpoints cut short by their node's death").or_default() += u64::from(o.checkpoints.2);
        *t.entry("approved by the issuer after it acknowledged their reversal").or_default() +=
            u64::from(o.approved_after_reversal);
        *t.entry("steps").or_default() += o.steps;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_exactly() {
        let a = Sim::new(7).run().map_err(|v| v.to_string()).unwrap_or_default();
        let b = Sim::new(7).run().map_err(|v| v.to_string()).unwrap_or_default();
        assert_eq!(
            (a.sent, a.approvals, a.reversed, a.crashes, a.steps),
            (b.sent, b.approvals, b.reversed, b.crashes, b.steps)
        );
        assert!(a.sent > 100, "load was carried: {a:?}");
    }

    /// Seeds that found real defects, kept: 300 and 523 (an answer for an originator whose
    /// connection was gone was no outcome, so a repeat on its new connection was forwarded
    /// again), 1874 (the terminal model: a repeat after a 91 that got no answer must be
    /// reversed like any unanswered purchase), 7537 (a terminal's reversal of a purchase the
    /// switch never took, then that purchase sent again: it was forwarded after its own
    /// reversal; now the original is marked reversed when its reversal is stored, as
    /// recovery already read it). With the wider world (wires, two issuer links, stalls,
    /// disk faults): 823 (a crash tore the batch between a timed-out request's answer and its
    /// reversal: recovery saw it answered and owed nothing; the reversal is journaled first
    /// now), 1166 (the same for an approval whose originator was gone), 3644 (garbage on a
    /// length-framed issuer link: the stream lost its framing for good and the link stayed
    /// up, swallowing every answer; an unreadable body on such a link now closes it). With
    /// the network participant and a full disk: 4228 (a terminal's reversal of an approval
    /// the switch had already reversed was acknowledged at once, before the switch's own
    /// reversal was durable; a crash on the full disk lost both; the acknowledgement now
    /// waits for everything journaled before it). Each seed was found in the world of its
    /// day; the world has grown since, so the older ones now run other paths (they still
    /// check every invariant), and those defects are pinned by the engine's tests as well.
    #[test]
    fn the_seeds_that_found_defects_keep_every_invariant() {
        // 186: two shards, the issuer's shard's disk full; its 96 to the acquirer's shard's
        // stored advice came late, behind records waiting for the disk, and was taken for
        // the acknowledgement of the earlier try: the advice was lost. 1848 (with the
        // journal's lazy batches): a late approval on a connection that ended before the
        // crash, the disk full from before it came until after the crash — nothing of it
        // could be durable, and the check now says so (`Sim::unsynced`).
        for seed in [186, 300, 523, 823, 1166, 1848, 1874, 3644, 4228, 7537] {
            if let Err(v) = Sim::new(seed).run() {
                panic!("{v}");
            }
        }
    }

    /// A hop adds no durable step: a request another shard sent is forwarded, and its
    /// destination's answer sent back, before this shard's records of them are durable; the
    /// originator's shard's records cover them, and a restart leaves such a request to it.
    /// The first seed that breaks an invariant when that is mutated: 30 (a restart reverses
    /// them here too, as before: an approval the terminal got is reversed — a check of its
    /// own), 6 (a restart remembers them as reversed: the originator's shard's reversal is
    /// then acknowledged here and never forwarded — an approval neither delivered nor
    /// reversed), 388 (the originator's shard forwards over the hop before its own record is
    /// durable — the same).
    #[test]
    fn the_seeds_that_catch_a_hop_without_a_durable_step_keep_every_invariant() {
        let mut crossing = 0;
        for seed in [6, 30, 388] {
            match Sim::new(seed).run() {
                Ok(o) => crossing += o.crossing_recovered,
                Err(v) => panic!("{v}"),
            }
        }
        assert!(crossing > 0, "the seeds restart with requests another shard sent");
    }

    /// In today's world, the first seed that breaks an invariant when one of this issue's
    /// fixes is taken out (the mutation runs in the note): 1 (a response taken without
    /// checking it echoes its request's STAN and RRN), 73 (a reversal sent on any link of
    /// the destination, not behind its original), 927 (a length-framed link that lost its
    /// framing left up), 1794 (a redundant reversal acknowledged before the reversal that
    /// makes it redundant is durable).
    #[test]
    fn the_seeds_that_catch_this_issues_fixes_keep_every_invariant() {
        for seed in [1, 73, 927, 1794] {
            if let Err(v) = Sim::new(seed).run() {
                panic!("{v}");
            }
        }
    }

    /// An issuer that answers a request after it acknowledged the switch's reversal of it
    /// leaves an approval standing; the switch reverses it again when it arrives. With that
    /// second reversal taken out (`if approved && !under_way` in `Engine::unmatched`), 86 of
    /// the first 100 seeds fail; seed 1 is the first.
    #[test]
    fn an_approval_sent_after_its_reversal_was_acknowledged_is_reversed_again() {
        match Sim::new(1).run() {
            Ok(o) => assert!(o.approved_after_reversal > 0, "the seed exercises it"),
            Err(v) => panic!("{v}"),
        }
    }

    /// A cluster's node releases what a batch gates only once the stream has the batch.
    /// With that taken out (released once synced on the node's own disk, appended after),
    /// the simulator finds what a takeover then gets wrong: 72 of the 114 cluster seeds in
    /// 1..=300 (35 before a terminal that forgets went on forgetting across its node's
    /// death, 9 before the stream's checkpoints were drawn), the first 10 (the records
    /// the dead node released without the stream are missing past a checkpoint), then 23
    /// (an approval the dead node answered from records the stream never had: the standby
    /// neither delivered nor reversed it). (Counted over the whole range then; the test stops
    /// at the first, seed 10 now.)
    #[test]
    fn a_node_that_releases_before_the_stream_has_the_batch_is_caught() {
        let caught = caught_with(1..=300, |c| c.release_before_ack = true);
        assert!(!caught.is_empty(), "no cluster seed in 1..=300 caught it");
    }

    /// A node's first append is preceded by a fence (`ShardLog::fence`): with several
    /// batches in flight, a dead node's that arrive after the takeover each expect a place
    /// the new owner's fence put the subject past. Without the fence, one goes in after the
    /// new owner's records, and the simulator finds the subject broken — with several in
    /// flight (`cluster::IN_FLIGHT`); with one, a late batch can only follow what its own
    /// node appended, and the new owner is fenced: nothing breaks.
    #[test]
    fn a_node_that_takes_a_shard_over_without_its_fence_is_caught() {
        if cluster::IN_FLIGHT == 1 {
            let caught = caught_with(1..=300, |c| c.no_fence = true);
            assert!(caught.is_empty(), "one in flight needs no fence: {caught:?}");
            return;
        }
        let caught = caught_with(1..=300, |c| c.no_fence = true);
        assert!(!caught.is_empty(), "no cluster seed in 1..=300 caught it");
    }

    /// How many seeds that catch a planted defect are enough (the run stops there: the
    /// first says what it looks like, and the rest of the range costs the suite time —
    /// `--seeds` over the whole range, with the defect planted by hand, counts them all).
    const CAUGHT_ENOUGH: usize = 1;

    /// The cluster seeds in `seeds` that fail with `plant` made to their cluster, and how
    /// (the first [`CAUGHT_ENOUGH`]).
    fn caught_with(
        seeds: std::ops::RangeInclusive<u64>,
        plant: impl Fn(&mut cluster::Cluster),
    ) -> Vec<(u64, String)> {
        let mut caught = Vec::new();
        for seed in seeds {
            let mut sim = Sim::new(seed);
            let Some(c) = sim.cluster.as_mut() else { continue };
            plant(c);
            if let Err(v) = sim.run() {
                caught.push((seed, v.to_string()));
                if caught.len() == CAUGHT_ENOUGH {
                    break;
                }
            }
        }
        let seeds: Vec<u64> = caught.iter().map(|&(s, _)| s).collect();
        eprintln!("{} cluster seeds caught it: {seeds:?}", seeds.len());
        caught
    }

    /// A node marks a shard's release before it releases a batch relaying an approval (and
    /// its first batch): a takeover reverses an approval after the mark as never given.
    /// With the approvals' marks taken out, a takeover reverses approvals the partner had.
    #[test]
    fn a_release_of_an_approval_left_unmarked_is_caught() {
        let caught = caught_with(1..=100, |c| c.mark_no_approvals = true);
        assert!(!caught.is_empty(), "no cluster seed in 1..=100 caught it");
        assert!(
            caught.iter().all(|(_, v)| v.contains("delivered, then reversed by the switch")),
            "{caught:?}"
        );
    }

    /// A node killed after the stream stored an approval and before it marked its release
    /// never sent it; the node taking over reverses what the mark does not cover. With the
    /// mark left unread (every answer recorded taken as given), a terminal that forgets
    /// what it got no answer to — it goes on forgetting across a node's death, the mark's
    /// to protect it — is left with approvals neither delivered nor reversed (seed 73 of
    /// 1..=300; 79 too before the hop could break).
    #[test]
    fn a_takeover_that_does_not_read_the_release_mark_is_caught() {
        let caught = caught_with(1..=300, |c| c.marks_unread = true);
        assert!(!caught.is_empty(), "no cluster seed in 1..=300 caught it");
        assert!(caught.iter().all(|(_, v)| v.contains("never delivered, never reversed")), "{caught:?}");
    }

    /// A purge of a shard's subject keeps the batches holding records its checkpoint does
    /// not cover. With that taken out (every message before the checkpoint purged) a
    /// takeover finds records missing past the checkpoint — the reader's gap check — on the
    /// cluster seeds that purged with a checkpoint short of the subject's last record.
    #[test]
    fn a_purge_past_what_the_checkpoint_covers_is_caught() {
        let caught = caught_with(1..=100, |c| c.purge_past_checkpoint = true);
        assert!(!caught.is_empty(), "no cluster seed in 1..=100 caught it");
        assert!(caught.iter().any(|(_, v)| v.contains("a takeover cannot read the stream")), "{caught:?}");
    }

    /// A node counts its lease stale a margin before its time to live by its own clock,
    /// which may run slow. Without the margin, a node paused about as long as a lease wakes
    /// judging fresh a lease the bucket let expire (a standby may act for the shard): the
    /// simulator finds it on the seeds whose node clock runs slow and whose pause lands there.
    #[test]
    fn a_node_that_judges_its_lease_by_its_clock_without_a_margin_is_caught() {
        let mut caught = Vec::new();
        for seed in 1..=600 {
            let mut sim = Sim::new(seed);
            // Only the seeds whose node pauses about as long as its lease can show it.
            let near = sim.queue.iter().any(|Reverse((_, _, ev))| matches!(ev, Ev::PauseNearLease(_)));
            let Some(c) = sim.cluster.as_mut().filter(|_| near) else { continue };
            c.lease_margin = Duration::ZERO;
            if let Err(v) = sim.run() {
                caught.push((seed, v.to_string()));
                if caught.len() == CAUGHT_ENOUGH {
                    break;
                }
            }
        }
        assert!(!caught.is_empty(), "no cluster seed in 1..=600 caught it");
        assert!(caught.iter().all(|(_, v)| v.contains("two nodes act for one shard")), "{caught:?}");
        eprintln!("cluster seeds caught it: {:?}", caught.iter().map(|c| c.0).collect::<Vec<_>>());
    }

    #[test]
    fn a_fixed_set_of_seeds_keeps_every_invariant() {
        let outcomes = match run_seeds(1, 40) {
            Ok(o) => o,
            Err(v) => panic!("{v}"),
        };
        let t = totals(&outcomes);
        assert!(t["crashes"] > 10 && t["reversed by the terminal"] > 0, "faults were exercised: {t:?}");
        assert!(t["hop breaks between two shards"] > 3, "the hop broke and healed: {t:?}");
        assert!(
            t["deaths of one shard's node, the other running on"] > 2,
            "one shard's node died and started again while the other ran on: {t:?}"
        );
        assert!(t["approved by the issuer after it acknowledged their reversal"] > 0, "{t:?}");
        assert!(
            t["takeovers by a standby from the stream"] > 3,
            "the cluster's takeovers were exercised: {t:?}"
        );
        assert!(
            t["checkpoints appended to the stream"] > 10 && t["purges of the stream before a checkpoint"] > 5,
            "the stream's checkpoints were exercised: {t:?}"
        );
        assert_eq!(
            t["the most batches of a shard in the stream at once"],
            cluster::IN_FLIGHT as u64,
            "as many in flight as a node may have: {t:?}"
        );
        assert!(t["appends of a dead node arriving after the takeover"] > 0, "{t:?}");
        assert_eq!(t["of those, taken by the stream"], 0, "{t:?}");
    }
}
