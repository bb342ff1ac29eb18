//! The generator's event loop: one thread drives a share of the connections — it paces the
//! sends, writes, reads, matches and records, with no lock and no hand-off between threads.
//!
//! Waiting is one `epoll_wait` on the sockets and a timerfd armed for the next send time
//! (nanosecond resolution; epoll's own timeout is whole milliseconds). Hybrid pacing sleeps
//! until shortly before the send time and then polls the sockets without blocking until it
//! comes, so responses are still read on time while it spins.

use std::{
    collections::VecDeque,
    io::{Read, Write},
    os::fd::{AsRawFd, OwnedFd},
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

use bytes::{Buf, BytesMut};
use corridor_wire::{de, FieldSet, Message, MessageIndex, Mti};
use hdrhistogram::Histogram;
use mio::{net::TcpStream, unix::SourceFd, Events, Interest, Poll, Token};
use rustc_hash::FxHashMap;

use crate::{
    limits::{DURATION_MAX, FAILOVER_RETRY, READ_CHUNK_BYTES, READ_WAKE, REVERSAL_TRIES_MAX},
    recorder::{Counts, Recorder, Seconds},
    schedule::{Pacing, Schedule},
    traffic::{Kind, Traffic},
    wire::{Framing, Wire},
};

const TIMER: Token = Token(usize::MAX);

/// A request in flight.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pending {
    seq: u64,
    kind: Kind,
    intended: Instant,
    sent: Instant,
    measured: bool,
}

/// What one byte stream of frames (a TCP connection, a TLS stream or a QUIC lane) keeps,
/// whatever carries it: the requests in flight on it and its buffers.
pub(crate) struct Lane {
    pub(crate) decoder: corridor_wire::FrameDecoder,
    pub(crate) rbuf: BytesMut,
    pub(crate) out: BytesMut,
    pub(crate) traffic: Traffic,
    pub(crate) pending: FxHashMap<u64, Pending>,
    /// Send order is deadline order (one timeout for all): expiry looks at the front only.
    pub(crate) deadlines: VecDeque<(Instant, u64, u64)>,
    pub(crate) seq: u64,
    pub(crate) lost: bool,
    /// With other nodes to fail over to, or reversing what gets no answer: each open
    /// request's body, to repeat it there or to reverse it.
    bodies: FxHashMap<u64, bytes::Bytes>,
    /// A reversing partner's reversals not yet acknowledged, by key: the tries so far.
    reversals: FxHashMap<u64, u32>,
    /// Every answer is parsed into this one index: nothing zeroed or moved per message.
    index: MessageIndex,
}

impl Lane {
    /// A lane speaking `wire`, with `rbuf` holding what was read past the sign-on.
    pub(crate) fn new(rbuf: BytesMut, wire: Wire, traffic: Traffic) -> Self {
        Self {
            decoder: wire.decoder(),
            rbuf,
            out: BytesMut::with_capacity(64 * 1024),
            traffic,
            pending: FxHashMap::default(),
            deadlines: VecDeque::new(),
            seq: 0,
            lost: false,
            bodies: FxHashMap::default(),
            reversals: FxHashMap::default(),
            index: MessageIndex::new(wire.dialect),
        }
    }
}

/// One TCP connection of the event-loop driver.
pub(crate) struct Conn {
    stream: TcpStream,
    lane: Lane,
    want_write: bool,
    /// With other nodes to fail over to: the one it is on (an index into
    /// [`Failover::nodes`]), and when to try the next after its connection went.
    node: usize,
    retry_at: Option<Instant>,
}

