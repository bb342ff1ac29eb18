//! Corridor's deterministic simulator: the engine and its journal in one loop with simulated
//! time, links, peers and disk. One seed drives every choice, so a seed replays a run
//! exactly. No tokio, no sockets.
//!
//! What a seed chooses: the topology's wires (each side native, or a classic length header
//! with an ISO 8583:1987 dialect), the issuer's two links, the echo interval, whether the
//! acquirers' links need a sign-on; two terminals — an acquirer's, and one behind a network
//! participant that forwards for another institution (DE 33) — each of which signs on (and
//! off and on again), sends purchases and authorizations for a few simulated seconds, sends
//! completion advices after some approvals (repeated until acknowledged), repeats some
//! requests it had answered, and either reverses every one it got no answer to (repeating
//! its reversal until acknowledged) or, on a seed without crashes, forgets them (so only the
//! switch's own reversals protect it); an issuer that approves
//! (after 1–800 ms), declines, never answers, answers after the timeout (often after it has
//! acknowledged the switch's reversal of that request: an approval that then stands until
//! a reversal comes after it), answers twice, or answers on its other link, and acknowledges
//! most reversals; links that drop, stall (a
//! reader that stops reading: the switch's writes go partly or not at all), deliver in
//! 1–7-byte pieces, or carry garbage; a disk that syncs in 50–400 µs, fills up (ENOSPC: the
//! batch waits, new requests are declined 96) and fails (EIO: the switch stops, the batch
//! torn); switch crashes (everything not synced is lost, the batch being written may be
//! torn) and restarts from what the disk holds; route reloads (a new timeout) and reloads of
//! the whole configuration (the engine's `reconfigure`: in-flight limits raised, a link's
//! connections retired — drained, then closed — as `SIGHUP` does); jumps of the
//! wall clock (the monotonic clock never jumps). Half the seeds (from a stream of their own,
//! so every other draw is as it was) run the switch as two shards, each participant on
//! either, each shard with its own journal on its own disk (a full or failing disk is one
//! shard's), joined by a hop whose bytes arrive in order after 1–300 µs (`switch`). Then the
//! faults stop and the run settles.
//!
//! Invariants. On every step: no request answered twice; an answer carries its request's
//! RRN (correlation restored; no participant gets another's answer); no purchase forwarded
//! twice; no reversal reaches the issuer before its purchase; the engine's maps and the
//! bytes it has written and not yet delivered within their bounds; no shard closes its hop.
//! At the end of every seed:
//! no approval lost (the issuer approved, the terminal never got that approval, and no
//! reversal reached the issuer after the approval went out); every reversal the switch acknowledged reached the
//! issuer; every advice the switch acknowledged reached the issuer; every reversal the
//! terminal made was acknowledged; a repeat of an answered purchase got the first answer;
//! the run settled (nothing owed, no livelock). At a crash and its restart: the switch
//! counted no record durable that the disk lacks, and recovery read every durable record and
//! at most the whole records of the torn batch. Each failure names the seed, the step, the
//! RRN's history and the switch's.

#![forbid(unsafe_code)]

pub mod ops;
mod switch;

use std::{
    cmp::Reverse,
    collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque},
    time::{Duration, Instant},
};

use bytes::BytesMut;
use corridor_engine::{
    driver::{AfterWrite, JournalStep, Written},
    AtLimit, Config, Engine, Journal, LinkId, LinkSpec, Participant, Roles, Route, RouteKey, RouteTable,
    Settings, WallClock,
};
use corridor_journal::{recovery::Recovery, request::PanKey, scan_log, GroupCommit};
use corridor_wire::{de, Dialect, LengthHeader, Message, Mti, OwnedMessage, Wire, FRAME_BYTES_MAX};
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

/// A seeded generator (xorshift64*): every draw of a run comes from it.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True with probability `p` percent.
    fn chance(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    /// Uniform in `lo..=hi` microseconds.
    fn micros(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_micros(lo + self.below(hi - lo + 1))
    }
}

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
    /// What one shard wrote on its hop reaches the other (switch life, receiving shard).
    Hop(u64, usize, Vec<u8>),
    /// The engine's timers (switch life).
    Timer(u64),
    /// A peer drops its connection.
    Drop(Side),
    /// A peer connects again.
    Connect(Side),
    /// The switch process dies.
    Crash,
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

/// The terminal (acquirer).
#[derive(Default)]
struct Terminal {
    next: u32,
    corr: u64,
    /// Purchases sent and not answered: correlation → (number, sent at).
    purchases: BTreeMap<u64, (u32, Duration)>,
    /// Repeats sent and not answered: correlation → (number, sent at).
    repeats: BTreeMap<u64, (u32, Duration)>,
    /// Reversals sent and not acknowledged: correlation → number.
    reversals_out: BTreeMap<u64, u32>,
    to_reverse: VecDeque<u32>,
    reversal_tries: BTreeMap<u32, u32>,
    reversal_last: BTreeMap<u32, Duration>,
    answers: BTreeMap<u32, (String, String)>,
    approvals: BTreeSet<(u32, String)>,
    reversed_acked: BTreeSet<u32>,
    answered: Vec<u32>,
    answers_per_corr: BTreeMap<u64, u32>,
    /// The RRN number each correlation was sent with.
    numbers: BTreeMap<u64, u32>,
    /// On a classic wire (no correlation in the frame): the correlation last sent with
    /// each STAN.
    by_stan: BTreeMap<String, u64>,
    /// Whether it forgets what it got no answer to (never reverses).
    forgets: bool,
    /// Requests sent as authorizations (0100); the rest are purchases (0200).
    authorizations: BTreeSet<u32>,
    /// Advices the switch acknowledged.
    advised_acked: BTreeSet<u32>,
    /// Its connection.
    side: Option<Side>,
    /// Whether it is signed on (always, on links that need no sign-on).
    signed_on: bool,
    /// Its network messages' STANs.
    network_stan: u32,
}

/// The issuer.
#[derive(Default)]
struct Issuer {
    auth: u32,
    /// Purchases seen: number → (times, approval code given).
    purchases: BTreeMap<u32, (u32, String)>,
    /// Reversals' first transmissions and repeats per purchase number.
    reversals: BTreeMap<u32, (u32, u32)>,
    /// An approval sent on the connection its purchase came on, per purchase number: that
    /// connection's generation and when the approval reaches the switch on it. (An approval
    /// on the other link, or on a connection gone before it arrives, reaches nobody: it
    /// counts from time zero.)
    approved_on: BTreeMap<u32, (u64, Duration)>,
    /// When the issuer last applied a reversal of a purchase: as it acknowledges it (or as it
    /// receives it, when it sends no acknowledgement). A reversal applied before the approval
    /// went out reverses nothing: the issuer answered after acknowledging the reversal, as
    /// SPEC allows (answers may come after the timeout), and that approval stands until
    /// another reversal comes.
    reversed_at: BTreeMap<u32, Duration>,
    /// Advices received, per request number.
    advices: BTreeMap<u32, u32>,
}

/// The simulated disk: segments as the journal's writer would leave them, and the batch
/// being written.
#[derive(Default)]
struct Disk {
    segments: Vec<(u64, Vec<u8>)>,
    writing: Option<corridor_journal::SyncBatch>,
    /// Full until this time.
    full_until: Option<Duration>,
}

/// What the disk held durably (see `Sim::durable`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Durable {
    requests: Vec<u64>,
    reversals: Vec<u64>,
    exceptions: Vec<u64>,
    outcomes: usize,
    last_seq: u64,
}

