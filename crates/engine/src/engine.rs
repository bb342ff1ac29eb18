//! The state machine.
//!
//! Each request that arrives is checked (frame, fields, sender, duplicate), routed, given a
//! correlation on its outbound link and appended to that link's write batch; its pending
//! entry is keyed by `(outbound link, correlation)` so the response is matched in O(1). The
//! correlation is the native header's id on native links and a STAN the switch assigns per
//! link on classic ones. Every request ends in exactly one answer to its originator: the
//! destination's response, or a decline the switch makes (30, 63, 68, 91, 92, 94, 96).

use std::{
    borrow::Borrow,
    cmp::Reverse,
    collections::{BinaryHeap, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;
use bytes::{Bytes, BytesMut};
use rustc_hash::{FxHashMap, FxHashSet};
use tracing::{debug, info, warn};

use corridor_wire::{
    de, DecodeError, Dialect, EncodeError, FieldId, FieldSet, FrameDecoder, InstitutionId, Message,
    MessageIndex, Mti, NativeHeader, NetworkCode, ResponseCode, Stan,
};

use crate::{
    compose::{self, WallClock},
    config::{Config, Framing, LinkSpec},
    deadlines::Deadlines,
    limits::{LATE_MAX, LINKS_MAX, LINK_OUT_BYTES_MAX, PENDING_MAX, REVERSALS_MAX, TIMERS_MAX},
    routes::RouteTable,
    stats::{LinkCounts, Stats},
};

/// A message read from a link, parsed into the engine's index.
type Msg<'i> = Message<Bytes, &'i MessageIndex>;

/// One connection of a configured link. Never reused: a reconnection is a new id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(pub u32);

impl std::fmt::Display for LinkId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "link#{}", self.0)
    }
}

/// Why the engine wants a link closed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer broke the framing: the stream cannot be trusted.
    Framing(DecodeError),
    /// The peer does not read: its write batch reached [`LINK_OUT_BYTES_MAX`].
    Stalled,
    /// The peer missed the configured number of echoes.
    EchoMissed,
}

/// Work for the I/O layer besides writing bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Close this link's connection.
    Close {
        /// The link.
        link: LinkId,
        /// Why.
        reason: CloseReason,
    },
}

/// What the engine knows of a link, for operators and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkStatus {
    /// The configured link it belongs to.
    pub spec: usize,
    /// Its participant.
    pub participant: usize,
    /// Whether it may carry financial traffic (signed on, or sign-on not required).
    pub signed_on: bool,
    /// Whether the engine asked for it to be closed.
    pub closing: bool,
    /// Requests forwarded on it awaiting an answer.
    pub inflight_out: u32,
    /// Requests received on it awaiting an answer.
    pub inflight_in: u32,
}

struct Link {
    spec: usize,
    participant: usize,
    dial: bool,
    framing: Framing,
    dialect: Dialect,
    frame_bytes_max: usize,
    inflight_max: u32,
    sign_on_required: bool,
    echo_interval: Duration,
    echo_missed_max: u32,
    decoder: FrameDecoder,
    out: BytesMut,
    dirty: bool,
    signed_on: bool,
    closing: bool,
    inflight_out: u32,
    inflight_in: u32,
    next_correlation: u64,
    stan: Stan,
    last_rx: Instant,
    echo_missed: u32,
    frames_in: u64,
    frames_out: u64,
}

impl Link {
    fn routable(&self) -> bool {
        !self.closing && (self.signed_on || !self.sign_on_required)
    }

    /// The next outbound correlation: the header id on native links, a fresh STAN on classic
    /// ones (DE 11 is six digits, so it wraps at 999 999).
    fn next_key(&mut self) -> (u64, Stan) {
        self.stan = self.stan.next();
        let stan = self.stan;
        match self.framing {
            Framing::Native => {
                self.next_correlation = self.next_correlation.wrapping_add(1);
                (self.next_correlation, stan)
            }
            Framing::Length(_) => (u64::from(self.stan.value()), stan),
        }
    }

    /// Appends one frame to the write batch: the header (native or length), then whatever
    /// `body` writes. On error nothing is left behind.
    fn frame(
        &mut self,
        flags: u8,
        correlation: u64,
        body: impl FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
    ) -> Result<(), EncodeError> {
        let result = self.framing.write(flags, correlation, self.frame_bytes_max, &mut self.out, body);
        if result.is_ok() {
            self.frames_out += 1;
        }
        result
    }
}

/// Duplicate detection key: originator, MTI class, STAN, transmission time, terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct DupKey {
    participant: usize,
    class: u8,
    stan: u32,
    time: u64,
    terminal: [u8; 8],
}

enum Kind {
    Request {
        origin: LinkId,
        origin_correlation: u64,
        origin_dialect: Dialect,
        request: Bytes,
        request_mti: Mti,
        origin_stan: [u8; 6],
        sent_stan: [u8; 6],
        dup: DupKey,
        /// The participant the request was routed to, which a reversal goes to.
        destination: usize,
    },
    Reversal(u64),
    Network(NetworkCode),
}

struct Pending {
    kind: Kind,
    deadline: Instant,
}

struct Reversal {
    destination: usize,
    body: Bytes,
    attempts: u32,
    outstanding: Option<(LinkId, u64)>,
    /// Keys of earlier transmissions, in `reversal_attempts`.
    earlier: Vec<(LinkId, u64)>,
}

