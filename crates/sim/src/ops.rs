//! The engine driven by an arbitrary sequence of operations — the pattern of quinn's
//! `streams` fuzz target: each [`Op`] is one thing a peer, the clock or the disk does, applied
//! to the sans-IO engine with its journal, and after each one the invariants the simulator
//! checks are checked again. The fuzz target `engine_ops` feeds it `Arbitrary` sequences;
//! the tests here feed it seeded ones.
//!
//! The world: an acquirer (one listening link) and an issuer with two dialled links, native
//! framing. Bytes a peer sends wait in its connection until a [`Op::Deliver`] hands some of
//! them to the switch (so frames arrive split anywhere); bytes the switch writes wait until a
//! [`Op::Read`] takes some (a slow reader, partial writes).
//!
//! Checked after every operation: no correlation answered twice; an answer carries the RRN of
//! the request its correlation named (correlation restored); no purchase forwarded twice; no
//! reversal reaches the issuer before its purchase; the engine's maps and the bytes it
//! writes within their bounds. At the end, after the clock runs on and every byte is
//! delivered: every request the switch fully received on a connection that stayed up was
//! answered exactly once; every purchase the issuer never answered was reversed; every
//! reversal the switch acknowledged reached the issuer.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use bytes::BytesMut;
use corridor_engine::{
    driver::{self, JournalCycle, JournalStep, Written},
    limits, CloseReason, Engine, Journal, LinkId, WallClock,
};
use corridor_journal::{request::PanKey, GroupCommit};
use corridor_wire::{de, Dialect, Message, Mti, NativeFramer, OwnedMessage, FRAME_BYTES_MAX};

use crate::{answer, number, purchase, reversal, text, UNIX};

/// Most operations one run applies (the rest of a longer input is ignored).
pub const OPS_MAX: usize = 4096;
/// Most bytes of garbage one operation sends.
const GARBAGE_MAX: usize = 256;
/// Rounds of the clock running on at the end.
const SETTLE_ROUNDS: u32 = 400;

/// A peer of the switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Peer {
    /// The acquirer.
    Acq,
    /// The issuer's first link.
    Iss1,
    /// The issuer's second link.
    Iss2,
    /// A second acquirer, a participant of its own.
    Acq2,
}

const PEERS: [Peer; 4] = [Peer::Acq, Peer::Iss1, Peer::Iss2, Peer::Acq2];

/// The second acquirer's requests are numbered from here (their RRNs differ from the
/// first's), and it is acquirer id `22345678`.
const SECOND: u32 = 1_000;

impl Peer {
    const fn spec(self) -> usize {
        match self {
            Self::Acq => 0,
            Self::Iss1 => 1,
            Self::Iss2 => 2,
            Self::Acq2 => 3,
        }
    }

    const fn acquirer(self) -> bool {
        matches!(self, Self::Acq | Self::Acq2)
    }

    const fn other_issuer(self) -> Self {
        match self {
            Self::Iss1 => Self::Iss2,
            _ => Self::Iss1,
        }
    }
}

/// One thing that happens.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Op {
    /// The peer connects (if it is not connected).
    Connect(Peer),
    /// The peer's connection goes.
    Disconnect(Peer),
    /// An acquirer (the second when `true`) sends purchase `n` (the same `n` again is a
    /// repeat).
    Purchase(bool, u8),
    /// An acquirer (the second when `true`) sends its reversal of purchase `n` (0420, or 0421
    /// when `repeat`).
    Reversal(bool, u8, bool),
    /// The acquirer sends an echo.
    Echo,
    /// A peer sends bytes that are no frame.
    Garbage(Peer, Vec<u8>),
    /// Up to `max` bytes (at least one) of what a peer sent reach the switch.
    Deliver(Peer, u16),
    /// Up to `max` bytes (at least one) of what the switch wrote to a peer reach it.
    Read(Peer, u16),
    /// The issuer answers the `pick`-th request it holds: approved or declined, on its own
    /// link or the other one, once or twice.
    Answer {
        /// Which held request (modulo how many there are).
        pick: u8,
        /// Approve (else decline 05).
        approve: bool,
        /// Answer on the other issuer link.
        wrong_link: bool,
        /// Answer twice.
        twice: bool,
    },
    /// The monotonic clock runs on this many milliseconds; the engine's timers run.
    Advance(u16),
    /// The journal's batch reaches the disk.
    Sync,
}