/// What a seed's world is made of.
#[derive(Clone, Copy, Debug)]
struct Topology {
    acq: Wire,
    iss: Wire,
    echo: Duration,
    /// Whether the acquirers' links require a sign-on (0800/001) before requests.
    sign_on: bool,
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
    /// The seed's shards (1 or 2) and the owner of each participant (acq, iss, net).
    shards: usize,
    owners: [usize; 3],
    /// When the last bytes on each shard's hop toward the other arrive (in order).
    hop_last: [Duration; 2],
    links: BTreeMap<Side, (LinkId, u64)>,
    generation: u64,
    /// When each connection (by generation) ended, or stopped carrying messages (garbage
    /// was sent on it).
    ended: BTreeMap<u64, Duration>,
    /// The connections (by generation) the switch's crashes ended.
    crashed: BTreeSet<u64>,
    inbuf: BTreeMap<LinkId, BytesMut>,
    peer_buf: BTreeMap<Side, BytesMut>,
    last_delivery: BTreeMap<Side, Duration>,
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
    /// Bytes the switch took out for a side and has not written yet.
    unwritten: BTreeMap<Side, Vec<u8>>,
    /// A side that does not read until this time.
    stalled: BTreeMap<Side, Duration>,
    /// Whether this seed's links deliver in small pieces.
    fragments: bool,
    /// The wall clock's offset from the monotonic one, in milliseconds.
    wall_offset_ms: i64,
    /// Faults of the plan left out.
    without: Vec<usize>,
    /// How many faults the plan has.
    plan_len: usize,
    /// What the switch wrote to each side, on its way: it arrives even when the connection
    /// closes behind it (the reader reads up to the end of the stream; a process that
    /// dies leaves what it wrote in the kernel to send).
    in_flight: BTreeMap<Side, VecDeque<Vec<u8>>>,
    /// What was durable when the switch crashed, and how many records the batch it tore
    /// had: recovery must read that, and at most those.
    durable_at_crash: Option<Vec<(Durable, u64)>>,
}

fn config() -> Config {
    config_for(Topology {
        acq: Wire::NATIVE,
        iss: Wire::NATIVE,
        echo: Duration::from_secs(30),
        sign_on: false,
    })
}

fn config_for(t: Topology) -> Config {
    let link = |name: &str, participant, dial| LinkSpec {
        name: name.into(),
        participant,
        dial,
        framing: if dial { t.iss.framing } else { t.acq.framing },
        dialect: if dial { t.iss.dialect } else { t.acq.dialect },
        frame_bytes_max: FRAME_BYTES_MAX,
        // The acquirer's limit is below what the load keeps in flight at the issuer's
        // slowest: back-pressure (requests held, the reader paused) is part of every seed.
        inflight_max: if dial { 4096 } else { ACQ_INFLIGHT_MAX },
        sign_on_required: dial || t.sign_on,
        echo_interval: t.echo,
        echo_missed_max: 3,
        at_limit: AtLimit::Backpressure,
        sign_on_timeout: Duration::from_secs(10),
        frame_timeout: Duration::from_secs(5),
        timeouts_down_max: 1000,
    };
    let participant = |id: &str, acquirer: &[&str]| Participant {
        id: id.into(),
        name: id.into(),
        roles: Roles { acquirer: !acquirer.is_empty(), issuer: acquirer.is_empty(), network: false },
        acquirer_ids: acquirer
            .iter()
            .filter_map(|s| corridor_wire::InstitutionId::from_ascii(s.as_bytes()))
            .collect(),
        forwarder_ids: Vec::new(),
        directory: Default::default(),
        hop: None,
        via: None,
        shard: None,
    };
    Config {
        participants: vec![
            participant("acq", &["12345678"]),
            participant("iss", &[]),
            Participant {
                id: "net".into(),
                name: "net".into(),
                roles: Roles { acquirer: false, issuer: false, network: true },
                acquirer_ids: corridor_wire::InstitutionId::from_ascii(NET_ACQUIRER.as_bytes())
                    .into_iter()
                    .collect(),
                forwarder_ids: corridor_wire::InstitutionId::from_ascii(NET_FORWARDER.as_bytes())
                    .into_iter()
                    .collect(),
                directory: Default::default(),
                hop: None,
                via: None,
                shard: None,
            },
        ],
        links: vec![
            link("acq-1", 0, false),
            link("iss-1", 1, true),
            link("iss-2", 1, true),
            link("net-1", 2, false),
        ],
        routes: routes(TIMEOUT),
        settings: Settings {
            institution_id: None,
            reversal_retry: Duration::from_millis(500),
            reversal_repeats_max: 1000,
            saf_age_max: Duration::from_secs(86_400),
            late_window: Duration::from_secs(120),
            duplicate_window: Duration::from_secs(86_400),
            metrics: true,
            // Above what a seed sends (a few thousand), reserved at each start.
            duplicate_window_entries: 1 << 16,
        },
        interop: Default::default(),
    }
}

/// The route table: BIN 4 to the issuer, with `timeout`.
fn routes(timeout: Duration) -> RouteTable {
    let route = Route { key: RouteKey::PanPrefix(b"4".to_vec()), mti_classes: None, destination: 1, timeout };
    RouteTable::new(vec![route]).unwrap_or_else(|_| unreachable!("one valid route"))
}

fn purchase(i: u32) -> OwnedMessage {
    let mut m = OwnedMessage::new(Mti::FINANCIAL_REQUEST);
    for (f, v) in [
        (de::PAN, "4761739001010010".to_owned()),
        (de::PROCESSING_CODE, "000000".to_owned()),
        (de::AMOUNT, "000000012500".to_owned()),
        (de::TRANSMISSION_TIME, "1201103000".to_owned()),
        (de::STAN, format!("{:06}", i % 1_000_000)),
        (de::ACQUIRER_ID, "12345678".to_owned()),
        (de::RRN, format!("SIM{i:09}")),
        (de::TERMINAL_ID, "TERM0001".to_owned()),
    ] {
        let _ = m.set(f, v);
    }
    m
}

fn reversal(i: u32, repeat: bool) -> OwnedMessage {
    reversal_of(i, repeat, Mti::FINANCIAL_REQUEST)
}

/// Request `i` as an authorization (0100) or a purchase (0200).
fn request(i: u32, original: Mti) -> OwnedMessage {
    let mut m = purchase(i);
    m.set_mti(original);
    m
}

/// The terminal's reversal of request `i`, which was an `original` (0100 or 0200).
fn reversal_of(i: u32, repeat: bool, original: Mti) -> OwnedMessage {
    let mut m = request(i, original);
    m.set_mti(if repeat { Mti::REVERSAL_ADVICE_REPEAT } else { Mti::REVERSAL_ADVICE });
    let _ = m.set(de::STAN, format!("{:06}", 500_000 + i % 200_000));
    let _ = m.set(de::TRANSMISSION_TIME, "1201103100");
    let data = format!("{:04}{:06}120110300000012345678{:011}", original.value(), i % 1_000_000, 0);
    let _ = m.set(de::ORIGINAL_DATA, data);
    m
}

/// The terminal's completion advice (0220, or 0221 when `repeat`) of approved request `i`.
fn advice(i: u32, repeat: bool) -> OwnedMessage {
    let mut m = purchase(i);
    if let Some(mti) = Mti::new(if repeat { 221 } else { 220 }) {
        m.set_mti(mti);
    }
    let _ = m.set(de::STAN, format!("{:06}", 700_000 + i % 200_000));
    let _ = m.set(de::TRANSMISSION_TIME, "1201103200");
    m
}

/// Items the terminal sends until acknowledged are numbered by their request: a reversal
/// by its number, an advice by its number plus this.
const ADVICE: u32 = 10_000_000;

fn answer(m: &OwnedMessage, code: &str) -> OwnedMessage {
    let mut r = m.clone();
    if let Some(mti) = m.mti().response() {
        r.set_mti(mti);
    }
    let _ = r.set(de::RESPONSE_CODE, code.to_owned());
    r
}

fn text(m: &OwnedMessage, f: corridor_wire::FieldId) -> String {
    m.get(f).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default()
}

fn number(m: &OwnedMessage) -> Option<u32> {
    text(m, de::RRN).strip_prefix("SIM").and_then(|n| n.parse().ok())
}

fn frame(corr: u64, m: &OwnedMessage) -> Vec<u8> {
    frame_on(Wire::NATIVE, corr, m)
}

fn frame_on(wire: Wire, corr: u64, m: &OwnedMessage) -> Vec<u8> {
    let mut out = BytesMut::new();
    let _ = wire.frame(corr, &mut out, |b| m.encode(wire.dialect, b));
    out.to_vec()
}

