//! The state machine: the `Engine` type, its inputs and outputs.
//!
//! Each request that arrives is admitted or declined (`admission`), routed, given a
//! correlation on its outbound link and appended to that link's write batch; its pending
//! entry is keyed by `(outbound link, correlation)` so the response is matched in O(1)
//! (`inflight`). The correlation is the native header's id on native links and a STAN the
//! switch assigns per link on classic ones. Every request ends in exactly one answer to its
//! originator: the destination's response, or a decline the switch makes (30, 63, 68, 91, 92,
//! 94, 96); every approval its originator never received is reversed (`reversals`).

use std::{
    borrow::Borrow,
    collections::VecDeque,
    sync::Arc,
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;
use bytes::{Bytes, BytesMut};
use tracing::{debug, info, warn};

use corridor_wire::{
    de, DecodeError, Dialect, FieldSet, Message, MessageIndex, NativeHeader, ResponseCode, WallClock,
};

use crate::{
    config::Config,
    duplicates::DupKey,
    limits::{LINK_OUT_BYTES_MAX, LOG_INTERVAL, PARTIAL_STALLED},
    link::{CloseReason, Link, LinkId, LinkStatus, ReadState},
    routes::RouteTable,
    stats::{LinkCounts, Stats},
    throttle::{Throttle, Warn},
    timers::{Timer, Timers},
};

/// A message read from a link, parsed into the engine's index.
pub(crate) type Msg<'i> = Message<Bytes, &'i MessageIndex>;

/// What a request's admission reads first — its DE 11, DE 32 and DE 33, and the duplicate
/// key made of them — read with its parse when it was read ahead ([`Engine::look_ahead`]),
/// and taken by its admission (`Engine::check_sender`) for the message at the same bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sender {
    /// The body's address and length.
    pub(crate) at: (usize, usize),
    pub(crate) stan: corridor_wire::Stan,
    pub(crate) acquirer: Option<corridor_wire::InstitutionId>,
    pub(crate) forwarder: Option<corridor_wire::InstitutionId>,
    /// From the sender's link's participant.
    pub(crate) key: DupKey,
}

impl Sender {
    /// Where `body` lies: its address and length.
    pub(crate) fn place(body: &[u8]) -> (usize, usize) {
        (body.as_ptr().addr(), body.len())
    }
}

/// Work for the I/O layer besides writing bytes. Exhaustive on purpose: a driver matches
/// every event, so a new one cannot be ignored silently.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Close this link's connection.
    Close {
        /// The link.
        link: LinkId,
        /// Why.
        reason: CloseReason,
    },
    /// The reader of this link, told [`ReadState::Paused`], may read again: call
    /// `handle_read` with what it has buffered, then read on.
    Resume {
        /// The link.
        link: LinkId,
    },
}

/// The switch's state machine. See the module docs.
///
/// Inputs come in through `handle_*`, `link_up`/`link_down` and the operator's and reload's
/// calls, each with the current time; after every one of them the driver polls, in this
/// order (`driver::flush`):
///
/// 1. [`Engine::poll_dirty`], then [`Engine::take_output`] for each link it names (the
///    writer may take it later; bytes it wrote come back through `handle_written`);
/// 2. [`Engine::poll_event`]: links to close, readers to resume;
/// 3. [`Engine::poll_timeout`]: when to call `handle_timeout` next;
/// 4. [`Engine::poll_journal`] (through `driver::JournalCycle`), whose batches' durability
///    comes back through `handle_journal_synced`.
///
/// Its state is kept by concern, each a type with private fields and its own invariants:
/// the open links (`registry::Links`), what is in flight (`pending::InFlight`),
/// store-and-forward (`saf::Saf`), the journal gate (`gate::Gate`), the duplicate window's
/// outcomes, the timers, the counters; `Engine` orchestrates them.
pub struct Engine {
    pub(crate) config: Config,
    pub(crate) routes: Arc<ArcSwap<RouteTable>>,
    pub(crate) clock: WallClock,
    /// The open links, by id and by participant.
    pub(crate) links: crate::registry::Links,
    /// Everything awaiting an answer, the requests among it and their duplicate keys.
    pub(crate) in_flight: crate::pending::InFlight,
    /// Completed requests' outcomes, which answer their repeats.
    pub(crate) outcomes: crate::duplicates::Outcomes,
    /// Store-and-forward: reversals and advices awaiting acknowledgement, the exception
    /// queue, requests remembered for their late response.
    pub(crate) saf: crate::saf::Saf,
    pub(crate) timers: Timers,
    dirty: VecDeque<LinkId>,
    events: VecDeque<Event>,
    /// Links whose originator got an in-flight slot back while requests of theirs are held.
    pub(crate) resumable: VecDeque<LinkId>,
    pub(crate) draining: bool,
    pub(crate) stats: Stats,
    pub(crate) throttle: Throttle,
    /// The latest time any input came with, for the throttled log of paths that are not
    /// handed one.
    pub(crate) last_now: Instant,
    /// The index every frame is parsed into (see `handle_frame`).
    scratch: Option<Box<MessageIndex>>,
    /// The index the frame after the one being handled is parsed into, read ahead
    /// ([`Engine::look_ahead`]); it and `scratch` trade places as that frame comes up.
    spare: Option<Box<MessageIndex>>,
    /// Where the body `spare` holds the index of lies — its address and length, in the
    /// read being handled (none outside [`Engine::handle_read`]).
    ahead: Option<(usize, usize)>,
    /// What was read of that frame, when it is a request, for its admission.
    ahead_sender: Option<Sender>,
    /// The same, of the request being handled (it was read ahead).
    pub(crate) sender: Option<Sender>,
    /// The journal gate: the journal (when the switch keeps one), the links whose frames
    /// wait for it, whether its disk is full.
    pub(crate) journal: crate::gate::Gate,
    /// Histograms and answers by code, when [`Settings::metrics`](crate::Settings) is on.
    pub(crate) metrics: crate::metrics::Metrics,
    /// Whether requests go through the currency and limit step ([`Config::interop_active`]).
    pub(crate) interop_active: bool,
}