#[derive(Default)]
struct Conn {
    id: Option<LinkId>,
    generation: u64,
    /// Bytes the peer sent that the switch has not read.
    to_switch: Vec<u8>,
    /// Bytes the switch took out for this peer that it has not received.
    to_peer: Vec<u8>,
    /// The peer's read buffer.
    peer_buf: BytesMut,
    /// The switch's read buffer.
    switch_buf: BytesMut,
    /// Correlations of requests whose last byte was sent on this connection, with where
    /// that byte ends in the stream (the switch has them whole when it has read that far).
    sent_ends: Vec<(u64, u64)>,
    sent_bytes: u64,
    read_bytes: u64,
}

/// The world and what each side saw.
pub struct World {
    engine: Engine,
    t0: Instant,
    now: Duration,
    conns: BTreeMap<Peer, Conn>,
    generation: u64,
    /// The journal's batch cycle (the driver's), and whether a batch is being written.
    cycle: JournalCycle,
    corr: u64,
    /// Acquirers: correlation → (RRN number, is a reversal, generation it was sent on, who
    /// sent it).
    requests: BTreeMap<u64, (u32, bool, u64, Peer)>,
    /// Acquirer: correlations fully received by the switch on a connection that stayed up.
    owed: BTreeSet<u64>,
    answers: BTreeMap<u64, u32>,
    /// Issuer: purchases seen (number → times), with where each came from.
    forwarded: BTreeMap<u32, u32>,
    held: Vec<(Peer, u64, OwnedMessage)>,
    answered_by_issuer: BTreeSet<u32>,
    reversals_seen: BTreeSet<u32>,
    reversals_acked: BTreeSet<u32>,
    ops: usize,
    /// The last things that happened, for the report of a broken invariant.
    trail: std::collections::VecDeque<String>,
}

/// Lines of history a broken invariant reports.
const TRAIL_MAX: usize = 48;

/// A broken invariant: what broke, after which operation.
#[derive(Debug)]
pub struct Broken {
    /// The operation's index.
    pub at: usize,
    /// What broke.
    pub what: String,
    /// What happened last before it.
    pub trail: Vec<String>,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "after operation {}: {}", self.at, self.what)?;
        for t in &self.trail {
            writeln!(f, "  {t}")?;
        }
        Ok(())
    }
}

fn config() -> corridor_engine::Config {
    let mut c = crate::config();
    let mut acq2 = c.participants[0].clone();
    acq2.id = "acq2".into();
    acq2.name = "acq2".into();
    acq2.acquirer_ids = corridor_wire::InstitutionId::from_ascii(b"22345678").into_iter().collect();
    c.participants.push(acq2);
    let mut link = c.links[0].clone();
    link.name = "acq2-1".into();
    link.participant = 2;
    c.links.push(link);
    c
}

/// Message `m` (built for the first acquirer) as the second acquirer sends it: its own
/// acquirer id (in DE 32 and DE 90) and RRN.
fn as_second(mut m: OwnedMessage, n: u32) -> OwnedMessage {
    let _ = m.set(de::ACQUIRER_ID, "22345678");
    let _ = m.set(de::RRN, format!("SIM{n:09}"));
    if let Some(d) =
        m.get(de::ORIGINAL_DATA).map(|d| String::from_utf8_lossy(d).replace("12345678", "22345678"))
    {
        let _ = m.set(de::ORIGINAL_DATA, d);
    }
    m
}