impl std::ops::Deref for Conn {
    type Target = Lane;
    fn deref(&self) -> &Lane {
        &self.lane
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Lane {
        &mut self.lane
    }
}

impl Conn {
    /// A connection over `stream` (connected, signed on, non-blocking), with `rbuf` holding
    /// what was read past the sign-on.
    pub(crate) fn new(
        stream: std::net::TcpStream,
        rbuf: BytesMut,
        wire: Wire,
        traffic: Traffic,
    ) -> std::io::Result<Self> {
        stream.set_nonblocking(true)?;
        Ok(Self {
            stream: TcpStream::from_std(stream),
            lane: Lane::new(rbuf, wire, traffic),
            want_write: false,
            node: 0,
            retry_at: None,
        })
    }
}

/// What the drivers of a run share: read-mostly settings and two counters.
pub(crate) struct Ctx {
    pub(crate) wire: Wire,
    pub(crate) origin: Instant,
    pub(crate) measure_from: Instant,
    pub(crate) end: Option<Instant>,
    pub(crate) timeout: Duration,
    pub(crate) drain: Duration,
    /// Open loop: requests one connection may have in flight; closed loop: the window.
    pub(crate) window: usize,
    pub(crate) closed: bool,
    pub(crate) pacing: Pacing,
    /// Sends left for a counted run (`u64::MAX` when only a duration bounds it).
    pub(crate) budget: AtomicU64,
    /// When the last driver stopped sending, ns after `measure_from`.
    pub(crate) sending_ended_ns: AtomicU64,
    /// Other nodes of the same switch to fail over to (TCP), if any.
    pub(crate) failover: Option<Failover>,
    /// A reversing partner: each 0100/0200 unanswered within the timeout is reversed (0420,
    /// then 0421 after each timeout without an acknowledgement).
    pub(crate) reverse: bool,
}

/// How a connection fails over: the nodes in turn (the first is where every connection
/// starts), and how to open one.
pub(crate) struct Failover {
    pub(crate) nodes: Vec<std::net::SocketAddr>,
    /// Connects to a node and signs on (as at the start): the stream, and what was read
    /// past the sign-on.
    pub(crate) open:
        Box<dyn Fn(std::net::SocketAddr) -> anyhow::Result<(std::net::TcpStream, BytesMut)> + Send + Sync>,
}

impl Ctx {
    pub(crate) fn since_measure(&self, t: Instant) -> Duration {
        t.saturating_duration_since(self.measure_from)
    }

    /// Whether each open request's body is kept (to repeat or to reverse it).
    fn keeps_bodies(&self) -> bool {
        self.failover.is_some() || self.reverse
    }

    pub(crate) fn claim(&self) -> bool {
        self.budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1)).is_ok()
    }
}

/// What a driver hands the calling thread once a second, and at the end.
#[derive(Default)]
pub(crate) struct Collected {
    /// Per driver: its counts and latency so far (for the progress line).
    pub(crate) snapshots: Vec<Option<(Counts, Histogram<u64>)>>,
    /// Finished seconds, merged across drivers.
    pub(crate) seconds: Seconds,
}

impl Collected {
    /// Driver `driver` hands over its seconds before `upto` and a snapshot of its figures.
    pub(crate) fn deposit(&mut self, driver: usize, r: &mut Recorder, upto: u64) {
        self.seconds.absorb(r, upto);
        self.snapshots[driver] = Some((r.counts.clone(), r.corrected.clone()));
    }
}