impl Engine {
    /// An engine for `config`. `clock` ties instants to wall-clock time for the DE 7 of the
    /// messages the switch makes.
    #[must_use]
    pub fn new(config: Config, clock: WallClock) -> Self {
        let routes = Arc::new(ArcSwap::from_pointee(config.routes.clone()));
        let clock_at = clock.at;
        let n = config.participants.len();
        let window_entries = config.settings.duplicate_window_entries;
        let n_links = config.links.len();
        let interop_active = config.interop_active();
        Self {
            config,
            routes,
            clock,
            links: crate::registry::Links::new(n, n_links),
            in_flight: crate::pending::InFlight::default(),
            outcomes: crate::duplicates::Outcomes::with_capacity(window_entries),
            saf: crate::saf::Saf::default(),
            timers: Timers::default(),
            dirty: VecDeque::new(),
            events: VecDeque::new(),
            resumable: VecDeque::new(),
            draining: false,
            stats: Stats::default(),
            throttle: Throttle::new(n_links, LOG_INTERVAL),
            last_now: clock_at,
            scratch: Some(Box::new(MessageIndex::new(Dialect::Native))),
            spare: Some(Box::new(MessageIndex::new(Dialect::Native))),
            ahead: None,
            ahead_sender: None,
            sender: None,
            journal: crate::gate::Gate::default(),
            metrics: crate::metrics::Metrics::new(n, n_links),
            interop_active,
        }
    }

    /// An engine that journals what it decides and lets no answer out before its record is
    /// durable (see the `journal` module).
    #[must_use]
    pub fn with_journal(config: Config, clock: WallClock, journal: crate::journal::Journal) -> Self {
        let mut e = Self::new(config, clock);
        e.journal = crate::gate::Gate::new(Some(journal));
        e
    }

    /// Makes this engine shard `index` of a switch: its link ids are its own (the shard in
    /// their top bits), so a link is named by its id across shards. Called before any link
    /// is up. (Store-and-forward ids are a journal's sequence numbers: each shard's own, and
    /// named with the shard.)
    pub fn set_shard(&mut self, index: usize) {
        self.links.set_shard(index.min(crate::shards::SHARDS_MAX - 1));
    }

    /// Whether `link` is a hop to another shard.
    pub(crate) fn is_hop(&self, link: LinkId) -> bool {
        self.links.get(&link).is_some_and(|l| self.config.is_hop(l.participant))
    }

    /// The shard this engine is (see [`Engine::set_shard`]).
    #[must_use]
    pub fn shard(&self) -> usize {
        self.links.shard()
    }

    /// The shard whose engine made link id `id` (see [`Engine::set_shard`]).
    #[must_use]
    pub fn shard_of_link(id: LinkId) -> usize {
        (id.0 >> 24) as usize
    }