impl World {
    /// A world with nobody connected.
    #[must_use]
    pub fn new() -> Self {
        let t0 = Instant::now();
        let key = PanKey::new(1, &[0x5A; 32]).unwrap_or_else(|_| unreachable!("a 32-byte key"));
        let policy = GroupCommit {
            segment_bytes: corridor_journal::limits::SEGMENT_BYTES_MIN,
            ..GroupCommit::default()
        };
        let journal = Journal::new(policy, 1, None, key, [0; 8]);
        let engine = Engine::with_journal(config(), WallClock { at: t0, unix_secs: UNIX }, journal);
        Self {
            engine,
            t0,
            now: Duration::ZERO,
            conns: PEERS.iter().map(|p| (*p, Conn::default())).collect(),
            generation: 0,
            cycle: JournalCycle::default(),
            corr: 0,
            requests: BTreeMap::new(),
            owed: BTreeSet::new(),
            answers: BTreeMap::new(),
            forwarded: BTreeMap::new(),
            held: Vec::new(),
            answered_by_issuer: BTreeSet::new(),
            reversals_seen: BTreeSet::new(),
            reversals_acked: BTreeSet::new(),
            ops: 0,
            trail: std::collections::VecDeque::new(),
        }
    }

    fn instant(&self) -> Instant {
        self.t0 + self.now
    }

    fn unix_ms(&self) -> u64 {
        UNIX * 1000 + self.now.as_millis() as u64
    }

    fn broken(&self, what: String) -> Broken {
        Broken { at: self.ops, what, trail: self.trail.iter().cloned().collect() }
    }

    fn trace(&mut self, what: impl Into<String>) {
        if self.trail.len() == TRAIL_MAX {
            self.trail.pop_front();
        }
        self.trail.push_back(format!("{:>5} {:>9.3} s  {}", self.ops, self.now.as_secs_f64(), what.into()));
    }

    /// Applies `op`, then checks the invariants that hold at every step.
    ///
    /// # Errors
    ///
    /// The first invariant that does not hold.
    pub fn apply(&mut self, op: &Op) -> Result<(), Broken> {
        self.ops += 1;
        if !matches!(op, Op::Read(..) | Op::Deliver(..) | Op::Sync) {
            self.trace(format!("{op:?}"));
        }
        match op {
            Op::Connect(p) => self.connect(*p),
            Op::Disconnect(p) => self.disconnect(*p),
            Op::Purchase(second, n) => {
                let n = u32::from(*n);
                if *second {
                    self.acquirer_sends(Peer::Acq2, SECOND + n, false, &as_second(purchase(n), SECOND + n));
                } else {
                    self.acquirer_sends(Peer::Acq, n, false, &purchase(n));
                }
            }
            Op::Reversal(second, n, repeat) => {
                let n = u32::from(*n);
                if *second {
                    let m = as_second(reversal(n, *repeat), SECOND + n);
                    self.acquirer_sends(Peer::Acq2, SECOND + n, true, &m);
                } else {
                    self.acquirer_sends(Peer::Acq, n, true, &reversal(n, *repeat));
                }
            }
            Op::Echo => {
                let mut m = OwnedMessage::new(Mti::NETWORK_REQUEST);
                let _ = m.set(de::TRANSMISSION_TIME, "1201103000");
                let _ = m.set(de::STAN, "999999");
                let _ = m.set(de::NETWORK_CODE, "301");
                self.corr += 1;
                let corr = self.corr;
                self.send(Peer::Acq, &crate::frame(corr, &m));
            }
            Op::Garbage(p, bytes) => {
                let bytes = &bytes[..bytes.len().min(GARBAGE_MAX)];
                self.send(*p, bytes);
            }
            Op::Deliver(p, max) => self.deliver(*p, usize::from(*max).max(1)),
            Op::Read(p, max) => self.read(*p, usize::from(*max).max(1))?,
            Op::Answer { pick, approve, wrong_link, twice } => {
                self.issuer_answers(usize::from(*pick), *approve, *wrong_link, *twice);
            }
            Op::Advance(ms) => {
                self.now += Duration::from_millis(u64::from(*ms));
                self.engine.handle_timeout(self.instant());
            }
            Op::Sync => {
                if self.cycle.writing() {
                    let now = self.instant();
                    self.cycle.written(&mut self.engine, Written::Synced, now);
                }
            }
        }
        self.pump();
        self.check_bounds()
    }