struct Late {
    reversal: Option<u64>,
    destination: usize,
    body: Bytes,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Reversal(u64),
    Echo(LinkId),
    Late(LinkId, u64),
}

/// Where an answer goes back to: the originating link, its correlation, its dialect and the
/// STAN it used.
struct Origin {
    link: LinkId,
    correlation: u64,
    dialect: Dialect,
    stan: [u8; 6],
}

/// Why a request could not be sent to its destination.
enum Unavailable {
    NoLink,
    AtLimit,
}

/// The switch's state machine. See the module docs.
pub struct Engine {
    config: Config,
    routes: Arc<ArcSwap<RouteTable>>,
    clock: WallClock,
    links: FxHashMap<LinkId, Link>,
    by_participant: Vec<Vec<LinkId>>,
    round_robin: Vec<usize>,
    next_link: u32,
    pending: FxHashMap<(LinkId, u64), Pending>,
    requests_pending: usize,
    duplicates: FxHashSet<DupKey>,
    reversals: FxHashMap<u64, Reversal>,
    reversal_order: VecDeque<u64>,
    next_reversal: u64,
    late: FxHashMap<(LinkId, u64), Late>,
    timers: BinaryHeap<Reverse<(Instant, Timer)>>,
    deadlines: Deadlines,
    dirty: VecDeque<LinkId>,
    events: VecDeque<Event>,
    draining: bool,
    /// Earlier transmissions of reversals still open: an acknowledgement of any of them
    /// completes the reversal.
    reversal_attempts: FxHashMap<(LinkId, u64), u64>,
    stats: Stats,
    /// The index every frame is parsed into (see `handle_frame`).
    scratch: Option<Box<MessageIndex>>,
    /// Per configured link: the counts of its closed connections.
    link_totals: Vec<LinkCounts>,
}

impl Engine {
    /// An engine for `config`. `clock` ties instants to wall-clock time for the DE 7 of the
    /// messages the switch makes.
    #[must_use]
    pub fn new(config: Config, clock: WallClock) -> Self {
        let routes = Arc::new(ArcSwap::from_pointee(config.routes.clone()));
        let n = config.participants.len();
        let n_links = config.links.len();
        Self {
            config,
            routes,
            clock,
            links: FxHashMap::default(),
            by_participant: vec![Vec::new(); n],
            round_robin: vec![0; n],
            next_link: 0,
            pending: FxHashMap::default(),
            requests_pending: 0,
            duplicates: FxHashSet::default(),
            reversals: FxHashMap::default(),
            reversal_order: VecDeque::new(),
            next_reversal: 0,
            late: FxHashMap::default(),
            timers: BinaryHeap::new(),
            deadlines: Deadlines::default(),
            dirty: VecDeque::new(),
            events: VecDeque::new(),
            draining: false,
            reversal_attempts: FxHashMap::default(),
            stats: Stats::default(),
            scratch: Some(Box::new(MessageIndex::new(Dialect::Native))),
            link_totals: vec![LinkCounts::default(); n_links],
        }
    }