    /// Shares one route table among the shards: each reads the same snapshot, and a store
    /// through any handle is seen by all.
    pub fn share_routes(&mut self, routes: Arc<ArcSwap<RouteTable>>) {
        self.routes = routes;
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

    /// Histograms and answers by code (empty when the configuration turns metrics off).
    #[must_use]
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// Per configured link (in configuration order): connections made and frames carried,
    /// open connections included.
    #[must_use]
    pub fn link_counts(&self) -> Vec<LinkCounts> {
        self.links.counts()
    }

    /// What the engine knows of `link`.
    #[must_use]
    pub fn link_status(&self, link: LinkId) -> Option<LinkStatus> {
        self.links.get(&link).map(Link::status)
    }

    /// Links currently open, in id order.
    #[must_use]
    pub fn open_links(&self) -> Vec<LinkId> {
        self.links.ids()
    }

    /// Requests in flight (forwarded, awaiting an answer).
    #[must_use]
    pub fn requests_pending(&self) -> usize {
        self.in_flight.requests()
    }

    /// Completed requests whose outcome answers a repeat.
    #[must_use]
    pub fn outcomes_remembered(&self) -> usize {
        self.outcomes.len()
    }

    /// Reversals and advices not yet acknowledged (store-and-forward).
    #[must_use]
    pub fn reversals_pending(&self) -> usize {
        self.saf.len()
    }

    /// When the oldest store-and-forward entry was stored.
    #[must_use]
    pub fn saf_oldest(&self) -> Option<Instant> {
        self.saf.entries().map(|r| r.queued).min()
    }

    /// Whether a drain has begun.
    #[must_use]
    pub fn draining(&self) -> bool {
        self.draining
    }

    /// Entries in the exception queue.
    #[must_use]
    pub fn exceptions_len(&self) -> usize {
        self.saf.exceptions_len()
    }

    /// Sets `timer` to come due `after` from `now`.
    pub(crate) fn timer(&mut self, now: Instant, after: Duration, timer: Timer) {
        let due = now.checked_add(after).unwrap_or(now);
        self.timer_at(due, after, timer);
    }

    /// Sets `timer` to come due at `due`, no later than `after` from now.
    pub(crate) fn timer_at(&mut self, due: Instant, after: Duration, timer: Timer) {
        // Live timers besides pending entries: an echo and a sign-on or frame deadline per
        // link, a retry per reversal, an end per late entry.
        let live = self.in_flight.len() + 3 * self.links.len() + self.saf.len() + self.saf.late_len();
        let in_flight = &self.in_flight;
        self.timers.push_at(due, after, timer, live, |t| match *t {
            Timer::Pending(l, k) => in_flight.contains(l, k),
            _ => true,
        });
    }

    /// A warning a peer can trigger, for configured link `spec`: whether to print it now,
    /// and how many like it were left out before it.
    pub(crate) fn may_warn(&mut self, spec: usize, kind: Warn, now: Instant) -> Option<u64> {
        let allowed = self.throttle.allow(spec, kind, now);
        if allowed.is_none() {
            self.metrics.log_suppressed += 1;
        }
        allowed
    }

    fn mark_dirty(&mut self, link: LinkId) {
        if let Some(l) = self.links.get_mut(&link) {
            if !l.dirty && l.out.has_released() {
                l.dirty = true;
                self.dirty.push_back(link);
            }
        }
    }

    // ----- links -----

    /// A connection for configured link `spec` is up. Returns its id, or `None` at
    /// [`LINKS_MAX`](crate::limits::LINKS_MAX) (the caller then closes the connection).
    pub fn link_up(&mut self, spec: usize, now: Instant) -> Option<LinkId> {
        if spec >= self.config.links.len() {
            return None;
        }
        let s = &self.config.links[spec];
        let (dial, interval, sign_on_wait) = (s.dial, s.echo_interval, s.sign_on_required && !s.dial);
        let sign_on_timeout = s.sign_on_timeout;
        let mut link = Link::new(spec, s, now);
        link.durable = self.durable_now();
        let id = self.links.add(spec, link)?;
        debug!(%id, link = %self.config.links[spec].name, "link up");
        self.record_link(spec, true, now);
        if dial {
            self.send_network(id, corridor_wire::NetworkCode::SIGN_ON, now);
        }
        if sign_on_wait {
            self.timer(now, sign_on_timeout, Timer::SignOn(id));
        }
        self.timer(now, interval, Timer::Echo(id));
        // A hop takes no sign-on: what waits for the participants another shard owns — the
        // entries a restart resumed before the hop was up, among them the reversals of
        // requests that crossed it — goes now, not at its next retry.
        let participant = self.config.links[spec].participant;
        if self.config.is_hop(participant) {
            let behind: Vec<usize> = (0..self.config.participants.len())
                .filter(|&p| self.config.participants[p].via == Some(participant))
                .collect();
            for p in behind {
                self.kick_reversals(p, now);
            }
        }
        Some(id)
    }

    /// The connection of `link` is gone (closed by either side). Requests forwarded on it
    /// stay pending and are answered when they time out; approvals written for it that did
    /// not reach its socket are reversed, and requests it had waiting are dropped unanswered
    /// (their sender is gone, and they were never forwarded).
    pub fn link_down(&mut self, link: LinkId, now: Instant) {
        let Some(mut l) = self.links.remove(link) else { return };
        let undelivered = l.out.abandon();
        if !undelivered.is_empty() {
            warn!(%link, approvals = undelivered.len(), "link gone with approvals not delivered: reversing them");
        }
        for u in undelivered {
            self.reverse_undelivered(u, now);
        }
        debug!(%link, link_name = %self.config.links[l.spec].name, "link down");
        self.record_link(l.spec, false, now);
        self.run_held(now);
    }

    pub(crate) fn close(&mut self, link: LinkId, reason: CloseReason, now: Instant) {
        let Some(l) = self.links.get_mut(&link) else { return };
        if !l.start_closing() {
            return;
        }
        let spec = l.spec;
        if let Some(left_out) = self.may_warn(spec, Warn::Closing, now) {
            warn!(%link, link_name = %self.config.links[spec].name, ?reason, left_out, "closing link");
        }
        self.events.push_back(Event::Close { link, reason });
    }

    /// A new connection came for listening link `spec`, which is at its connection limit:
    /// closes the oldest of its connections that has not signed on (where sign-on is
    /// required) or holds a partial frame stalled for [`PARTIAL_STALLED`], and returns it;
    /// `None` when every connection is healthy (the new one is then refused). A peer that
    /// reconnects after a failover so gets in at once, not when the squatters' deadlines
    /// come.
    pub fn displace(&mut self, spec: usize, now: Instant) -> Option<LinkId> {
        let stalled = |l: &Link| {
            (l.sign_on_required && !l.signed_on())
                || l.partial_since.is_some_and(|t| now.saturating_duration_since(t) >= PARTIAL_STALLED)
        };
        let oldest = self
            .links
            .iter()
            .filter(|(_, l)| l.spec == spec && !l.dial && !l.closing() && stalled(l))
            .map(|(&id, _)| id)
            .min()?;
        self.stats.displaced += 1;
        self.close(oldest, CloseReason::Displaced, now);
        Some(oldest)
    }

    /// The link the frame being handled came from. The rule, decided once: a frame is
    /// handled only for a link the engine has (`read_frames` and `next_held` look it up),
    /// and nothing during its handling removes one (only the driver's `link_down` does; a
    /// close only marks it closing), so every handler below `handle_frame` relies on it and
    /// a missing link there is a programmer error. A timer or a stored entry, by contrast,
    /// may name a link gone since: those ask `self.links.get` and handle its absence.
    pub(crate) fn origin(&self, link: LinkId) -> &Link {
        self.links.origin(link)
    }

    /// The next event for the I/O layer.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next link with bytes to write.
    pub fn poll_dirty(&mut self) -> Option<LinkId> {
        self.dirty.pop_front()
    }

    /// Takes `link`'s write batch (what is released of it). Report what reaches the socket
    /// with [`Engine::handle_written`]: until then its approvals count as undelivered.
    pub fn take_output(&mut self, link: LinkId) -> Option<BytesMut> {
        let l = self.links.get_mut(&link)?;
        l.dirty = false;
        l.out.take()
    }

    /// `bytes` more of what [`Engine::take_output`] handed out for `link` were written to
    /// its socket.
    pub fn handle_written(&mut self, link: LinkId, bytes: usize) {
        if let Some(l) = self.links.get_mut(&link) {
            l.out.written(bytes);
        }
    }

    /// Whether `link` has bytes waiting to be written.
    #[must_use]
    pub fn has_output(&self, link: LinkId) -> bool {
        self.links.get(&link).is_some_and(|l| !l.out.is_empty())
    }

    /// When [`Engine::handle_timeout`] should next be called. Not the journal's open batch's
    /// deadline: the journal's I/O side waits for that itself (`driver::JournalCycle::
    /// poll_timeout`), and only when it can take a batch — with several out, a batch due
    /// while none more may go would otherwise wake the engine's timer again and again.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    // ----- input -----

    /// Bytes arrived on `link`: every whole frame in `buf` is taken off and handled, unless
    /// the link's originator is at its in-flight limit with [`HELD_BYTES_MAX`] of requests
    /// waiting, in which case the rest stays in `buf` and the reader is told to pause.
    ///
    /// [`HELD_BYTES_MAX`]: crate::limits::HELD_BYTES_MAX
    pub fn handle_read(&mut self, link: LinkId, buf: &mut BytesMut, now: Instant) -> ReadState {
        self.last_now = now;
        let state = self.read_frames(link, buf, now);
        // What is read ahead holds for this read only: its bytes are gone after it.
        (self.ahead, self.ahead_sender) = (None, None);
        self.run_held(now);
        state
    }

    fn read_frames(&mut self, link: LinkId, buf: &mut BytesMut, now: Instant) -> ReadState {
        loop {
            let Some(l) = self.links.get_mut(&link) else {
                buf.clear();
                return ReadState::Closed;
            };
            if l.closing() {
                buf.clear();
                return ReadState::Closed;
            }
            if l.held_bytes >= crate::limits::HELD_BYTES_MAX {
                l.paused = true;
                return ReadState::Paused;
            }
            match l.decoder.decode_flagged(buf) {
                Ok(Some((correlation, flags, body))) => {
                    // A whole frame: whatever is buffered after it is a frame begun now.
                    l.partial_since = None;
                    l.last_rx = now;
                    l.frames_in += 1;
                    l.echo_missed = 0;
                    l.timeouts_in_row = 0;
                    // A zero-length frame carries no message: some hosts send one as a
                    // keep-alive. It proves the peer is there and is otherwise ignored.
                    if !body.is_empty() {
                        let parsed = self.take_ahead(&body);
                        self.look_ahead(link, buf);
                        self.handle_parsed(link, correlation, flags, body, parsed, now);
                    }
                }
                Ok(None) => {
                    if buf.is_empty() {
                        l.partial_since = None;
                    } else if l.partial_since.is_none() {
                        // A frame has begun: it must be whole within the frame deadline. One
                        // timer per link at most: when it fires it checks the partial frame
                        // then buffered, and re-arms for it.
                        l.partial_since = Some(now);
                        if !l.frame_timer {
                            l.frame_timer = true;
                            let after = self.config.links[l.spec].frame_timeout;
                            self.timer(now, after, Timer::Frame(link));
                        }
                    }
                    return ReadState::Open;
                }
                Err(e) => {
                    self.stats.framing_errors += 1;
                    buf.clear();
                    self.close(link, CloseReason::Framing(e), now);
                    return ReadState::Closed;
                }
            }
        }
    }

    /// Whether `body`, the frame about to be handled, is the one read ahead: its index, in
    /// `spare`, then trades places with `scratch`, where it is handled from.
    fn take_ahead(&mut self, body: &[u8]) -> bool {
        let parsed = self.ahead.take() == Some(Sender::place(body));
        let sender = self.ahead_sender.take();
        if parsed {
            std::mem::swap(&mut self.scratch, &mut self.spare);
            self.sender = sender;
        }
        parsed
    }

    /// Reads the frame after the one about to be handled, when it is whole in `buf` (not
    /// taken from it: a pause or a close after the one before leaves it there): parses it
    /// into `spare` and, for a request, asks for the duplicate window's index line its
    /// search will read. That line is a miss in an index of a million entries, a quarter
    /// of the switch's CPU with the journal off (`benches/README.md`, the ninth pass), and
    /// comes in while the frame before is handled; the parse is the one its handling then
    /// takes ([`Engine::take_ahead`]).
    fn look_ahead(&mut self, link: LinkId, buf: &[u8]) {
        debug_assert!(self.ahead.is_none(), "one frame is read ahead at a time");
        let Some(l) = self.links.get(&link) else { return };
        let Some((correlation, at)) = l.decoder.peek(buf).filter(|(_, r)| !r.is_empty()) else { return };
        let (dialect, participant, body) = (l.dialect, l.participant, &buf[at]);
        let mut index = self.spare.take().unwrap_or_else(|| Box::new(MessageIndex::new(dialect)));
        if index.parse_into(dialect, body).is_err() {
            // Its handling parses it again, and answers the error.
            self.spare = Some(index);
            return;
        }
        let msg = Message::from_parts(body, &*index);
        let mti = msg.mti();
        // A request's key, as its admission makes it if its sender checks out (it takes
        // what was read here: `Engine::check_sender`); an answer's request's, which it is
        // remembered under. A line asked for in vain (a key that does not check out, an
        // answer that matches nothing) costs only itself.
        let key = if mti.class() == 8 {
            None
        } else if mti.is_request() {
            self.ahead_sender = msg.stan().map(|stan| {
                let (acquirer, forwarder) = (msg.acquirer_id(), msg.forwarder_id());
                let key = DupKey::of(participant, stan, acquirer, forwarder, &msg);
                Sender { at: Sender::place(body), stan, acquirer, forwarder, key }
            });
            self.ahead_sender.map(|s| s.key)
        } else {
            self.response_key(link, correlation, &msg).and_then(|k| self.in_flight.request_key(link, k))
        };
        if let Some(key) = key {
            self.outcomes.prefetch(&key);
        }
        self.spare = Some(index);
        self.ahead = Some(Sender::place(body));
    }

    /// One whole frame from `link`: parsed and dispatched. `flags` are its native header's
    /// (0 on classic links).
    pub(crate) fn handle_frame(
        &mut self,
        link: LinkId,
        correlation: u64,
        flags: u8,
        body: Bytes,
        now: Instant,
    ) {
        self.handle_parsed(link, correlation, flags, body, false, now);
    }

    /// [`Engine::handle_frame`]; `parsed`: `scratch` holds `body`'s index already (it was
    /// read ahead).
    fn handle_parsed(
        &mut self,
        link: LinkId,
        correlation: u64,
        flags: u8,
        body: Bytes,
        parsed: bool,
        now: Instant,
    ) {
        let dialect = self.origin(link).dialect;
        // Every frame is parsed into the one index the engine keeps: nothing to zero or move
        // per message. It is taken out while the message is handled, so the handlers keep
        // `&mut self`.
        let mut index = self.scratch.take().unwrap_or_else(|| Box::new(MessageIndex::new(dialect)));
        let parse = if parsed { Ok(()) } else { index.parse_into(dialect, &body) };
        if let Err(e) = parse {
            self.scratch = Some(index);
            self.stats.format_errors += 1;
            self.format_error(link, correlation, dialect, &body, &e, now);
            return;
        }
        let msg = Message::from_parts(body, &*index);
        self.dispatch(link, correlation, flags, msg, now);
        self.sender = None;
        self.scratch = Some(index);
    }

    fn dispatch(&mut self, link: LinkId, correlation: u64, flags: u8, msg: Msg<'_>, now: Instant) {
        let mti = msg.mti();
        if mti.class() == 8 {
            if mti.is_request() {
                self.answer_network(link, correlation, &msg, now);
            } else {
                self.network_response(link, correlation, &msg, now);
            }
        } else if mti.is_request() {
            self.handle_request(link, correlation, msg, now);
        } else {
            self.handle_response(link, correlation, flags, &msg, now);
        }
    }

    /// A body that breaks the dictionary. A request is answered 30 with every field that
    /// can be read (a broken fixed-length field is left out and the walk goes on past it),
    /// so the sender can match the answer; when it could not match it anyway (a classic link
    /// without a readable DE 11), it is dropped with a throttled warning. The link stays up:
    /// framing is intact — except on a length-framed link when the body does not even start
    /// with an MTI (four digits): a length header does not resynchronize, so the stream has
    /// lost its framing (bytes that were no frame came in), and every frame after it would
    /// be garbage too. That connection is closed, like a native frame with a broken header.
    fn format_error(
        &mut self,
        link: LinkId,
        correlation: u64,
        dialect: Dialect,
        body: &[u8],
        e: &DecodeError,
        now: Instant,
    ) {
        let l = self.origin(link);
        let (spec, classic) = (l.spec, !matches!(l.framing, crate::config::Framing::Native));
        let readable = corridor_wire::message::readable(dialect, body);
        let request = readable.as_ref().is_some_and(|(m, _)| m.mti().is_request());
        let matchable = readable.as_ref().is_some_and(|(m, _)| !classic || m.has(de::STAN));
        if let Some(left_out) = self.may_warn(spec, Warn::Malformed, now) {
            warn!(%link, error = %e, answered = request && matchable, left_out, "malformed message");
        }
        let no_mti = body.len() < 4 || !body[..4].iter().all(u8::is_ascii_digit);
        if classic && dialect != Dialect::Native && no_mti {
            self.close(link, CloseReason::Framing(e.clone()), now);
            return;
        }
        let Some((partial, _)) = readable else { return };
        if !request {
            return;
        }
        if !matchable {
            self.stats.format_errors_dropped += 1;
            return;
        }
        self.decline(link, correlation, &partial, ResponseCode::FORMAT_ERROR);
    }

    /// Writes a switch-made answer to `req` with `code` on `link`.
    pub(crate) fn decline<B: AsRef<[u8]>, I: Borrow<MessageIndex>>(
        &mut self,
        link: LinkId,
        correlation: u64,
        req: &Message<B, I>,
        code: ResponseCode,
    ) {
        if self.config.settings.metrics && !self.is_hop(link) {
            self.metrics.answer(None, code.0, crate::metrics::Source::Switch);
        }
        self.decline_after(0, link, correlation, req, code);
    }

    /// [`Engine::decline`], the answer waiting for journal record `seq` (0: none).
    pub(crate) fn decline_after<B: AsRef<[u8]>, I: Borrow<MessageIndex>>(
        &mut self,
        seq: u64,
        link: LinkId,
        correlation: u64,
        req: &Message<B, I>,
        code: ResponseCode,
    ) {
        if self.switch_answer(seq, link, correlation, req, &[(de::RESPONSE_CODE, &code.0)]) {
            self.stats.count_decline(code);
        }
    }

    /// Writes an answer the switch makes to `req` on `link`: the request's fields but its
    /// secrets, the values in `set`, flagged switch-made, waiting for journal record `seq`.
    /// Whether it was written. `link` is there: a frame's originator while the frame is
    /// handled ([`Engine::origin`]), or one its caller found open (a timeout, a response
    /// that cannot be relayed).
    #[must_use = "a decline is counted only once written"]
    pub(crate) fn switch_answer<B: AsRef<[u8]>, I: Borrow<MessageIndex>>(
        &mut self,
        seq: u64,
        link: LinkId,
        correlation: u64,
        req: &Message<B, I>,
        set: &[(corridor_wire::FieldId, &[u8])],
    ) -> bool {
        let Some(mti) = req.mti().response() else {
            unreachable!("the switch answers requests only ({})", req.mti())
        };
        let l = self.links.origin_mut(link);
        let dialect = l.dialect;
        let keep = FieldSet::VALUES.without(FieldSet::SECRETS);
        let written = l.frame_after(seq, NativeHeader::FLAG_SWITCH_ORIGIN, correlation, |out| {
            req.derive(mti, keep, set, dialect, out)
        });
        if let Err(e) = &written {
            // Only a link whose frame limit is below an answer's size gets here: the
            // configuration bounds frame_bytes_max from below to make that rare.
            warn!(%link, error = %e, "cannot write a switch-made answer");
        }
        self.after_write(link);
        written.is_ok()
    }

    /// After writing to `link`: mark it for flushing, or close it if its peer stopped
    /// reading (what is in its batch is then reversed as the link goes down).
    pub(crate) fn after_write(&mut self, link: LinkId) {
        self.note_held(link);
        let stalled = self.links.get(&link).is_some_and(|l| l.out.len() > LINK_OUT_BYTES_MAX);
        if stalled {
            self.close(link, CloseReason::Stalled, self.last_now);
            return;
        }
        self.mark_dirty(link);
    }

    /// An in-flight slot of `link`'s originator came free.
    pub(crate) fn slot_freed(&mut self, link: LinkId) {
        if let Some(o) = self.links.get_mut(&link) {
            take_one!(o.inflight_in, "an originator's in-flight count");
            if !o.held.is_empty() {
                self.resumable.push_back(link);
            }
        }
    }

    /// Handles requests held back from originators that have room again, in the order they
    /// came, and wakes readers that can read again.
    pub(crate) fn run_held(&mut self, now: Instant) {
        while let Some(link) = self.resumable.pop_front() {
            while let Some((correlation, body)) = self.next_held(link) {
                self.replay(link, correlation, body, now);
            }
            let Some(l) = self.links.get_mut(&link) else { continue };
            if l.paused && l.held_bytes < crate::limits::HELD_BYTES_MAX {
                l.paused = false;
                self.events.push_back(Event::Resume { link });
            }
        }
    }

    /// The next request `link` has held, if its originator has a free slot.
    fn next_held(&mut self, link: LinkId) -> Option<(u64, Bytes)> {
        let l = self.links.get_mut(&link).filter(|l| !l.closing() && !l.origin_full())?;
        let (correlation, body) = l.held.pop_front()?;
        l.held_bytes -= body.len();
        Some((correlation, body))
    }

    /// Handles a held request as if it had just arrived.
    fn replay(&mut self, link: LinkId, correlation: u64, body: Bytes, now: Instant) {
        if let Some(l) = self.links.get_mut(&link) {
            l.replaying = true;
        }
        // Held frames are requests: no flag of theirs is read.
        self.handle_frame(link, correlation, 0, body, now);
        if let Some(l) = self.links.get_mut(&link) {
            l.replaying = false;
        }
    }

    // ----- time -----

    /// Handles every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = now;
        while let Some(t) = self.timers.pop_due(now) {
            match t {
                Timer::Pending(link, key) => self.pending_timeout(link, key, now),
                Timer::Reversal(id) => {
                    if self.saf.get(id).is_some_and(|r| r.outstanding.is_none()) {
                        self.send_reversal(id, now);
                    }
                }
                Timer::Echo(link) => self.echo_tick(link, now),
                Timer::Late(link, key) => {
                    self.saf.forget_late(link, key);
                }
                Timer::SignOn(link) => {
                    if self.links.get(&link).is_some_and(|l| !l.signed_on()) {
                        self.stats.sign_on_timeouts += 1;
                        self.close(link, CloseReason::NoSignOn, now);
                    }
                }
                Timer::Frame(link) => self.frame_deadline(link, now),
            }
        }
        self.run_held(now);
    }