    fn connect(&mut self, p: Peer) {
        let now = self.instant();
        if self.conns[&p].id.is_some() {
            return;
        }
        if let Some(id) = self.engine.link_up(p.spec(), now) {
            self.generation += 1;
            let generation = self.generation;
            if let Some(c) = self.conns.get_mut(&p) {
                *c = Conn { id: Some(id), generation, ..Conn::default() };
            }
        }
    }

    fn disconnect(&mut self, p: Peer) {
        let now = self.instant();
        let Some(c) = self.conns.get_mut(&p) else { return };
        let Some(id) = c.id.take() else { return };
        let generation = c.generation;
        *c = Conn::default();
        self.trace(format!("{p:?} connection gone"));
        self.engine.link_down(id, now);
        // What was owed on that connection can no longer reach its sender.
        let gone: Vec<u64> = self
            .owed
            .iter()
            .copied()
            .filter(|c| self.requests.get(c).is_some_and(|r| r.2 == generation))
            .collect();
        for c in gone {
            self.owed.remove(&c);
        }
        self.held.retain(|(from, _, _)| *from != p);
    }

    fn send(&mut self, p: Peer, bytes: &[u8]) {
        if let Some(c) = self.conns.get_mut(&p) {
            if c.id.is_some() {
                c.to_switch.extend_from_slice(bytes);
                c.sent_bytes += bytes.len() as u64;
            }
        }
    }

    fn acquirer_sends(&mut self, p: Peer, n: u32, is_reversal: bool, m: &OwnedMessage) {
        let Some(c) = self.conns.get(&p) else { return };
        if c.id.is_none() {
            return;
        }
        let generation = c.generation;
        // Correlations are unique across both acquirers: an answer names its sender.
        self.corr += 1;
        let corr = self.corr;
        self.requests.insert(corr, (n, is_reversal, generation, p));
        self.send(p, &crate::frame(corr, m));
        if let Some(c) = self.conns.get_mut(&p) {
            let end = c.sent_bytes;
            c.sent_ends.push((corr, end));
        }
    }

    fn deliver(&mut self, p: Peer, max: usize) {
        let now = self.instant();
        let Some(c) = self.conns.get_mut(&p) else { return };
        let Some(id) = c.id else { return };
        let k = max.min(c.to_switch.len());
        if k == 0 {
            return;
        }
        c.switch_buf.extend_from_slice(&c.to_switch[..k]);
        c.to_switch.drain(..k);
        c.read_bytes += k as u64;
        let read = c.read_bytes;
        let whole: Vec<u64> =
            c.sent_ends.iter().filter(|(_, end)| *end <= read).map(|(corr, _)| *corr).collect();
        c.sent_ends.retain(|(_, end)| *end > read);
        self.owed.extend(whole);
        let mut buf = std::mem::take(&mut c.switch_buf);
        self.engine.handle_read(id, &mut buf, now);
        if let Some(c) = self.conns.get_mut(&p) {
            c.switch_buf = buf;
        }
    }