fn write_out(c: &mut Conn, rec: &mut Recorder, ctx: &Ctx, now: Instant) {
    while !c.lane.out.is_empty() && !c.lane.lost {
        match c.stream.write(&c.lane.out) {
            Ok(0) => lose(c, rec, ctx, now),
            Ok(n) => c.lane.out.advance(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                c.want_write = true;
                return;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => lose(c, rec, ctx, now),
        }
    }
    c.want_write = false;
}

pub(crate) fn lose(c: &mut Lane, rec: &mut Recorder, ctx: &Ctx, now: Instant) {
    if !c.lost {
        c.lost = true;
        rec.error(ctx.since_measure(now));
        // Failing over, what was open is repeated on the next node (see `fail_over`).
        if ctx.failover.is_none() {
            abandon(c, rec);
        }
    }
}

/// Gives up on every open request (the end of the run, or the connection is gone).
pub(crate) fn abandon(c: &mut Lane, rec: &mut Recorder) {
    for p in c.pending.values() {
        if p.measured {
            rec.unanswered();
        }
    }
    for _ in c.reversals.drain() {
        rec.reversal_unacknowledged();
    }
    c.pending.clear();
    c.deadlines.clear();
    c.bodies.clear();
}

/// The next STAN; on classic links (DE 11 correlates) one not in flight on the lane (at
/// most the in-flight maximum of them are skipped, far below the 999 999 STANs).
fn free_stan(c: &mut Lane, native: bool) -> corridor_wire::Stan {
    let mut stan = c.traffic.next_stan();
    while !native && c.pending.contains_key(&u64::from(stan.value())) {
        stan = c.traffic.next_stan();
    }
    stan
}

/// Writes one request into the connection's batch and opens it. `false`: not sent.
pub(crate) fn send(c: &mut Lane, rec: &mut Recorder, ctx: &Ctx, intended: Instant, now: Instant) -> bool {
    let measured = intended >= ctx.measure_from;
    if c.lost {
        return false;
    }
    if c.pending.len() >= ctx.window {
        if measured {
            rec.skipped();
        }
        return false;
    }
    let kind = c.traffic.next_kind();
    let native = ctx.wire.framing == Framing::Native;
    let stan = free_stan(c, native);
    c.seq += 1;
    let key = if native { c.seq } else { u64::from(stan.value()) };
    let (traffic, dialect) = (&mut c.traffic, ctx.wire.dialect);
    let framed = if ctx.keeps_bodies() {
        // Kept to be repeated on another node if this connection goes, or reversed.
        let mut body = BytesMut::new();
        let framed = traffic.write(kind, stan, dialect, now, &mut body).and_then(|()| {
            ctx.wire.frame(key, &mut c.out, |out| {
                out.extend_from_slice(&body);
                Ok(())
            })
        });
        c.bodies.insert(key, body.freeze());
        framed
    } else {
        ctx.wire.frame(key, &mut c.out, |out| traffic.write(kind, stan, dialect, now, out))
    };
    if framed.is_err() {
        // The templates encode (unit-tested); this would be a generator bug.
        rec.error(ctx.since_measure(now));
        return false;
    }
    c.pending.insert(key, Pending { seq: c.seq, kind, intended, sent: now, measured });
    c.deadlines.push_back((now + ctx.timeout, key, c.seq));
    if measured {
        rec.sent(ctx.since_measure(now), now.saturating_duration_since(intended));
    }
    true
}

/// Handles one frame from the target.
pub(crate) fn receive(
    c: &mut Lane,
    rec: &mut Recorder,
    ctx: &Ctx,
    correlation: u64,
    body: bytes::Bytes,
    now: Instant,
) {
    let at = ctx.since_measure(now);
    if c.index.parse_into(ctx.wire.dialect, &body).is_err() {
        rec.error(at);
        return;
    }
    let Lane { index, pending, out: batch, .. } = c;
    let m = Message::from_parts(&body[..], &*index);
    if m.mti().is_request() {
        // The target's own network management (echo, sign-on): answer it approved.
        if m.mti().class() == 8 {
            let resp = m.mti().response().unwrap_or(Mti::NETWORK_RESPONSE);
            let _ = ctx.wire.frame(correlation, batch, |out| {
                m.derive(resp, FieldSet::VALUES, &[(de::RESPONSE_CODE, b"00")], ctx.wire.dialect, out)
            });
        }
        return;
    }
    let key = match ctx.wire.framing {
        Framing::Native => correlation,
        Framing::Length(_) => match m.stan() {
            Some(s) => u64::from(s.value()),
            None => {
                rec.error(at);
                return;
            }
        },
    };
    let Some(p) = pending.remove(&key) else {
        // Late (after its timeout) or never sent.
        rec.error(at);
        return;
    };
    if !c.bodies.is_empty() {
        c.bodies.remove(&key);
    }
    if c.reversals.remove(&key).is_some() {
        if m.mti() == Mti::REVERSAL_ADVICE_RESPONSE {
            rec.reversal_acknowledged();
        } else {
            rec.error(at);
        }
        return;
    }
    if Some(m.mti()) != p.kind.mti().response() {
        rec.error(at);
    }
    if p.measured {
        rec.answered(at, m.response_code().map(|c| c.0), now - p.intended, now - p.sent);
    }
}

/// Times out the requests whose deadline passed.
pub(crate) fn expire(c: &mut Lane, rec: &mut Recorder, ctx: &Ctx, now: Instant) {
    while let Some(&(deadline, key, seq)) = c.deadlines.front() {
        if deadline > now {
            break;
        }
        c.deadlines.pop_front();
        if c.pending.get(&key).is_some_and(|p| p.seq == seq) {
            let body = c.bodies.remove(&key);
            let Some(p) = c.pending.remove(&key) else { continue };
            if let Some(tries) = c.reversals.remove(&key) {
                // A reversal unacknowledged: repeated (0421), up to its tries.
                match body {
                    Some(body) if tries < REVERSAL_TRIES_MAX => {
                        reverse(c, rec, ctx, &body, Some((key, tries)), now);
                    }
                    _ => rec.reversal_unacknowledged(),
                }
                continue;
            }
            if p.measured {
                rec.timed_out(ctx.since_measure(now));
            }
            if let Some(body) = body
                .filter(|_| ctx.reverse && matches!(p.kind, Kind::Financial | Kind::Authorization | Kind::Qr))
            {
                reverse(c, rec, ctx, &body, None, now);
            }
        }
    }
}

/// Sends the reversal of the request `body` (0420: its values without track data or PIN
/// block, a STAN of its own, DE 90 naming it) — or, with `again` (the reversal's key and
/// tries), the repeat of reversal `body` (0421, the same fields, the same key) — and keeps
/// it open until acknowledged, as a reversing partner does.
fn reverse(
    c: &mut Lane,
    rec: &mut Recorder,
    ctx: &Ctx,
    body: &bytes::Bytes,
    again: Option<(u64, u32)>,
    now: Instant,
) {
    let dialect = ctx.wire.dialect;
    if let (Some((key, tries)), true) = (again, c.lost) {
        // Its connection is gone: nothing goes out until it is re-made (then the failover
        // repeats the reversal on the next node); it stays open as it is.
        c.seq += 1;
        keep_reversal_open(c, ctx, key, tries, body.clone(), now);
        return;
    }
    let Ok(m) = Message::parse(dialect, body.clone()) else { return };
    let native = ctx.wire.framing == Framing::Native;
    c.seq += 1;
    let (key, tries, mut reversal) = match again {
        Some((key, tries)) => {
            let mut out = BytesMut::new();
            if m.derive(Mti::REVERSAL_ADVICE_REPEAT, FieldSet::VALUES, &[], dialect, &mut out).is_err() {
                return;
            }
            (key, tries + 1, out)
        }
        None => {
            let stan = free_stan(c, native);
            let key = if native { c.seq } else { u64::from(stan.value()) };
            // DE 90: the original's MTI, STAN, DE 7, acquirer id (11 digits) and 11 zeros.
            let field = |id| m.field(id).map(|f| f.to_vec()).unwrap_or_default();
            let mut original = Vec::with_capacity(42);
            original.extend_from_slice(m.mti().to_string().as_bytes());
            original.extend_from_slice(&field(de::STAN));
            original.extend_from_slice(&field(de::TRANSMISSION_TIME));
            let acq = field(de::ACQUIRER_ID);
            original.resize(original.len() + 11usize.saturating_sub(acq.len()), b'0');
            original.extend_from_slice(&acq);
            original.resize(42, b'0');
            let keep = FieldSet(FieldSet::VALUES.0 & !FieldSet::SECRETS.0);
            let mut out = BytesMut::new();
            let set: [(corridor_wire::FieldId, &[u8]); 2] =
                [(de::STAN, &stan.to_ascii()), (de::ORIGINAL_DATA, &original)];
            if m.derive(Mti::REVERSAL_ADVICE, keep, &set, dialect, &mut out).is_err() {
                return;
            }
            (key, 1, out)
        }
    };
    let reversal = reversal.split().freeze();
    if ctx
        .wire
        .frame(key, &mut c.out, |out| {
            out.extend_from_slice(&reversal);
            Ok(())
        })
        .is_err()
    {
        return;
    }
    rec.reversal_sent(again.is_some());
    keep_reversal_open(c, ctx, key, tries, reversal, now);
}

/// Reversal `key` (its `tries` so far, its `body`) stays open until acknowledged: timed out
/// with the requests, repeated when it expires.
fn keep_reversal_open(c: &mut Lane, ctx: &Ctx, key: u64, tries: u32, body: bytes::Bytes, now: Instant) {
    c.bodies.insert(key, body);
    c.reversals.insert(key, tries);
    c.pending
        .insert(key, Pending { seq: c.seq, kind: Kind::Reversal, intended: now, sent: now, measured: false });
    c.deadlines.push_back((now + ctx.timeout, key, c.seq));
}

/// The repeat form of a request's MTI (0100 → 0101, 0200 → 0201, 0420 → 0421); `None` for
/// what has none (network management).
fn repeat_of(mti: Mti) -> Option<Mti> {
    let v = mti.value();
    (matches!(mti.class(), 1 | 2 | 4) && v.is_multiple_of(10)).then(|| Mti::new(v + 1)).flatten()
}

/// Connection `i` went: re-made to the next node (as at the start: connected, signed on),
/// and every request it had in flight repeated there, in the order they were sent — what a
/// partner does when a node of the switch dies. Not reachable: tried again after
/// [`FAILOVER_RETRY`], the next node in turn.
fn fail_over(i: usize, c: &mut Conn, f: &Failover, ctx: &Ctx, rec: &mut Recorder, poll: &Poll, now: Instant) {
    if c.retry_at.is_some_and(|at| now < at) {
        return;
    }
    c.node = (c.node + 1) % f.nodes.len().max(1);
    let opened = (f.open)(f.nodes[c.node]).and_then(|(stream, rbuf)| {
        stream.set_nonblocking(true)?;
        Ok((TcpStream::from_std(stream), rbuf))
    });
    let Ok((stream, rbuf)) = opened else {
        c.retry_at = Some(now + FAILOVER_RETRY);
        return;
    };
    let _ = poll.registry().deregister(&mut c.stream);
    c.stream = stream;
    if poll.registry().register(&mut c.stream, Token(i), Interest::READABLE | Interest::WRITABLE).is_err() {
        c.retry_at = Some(now + FAILOVER_RETRY);
        return;
    }
    let lane = &mut c.lane;
    (lane.rbuf, lane.decoder, lane.lost) = (rbuf, ctx.wire.decoder(), false);
    lane.out.clear();
    (c.retry_at, c.want_write) = (None, false);
    let mut open: Vec<(u64, u64)> = lane.pending.iter().map(|(key, p)| (p.seq, *key)).collect();
    open.sort_unstable();
    let mut repeated = 0;
    for (_, key) in open {
        let Some(body) = lane.bodies.get(&key).cloned() else { continue };
        let Ok(m) = Message::parse(ctx.wire.dialect, body) else { continue };
        let Some(mti) = repeat_of(m.mti()) else { continue };
        let dialect = ctx.wire.dialect;
        if ctx
            .wire
            .frame(key, &mut lane.out, |out| m.derive(mti, FieldSet::VALUES, &[], dialect, out))
            .is_ok()
        {
            repeated += 1;
        }
    }
    rec.failed_over(repeated);
}

/// Reads what the socket has, and handles every whole frame.
fn read_in(c: &mut Conn, rec: &mut Recorder, ctx: &Ctx, chunk: &mut [u8], now: Instant) {
    loop {
        match c.stream.read(chunk) {
            Ok(0) => {
                // Closed by the target: an error only if something was still expected.
                if !c.pending.is_empty() {
                    lose(c, rec, ctx, now);
                }
                c.lost = true;
                return;
            }
            Ok(n) => c.lane.rbuf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => {
                lose(c, rec, ctx, now);
                return;
            }
        }
    }
    decode_all(c, rec, ctx, now);
}

/// Handles every whole frame in the lane's read buffer.
pub(crate) fn decode_all(c: &mut Lane, rec: &mut Recorder, ctx: &Ctx, now: Instant) {
    loop {
        match c.decoder.decode(&mut c.rbuf) {
            Ok(Some((corr, body))) => receive(c, rec, ctx, corr, body, now),
            Ok(None) => return,
            Err(_) => {
                lose(c, rec, ctx, now);
                return;
            }
        }
    }
}

/// A timerfd that wakes the poll at a nanosecond-exact time.
struct Alarm {
    fd: OwnedFd,
    armed_for: Option<Instant>,
}

impl Alarm {
    fn new() -> std::io::Result<Self> {
        Ok(Self { fd: crate::schedule::timerfd()?, armed_for: None })
    }

    fn arm(&mut self, at: Instant, now: Instant) {
        if self.armed_for != Some(at)
            && crate::schedule::arm_timerfd(&self.fd, at.saturating_duration_since(now)).is_ok()
        {
            self.armed_for = Some(at);
        }
    }

    fn clear(&mut self) {
        crate::schedule::clear_timerfd(&self.fd);
        self.armed_for = None;
    }
}

/// Drives `conns` until they are done: sends on `schedule` (open loop) or keeps the window
/// full (closed loop), then waits for the answers up to the drain timeout. Hands its seconds
/// to `collected` once a second.
///
/// # Errors
///
/// The poll or the timer could not be set up.
pub(crate) fn drive(
    index: usize,
    ctx: &Ctx,
    conns: &mut [Conn],
    mut schedule: Option<Schedule>,
    schedule_offset: Duration,
    collected: &Mutex<Collected>,
) -> std::io::Result<Recorder> {
    crate::schedule::tighten_timer_slack();
    let mut rec = Recorder::new();
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut alarm = Alarm::new()?;
    poll.registry().register(&mut SourceFd(&alarm.fd.as_raw_fd()), TIMER, Interest::READABLE)?;
    for (i, c) in conns.iter_mut().enumerate() {
        poll.registry().register(&mut c.stream, Token(i), Interest::READABLE | Interest::WRITABLE)?;
    }
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    let mut next_send = schedule.as_mut().map(|s| ctx.origin + schedule_offset + s.next_offset());
    let mut rr = 0usize;
    let mut sending = true;
    let mut drain_until: Option<Instant> = None;
    let mut next_deposit = ctx.measure_from + Duration::from_secs(1);
    let mut first = true;
    loop {
        let now = Instant::now();
        // Sends that are due.
        if sending {
            if ctx.end.is_some_and(|e| now >= e) {
                sending = false;
            } else if let Some(at) = next_send.as_mut() {
                while *at <= now {
                    if ctx.end.is_some_and(|e| *at >= e) || !ctx.claim() {
                        sending = false;
                        break;
                    }
                    let n = conns.len();
                    // Round robin over the connections still up.
                    let Some(i) = (0..n).map(|k| (rr + k) % n).find(|&i| !conns[i].lost) else {
                        if ctx.failover.is_some() {
                            // Every connection failing over: this send is skipped.
                            if *at >= ctx.measure_from {
                                rec.skipped();
                            }
                            *at = ctx.origin
                                + schedule_offset
                                + schedule.as_mut().map_or(Duration::MAX, Schedule::next_offset);
                            continue;
                        }
                        sending = false;
                        break;
                    };
                    rr = i + 1;
                    send(&mut conns[i], &mut rec, ctx, *at, now);
                    *at = ctx.origin
                        + schedule_offset
                        + schedule.as_mut().map_or(Duration::MAX, Schedule::next_offset);
                }
            } else if ctx.closed {
                for c in conns.iter_mut() {
                    while c.pending.len() < ctx.window && !c.lost {
                        if !ctx.claim() {
                            sending = false;
                            break;
                        }
                        send(c, &mut rec, ctx, now, now);
                    }
                }
            }
            if !sending {
                let ended = u64::try_from(ctx.since_measure(now).as_nanos()).unwrap_or(u64::MAX);
                ctx.sending_ended_ns.fetch_max(ended, Ordering::AcqRel);
                drain_until = Some(now + ctx.drain);
            }
        }
        if let Some(f) = &ctx.failover {
            for (i, c) in conns.iter_mut().enumerate() {
                if c.lane.lost && (sending || !c.lane.pending.is_empty()) {
                    fail_over(i, c, f, ctx, &mut rec, &poll, now);
                }
            }
        }
        for c in conns.iter_mut() {
            if !c.out.is_empty() {
                write_out(c, &mut rec, ctx, now);
            }
            expire(c, &mut rec, ctx, now);
        }
        // Hand over finished seconds, and a snapshot for the progress line.
        if now >= next_deposit || first {
            first = false;
            let upto = ctx.since_measure(now).as_secs();
            if let Ok(mut c) = collected.lock() {
                c.deposit(index, &mut rec, upto);
            }
            next_deposit = now + Duration::from_secs(1);
        }
        if !sending
            && (conns.iter().all(|c| c.pending.is_empty() || (c.lost && ctx.failover.is_none()))
                || drain_until.is_some_and(|d| now >= d))
        {
            break;
        }
        // Wait: for the sockets, and for the next send time on the alarm.
        let mut timeout = Some(READ_WAKE);
        if sending {
            if let Some(at) = next_send {
                let spin = match ctx.pacing {
                    Pacing::Sleep => Duration::ZERO,
                    Pacing::Spin => Duration::MAX,
                    Pacing::Hybrid { spin } => spin,
                };
                let left = at.saturating_duration_since(now);
                if left <= spin {
                    timeout = Some(Duration::ZERO);
                } else {
                    alarm.arm(at - spin, now);
                }
            }
        }
        // A paused process (SIGSTOP/SIGCONT, a debugger) comes back with EINTR: wait again;
        // the schedule lag then shows the pause and flags the run.
        match poll.poll(&mut events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        let now = Instant::now();
        for ev in events.iter() {
            if ev.token() == TIMER {
                alarm.clear();
                continue;
            }
            let Some(c) = conns.get_mut(ev.token().0) else { continue };
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                read_in(c, &mut rec, ctx, &mut chunk, now);
            }
            if ev.is_writable() && c.want_write {
                write_out(c, &mut rec, ctx, now);
            }
        }
    }
    for c in conns.iter_mut() {
        abandon(c, &mut rec);
    }
    if let Ok(mut c) = collected.lock() {
        c.deposit(index, &mut rec, DURATION_MAX.as_secs() + 1);
    }
    Ok(rec)
}