    /// The frame timer of `link` fired: close it if the partial frame buffered now began a
    /// whole frame deadline ago, or wait for the one buffered now.
    fn frame_deadline(&mut self, link: LinkId, now: Instant) {
        let Some(l) = self.links.get_mut(&link) else { return };
        let after = self.config.links[l.spec].frame_timeout;
        match l.partial_since {
            None => l.frame_timer = false,
            Some(since) if now.saturating_duration_since(since) >= after => {
                l.frame_timer = false;
                self.stats.frame_timeouts += 1;
                self.close(link, CloseReason::FrameTimeout, now);
            }
            Some(since) => self.timer_at(since + after, after, Timer::Frame(link)),
        }
    }

    // ----- drain -----

    /// Starts a graceful drain: new requests are declined (91), dialed links are signed off,
    /// requests in flight still get their answers.
    pub fn begin_drain(&mut self, now: Instant) {
        if self.draining {
            return;
        }
        self.draining = true;
        info!(pending = self.in_flight.requests(), "draining");
        let dialed: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(_, l)| l.dial && l.signed_on() && !l.closing())
            .map(|(&id, _)| id)
            .collect();
        for id in dialed {
            self.send_network(id, corridor_wire::NetworkCode::SIGN_OFF, now);
        }
    }

    /// Ends a drain that ran out of time: every request still in flight is answered now as
    /// if its timeout had come (68 to the originator, a reversal toward the destination), so
    /// no accepted request goes unanswered.
    pub fn expire_requests(&mut self, now: Instant) {
        for (link, key) in self.in_flight.expire_requests(now) {
            self.pending_timeout(link, key, now);
        }
    }

    /// The journal's disk is full (`true`) or has room again: while it is full, new
    /// authorizations, financial requests and participants' advices are declined 96, and
    /// what is already in flight is answered and reversed as usual.
    pub fn set_storage_full(&mut self, full: bool) {
        self.journal.set_full(full);
    }

    /// In a cluster: the shard's journal cannot be replicated yet, or its lease may have
    /// expired (`true`), or both are well again. While paused, new requests and advices are
    /// declined 96 as on a full disk — a partner takes that as "try another node" — and what
    /// is in flight waits for the stream as it always does. Independent of
    /// [`Engine::set_storage_full`]: each reason is lifted on its own.
    pub fn set_replication_paused(&mut self, paused: bool) {
        self.journal.set_paused(paused);
    }

    /// Whether a drain has started and no request is in flight.
    #[must_use]
    pub fn is_drained(&self) -> bool {
        self.draining && self.in_flight.requests() == 0
    }
}

#[doc(hidden)]
impl Engine {
    /// Test hook: timer entries queued, stale ones included.
    #[must_use]
    pub fn timers_queued(&self) -> usize {
        self.timers.len()
    }

    /// Test hook: sets the last STAN used on `link`, to reach the wrap at 999 999 without
    /// sending a million requests.
    pub fn set_link_stan(&mut self, link: LinkId, stan: corridor_wire::Stan) {
        if let Some(l) = self.links.get_mut(&link) {
            l.stan = stan;
        }
    }
}