    /// Polls the engine in the driver's order (outputs to the connections, closes,
    /// resumes), then the journal's batch cycle, until nothing moves.
    fn pump(&mut self) {
        for _ in 0..64 {
            let mut io = Io::default();
            driver::flush(&mut self.engine, &mut io);
            let mut progress = !io.is_empty();
            for (link, out) in io.outputs {
                if let Some(c) = self.conns.values_mut().find(|c| c.id == Some(link)) {
                    c.to_peer.extend_from_slice(&out);
                }
                let n = out.len();
                self.trace(format!("switch writes {n} bytes on {link:?}"));
            }
            for link in io.close {
                if let Some(p) = PEERS.iter().copied().find(|p| self.conns[p].id == Some(link)) {
                    self.disconnect(p);
                } else {
                    self.engine.link_down(link, self.t0 + self.now);
                }
            }
            for link in io.resume {
                if let Some(p) = PEERS.iter().copied().find(|p| self.conns[p].id == Some(link)) {
                    let now = self.instant();
                    if let Some(c) = self.conns.get_mut(&p) {
                        let mut buf = std::mem::take(&mut c.switch_buf);
                        self.engine.handle_read(link, &mut buf, now);
                        if let Some(c) = self.conns.get_mut(&p) {
                            c.switch_buf = buf;
                        }
                    }
                }
            }
            let (now, ms) = (self.instant(), self.unix_ms());
            // The disk never fills here: a batch waits for an `Op::Sync`.
            if let Some(JournalStep::Write(_)) = self.cycle.poll(&mut self.engine, now, ms) {
                progress = true;
            }
            if !progress {
                return;
            }
        }
    }

    /// The peer receives up to `max` bytes the switch wrote for it (reported written to the
    /// engine as they leave) and reacts.
    fn read(&mut self, p: Peer, max: usize) -> Result<(), Broken> {
        let Some(c) = self.conns.get_mut(&p) else { return Ok(()) };
        let Some(id) = c.id else { return Ok(()) };
        let k = max.min(c.to_peer.len());
        if k == 0 {
            return Ok(());
        }
        c.peer_buf.extend_from_slice(&c.to_peer[..k]);
        c.to_peer.drain(..k);
        self.engine.handle_written(id, k);
        let mut msgs = Vec::new();
        if let Some(c) = self.conns.get_mut(&p) {
            while let Ok(Some(f)) = NativeFramer::new(FRAME_BYTES_MAX).decode(&mut c.peer_buf) {
                let corr = f.correlation();
                if let Ok(m) = Message::parse(Dialect::Native, f.into_body()) {
                    msgs.push((corr, OwnedMessage::from(&m)));
                }
            }
        }
        for (corr, m) in msgs {
            self.trace(format!(
                "{p:?} gets {} corr {corr} RRN {} DE39 {}",
                m.mti(),
                text(&m, de::RRN),
                text(&m, de::RESPONSE_CODE)
            ));
            if p.acquirer() {
                self.acquirer_gets(p, corr, &m)?;
            } else {
                self.issuer_gets(p, corr, m)?;
            }
        }
        Ok(())
    }

    fn acquirer_gets(&mut self, p: Peer, corr: u64, m: &OwnedMessage) -> Result<(), Broken> {
        if m.mti() == Mti::NETWORK_REQUEST {
            // The switch's echo: answered.
            let r = answer(m, "00");
            self.send(p, &crate::frame(corr, &r));
            return Ok(());
        }
        if m.mti().class() == 8 {
            return Ok(());
        }
        let k = {
            let k = self.answers.entry(corr).or_default();
            *k += 1;
            *k
        };
        if k > 1 {
            return Err(self.broken(format!("correlation {corr} answered {k} times")));
        }
        self.owed.remove(&corr);
        let Some(&(n, is_reversal, _, sender)) = self.requests.get(&corr) else {
            return Err(
                self.broken(format!("an answer for correlation {corr}, which the acquirer never used"))
            );
        };
        if sender != p {
            return Err(self.broken(format!("{p:?} got the answer to {sender:?}'s correlation {corr}")));
        }
        if number(m) != Some(n) {
            return Err(self.broken(format!(
                "correlation {corr} (RRN number {n}) answered with RRN {:?}",
                text(m, de::RRN)
            )));
        }
        if is_reversal && text(m, de::RESPONSE_CODE) == "00" {
            self.reversals_acked.insert(n);
        }
        Ok(())
    }