/// Takes the requests of `sent` (correlation → number, sent at) unanswered longer than
/// [`GIVE_UP`] at `now`; their numbers, in correlation order.
fn overdue(sent: &mut BTreeMap<u64, (u32, Duration)>, now: Duration) -> Vec<u32> {
    let late: Vec<u64> =
        sent.iter().filter(|(_, (_, at))| now.saturating_sub(*at) > GIVE_UP).map(|(c, _)| *c).collect();
    late.iter().filter_map(|c| sent.remove(c)).map(|(n, _)| n).collect()
}

/// Whole frames off `buf` on `wire`, parsed (what does not parse is skipped).
fn frames_on(wire: Wire, buf: &mut BytesMut) -> Vec<(u64, OwnedMessage)> {
    let mut decoder = wire.decoder();
    let mut msgs = Vec::new();
    while let Ok(Some((corr, body))) = decoder.decode(buf) {
        if let Ok(m) = Message::parse(wire.dialect, body) {
            msgs.push((corr, OwnedMessage::from(&m)));
        }
    }
    msgs
}

impl Sim {
    /// The world of `seed`, ready to run.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self::without(seed, &[])
    }

    /// The world of `seed` with the faults numbered in `left_out` taken out of its plan (the
    /// plan lists the seed's crashes, drops, stalls, garbage, disk faults, clock jumps and
    /// reloads in the order drawn): how a failing seed is shrunk.
    #[must_use]
    pub fn without(seed: u64, left_out: &[usize]) -> Self {
        let mut rng = Rng::new(seed);
        let topology = Topology {
            acq: WIRES[rng.below(WIRES.len() as u64) as usize],
            iss: WIRES[rng.below(WIRES.len() as u64) as usize],
            echo: if rng.chance(30) { rng.micros(300_000, 2_000_000) } else { Duration::from_secs(30) },
            sign_on: rng.chance(40),
        };
        let forgets = rng.chance(30);
        let fragments = rng.chance(30);
        // The shards, from a stream of their own (the plans seeds had before shards are
        // unchanged): one, or two with each participant on either.
        let mut sh = Rng::new(seed ^ 0x7368_6172_6473);
        let shards = if sh.chance(50) { 2 } else { 1 };
        let owners = [sh.below(2) as usize, sh.below(2) as usize, sh.below(2) as usize];
        let mut s = Self {
            seed,
            rng,
            t0: Instant::now(),
            now: Duration::ZERO,
            seq: 0,
            queue: BinaryHeap::new(),
            engine: None,
            life: 0,
            shards,
            owners,
            hop_last: [Duration::ZERO; 2],
            links: BTreeMap::new(),
            generation: 0,
            ended: BTreeMap::new(),
            crashed: BTreeSet::new(),
            inbuf: BTreeMap::new(),
            peer_buf: BTreeMap::new(),
            last_delivery: BTreeMap::new(),
            timer_at: None,
            disks: (0..shards).map(|_| Disk::default()).collect(),
            terminal: Terminal { forgets, side: Some(Side::Acq), ..Terminal::default() },
            parked: Terminal { forgets, side: Some(Side::Net), next: NET_FIRST, ..Terminal::default() },
            issuer: Issuer::default(),
            history: BTreeMap::new(),
            world: Vec::new(),
            out: Outcome::default(),
            load_over: false,
            faults: true,
            stuck: None,
            broken: None,
            topology,
            unwritten: BTreeMap::new(),
            stalled: BTreeMap::new(),
            fragments,
            wall_offset_ms: 0,
            without: left_out.to_vec(),
            plan_len: 0,
            in_flight: BTreeMap::new(),
            durable_at_crash: None,
        };
        s.world(format!(
            "acquirer {}, issuer {} (two links), echo every {:?}, {}",
            topology.acq,
            topology.iss,
            topology.echo,
            if fragments { "bytes in 1-7-byte pieces" } else { "bytes whole" }
        ));
        if shards > 1 {
            s.world(format!("two shards: acq on {}, iss on {}, net on {}", owners[0], owners[1], owners[2]));
        }
        s.start_switch();
        for side in [Side::Acq, Side::Net] {
            s.at(Duration::from_millis(1), Ev::Send(side));
            s.at(Duration::from_millis(50), Ev::TerminalTick(side));
        }
        let load = LOAD.as_micros() as u64;
        let mut plan = Vec::new();
        for _ in 0..s.rng.below(4) {
            plan.push((s.rng.micros(100_000, load), Ev::Crash));
        }
        for side in SIDES {
            for _ in 0..s.rng.below(3) {
                plan.push((s.rng.micros(100_000, load), Ev::Drop(side)));
            }
            if s.rng.chance(25) {
                let d = s.rng.below(2_500_000);
                plan.push((s.rng.micros(100_000, load), Ev::Stall(side, d)));
            }
            // (Garbage on a classic acquirer link shifts its length framing: the switch
            // answers what it then parses, which a terminal correlating by STAN cannot
            // tell from its own answers. On a native link the frame header catches it.)
            if !side.issuer() && topology.sign_on && s.rng.chance(30) {
                plan.push((s.rng.micros(100_000, load), Ev::SignOff(side)));
            }
            let garbage_ok = side.issuer() || topology.acq == Wire::NATIVE;
            if s.rng.chance(if side.issuer() { 20 } else { 10 }) && garbage_ok {
                plan.push((s.rng.micros(100_000, load), Ev::Garbage(side)));
            }
        }
        if s.rng.chance(20) {
            let d = s.rng.below(DISK_FULL_MAX.as_micros() as u64);
            plan.push((s.rng.micros(100_000, load), Ev::DiskFull(d)));
        }
        if s.rng.chance(10) {
            plan.push((s.rng.micros(100_000, load), Ev::Eio));
        }
        if s.rng.chance(20) {
            let jump = s.rng.below(7_200_000) as i64 - 3_600_000;
            plan.push((s.rng.micros(100_000, load), Ev::ClockJump(jump)));
        }
        if s.rng.chance(20) {
            let t = 1_500 + s.rng.below(1_000);
            plan.push((s.rng.micros(100_000, load), Ev::Reload(t)));
        }
        // Reloads of the whole configuration, drawn from a stream of their own after every
        // other fault, so the plans seeds had before reloads existed are unchanged. Limits
        // only rise (the bound checker holds each link to the limit in force).
        let mut r = Rng::new(seed ^ 0x7265_6c6f_6164);
        if r.chance(25) {
            let mut times: Vec<Duration> = (0..1 + r.below(3)).map(|_| r.micros(100_000, load)).collect();
            times.sort();
            let mut limit = ACQ_INFLIGHT_MAX;
            for when in times {
                limit += 16 * (1 + r.below(2)) as u32;
                let retire = match r.below(3) {
                    0 => None,
                    1 => Some(Side::Iss2),
                    _ => Some(Side::Net),
                };
                plan.push((when, Ev::Reconfigure(limit, retire)));
            }
        }
        // A terminal that forgets is protected by the switch's own reversals of approvals
        // it could not deliver; a crash before such a reversal is durable loses it (no
        // record says whether an answer left), so on a seed with crashes the terminal
        // reverses what it got no answer to, as ISO 8583 has it.
        if plan.iter().any(|(_, ev)| matches!(ev, Ev::Crash | Ev::Eio)) {
            s.terminal.forgets = false;
            s.parked.forgets = false;
        }
        s.world(format!(
            "terminal {}",
            if s.terminal.forgets {
                "forgets what it got no answer to"
            } else {
                "reverses what it got no answer to"
            }
        ));
        s.plan_len = plan.len();
        for (i, (when, ev)) in plan.into_iter().enumerate() {
            if !left_out.contains(&i) {
                s.at(when, ev);
            }
        }
        s
    }

    /// How many faults the plan of `seed` has (for shrinking).
    #[must_use]
    pub fn plan_len(seed: u64) -> usize {
        Self::new(seed).plan_len
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

    // ----- the switch -----

    fn start_switch(&mut self) {
        self.life += 1;
        self.world(format!("switch starts (life {})", self.life));
        let now = self.instant();
        let clock = WallClock { at: now, unix_secs: self.unix_ms() / 1000 };
        let unix_now = self.unix_ms();
        // Each shard recovers from its own disk.
        let mut recovered = Vec::with_capacity(self.shards);
        for disk in &mut self.disks {
            let view: Vec<(u64, &[u8])> = disk.segments.iter().map(|(s, b)| (*s, b.as_slice())).collect();
            let (next, owed, last_len) = match scan_log(&view) {
                Ok(scan) => {
                    let mut owed = Recovery::default();
                    let _ = owed.fold(&scan, unix_now);
                    let cut = scan.cut();
                    let next = scan.next_seq;
                    (next, owed, cut.map(|(_, at)| at as u64))
                }
                Err(_) => (1, Recovery::default(), None),
            };
            // A torn tail is cut, as recovery does.
            if let (Some(len), Some((_, last))) = (last_len, disk.segments.last_mut()) {
                last.truncate(len as usize);
                if last.len() < corridor_journal::limits::SEGMENT_HEADER_BYTES {
                    disk.segments.pop();
                }
            }
            recovered.push((next, owed));
        }
        if let Some(crashed) = self.durable_at_crash.take() {
            // Recovery reads every record that was durable, and at most the whole records
            // of the batch the crash tore (a prefix of it may have reached the disk);
            // without any of those, exactly the state that was durable. Per shard's disk.
            for (k, (before, in_batch)) in crashed.into_iter().enumerate() {
                let after = self.durable(k);
                let (lo, hi) = (before.last_seq, before.last_seq + in_batch);
                if !(lo..=hi).contains(&after.last_seq) || (after.last_seq == lo && after != before) {
                    self.broke(
                        None,
                        format!(
                            "shard {k}: recovery read records up to {} ({} open requests, {} reversals, {} \
                             outcomes); the disk held {lo} durably ({} open requests, {} reversals, {} outcomes) \
                             and the torn batch {in_batch} more",
                            after.last_seq,
                            after.requests.len(),
                            after.reversals.len(),
                            after.outcomes,
                            before.requests.len(),
                            before.reversals.len(),
                            before.outcomes
                        ),
                    );
                }
            }
        }
        let policy = GroupCommit {
            segment_bytes: corridor_journal::limits::SEGMENT_BYTES_MIN,
            ..GroupCommit::default()
        };
        let lens: Vec<Option<u64>> =
            self.disks.iter().map(|d| d.segments.last().map(|(_, b)| b.len() as u64)).collect();
        let life = self.life;
        let mut base = config_for(self.topology);
        for (p, &o) in base.participants.iter_mut().zip(&self.owners) {
            p.shard = Some(o);
        }
        let plan = corridor_engine::shards::ShardPlan::new(self.shards, &base);
        let mut resumed = Vec::new();
        let switch = Switch::new(base, plan, now, |k, config| {
            let mut nonce = [0u8; 8];
            nonce.copy_from_slice(&(life * 16 + k as u64).to_be_bytes());
            let key = PanKey::new(1, &[0x5A; 32]).unwrap_or_else(|_| unreachable!("a 32-byte key"));
            let journal = Journal::new(policy, recovered[k].0, lens[k], key, nonce);
            let mut engine = Engine::with_journal(config, clock, journal);
            // Before resuming: the entries it resumes are this shard's.
            engine.set_shard(k);
            resumed.push(engine.resume(&recovered[k].1, now, unix_now));
            engine
        });
        if self.life > 1 {
            for (k, ((_, owed), r)) in recovered.iter().zip(&resumed).enumerate() {
                self.world(format!(
                    "shard {k} recovered: {} open requests, {} stored reversals, {} outcomes; {r:?}",
                    owed.requests.len(),
                    owed.reversals.len(),
                    owed.outcomes.len()
                ));
            }
        }
        self.engine = Some(switch);
        self.timer_at = None;
        self.hop_last = [self.now; 2];
        for side in SIDES {
            self.connect(side);
        }
        self.pump();
    }

    fn connect(&mut self, side: Side) {
        let now = self.instant();
        let Some(engine) = self.engine.as_mut() else { return };
        if self.links.contains_key(&side) {
            return;
        }
        if let Some(id) = engine.link_up(side.spec(), now) {
            self.generation += 1;
            self.links.insert(side, (id, self.generation));
            self.peer_buf.insert(side, BytesMut::new());
            if !side.issuer() {
                self.activate(side);
                self.terminal.signed_on = !self.topology.sign_on;
                if self.topology.sign_on {
                    let d = self.rng.micros(100, 20_000);
                    self.at(self.now + d, Ev::SignOn(side));
                }
            }
        }
    }

    /// The terminal sends a network request with `code` (001 sign-on, 002 sign-off).
    fn terminal_network(&mut self, code: &str) {
        let mut m = OwnedMessage::new(Mti::NETWORK_REQUEST);
        self.terminal.network_stan = (self.terminal.network_stan + 1) % 1_000;
        let _ = m.set(de::TRANSMISSION_TIME, "1201103000");
        let _ = m.set(de::STAN, format!("{:06}", 900_000 + self.terminal.network_stan));
        let _ = m.set(de::NETWORK_CODE, code);
        self.terminal.corr += 1;
        let bytes = frame_on(self.topology.acq, self.terminal.corr, &m);
        self.send_to_switch(self.acq(), bytes);
    }

    /// A side's connection is gone (the peer dropped it, the switch closed it, or the
    /// switch died): what each end had in flight on it is lost.
    fn disconnect(&mut self, side: Side) {
        if !self.links.contains_key(&side) {
            return;
        }
        // What was written arrives before the end of the stream.
        while let Some(bytes) = self.in_flight.get_mut(&side).and_then(VecDeque::pop_front) {
            self.peer_receives(side, &bytes);
        }
        let Some((id, generation)) = self.links.remove(&side) else { return };
        self.ended.entry(generation).or_insert(self.now);
        self.world(format!("{side:?} connection gone"));
        let now = self.instant();
        if let Some(e) = self.engine.as_mut() {
            e.link_down(id, now);
        }
        self.inbuf.remove(&id);
        // What the switch had not written is gone with the connection.
        self.unwritten.remove(&side);
        self.stalled.remove(&side);
        if !side.issuer() {
            self.activate(side);
            // Every purchase without an answer is reversed (or forgotten); reversals in
            // flight go again.
            let lost: Vec<u32> =
                std::mem::take(&mut self.terminal.purchases).into_iter().map(|(_, (n, _))| n).collect();
            for n in lost {
                self.give_up(n, "connection lost with no answer");
            }
            let lost: Vec<u32> =
                std::mem::take(&mut self.terminal.repeats).into_values().map(|(n, _)| n).collect();
            for n in lost {
                self.repeat_lost(n);
            }
            self.terminal.reversals_out.clear();
        }
        let delay = self.rng.micros(5_000, 300_000);
        self.at(self.now + delay, Ev::Connect(side));
    }

    fn side_of(&self, link: LinkId) -> Option<Side> {
        self.links.iter().find(|(_, (id, _))| *id == link).map(|(s, _)| *s)
    }

    /// After every input: bytes out to peers, engine events, the journal's next batch, the
    /// next timer.
    fn pump(&mut self) {
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
            if let Some(why) = engine.hop_closed.take() {
                self.broke(None, why);
            }
            for (from, bytes) in hops {
                // In order on each hop, after a lane's hand-off between threads.
                progress = true;
                let d = self.rng.micros(1, 300);
                let at = (self.now + d).max(self.hop_last[from]);
                self.hop_last[from] = at;
                let life = self.life;
                self.at(at, Ev::Hop(life, 1 - from, bytes.to_vec()));
            }
            for (link, out) in flushed.outputs {
                progress = true;
                if let Some(side) = self.side_of(link) {
                    self.unwritten.entry(side).or_default().extend_from_slice(&out);
                    self.write(side);
                }
            }
            for link in flushed.close {
                progress = true;
                if let Some(side) = self.side_of(link) {
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
                let Some(engine) = self.engine.as_mut() else { return };
                match engine.poll_journal(k, now, unix_ms) {
                    Some(JournalStep::Write(batch)) => {
                        self.disks[k].writing = Some(batch);
                        let d = self.rng.micros(50, 400);
                        let life = self.life;
                        self.at(self.now + d, Ev::Synced(life, k));
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
            let next = self.engine.as_ref().and_then(Switch::poll_timeout);
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

    /// The switch writes what it has for `side`: nothing while the peer does not read, and
    /// on a seed with slow readers sometimes only part of it (the rest when the socket is
    /// writable again). What is written is reported to the engine and reaches the peer.
    fn write(&mut self, side: Side) {
        let Some(&(link, generation)) = self.links.get(&side) else { return };
        let len = self.unwritten.get(&side).map_or(0, Vec::len);
        if len == 0 {
            return;
        }
        if let Some(&until) = self.stalled.get(&side) {
            if until > self.now {
                self.at(until, Ev::Writable(side, generation));
                return;
            }
            self.stalled.remove(&side);
        }
        let k =
            if self.fragments && self.rng.chance(30) { 1 + self.rng.below(len as u64) as usize } else { len };
        let bytes: Vec<u8> =
            self.unwritten.get_mut(&side).map(|u| u.drain(..k).collect()).unwrap_or_default();
        if let Some(e) = self.engine.as_mut() {
            e.handle_written(link, k);
        }
        let lat = self.rng.micros(20, 2_000);
        let at = (self.now + lat).max(self.last_delivery.get(&side).copied().unwrap_or_default());
        self.last_delivery.insert(side, at);
        self.in_flight.entry(side).or_default().push_back(bytes);
        self.at(at, Ev::ToPeer(side, generation));
        if k < len {
            let d = self.rng.micros(100, 5_000);
            self.at(self.now + d, Ev::Writable(side, generation));
        }
    }

    fn feed(&mut self, link: LinkId) {
        let now = self.instant();
        let Some(engine) = self.engine.as_mut() else { return };
        let mut buf = self.inbuf.remove(&link).unwrap_or_default();
        engine.handle_read(link, &mut buf, now);
        if !buf.is_empty() {
            self.inbuf.insert(link, buf);
        }
    }

    /// A peer sends `bytes` on its connection: they reach the switch after the link's
    /// latency, in order.
    fn send_to_switch(&mut self, side: Side, bytes: Vec<u8>) {
        let Some(&(_, generation)) = self.links.get(&side) else { return };
        let lat = self.rng.micros(20, 2_000);
        let at = (self.now + lat).max(self.last_delivery.get(&side).copied().unwrap_or_default());
        self.send_at(side, generation, at, bytes);
    }

    /// `bytes` reach the switch at `at`: whole, or on a seed whose links fragment, in
    /// pieces of 1–7 bytes read one by one.
    fn send_at(&mut self, side: Side, generation: u64, at: Duration, bytes: Vec<u8>) {
        if self.fragments && self.rng.chance(50) {
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let k = (1 + self.rng.below(7) as usize).min(rest.len());
                self.at(at, Ev::ToSwitch(side, generation, rest[..k].to_vec()));
                rest = &rest[k..];
            }
        } else {
            self.at(at, Ev::ToSwitch(side, generation, bytes));
        }
    }

    // ----- the peers -----

    fn wire(&self, side: Side) -> Wire {
        if side.issuer() {
            self.topology.iss
        } else {
            self.topology.acq
        }
    }

    fn peer_receives(&mut self, side: Side, bytes: &[u8]) {
        let mut buf = self.peer_buf.remove(&side).unwrap_or_default();
        buf.extend_from_slice(bytes);
        let msgs = frames_on(self.wire(side), &mut buf);
        self.peer_buf.insert(side, buf);
        for (corr, m) in msgs {
            if side.issuer() {
                self.issuer_gets(side, corr, &m);
            } else {
                self.activate(side);
                self.terminal_gets(corr, &m);
            }
        }
    }

    /// The issuer sends `r` on `side` after `delay`.
    fn issuer_sends(&mut self, side: Side, delay: Duration, corr: u64, r: &OwnedMessage) {
        let Some(&(_, generation)) = self.links.get(&side) else { return };
        let bytes = frame_on(self.topology.iss, corr, r);
        self.send_at(side, generation, self.now + delay, bytes);
    }

    fn issuer_gets(&mut self, side: Side, corr: u64, m: &OwnedMessage) {
        match m.mti().value() {
            800 => {
                let r = answer(m, "00");
                self.issuer_sends(side, Duration::ZERO, corr, &r);
            }
            100 | 200 => {
                let Some(n) = number(m) else { return };
                self.issuer.auth += 1;
                let code = format!("A{:05}", self.issuer.auth % 100_000);
                let e = self.issuer.purchases.entry(n).or_insert((0, code));
                e.0 += 1;
                let (times, auth) = (e.0, e.1.clone());
                if times > 1 {
                    self.broke(Some(n), format!("purchase {n} forwarded {times} times"));
                }
                if self.issuer.reversals.contains_key(&n) {
                    self.broke(Some(n), format!("purchase {n}: a reversal reached the issuer before it"));
                }
                let roll = self.rng.below(100);
                let (delay, reply) = match roll {
                    0..=74 => (self.rng.micros(1_000, 800_000), Some("00")),
                    75..=84 => (self.rng.micros(1_000, 200_000), Some("05")),
                    85..=89 => (Duration::ZERO, None),
                    _ => (self.rng.micros(2_100_000, 3_000_000), Some("00")),
                };
                let Some(code) = reply else {
                    self.note(n, format!("issuer ({side:?}): got the purchase, never answers"));
                    return;
                };
                let mut r = answer(m, code);
                if code == "00" {
                    let _ = r.set(de::AUTH_ID, auth.clone());
                }
                // Now and then on its other link (where it answers nothing), or twice.
                let on = match (side, self.rng.chance(3)) {
                    (Side::Iss, true) => Side::Iss2,
                    (Side::Iss2, true) => Side::Iss,
                    _ => side,
                };
                let twice = self.rng.chance(5);
                self.note(
                    n,
                    format!(
                        "issuer ({side:?}): got the purchase, answers {code} {auth} in {delay:?} on {on:?}{}",
                        if twice { ", twice" } else { "" }
                    ),
                );
                if code == "00" {
                    // (Given on the wrong link, it reaches nobody: the switch times the
                    // purchase out and reverses it.)
                    self.issuer.purchases.entry(n).and_modify(|e| e.1.clone_from(&auth));
                } else {
                    // A decline is no approval: nothing to reverse.
                    self.issuer.purchases.entry(n).and_modify(|e| e.1 = String::new());
                }
                if let (true, "00", Some(&(_, generation))) = (on == side, code, self.links.get(&on)) {
                    self.issuer.approved_on.insert(n, (generation, self.now + delay));
                }
                self.issuer_sends(on, delay, corr, &r);
                if twice {
                    let d = delay + self.rng.micros(10, 50_000);
                    self.issuer_sends(on, d, corr, &r);
                }
            }
            220 | 221 => {
                let Some(n) = number(m) else { return };
                *self.issuer.advices.entry(n).or_default() += 1;
                self.note(n, format!("issuer ({side:?}): got {}", m.mti()));
                if self.rng.chance(90) {
                    let r = answer(m, "00");
                    let d = self.rng.micros(500, 50_000);
                    self.issuer_sends(side, d, corr, &r);
                }
            }
            420 | 421 => {
                let Some(n) = number(m) else { return };
                let e = self.issuer.reversals.entry(n).or_default();
                if m.mti().value() == 420 {
                    e.0 += 1;
                } else {
                    e.1 += 1;
                }
                self.note(n, format!("issuer ({side:?}): got {}", m.mti()));
                let applied = if self.rng.chance(90) {
                    let r = answer(m, "00");
                    let d = self.rng.micros(500, 50_000);
                    self.issuer_sends(side, d, corr, &r);
                    self.now + d
                } else {
                    self.now
                };
                let last = self.issuer.reversed_at.entry(n).or_default();
                if *last == Duration::ZERO
                    && self.issuer.approved_on.get(&n).is_some_and(|&(_, at)| at > applied)
                {
                    self.out.approved_after_reversal += 1;
                }
                *last = (*last).max(applied);
            }
            _ => {}
        }
    }

    fn terminal_gets(&mut self, corr: u64, m: &OwnedMessage) {
        if m.mti() == Mti::NETWORK_REQUEST {
            let r = answer(m, "00");
            let bytes = frame_on(self.topology.acq, corr, &r);
            self.send_to_switch(self.acq(), bytes);
            return;
        }
        if m.mti() == Mti::NETWORK_RESPONSE && text(m, de::RESPONSE_CODE) == "00" {
            match text(m, de::NETWORK_CODE).as_str() {
                "001" => {
                    self.terminal.signed_on = true;
                    self.out.sign_ons += 1;
                }
                "002" => {
                    self.terminal.signed_on = false;
                    self.out.sign_offs += 1;
                    let d = self.rng.micros(20_000, 300_000);
                    let side = self.acq();
                    self.at(self.now + d, Ev::SignOn(side));
                }
                _ => {}
            }
            return;
        }
        if m.mti().class() == 8 {
            return;
        }
        // A classic wire has no correlation in the frame: the STAN names the request.
        let corr = if self.topology.acq == Wire::NATIVE {
            corr
        } else {
            self.terminal.by_stan.get(&text(m, de::STAN)).copied().unwrap_or(0)
        };
        let k = {
            let k = self.terminal.answers_per_corr.entry(corr).or_default();
            *k += 1;
            *k
        };
        let sent = self.terminal.numbers.get(&corr).copied();
        if k > 1 {
            self.broke(
                sent,
                format!(
                    "correlation {corr} answered {k} times (this time {} {} STAN {})",
                    m.mti(),
                    text(m, de::RESPONSE_CODE),
                    text(m, de::STAN)
                ),
            );
        }
        if sent.is_some() && sent != number(m) {
            self.broke(
                sent,
                format!("correlation {corr} answered with another request's RRN {:?}", text(m, de::RRN)),
            );
        }
        let code = text(m, de::RESPONSE_CODE);
        let auth = text(m, de::AUTH_ID);
        if let Some((n, _)) = self.terminal.purchases.remove(&corr) {
            self.note(n, format!("terminal: answered {code} {auth}"));
            if code == "00" {
                self.terminal.approvals.insert((n, auth.clone()));
                // Now and then the terminal tells the issuer how the sale completed.
                if self.rng.chance(10) && !self.terminal.to_reverse.contains(&(ADVICE + n)) {
                    self.terminal.to_reverse.push_back(ADVICE + n);
                }
            }
            self.terminal.answers.insert(n, (code, auth));
            self.terminal.answered.push(n);
        } else if let Some((n, _)) = self.terminal.repeats.remove(&corr) {
            self.note(n, format!("terminal: repeat answered {code} {auth}"));
            if code == "00" {
                self.terminal.approvals.insert((n, auth));
            }
        } else if let Some(item) = self.terminal.reversals_out.remove(&corr) {
            let n = item % ADVICE;
            let what = if item >= ADVICE { "advice" } else { "reversal" };
            self.note(n, format!("terminal: {what} answered {code}"));
            if code == "00" {
                if item >= ADVICE {
                    self.terminal.advised_acked.insert(n);
                } else {
                    self.terminal.reversed_acked.insert(n);
                }
                self.terminal.to_reverse.retain(|&x| x != item);
            }
        } else if let (Some(&n), true) = (self.terminal.numbers.get(&corr), code == "00") {
            // An approval after the terminal gave up on it: delivered all the same (the
            // terminal reverses it if it had given up by reversing).
            self.note(n, format!("terminal: answered {code} {auth} after giving up"));
            if self.terminal.forgets {
                self.terminal.approvals.insert((n, auth));
            }
        }
    }

    fn terminal_send(&mut self) {
        if self.now >= LOAD {
            self.load_over = true;
            return;
        }
        let gap = self.rng.micros(500, 9_000);
        self.at(self.now + gap, Ev::Send(self.acq()));
        if !self.links.contains_key(&self.acq()) || !self.terminal.signed_on {
            return;
        }
        self.terminal.corr += 1;
        let corr = self.terminal.corr;
        let classic = self.topology.acq != Wire::NATIVE;
        if !self.terminal.answered.is_empty() && self.rng.chance(8) {
            let k = self.rng.below(self.terminal.answered.len() as u64) as usize;
            let n = self.terminal.answered[k];
            // On a classic wire the STAN is the only correlation: a terminal never has two
            // requests with one STAN out at once.
            let out = self.terminal.repeats.values().any(|r| r.0 == n);
            if classic && out {
                return;
            }
            self.terminal.repeats.insert(corr, (n, self.now));
            self.note(n, "terminal: repeats it");
            let m = self.request_of(n);
            self.terminal_sends(corr, n, &m);
            return;
        }
        self.terminal.next += 1;
        let n = self.terminal.next;
        self.out.sent += 1;
        self.terminal.purchases.insert(corr, (n, self.now));
        if self.rng.chance(25) {
            self.terminal.authorizations.insert(n);
        }
        self.note(
            n,
            if self.terminal.authorizations.contains(&n) {
                "terminal: sends it (0100)"
            } else {
                "terminal: sends the purchase"
            },
        );
        let m = self.request_of(n);
        self.terminal_sends(corr, n, &m);
    }

    fn request_of(&self, n: u32) -> OwnedMessage {
        let mti = if self.terminal.authorizations.contains(&n) {
            Mti::AUTHORIZATION_REQUEST
        } else {
            Mti::FINANCIAL_REQUEST
        };
        request(n, mti)
    }

    fn terminal_sends(&mut self, corr: u64, n: u32, m: &OwnedMessage) {
        self.terminal.numbers.insert(corr, n);
        self.terminal.by_stan.insert(text(m, de::STAN), corr);
        let side = self.acq();
        let bytes = if side == Side::Net {
            // The network's: the institution it forwards for, and its own id.
            let mut m = m.clone();
            let _ = m.set(de::ACQUIRER_ID, NET_ACQUIRER);
            let _ = m.set(de::FORWARDER_ID, NET_FORWARDER);
            if let Some(d) = m.get(de::ORIGINAL_DATA).map(|d| String::from_utf8_lossy(d).into_owned()) {
                if d.len() == 42 {
                    let _ = m.set(
                        de::ORIGINAL_DATA,
                        format!("{}{:0>11}{:0>11}", &d[..20], NET_ACQUIRER, NET_FORWARDER),
                    );
                }
            }
            frame_on(self.topology.acq, corr, &m)
        } else {
            frame_on(self.topology.acq, corr, m)
        };
        self.send_to_switch(side, bytes);
    }

    /// Makes the terminal on `side` the one `self.terminal` is (a no-op for an issuer side).
    fn activate(&mut self, side: Side) {
        if side.issuer() || self.terminal.side == Some(side) {
            return;
        }
        std::mem::swap(&mut self.terminal, &mut self.parked);
    }

    /// The side of the terminal whose turn it is.
    fn acq(&self) -> Side {
        self.terminal.side.unwrap_or(Side::Acq)
    }

    /// Both terminals.
    fn terminals(&self) -> [&Terminal; 2] {
        [&self.terminal, &self.parked]
    }

    /// The terminal got no answer to purchase `n`: it reverses it, or (a terminal that
    /// forgets) drops it, leaving the switch's own reversals to protect it. When the switch
    /// itself died, no switch can know which answers its socket still held: every terminal
    /// reverses then (ISO 8583's rule for a request without an answer).
    fn give_up(&mut self, n: u32, why: &str) {
        if self.terminal.forgets && self.engine.is_some() {
            self.note(n, format!("terminal: {why}: forgets it"));
        } else {
            self.note(n, format!("terminal: {why}: will reverse"));
            self.terminal.to_reverse.push_back(n);
        }
    }

    /// A repeat got no answer. After a first answer that was an outcome the terminal knows
    /// how it ended; after a decline the switch made before taking it (91 and the like: no
    /// outcome), the repeat was a new try, and like any unanswered purchase it is reversed.
    fn repeat_lost(&mut self, n: u32) {
        let first = self.terminal.answers.get(&n).map(|(c, _)| c.clone()).unwrap_or_default();
        if ADMISSION_DECLINES.contains(&first.as_str()) && !self.terminal.to_reverse.contains(&n) {
            self.give_up(n, "its repeat got no answer");
        }
    }

    fn terminal_tick(&mut self) {
        self.at(self.now + Duration::from_millis(50), Ev::TerminalTick(self.acq()));
        for n in overdue(&mut self.terminal.repeats, self.now) {
            self.repeat_lost(n);
        }
        for n in overdue(&mut self.terminal.purchases, self.now) {
            self.give_up(n, "no answer in time");
        }
        if !self.links.contains_key(&self.acq()) || !self.terminal.signed_on {
            return;
        }
        let out: BTreeSet<u32> = self.terminal.reversals_out.values().copied().collect();
        let due: Vec<u32> = self
            .terminal
            .to_reverse
            .iter()
            .copied()
            .filter(|n| !out.contains(n))
            .filter(|n| {
                self.terminal
                    .reversal_last
                    .get(n)
                    .is_none_or(|t| self.now.saturating_sub(*t) > Duration::from_secs(1))
            })
            .take(16)
            .collect();
        for item in due {
            let tries = self.terminal.reversal_tries.entry(item).or_default();
            *tries += 1;
            let repeat = *tries > 1;
            self.terminal.reversal_last.insert(item, self.now);
            self.terminal.corr += 1;
            let corr = self.terminal.corr;
            self.terminal.reversals_out.insert(corr, item);
            if item >= ADVICE {
                let n = item - ADVICE;
                self.note(
                    n,
                    format!("terminal: sends its advice ({})", if repeat { "0221" } else { "0220" }),
                );
                self.terminal_sends(corr, n, &advice(n, repeat));
            } else {
                let n = item;
                self.note(
                    n,
                    format!("terminal: sends its reversal ({})", if repeat { "0421" } else { "0420" }),
                );
                let original = if self.terminal.authorizations.contains(&n) {
                    Mti::AUTHORIZATION_REQUEST
                } else {
                    Mti::FINANCIAL_REQUEST
                };
                self.terminal_sends(corr, n, &reversal_of(n, repeat, original));
            }
        }
        // A reversal unacknowledged for a second goes again (on a classic wire only once its
        // answer came or its connection went: the STAN is the only correlation there).
        if self.topology.acq != Wire::NATIVE {
            return;
        }
        let stale: Vec<u64> = self
            .terminal
            .reversals_out
            .iter()
            .filter(|(_, n)| {
                self.terminal
                    .reversal_last
                    .get(n)
                    .is_some_and(|t| self.now.saturating_sub(*t) > Duration::from_secs(1))
            })
            .map(|(c, _)| *c)
            .collect();
        for c in stale {
            self.terminal.reversals_out.remove(&c);
        }
    }

    // ----- the loop -----

    fn crash(&mut self) {
        let Some(switch) = self.engine.take() else { return };
        self.out.crashes += 1;
        self.crashed.extend(self.links.values().map(|&(_, generation)| generation));
        self.world("switch crashes");
        let mut at_crash = Vec::with_capacity(self.disks.len());
        for k in 0..self.disks.len() {
            let believed = switch.journal_durable(k).unwrap_or(0);
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
            let in_batch = self.disks[k].writing.as_ref().map_or(0, |b| b.last_seq + 1 - b.first_seq);
            at_crash.push((before, in_batch));
            // The batch being written: lost, or torn (a prefix of it on disk).
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
        }
        self.durable_at_crash = Some(at_crash);
        for side in SIDES {
            if self.links.contains_key(&side) {
                self.disconnect(side);
            }
        }
        let d = self.rng.micros(1_000, 500_000);
        self.at(self.now + d, Ev::Restart);
    }

    /// Shard `k`'s batch reaches its disk, or (the disk full) waits and is tried again.
    fn synced(&mut self, k: usize) {
        let now = self.instant();
        let Some(engine) = self.engine.as_mut() else { return };
        let result = if self.disks[k].full_until.is_some_and(|t| t > self.now) {
            // Nothing to release here: the batch waits and is written again.
            Written::NoSpace { released: false }
        } else {
            let disk = &mut self.disks[k];
            if let Some(b) = disk.writing.take() {
                if let Some(h) = b.new_segment {
                    disk.segments.push((h.first_seq, h.to_bytes().to_vec()));
                }
                if let Some((_, seg)) = disk.segments.last_mut() {
                    seg.extend_from_slice(&b.bytes);
                }
            }
            Written::Synced
        };
        let was_full = engine.journal_full(k);
        let after = engine.journal_written(k, result, now);
        if !was_full && engine.journal_full(k) {
            self.world(format!("journal {k}: the disk is full (ENOSPC): the batch waits"));
        }
        if let AfterWrite::Again(at) = after {
            let life = self.life;
            self.at(at.saturating_duration_since(self.t0), Ev::Synced(life, k));
        }
    }

    /// The bounds the switch keeps, checked on every step.
    fn check_bounds(&mut self) {
        let Some(e) = self.engine.as_ref() else { return };
        let inflight = e.inflight_bound();
        let mut why = None;
        if e.requests_pending() > inflight {
            why = Some(format!(
                "{} requests pending, past the links' in-flight limits ({inflight})",
                e.requests_pending()
            ));
        } else if e.reversals_pending() > corridor_engine::limits::REVERSALS_MAX {
            why = Some(format!("{} reversals stored, past REVERSALS_MAX", e.reversals_pending()));
        } else if e.exceptions_len() > corridor_engine::limits::EXCEPTIONS_MAX {
            why = Some(format!("{} exceptions, past EXCEPTIONS_MAX", e.exceptions_len()));
        } else if e.outcomes_remembered() > corridor_engine::limits::OUTCOMES_MAX {
            why = Some(format!("{} outcomes remembered, past OUTCOMES_MAX", e.outcomes_remembered()));
        } else if let Some((side, u)) = self
            .unwritten
            .iter()
            .find(|(_, u)| u.len() > corridor_engine::limits::LINK_OUT_BYTES_MAX + FRAME_BYTES_MAX)
        {
            why = Some(format!(
                "{} bytes written for {side:?} and not delivered, past LINK_OUT_BYTES_MAX",
                u.len()
            ));
        } else if let Some((link, b)) = self
            .inbuf
            .iter()
            .find(|(_, b)| b.len() > corridor_engine::limits::HELD_BYTES_MAX + 2 * FRAME_BYTES_MAX)
        {
            why = Some(format!("{} bytes read on {link:?} and not taken", b.len()));
        }
        if why.is_none() {
            for (side, (link, _)) in &self.links {
                let Some((st, max)) = e.link_status(*link) else { continue };
                if st.inflight_in > max {
                    why = Some(format!(
                        "{side:?}: {} requests in flight from it, past its limit {max}",
                        st.inflight_in
                    ));
                } else if st.held > corridor_engine::limits::HELD_BYTES_MAX + FRAME_BYTES_MAX {
                    why = Some(format!("{side:?}: {} bytes of requests held, past HELD_BYTES_MAX", st.held));
                }
            }
        }
        if let Some(why) = why {
            self.broke(None, why);
        }
    }

    /// What the disk holds durably, as recovery reads it: open requests, stored reversals,
    /// exceptions, how many outcomes, the last sequence number.
    fn durable(&self, k: usize) -> Durable {
        let view: Vec<(u64, &[u8])> =
            self.disks[k].segments.iter().map(|(s, b)| (*s, b.as_slice())).collect();
        let Ok(scan) = scan_log(&view) else { return Durable::default() };
        let mut r = Recovery::default();
        let _ = r.fold(&scan, self.unix_ms());
        Durable {
            requests: r.requests.keys().copied().collect(),
            reversals: r.reversals.keys().copied().collect(),
            exceptions: r.exceptions.keys().copied().collect(),
            outcomes: r.outcomes.len(),
            last_seq: r.last_seq,
        }
    }

    fn step(&mut self, ev: Ev) {
        match ev {
            Ev::Send(side) => {
                self.activate(side);
                self.terminal_send();
            }
            Ev::TerminalTick(side) => {
                self.activate(side);
                self.terminal_tick();
            }
            Ev::ToSwitch(side, generation, bytes) => {
                let Some(&(link, g)) = self.links.get(&side) else { return };
                if g != generation || self.engine.is_none() {
                    return;
                }
                self.inbuf.entry(link).or_default().extend_from_slice(&bytes);
                self.feed(link);
            }
            Ev::ToPeer(side, generation) => {
                if self.links.get(&side).is_some_and(|l| l.1 == generation) {
                    if let Some(bytes) = self.in_flight.get_mut(&side).and_then(VecDeque::pop_front) {
                        self.peer_receives(side, &bytes);
                    }
                }
            }
            Ev::Synced(life, k) => {
                if life == self.life {
                    self.synced(k);
                }
            }
            Ev::Hop(life, to, bytes) => {
                let now = self.instant();
                if life == self.life {
                    if let Some(e) = self.engine.as_mut() {
                        e.deliver_hop(to, &bytes, now);
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
            Ev::Drop(side) => {
                if self.faults && self.engine.is_some() {
                    self.disconnect(side);
                }
            }
            Ev::Connect(side) => self.connect(side),
            Ev::Crash => {
                if self.faults {
                    self.crash();
                }
            }
            Ev::Restart => {
                if self.engine.is_none() {
                    self.start_switch();
                }
            }
            Ev::Stall(side, micros) => {
                if self.faults && self.links.contains_key(&side) {
                    let until = self.now + Duration::from_micros(micros);
                    self.world(format!("{side:?} stops reading for {:?}", Duration::from_micros(micros)));
                    self.stalled.insert(side, until);
                }
            }
            Ev::Writable(side, generation) => {
                if self.links.get(&side).is_some_and(|l| l.1 == generation) {
                    self.write(side);
                }
            }
            Ev::Garbage(side) => {
                if self.faults {
                    if let Some(&(_, generation)) = self.links.get(&side) {
                        self.world(format!("{side:?} sends garbage"));
                        let bytes: Vec<u8> =
                            (0..1 + self.rng.below(40)).map(|_| self.rng.below(256) as u8).collect();
                        let at = self.now.max(self.last_delivery.get(&side).copied().unwrap_or_default());
                        self.at(at, Ev::ToSwitch(side, generation, bytes));
                        // Nothing after the garbage is read as a message on this connection.
                        self.ended.entry(generation).or_insert(at);
                    }
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
            Ev::SignOn(side) => {
                self.activate(side);
                if self.links.contains_key(&side) && !self.terminal.signed_on {
                    self.terminal_network("001");
                }
            }
            Ev::SignOff(side) => {
                self.activate(side);
                if self.faults && self.links.contains_key(&side) && self.terminal.signed_on {
                    self.world(format!("{side:?} signs off"));
                    self.terminal_network("002");
                }
            }
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
        }
        self.pump();
        self.check_bounds();
    }

    fn settled(&self) -> bool {
        self.load_over
            && self.engine.as_ref().is_some_and(|e| e.requests_pending() == 0 && e.reversals_pending() == 0)
            && self.disks.iter().all(|d| d.writing.is_none())
            && self
                .terminals()
                .iter()
                .all(|t| t.purchases.is_empty() && t.repeats.is_empty() && t.to_reverse.is_empty())
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
        self.check()?;
        self.out.approvals = self.terminals().iter().map(|t| t.approvals.len()).sum();
        self.out.reversed = self.terminals().iter().map(|t| t.reversed_acked.len()).sum();
        self.out.authorizations = self.terminals().iter().map(|t| t.authorizations.len()).sum();
        self.out.advised = self.terminals().iter().map(|t| t.advised_acked.len()).sum();
        Ok(self.out.clone())
    }

    fn fail(&self, n: Option<u32>, what: String) -> Violation {
        let mut history = n.and_then(|n| self.history.get(&n).cloned()).unwrap_or_default();
        history.push("-- the switch and its links:".into());
        history.extend(self.world.iter().cloned());
        Violation { seed: self.seed, step: self.out.steps, what, history, without: self.without.clone() }
    }

    fn check(&self) -> Result<(), Violation> {
        if let Some((step, n, what)) = &self.broken {
            let mut v = self.fail(*n, what.clone());
            v.step = *step;
            return Err(v);
        }
        if let Some(why) = &self.stuck {
            return Err(self.fail(None, format!("livelock: {why}")));
        }
        if !self.settled() {
            let stuck = self.terminals().iter().find_map(|t| t.to_reverse.front().copied());
            return Err(self.fail(
                stuck,
                format!(
                    "did not settle within {SETTLE_MAX:?}: {} reversals the terminal still owes, {} owed by the switch",
                    self.terminals().iter().map(|t| t.to_reverse.len()).sum::<usize>(),
                    self.engine.as_ref().map_or(0, Switch::reversals_pending)
                ),
            ));
        }
        // (Forwarded twice, answered twice, a reversal first: caught on their step.)
        for (&n, (_, auth)) in &self.issuer.purchases {
            let delivered = self.terminals().iter().any(|t| t.approvals.contains(&(n, auth.clone())));
            if auth.is_empty() || delivered {
                continue;
            }
            // When the approval reached the switch, if it did: before the run ended, on a
            // connection still carrying messages. (Not one the switch's crash ended: a late
            // approval whose second reversal was not yet durable is lost with the crash, and
            // nothing recovered says it came — a known gap, left to reconciliation.)
            let approved = match self.issuer.approved_on.get(&n) {
                Some(&(generation, at))
                    if at <= self.now
                        && !self.crashed.contains(&generation)
                        && self.ended.get(&generation).is_none_or(|&end| end > at) =>
                {
                    at
                }
                _ => Duration::ZERO,
            };
            match self.issuer.reversed_at.get(&n) {
                None => {
                    return Err(self.fail(
                        Some(n),
                        format!("purchase {n}: approved {auth}, never delivered, never reversed"),
                    ))
                }
                Some(&last) if last < approved => {
                    return Err(self.fail(
                        Some(n),
                        format!(
                        "purchase {n}: approved {auth} at {approved:?}, after the issuer acknowledged its \
                             last reversal ({last:?}); never delivered, never reversed again"
                    ),
                    ))
                }
                Some(_) => {}
            }
        }
        let mut acked: Vec<u32> =
            self.terminals().iter().flat_map(|t| t.reversed_acked.iter().copied()).collect();
        acked.sort_unstable();
        if let Some(&n) = acked
            .iter()
            .find(|n| !self.issuer.reversals.contains_key(n) && self.issuer.purchases.contains_key(n))
        {
            return Err(self.fail(
                Some(n),
                format!("purchase {n}: its reversal was acknowledged, never reached the issuer"),
            ));
        }
        if let Some(&n) = self
            .terminals()
            .iter()
            .flat_map(|t| t.advised_acked.iter())
            .find(|n| !self.issuer.advices.contains_key(n))
        {
            return Err(self.fail(
                Some(n),
                format!("request {n}: its advice was acknowledged, never reached the issuer"),
            ));
        }
        Ok(())
    }
}

/// Runs seeds `from..from + n`; the first violation stops it. The outcomes' totals.
///
/// # Errors
///
/// The first seed whose run breaks an invariant.
pub fn run_seeds(from: u64, n: u64) -> Result<Vec<Outcome>, Violation> {
    (from..from + n).map(|s| Sim::new(s).run()).collect()
}

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
        // the acknowledgement of the earlier try: the advice was lost.
        for seed in [186, 300, 523, 823, 1166, 1874, 3644, 4228, 7537] {
            if let Err(v) = Sim::new(seed).run() {
                panic!("{v}");
            }
        }
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

    #[test]
    fn a_fixed_set_of_seeds_keeps_every_invariant() {
        let outcomes = match run_seeds(1, 40) {
            Ok(o) => o,
            Err(v) => panic!("{v}"),
        };
        let t = totals(&outcomes);
        assert!(t["crashes"] > 10 && t["reversed by the terminal"] > 0, "faults were exercised: {t:?}");
        assert!(t["approved by the issuer after it acknowledged their reversal"] > 0, "{t:?}");
    }
}