    /// The route table handle: `store` a new table to reload routes. Readers never block and
    /// a request in progress keeps the table it started with.
    #[must_use]
    pub fn routes(&self) -> Arc<ArcSwap<RouteTable>> {
        Arc::clone(&self.routes)
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Counters.
    #[must_use]
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Per configured link (in configuration order): connections made and frames carried,
    /// open connections included.
    #[must_use]
    pub fn link_counts(&self) -> Vec<LinkCounts> {
        let mut out = self.link_totals.clone();
        for l in self.links.values() {
            let c = &mut out[l.spec];
            c.open += 1;
            c.frames_in += l.frames_in;
            c.frames_out += l.frames_out;
        }
        out
    }

    /// What the engine knows of `link`.
    #[must_use]
    pub fn link_status(&self, link: LinkId) -> Option<LinkStatus> {
        self.links.get(&link).map(|l| LinkStatus {
            spec: l.spec,
            participant: l.participant,
            signed_on: l.routable(),
            closing: l.closing,
            inflight_out: l.inflight_out,
            inflight_in: l.inflight_in,
        })
    }

    /// Links currently open, in id order.
    #[must_use]
    pub fn open_links(&self) -> Vec<LinkId> {
        let mut v: Vec<_> = self.links.keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Requests in flight (forwarded, awaiting an answer).
    #[must_use]
    pub fn requests_pending(&self) -> usize {
        self.requests_pending
    }

    /// Reversals not yet acknowledged.
    #[must_use]
    pub fn reversals_pending(&self) -> usize {
        self.reversals.len()
    }

    fn timer(&mut self, at: Instant, t: Timer) {
        if self.timers.len() >= TIMERS_MAX {
            // Live timers are bounded by the maps they serve; this only trips if stale ones
            // pile up, and dropping the newest keeps memory bounded (the entry it serves is
            // then swept by the next timer of its kind).
            warn!(timers = self.timers.len(), "timer queue full");
            return;
        }
        self.timers.push(Reverse((at, t)));
    }

    /// Queues the deadline of pending entry `(link, key)`, `timeout` from `now`.
    fn deadline(&mut self, now: Instant, timeout: Duration, link: LinkId, key: u64) {
        let pending = &self.pending;
        self.deadlines.push(now, timeout, link, key, pending.len(), |l, k| pending.contains_key(&(l, k)));
    }

    fn mark_dirty(&mut self, link: LinkId) {
        if let Some(l) = self.links.get_mut(&link) {
            if !l.dirty && !l.out.is_empty() {
                l.dirty = true;
                self.dirty.push_back(link);
            }
        }
    }

    // ----- links -----

    /// A connection for configured link `spec` is up. Returns its id, or `None` at
    /// [`LINKS_MAX`] (the caller then closes the connection).
    pub fn link_up(&mut self, spec: usize, now: Instant) -> Option<LinkId> {
        if self.links.len() >= LINKS_MAX || spec >= self.config.links.len() {
            return None;
        }
        let s: &LinkSpec = &self.config.links[spec];
        let decoder = s.framing.decoder(s.frame_bytes_max);
        let id = LinkId(self.next_link);
        self.next_link = self.next_link.wrapping_add(1);
        let link = Link {
            spec,
            participant: s.participant,
            dial: s.dial,
            framing: s.framing,
            dialect: s.dialect,
            frame_bytes_max: s.frame_bytes_max,
            inflight_max: s.inflight_max,
            sign_on_required: s.sign_on_required,
            echo_interval: s.echo_interval,
            echo_missed_max: s.echo_missed_max,
            decoder,
            out: BytesMut::with_capacity(16 * 1024),
            dirty: false,
            signed_on: false,
            closing: false,
            inflight_out: 0,
            inflight_in: 0,
            next_correlation: 0,
            stan: Stan::new(0).unwrap_or_else(|| unreachable!("0 is a STAN")),
            last_rx: now,
            echo_missed: 0,
            frames_in: 0,
            frames_out: 0,
        };
        self.link_totals[spec].connections += 1;
        let (participant, dial, interval) = (link.participant, link.dial, link.echo_interval);
        self.links.insert(id, link);
        self.by_participant[participant].push(id);
        info!(%id, link = %self.config.links[spec].name, "link up");
        if dial {
            self.send_network(id, NetworkCode::SIGN_ON, now);
        }
        self.timer(now + interval, Timer::Echo(id));
        Some(id)
    }

    /// The connection of `link` is gone (closed by either side). Requests forwarded on it
    /// stay pending and are answered when they time out; answers to requests that came in on
    /// it can no longer be delivered.
    pub fn link_down(&mut self, link: LinkId, _now: Instant) {
        let Some(l) = self.links.remove(&link) else { return };
        self.by_participant[l.participant].retain(|&x| x != link);
        let t = &mut self.link_totals[l.spec];
        t.frames_in += l.frames_in;
        t.frames_out += l.frames_out;
        info!(%link, link_name = %self.config.links[l.spec].name, "link down");
    }

    fn close(&mut self, link: LinkId, reason: CloseReason) {
        let Some(l) = self.links.get_mut(&link) else { return };
        if l.closing {
            return;
        }
        l.closing = true;
        warn!(%link, ?reason, "closing link");
        self.events.push_back(Event::Close { link, reason });
    }

    /// The next event for the I/O layer.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next link with bytes to write.
    pub fn poll_dirty(&mut self) -> Option<LinkId> {
        self.dirty.pop_front()
    }

    /// Takes `link`'s write batch.
    pub fn take_output(&mut self, link: LinkId) -> Option<BytesMut> {
        let l = self.links.get_mut(&link)?;
        l.dirty = false;
        if l.out.is_empty() {
            return None;
        }
        let out = l.out.split();
        Some(out)
    }

    /// Whether `link` has bytes waiting to be written.
    #[must_use]
    pub fn has_output(&self, link: LinkId) -> bool {
        self.links.get(&link).is_some_and(|l| !l.out.is_empty())
    }

    /// When [`Engine::handle_timeout`] should next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let timer = self.timers.peek().map(|Reverse((at, _))| *at);
        match (timer, self.deadlines.next()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ----- input -----

    /// Bytes arrived on `link`: every whole frame in `buf` is taken off and handled.
    pub fn handle_read(&mut self, link: LinkId, buf: &mut BytesMut, now: Instant) {
        loop {
            let Some(l) = self.links.get_mut(&link) else {
                buf.clear();
                return;
            };
            if l.closing {
                buf.clear();
                return;
            }
            let frame = l.decoder.decode(buf);
            match frame {
                Ok(Some((correlation, body))) => {
                    l.last_rx = now;
                    l.frames_in += 1;
                    l.echo_missed = 0;
                    self.handle_frame(link, correlation, body, now);
                }
                Ok(None) => return,
                Err(e) => {
                    self.stats.framing_errors += 1;
                    buf.clear();
                    self.close(link, CloseReason::Framing(e));
                    return;
                }
            }
        }
    }

    fn handle_frame(&mut self, link: LinkId, correlation: u64, body: Bytes, now: Instant) {
        let Some(dialect) = self.links.get(&link).map(|l| l.dialect) else { return };
        // Every frame is parsed into the one index the engine keeps: nothing to zero or move
        // per message. It is taken out while the message is handled, so the handlers keep
        // `&mut self`.
        let mut index = self.scratch.take().unwrap_or_else(|| Box::new(MessageIndex::new(dialect)));
        if let Err(e) = index.parse_into(dialect, &body) {
            self.scratch = Some(index);
            self.stats.format_errors += 1;
            self.format_error(link, correlation, dialect, body, &e);
            return;
        }
        let msg = Message::from_parts(body, &*index);
        self.dispatch(link, correlation, msg, now);
        self.scratch = Some(index);
    }

    fn dispatch(&mut self, link: LinkId, correlation: u64, msg: Msg<'_>, now: Instant) {
        let mti = msg.mti();
        if mti.class() == 8 {
            if mti.is_request() {
                self.answer_network(link, correlation, &msg);
            } else {
                self.network_response(link, correlation, &msg);
            }
        } else if mti.is_request() {
            self.handle_request(link, correlation, msg, now);
        } else {
            self.handle_response(link, correlation, &msg, now);
        }
    }

    /// A body that breaks the dictionary: answered 30 when its MTI and bitmaps can be read
    /// and it is a request, dropped otherwise. The link stays up: framing is intact.
    fn format_error(
        &mut self,
        link: LinkId,
        correlation: u64,
        dialect: Dialect,
        body: Bytes,
        e: &DecodeError,
    ) {
        warn!(%link, error = %e, "malformed message");
        let Ok((index, _)) = MessageIndex::parse_partial(dialect, &body) else { return };
        let partial = Message::from_parts(body, index);
        if partial.mti().is_request() {
            self.decline(link, correlation, &partial, ResponseCode::FORMAT_ERROR);
        }
    }

    /// Writes a switch-made answer to `req` with `code` on `link`.
    fn decline<B: AsRef<[u8]>, I: Borrow<MessageIndex>>(
        &mut self,
        link: LinkId,
        correlation: u64,
        req: &Message<B, I>,
        code: ResponseCode,
    ) {
        self.stats.count_decline(code);
        let Some(mti) = req.mti().response() else { return };
        let Some(l) = self.links.get_mut(&link) else { return };
        let dialect = l.dialect;
        let keep = FieldSet::VALUES.without(FieldSet::SECRETS);
        let written = l.frame(NativeHeader::FLAG_SWITCH_ORIGIN, correlation, |out| {
            req.derive(mti, keep, &[(de::RESPONSE_CODE, &code.0)], dialect, out)
        });
        if let Err(e) = written {
            warn!(%link, error = %e, "cannot write a decline");
        }
        self.after_write(link);
    }

    /// After writing to `link`: mark it for flushing, or close it if its peer stopped
    /// reading.
    fn after_write(&mut self, link: LinkId) {
        let stalled = self.links.get(&link).is_some_and(|l| l.out.len() > LINK_OUT_BYTES_MAX);
        if stalled {
            if let Some(l) = self.links.get_mut(&link) {
                l.out.clear();
            }
            self.close(link, CloseReason::Stalled);
            return;
        }
        self.mark_dirty(link);
    }

    fn handle_request(&mut self, link: LinkId, correlation: u64, msg: Msg<'_>, now: Instant) {
        self.stats.requests_in += 1;
        let Some(l) = self.links.get(&link) else { return };
        let (participant, origin_dialect) = (l.participant, l.dialect);
        let origin_at_limit = l.inflight_in >= l.inflight_max;
        if !l.routable() {
            debug!(%link, "request before sign-on");
            return self.decline(link, correlation, &msg, ResponseCode::DESTINATION_UNAVAILABLE);
        }
        let Some(stan) = msg.stan() else {
            return self.decline(link, correlation, &msg, ResponseCode::FORMAT_ERROR);
        };
        // A participant may only speak as itself: DE 32 must be one of its ids, DE 33 too.
        let p = &self.config.participants[participant];
        let acquirer_ok = msg.acquirer_id().is_some_and(|id| p.acquirer_ids.contains(&id));
        let forwarder_ok = msg.forwarder_id().is_none_or(|id| p.forwarder_ids.contains(&id));
        if !acquirer_ok || !forwarder_ok {
            warn!(
                %link,
                participant = %p.id,
                de32 = ?msg.acquirer_id(),
                de33 = ?msg.forwarder_id(),
                pan = ?msg.pan(),
                "security violation: institution id not owned by the sender"
            );
            return self.decline(link, correlation, &msg, ResponseCode::SECURITY_VIOLATION);
        }
        if self.draining {
            return self.decline(link, correlation, &msg, ResponseCode::DESTINATION_UNAVAILABLE);
        }
        let mut terminal = [b' '; 8];
        if let Some(t) = msg.terminal_id() {
            terminal[..t.len().min(8)].copy_from_slice(&t[..t.len().min(8)]);
        }
        let dup = DupKey {
            participant,
            class: msg.mti().class(),
            stan: stan.value(),
            time: msg.transmission_time().map_or(0, |t| t.value()),
            terminal,
        };
        if self.duplicates.contains(&dup) {
            return self.decline(link, correlation, &msg, ResponseCode::DUPLICATE);
        }
        if origin_at_limit || self.pending.len() >= PENDING_MAX {
            self.stats.inflight_limit_hits += 1;
            warn!(%link, "originator at its in-flight limit");
            return self.decline(link, correlation, &msg, ResponseCode::DESTINATION_UNAVAILABLE);
        }
        let table = self.routes.load();
        let pan = msg.pan();
        let receiver: Option<InstitutionId> = msg.receiver_id();
        let Some(route) = table.lookup(msg.mti(), receiver.as_ref(), pan.as_ref().map(|p| p.digits())) else {
            debug!(%link, pan = ?pan, "no route");
            return self.decline(link, correlation, &msg, ResponseCode::NO_ROUTE);
        };
        let (destination, timeout) = (route.destination, route.timeout);
        drop(table);
        let out_link = match self.pick_link(destination) {
            Ok(l) => l,
            Err(Unavailable::NoLink) => {
                return self.decline(link, correlation, &msg, ResponseCode::DESTINATION_UNAVAILABLE);
            }
            Err(Unavailable::AtLimit) => {
                self.stats.inflight_limit_hits += 1;
                warn!(destination = %self.config.participants[destination].id, "destination at its in-flight limit");
                return self.decline(link, correlation, &msg, ResponseCode::DESTINATION_UNAVAILABLE);
            }
        };
        let Some(out) = self.links.get_mut(&out_link) else { return };
        let (mut key, mut switch_stan) = out.next_key();
        // A STAN still in flight on this link (after a wrap) is skipped; the in-flight limit
        // is far below the STAN space, so this ends within inflight_max + 1 steps.
        while self.pending.contains_key(&(out_link, key)) {
            (key, switch_stan) = out.next_key();
        }
        let (dest_dialect, dest_classic) = (out.dialect, matches!(out.framing, Framing::Length(_)));
        // Classic links are correlated by the switch's STAN in DE 11; native ones by the
        // header, so the originator's STAN goes through.
        let sent_stan = if dest_classic { switch_stan.to_ascii() } else { stan.to_ascii() };
        let set: &[(FieldId, &[u8])] = if dest_classic { &[(de::STAN, &sent_stan)] } else { &[] };
        let written =
            out.frame(0, key, |buf| msg.derive(msg.mti(), FieldSet::VALUES, set, dest_dialect, buf));
        if let Err(e) = written {
            warn!(%link, error = %e, "cannot forward");
            return self.decline(link, correlation, &msg, ResponseCode::SYSTEM_ERROR);
        }
        out.inflight_out += 1;
        if let Some(o) = self.links.get_mut(&link) {
            o.inflight_in += 1;
        }
        self.duplicates.insert(dup);
        let deadline = now + timeout;
        let request_mti = msg.mti();
        self.pending.insert(
            (out_link, key),
            Pending {
                kind: Kind::Request {
                    origin: link,
                    origin_correlation: correlation,
                    origin_dialect,
                    request: msg.into_inner(),
                    request_mti,
                    origin_stan: stan.to_ascii(),
                    sent_stan,
                    dup,
                    destination,
                },
                deadline,
            },
        );
        self.requests_pending += 1;
        self.deadline(now, timeout, out_link, key);
        self.stats.forwarded += 1;
        self.after_write(out_link);
    }

    /// The least loaded routable link of `participant` under its in-flight limit; ties go
    /// round-robin.
    fn pick_link(&mut self, participant: usize) -> Result<LinkId, Unavailable> {
        let candidates = &self.by_participant[participant];
        let n = candidates.len();
        let start = self.round_robin[participant];
        let mut best: Option<(u32, LinkId)> = None;
        let mut any = false;
        for i in 0..n {
            let id = candidates[(start + i) % n];
            let Some(l) = self.links.get(&id) else { continue };
            if !l.routable() {
                continue;
            }
            any = true;
            if l.inflight_out >= l.inflight_max || l.out.len() >= LINK_OUT_BYTES_MAX / 2 {
                continue;
            }
            if best.is_none_or(|(b, _)| l.inflight_out < b) {
                best = Some((l.inflight_out, id));
            }
        }
        self.round_robin[participant] = start.wrapping_add(1);
        match best {
            Some((_, id)) => Ok(id),
            None if any => Err(Unavailable::AtLimit),
            None => Err(Unavailable::NoLink),
        }
    }

    fn response_key(&self, link: LinkId, correlation: u64, msg: &Msg<'_>) -> Option<u64> {
        let l = self.links.get(&link)?;
        match l.framing {
            Framing::Native => Some(correlation),
            Framing::Length(_) => msg.stan().map(|s| u64::from(s.value())),
        }
    }

    fn handle_response(&mut self, link: LinkId, correlation: u64, msg: &Msg<'_>, now: Instant) {
        let Some(key) = self.response_key(link, correlation, msg) else {
            self.stats.unmatched_responses += 1;
            return;
        };
        let std::collections::hash_map::Entry::Occupied(entry) = self.pending.entry((link, key)) else {
            return self.unmatched(link, key, msg, now);
        };
        let answers = match &entry.get().kind {
            Kind::Request { request_mti, .. } => request_mti.response() == Some(msg.mti()),
            Kind::Reversal(_) => msg.mti() == Mti::REVERSAL_ADVICE_RESPONSE,
            Kind::Network(_) => false,
        };
        if !answers {
            warn!(%link, mti = %msg.mti(), "response does not answer the request it correlates with");
            self.stats.unmatched_responses += 1;
            return;
        }
        let p = entry.remove();
        if let Some(l) = self.links.get_mut(&link) {
            l.inflight_out = l.inflight_out.saturating_sub(1);
        }
        match p.kind {
            Kind::Request {
                origin,
                origin_correlation,
                origin_dialect,
                request,
                origin_stan,
                sent_stan,
                dup,
                destination,
                ..
            } => {
                self.requests_pending -= 1;
                self.duplicates.remove(&dup);
                let to = Origin {
                    link: origin,
                    correlation: origin_correlation,
                    dialect: origin_dialect,
                    stan: origin_stan,
                };
                self.relay(to, &request, sent_stan, msg, destination, now);
            }
            Kind::Reversal(id) => {
                if let Some(r) = self.reversals.get_mut(&id) {
                    r.outstanding = None;
                }
                if self.finish_reversal(id) {
                    self.stats.reversals_acked += 1;
                    debug!(reversal = id, "reversal acknowledged");
                }
            }
            Kind::Network(_) => {}
        }
    }

    fn relay(
        &mut self,
        to: Origin,
        request: &Bytes,
        sent_stan: [u8; 6],
        resp: &Msg<'_>,
        destination: usize,
        now: Instant,
    ) {
        let Origin {
            link: origin,
            correlation: origin_correlation,
            dialect: origin_dialect,
            stan: original_stan,
        } = to;
        let approved = resp.response_code().is_some_and(ResponseCode::is_approval);
        let Some(o) = self.links.get_mut(&origin).filter(|o| !o.closing) else {
            // The originator is gone: the answer cannot be delivered. An approval is reversed,
            // since the originator never learned of it.
            if approved {
                if let Ok(req) = Message::parse(origin_dialect, request.clone()) {
                    self.stats.approvals_reversed += 1;
                    self.start_reversal(destination, &req, &sent_stan, b"22", now);
                }
            }
            return;
        };
        o.inflight_in = o.inflight_in.saturating_sub(1);
        // The originator gets its own STAN back (a classic destination saw the switch's).
        let set: &[(FieldId, &[u8])] = if resp.has(de::STAN) { &[(de::STAN, &original_stan)] } else { &[] };
        let written = o.frame(0, origin_correlation, |buf| {
            resp.derive(resp.mti(), FieldSet::VALUES, set, origin_dialect, buf)
        });
        if let Err(e) = written {
            warn!(link = %origin, error = %e, "cannot relay a response");
            return;
        }
        self.stats.relayed += 1;
        self.after_write(origin);
    }

    /// A response matching nothing in flight: a late one (its request timed out) is never
    /// relayed, and a late approval is reversed unless its reversal is already under way.
    fn unmatched(&mut self, link: LinkId, key: u64, msg: &Msg<'_>, now: Instant) {
        if msg.mti() == Mti::REVERSAL_ADVICE_RESPONSE {
            // An acknowledgement of an earlier transmission of a reversal still repeating.
            if let Some(id) = self.reversal_attempts.remove(&(link, key)) {
                if self.finish_reversal(id) {
                    self.stats.reversals_acked += 1;
                    debug!(reversal = id, "reversal acknowledged (earlier transmission)");
                }
                return;
            }
        }
        let Some(late) = self.late.get(&(link, key)) else {
            self.stats.unmatched_responses += 1;
            debug!(%link, mti = %msg.mti(), "unmatched response");
            return;
        };
        self.stats.late_responses += 1;
        let approved = msg.response_code().is_some_and(ResponseCode::is_approval);
        let under_way = late.reversal.is_some_and(|id| self.reversals.contains_key(&id));
        info!(%link, approved, under_way, "late response dropped");
        if approved && !under_way {
            let (destination, body) = (late.destination, late.body.clone());
            self.stats.approvals_reversed += 1;
            let id = self.queue_reversal(destination, body, now);
            if let Some(l) = self.late.get_mut(&(link, key)) {
                l.reversal = id;
            }
        }
    }

    // ----- network management -----

    fn answer_network(&mut self, link: LinkId, correlation: u64, msg: &Msg<'_>) {
        let code = msg.network_code();
        let ok = match code {
            Some(NetworkCode::SIGN_ON) => {
                if let Some(l) = self.links.get_mut(&link) {
                    l.signed_on = true;
                }
                info!(%link, "signed on");
                true
            }
            Some(NetworkCode::SIGN_OFF) => {
                if let Some(l) = self.links.get_mut(&link) {
                    l.signed_on = false;
                }
                info!(%link, "signed off");
                true
            }
            Some(NetworkCode::ECHO) => true,
            _ => false,
        };
        self.stats.network_answered += 1;
        let rc = if ok { ResponseCode::APPROVED } else { ResponseCode::FORMAT_ERROR };
        let Some(mti) = msg.mti().response() else { return };
        let Some(l) = self.links.get_mut(&link) else { return };
        let dialect = l.dialect;
        let written = l.frame(NativeHeader::FLAG_SWITCH_ORIGIN, correlation, |out| {
            msg.derive(mti, FieldSet::VALUES, &[(de::RESPONSE_CODE, &rc.0)], dialect, out)
        });
        if let Err(e) = written {
            warn!(%link, error = %e, "cannot answer network management");
        }
        self.after_write(link);
    }

    fn network_response(&mut self, link: LinkId, correlation: u64, msg: &Msg<'_>) {
        let Some(key) = self.response_key(link, correlation, msg) else { return };
        let code = match self.pending.get(&(link, key)) {
            Some(Pending { kind: Kind::Network(c), .. }) => *c,
            _ => {
                self.stats.unmatched_responses += 1;
                return;
            }
        };
        self.pending.remove(&(link, key));
        let ok = msg.response_code().is_some_and(ResponseCode::is_approval);
        if let Some(l) = self.links.get_mut(&link) {
            if code == NetworkCode::SIGN_ON {
                l.signed_on = ok;
                info!(%link, accepted = ok, "sign-on answered");
            }
        }
    }

    fn send_network(&mut self, link: LinkId, code: NetworkCode, now: Instant) {
        let de7 = self.clock.transmission_time(now);
        let Some(l) = self.links.get_mut(&link) else { return };
        let (key, stan) = l.next_key();
        let dialect = l.dialect;
        let window = l.echo_interval * (l.echo_missed_max + 1);
        let deadline = now + window;
        let written = l.frame(NativeHeader::FLAG_SWITCH_ORIGIN, key, |out| {
            compose::network_request(code, stan, de7, dialect, out)
        });
        if let Err(e) = written {
            warn!(%link, error = %e, "cannot send network management");
            return;
        }
        if self.pending.len() < PENDING_MAX {
            self.pending.insert((link, key), Pending { kind: Kind::Network(code), deadline });
            self.deadline(now, window, link, key);
        }
        self.after_write(link);
    }

    // ----- reversals -----

    /// Removes reversal `id` and everything that points at it.
    fn finish_reversal(&mut self, id: u64) -> bool {
        let Some(r) = self.reversals.remove(&id) else { return false };
        for key in r.earlier {
            self.reversal_attempts.remove(&key);
        }
        if let Some(key) = r.outstanding {
            if self.pending.remove(&key).is_some() {
                if let Some(l) = self.links.get_mut(&key.0) {
                    l.inflight_out = l.inflight_out.saturating_sub(1);
                }
            }
        }
        true
    }

    fn start_reversal<B: AsRef<[u8]>, I: Borrow<MessageIndex>>(
        &mut self,
        destination: usize,
        req: &Message<B, I>,
        sent_stan: &[u8; 6],
        reason: &[u8; 2],
        now: Instant,
    ) -> Option<u64> {
        match compose::reversal(req, sent_stan, reason) {
            Ok(body) => self.queue_reversal(destination, body, now),
            Err(e) => {
                warn!(error = %e, "cannot build a reversal");
                None
            }
        }
    }

    fn queue_reversal(&mut self, destination: usize, body: Bytes, now: Instant) -> Option<u64> {
        if self.reversals.len() >= REVERSALS_MAX {
            if let Some(old) = self.reversal_order.pop_front() {
                if self.finish_reversal(old) {
                    self.stats.reversals_abandoned += 1;
                    warn!(reversal = old, "reversal evicted at the bound");
                }
            }
        }
        let id = self.next_reversal;
        self.next_reversal += 1;
        self.reversals
            .insert(id, Reversal { destination, body, attempts: 0, outstanding: None, earlier: Vec::new() });
        self.reversal_order.push_back(id);
        if self.reversal_order.len() > 2 * REVERSALS_MAX {
            // Completed reversals leave their ids behind; sweep them so the queue stays bounded.
            let live = &self.reversals;
            self.reversal_order.retain(|id| live.contains_key(id));
        }
        self.send_reversal(id, now);
        Some(id)
    }

    /// Sends reversal `id` (0420 the first time, 0421 after) on a routable link of its
    /// destination, or schedules another try when none is up.
    fn send_reversal(&mut self, id: u64, now: Instant) {
        let retry = self.config.settings.reversal_retry;
        let Some(r) = self.reversals.get(&id) else { return };
        let (destination, body, attempts) = (r.destination, r.body.clone(), r.attempts);
        if attempts > self.config.settings.reversal_repeats_max {
            self.finish_reversal(id);
            self.stats.reversals_abandoned += 1;
            warn!(reversal = id, attempts, "reversal abandoned after its last repeat");
            return;
        }
        let link = self.by_participant[destination]
            .iter()
            .copied()
            .find(|l| self.links.get(l).is_some_and(Link::routable));
        let Some(link) = link else {
            self.timer(now + retry, Timer::Reversal(id));
            return;
        };
        let Ok(rev) = Message::parse(Dialect::Native, body) else { return };
        let Some(l) = self.links.get_mut(&link) else { return };
        let (key, stan) = l.next_key();
        let stan = stan.to_ascii();
        let dialect = l.dialect;
        let mti = if attempts == 0 { Mti::REVERSAL_ADVICE } else { Mti::REVERSAL_ADVICE_REPEAT };
        let written = l.frame(NativeHeader::FLAG_SWITCH_ORIGIN, key, |out| {
            rev.derive(mti, FieldSet::VALUES, &[(de::STAN, &stan)], dialect, out)
        });
        if let Err(e) = written {
            warn!(reversal = id, error = %e, "cannot send a reversal");
            return;
        }
        l.inflight_out += 1;
        if let Some(r) = self.reversals.get_mut(&id) {
            r.attempts += 1;
            r.outstanding = Some((link, key));
        }
        self.pending.insert((link, key), Pending { kind: Kind::Reversal(id), deadline: now + retry });
        self.deadline(now, retry, link, key);
        self.stats.reversals_sent += 1;
        self.after_write(link);
    }

    // ----- time -----

    /// Handles every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((link, key)) = self.deadlines.pop_due(now) {
            self.pending_timeout(link, key, now);
        }
        while let Some(&Reverse((at, t))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            match t {
                Timer::Reversal(id) => {
                    if self.reversals.get(&id).is_some_and(|r| r.outstanding.is_none()) {
                        self.send_reversal(id, now);
                    }
                }
                Timer::Echo(link) => self.echo_tick(link, now),
                Timer::Late(link, key) => {
                    self.late.remove(&(link, key));
                }
            }
        }
    }

    fn pending_timeout(&mut self, link: LinkId, key: u64, now: Instant) {
        let due = self.pending.get(&(link, key)).is_some_and(|p| p.deadline <= now);
        if !due {
            return;
        }
        let Some(p) = self.pending.remove(&(link, key)) else { return };
        if let Some(l) = self.links.get_mut(&link) {
            l.inflight_out = l.inflight_out.saturating_sub(1);
        }
        match p.kind {
            Kind::Request {
                origin,
                origin_correlation,
                origin_dialect,
                request,
                request_mti,
                sent_stan,
                dup,
                destination,
                ..
            } => {
                self.requests_pending -= 1;
                self.stats.timeouts += 1;
                self.duplicates.remove(&dup);
                let Ok(req) = Message::parse(origin_dialect, request) else { return };
                if let Some(o) = self.links.get_mut(&origin) {
                    o.inflight_in = o.inflight_in.saturating_sub(1);
                }
                if self.links.get(&origin).is_some_and(|o| !o.closing) {
                    self.decline(origin, origin_correlation, &req, ResponseCode::TIMEOUT);
                }
                // Authorizations and financial requests may have been approved: reverse them.
                if matches!(request_mti.class(), 1 | 2) {
                    let body = compose::reversal(&req, &sent_stan, b"68").ok();
                    let id = body.clone().and_then(|b| self.queue_reversal(destination, b, now));
                    if let Some(body) = body {
                        if self.late.len() < LATE_MAX {
                            self.late.insert((link, key), Late { reversal: id, destination, body });
                            self.timer(now + self.config.settings.late_window, Timer::Late(link, key));
                        }
                    }
                }
            }
            Kind::Reversal(id) => {
                if let Some(r) = self.reversals.get_mut(&id) {
                    r.outstanding = None;
                    r.earlier.push((link, key));
                    self.reversal_attempts.insert((link, key), id);
                }
                self.send_reversal(id, now);
            }
            Kind::Network(_) => {}
        }
    }

    fn echo_tick(&mut self, link: LinkId, now: Instant) {
        let Some(l) = self.links.get_mut(&link) else { return };
        if l.closing {
            return;
        }
        let interval = l.echo_interval;
        let idle = now.saturating_duration_since(l.last_rx);
        if idle < interval {
            let at = l.last_rx + interval;
            self.timer(at, Timer::Echo(link));
            return;
        }
        if l.echo_missed >= l.echo_missed_max {
            self.stats.echo_failures += 1;
            self.close(link, CloseReason::EchoMissed);
            return;
        }
        l.echo_missed += 1;
        let code = if l.dial && l.sign_on_required && !l.signed_on {
            NetworkCode::SIGN_ON
        } else {
            NetworkCode::ECHO
        };
        self.send_network(link, code, now);
        self.timer(now + interval, Timer::Echo(link));
    }

    // ----- drain -----

    /// Starts a graceful drain: new requests are declined (91), dialed links are signed off,
    /// requests in flight still get their answers.
    pub fn begin_drain(&mut self, now: Instant) {
        if self.draining {
            return;
        }
        self.draining = true;
        info!(pending = self.requests_pending, "draining");
        let dialed: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(_, l)| l.dial && l.signed_on && !l.closing)
            .map(|(&id, _)| id)
            .collect();
        for id in dialed {
            self.send_network(id, NetworkCode::SIGN_OFF, now);
        }
    }

    /// Ends a drain that ran out of time: every request still in flight is answered now as
    /// if its timeout had come (68 to the originator, a reversal toward the destination), so
    /// no accepted request goes unanswered.
    pub fn expire_requests(&mut self, now: Instant) {
        let keys: Vec<(LinkId, u64)> = self
            .pending
            .iter()
            .filter(|(_, p)| matches!(p.kind, Kind::Request { .. }))
            .map(|(&k, _)| k)
            .collect();
        for (link, key) in keys {
            if let Some(p) = self.pending.get_mut(&(link, key)) {
                p.deadline = now;
            }
            self.pending_timeout(link, key, now);
        }
    }

    /// Whether a drain has started and no request is in flight.
    #[must_use]
    pub fn is_drained(&self) -> bool {
        self.draining && self.requests_pending == 0
    }
}

#[doc(hidden)]
impl Engine {
    /// Test hook: sets the last STAN used on `link`, to reach the wrap at 999 999 without
    /// sending a million requests.
    pub fn set_link_stan(&mut self, link: LinkId, stan: Stan) {
        if let Some(l) = self.links.get_mut(&link) {
            l.stan = stan;
        }
    }
}