    fn issuer_gets(&mut self, p: Peer, corr: u64, m: OwnedMessage) -> Result<(), Broken> {
        match m.mti().value() {
            800 => {
                let r = answer(&m, "00");
                self.send(p, &crate::frame(corr, &r));
            }
            200 => {
                let Some(n) = number(&m) else { return Ok(()) };
                let times = {
                    let t = self.forwarded.entry(n).or_default();
                    *t += 1;
                    *t
                };
                if times > 1 {
                    return Err(self.broken(format!("purchase {n} forwarded {times} times")));
                }
                if self.reversals_seen.contains(&n) {
                    return Err(self.broken(format!("purchase {n} reached the issuer after its reversal")));
                }
                self.held.push((p, corr, m));
            }
            420 | 421 => {
                let Some(n) = number(&m) else { return Ok(()) };
                self.reversals_seen.insert(n);
                let r = answer(&m, "00");
                self.send(p, &crate::frame(corr, &r));
            }
            _ => {}
        }
        Ok(())
    }

    fn issuer_answers(&mut self, pick: usize, approve: bool, wrong_link: bool, twice: bool) {
        if self.held.is_empty() {
            return;
        }
        let (from, corr, m) = self.held.remove(pick % self.held.len());
        let Some(n) = number(&m) else { return };
        let mut r = answer(&m, if approve { "00" } else { "05" });
        let auth = format!("I{n:05}");
        if approve {
            let _ = r.set(de::AUTH_ID, auth.clone());
        }
        let to = if wrong_link { from.other_issuer() } else { from };
        if !wrong_link {
            self.answered_by_issuer.insert(n);
        }
        let bytes = crate::frame(corr, &r);
        self.send(to, &bytes);
        if twice {
            self.send(to, &bytes);
        }
    }

    fn check_bounds(&self) -> Result<(), Broken> {
        let inflight: usize = self.engine.config().links.iter().map(|l| l.inflight_max as usize).sum();
        if self.engine.requests_pending() > inflight {
            return Err(self.broken(format!(
                "{} requests pending, past the links' in-flight limits ({inflight})",
                self.engine.requests_pending()
            )));
        }
        if self.engine.reversals_pending() > limits::REVERSALS_MAX {
            return Err(self.broken(format!("{} reversals stored", self.engine.reversals_pending())));
        }
        if self.engine.outcomes_remembered() > limits::OUTCOMES_MAX {
            return Err(self.broken(format!("{} outcomes remembered", self.engine.outcomes_remembered())));
        }
        for (p, c) in &self.conns {
            if c.to_peer.len() > limits::LINK_OUT_BYTES_MAX + FRAME_BYTES_MAX {
                return Err(self.broken(format!("{p:?}: {} bytes written for it", c.to_peer.len())));
            }
        }
        Ok(())
    }

    /// Everyone connects, every byte is delivered and read, the issuer answers nothing more
    /// but acknowledges reversals, and the clock runs on until the switch owes nothing; then
    /// the end-of-run invariants.
    ///
    /// # Errors
    ///
    /// The first invariant that does not hold.
    pub fn finish(mut self) -> Result<(), Broken> {
        for _ in 0..SETTLE_ROUNDS {
            self.held.clear();
            for p in PEERS {
                // Connections the switch closed (for garbage, say) come back.
                self.apply(&Op::Connect(p))?;
                self.apply(&Op::Deliver(p, u16::MAX))?;
                self.apply(&Op::Read(p, u16::MAX))?;
            }
            self.apply(&Op::Sync)?;
            if self.engine.requests_pending() == 0
                && self.engine.reversals_pending() == 0
                && self.owed.is_empty()
            {
                break;
            }
            self.apply(&Op::Advance(1_000))?;
        }
        if let Some(c) = self.owed.iter().next() {
            return Err(self.broken(format!(
                "correlation {c} (number {:?}) was taken whole by the switch and never answered",
                self.requests.get(c).map(|r| r.0)
            )));
        }
        if let Some(n) = self
            .forwarded
            .keys()
            .find(|n| !self.answered_by_issuer.contains(n) && !self.reversals_seen.contains(n))
        {
            return Err(self.broken(format!("purchase {n}: forwarded, never answered, never reversed")));
        }
        if let Some(n) = self
            .reversals_acked
            .iter()
            .find(|n| self.forwarded.contains_key(n) && !self.reversals_seen.contains(n))
        {
            return Err(
                self.broken(format!("purchase {n}: its reversal was acknowledged, never reached the issuer"))
            );
        }
        if self.engine.reversals_pending() > 0 {
            return Err(
                self.broken(format!("{} reversals still owed at the end", self.engine.reversals_pending()))
            );
        }
        Ok(())
    }
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs `ops` (at most [`OPS_MAX`]) then settles the world.
///
/// # Errors
///
/// The first invariant that does not hold.
pub fn run(ops: &[Op]) -> Result<(), Broken> {
    let mut w = World::new();
    for op in ops.iter().take(OPS_MAX) {
        w.apply(op)?;
    }
    w.finish()
}

/// The shortest sequence found, by removing chunks of operations (halves, quarters, … single
/// ones) while the run still breaks the same invariant (the same text up to its first
/// digit), that still fails: what a failing input shrinks to. Bounded: at most `tries` runs.
#[must_use]
pub fn shrink(ops: &[Op], tries: usize) -> Vec<Op> {
    let kind = |b: &Broken| b.what.split(|c: char| c.is_ascii_digit()).next().unwrap_or_default().to_owned();
    let Err(first) = run(ops) else { return ops.to_vec() };
    let want = kind(&first);
    let mut best = ops.to_vec();
    let mut chunk = best.len().div_ceil(2);
    let mut runs = 0;
    while chunk >= 1 && runs < tries {
        let mut i = 0;
        let mut removed = false;
        while i < best.len() && runs < tries {
            let mut candidate = best.clone();
            candidate.drain(i..(i + chunk).min(candidate.len()));
            runs += 1;
            if run(&candidate).is_err_and(|b| kind(&b) == want) {
                best = candidate;
                removed = true;
            } else {
                i += chunk;
            }
        }
        if !removed {
            chunk /= 2;
        }
    }
    best
}

/// A seeded sequence of `len` operations, weighted towards what makes traffic.
#[must_use]
pub fn seeded(seed: u64, len: usize) -> Vec<Op> {
    let mut r = crate::Rng::new(seed);
    let peer = |r: &mut crate::Rng| PEERS[r.below(3) as usize];
    let mut ops = vec![
        Op::Connect(Peer::Acq),
        Op::Connect(Peer::Iss1),
        Op::Connect(Peer::Iss2),
        Op::Connect(Peer::Acq2),
    ];
    for _ in 0..len {
        let op = match r.below(100) {
            0..=19 => Op::Purchase(r.chance(30), r.below(40) as u8),
            20..=24 => Op::Reversal(r.chance(30), r.below(40) as u8, r.chance(30)),
            25..=26 => Op::Echo,
            27 => Op::Garbage(peer(&mut r), (0..r.below(40)).map(|_| r.below(256) as u8).collect()),
            28..=29 => Op::Disconnect(peer(&mut r)),
            30..=33 => Op::Connect(peer(&mut r)),
            34..=53 => Op::Deliver(peer(&mut r), if r.chance(30) { 1 } else { r.below(2_000) as u16 }),
            54..=71 => Op::Read(peer(&mut r), if r.chance(30) { 1 } else { r.below(2_000) as u16 }),
            72..=84 => Op::Answer {
                pick: r.below(256) as u8,
                approve: r.chance(80),
                wrong_link: r.chance(10),
                twice: r.chance(10),
            },
            85..=91 => Op::Advance(r.below(3_000) as u16),
            _ => Op::Sync,
        };
        ops.push(op);
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_operation_sequences_keep_every_invariant() {
        for seed in 1..=std::env::var("OPS_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60) {
            let ops = seeded(seed, 600);
            if let Err(b) = run(&ops) {
                let small = shrink(&ops, 5_000);
                panic!(
                    "seed {seed}: {b}\nshrunk to {} operations: {small:?}\n{}",
                    small.len(),
                    run(&small).err().map(|b| b.to_string()).unwrap_or_default()
                );
            }
        }
    }

    /// Found by these sequences: a purchase forwarded on one issuer link that had not read it
    /// yet, timed out, and its reversal went on the issuer's other link, where it arrived
    /// first. A reversal now follows its original's link while that connection is open.
    #[test]
    fn a_reversal_never_overtakes_its_original_on_another_link() {
        let ops = [
            Op::Connect(Peer::Acq),
            Op::Connect(Peer::Iss1),
            Op::Connect(Peer::Iss2),
            Op::Purchase(false, 35),
            Op::Purchase(false, 16),
            Op::Read(Peer::Iss2, 57),
            Op::Deliver(Peer::Iss2, 276),
            Op::Read(Peer::Iss1, 153),
            Op::Deliver(Peer::Iss1, 391),
            Op::Deliver(Peer::Acq, 826),
            Op::Advance(2310),
        ];
        if let Err(b) = run(&ops) {
            panic!("{b}");
        }
    }

    /// Found by these sequences: the issuer answered purchase 7 on its other link, under a
    /// correlation that link had given purchase 32, and the acquirer got purchase 7's answer
    /// for purchase 32. A response now answers a request only if it echoes the request's
    /// STAN (as its destination saw it) and RRN.
    #[test]
    fn an_answer_on_the_wrong_link_answers_nothing() {
        let ops = [
            Op::Connect(Peer::Acq),
            Op::Connect(Peer::Iss1),
            Op::Connect(Peer::Iss2),
            Op::Sync,
            Op::Sync,
            Op::Read(Peer::Iss1, 1397),
            Op::Purchase(false, 7),
            Op::Deliver(Peer::Iss1, 353),
            Op::Deliver(Peer::Acq, 613),
            Op::Read(Peer::Iss2, 1237),
            Op::Sync,
            Op::Read(Peer::Iss1, 418),
            Op::Purchase(false, 32),
            Op::Deliver(Peer::Iss2, 1423),
            Op::Answer { pick: 37, approve: true, wrong_link: true, twice: false },
        ];
        if let Err(b) = run(&ops) {
            panic!("{b}");
        }
    }

    #[test]
    fn the_checks_can_fail() {
        // An issuer answer for a purchase it never got breaks nothing, but an acquirer
        // answer it never asked for does: the checker sees it.
        let mut w = World::new();
        w.apply(&Op::Connect(Peer::Acq)).unwrap_or_else(|b| panic!("{b}"));
        let r = w.acquirer_gets(Peer::Acq, 77, &answer(&purchase(1), "00"));
        assert!(r.is_err(), "an answer nobody asked for is caught");
        // And one participant getting the other's answer.
        w.apply(&Op::Connect(Peer::Acq2)).unwrap_or_else(|b| panic!("{b}"));
        w.apply(&Op::Purchase(true, 3)).unwrap_or_else(|b| panic!("{b}"));
        let theirs = as_second(purchase(3), SECOND + 3);
        let r = w.acquirer_gets(Peer::Acq, w.corr, &answer(&theirs, "00"));
        assert!(
            r.is_err_and(|b| b.what.contains("got the answer to")),
            "another participant's answer is caught"
        );
    }
}

/// What one flush raised, taken at once: output per link, links to close and to resume.
#[derive(Default)]
struct Io {
    outputs: Vec<(LinkId, BytesMut)>,
    close: Vec<LinkId>,
    resume: Vec<LinkId>,
}

impl Io {
    fn is_empty(&self) -> bool {
        self.outputs.is_empty() && self.close.is_empty() && self.resume.is_empty()
    }
}

impl driver::Io for Io {
    fn writable(&mut self, engine: &mut Engine, link: LinkId) {
        if let Some(out) = engine.take_output(link) {
            self.outputs.push((link, out));
        }
    }

    fn close(&mut self, _: &mut Engine, link: LinkId, _: CloseReason) {
        self.close.push(link);
    }

    fn resume(&mut self, _: &mut Engine, link: LinkId) {
        self.resume.push(link);
    }

    fn deadline(&mut self, _: Option<Instant>) {}

    fn journal_due(&mut self) {}
}
