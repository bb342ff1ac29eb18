//! `corridor-load run`: the acquirer side. Opens connections, signs on, sends the traffic in
//! open loop (a fixed schedule, paced by a dedicated thread) or closed loop (a window of
//! requests in flight per connection), matches every response to its request, and records.
//!
//! Threads: one pacing thread (open loop), one reader per connection, and the calling thread,
//! which prints progress once a second and collects the timeline. A connection's state sits
//! behind one mutex taken once per send and once per read batch; its socket writes behind
//! another, so a send never waits for a reader's bookkeeping.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Mutex, MutexGuard,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use bytes::BytesMut;
use corridor_wire::{de, FieldSet, Message, Mti, OwnedMessage};
use rustc_hash::FxHashMap;

use crate::{
    limits::{
        CONNECTIONS_MAX, DURATION_MAX, INFLIGHT_MAX, RATE_MAX, READ_CHUNK_BYTES, READ_WAKE, REQUESTS_MAX,
    },
    placement::Cpus,
    recorder::{Recorder, Row, Timeline},
    report::{RunInfo, Summary},
    schedule::{tighten_timer_slack, Arrivals, Pacing, Schedule},
    threshold::Threshold,
    traffic::{Kind, TrafficSpec},
    wire::{Decoder, Framing, Wire},
};

/// Open or closed loop.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// A fixed schedule of `rate` requests per second across all connections.
    Open {
        /// Requests per second.
        rate: f64,
        /// Constant or Poisson.
        arrivals: Arrivals,
        /// How the pacing thread waits.
        pacing: Pacing,
    },
    /// Each connection keeps `inflight` requests outstanding: capacity, not service latency.
    Closed {
        /// Requests in flight per connection.
        inflight: usize,
    },
}

/// Everything a run needs.
#[derive(Clone, Debug)]
pub struct RunSpec {
    /// Where to connect (loopback by default).
    pub target: SocketAddr,
    /// Framing and dialect.
    pub wire: Wire,
    /// Open or closed loop.
    pub mode: Mode,
    /// Connections.
    pub connections: usize,
    /// Open loop: requests one connection may have in flight; sends beyond are skipped.
    pub inflight_max: usize,
    /// How long to send, warm-up included.
    pub duration: Option<Duration>,
    /// How many requests to send, warm-up included.
    pub requests: Option<u64>,
    /// The first part of the run, excluded from the results.
    pub warmup: Duration,
    /// How long connecting and signing on may take.
    pub connect_timeout: Duration,
    /// A request not answered within this has timed out.
    pub request_timeout: Duration,
    /// How long to wait for answers after the last send.
    pub drain_timeout: Duration,
    /// The traffic.
    pub traffic: TrafficSpec,
    /// Whether to sign on (0800/001) before sending.
    pub sign_on: bool,
    /// CPUs to pin the generator to.
    pub cpus: Option<Cpus>,
    /// Print one progress line a second to stderr.
    pub progress: bool,
}

impl RunSpec {
    /// A 5-second closed-loop run of one connection with 64 in flight against `target`.
    #[must_use]
    pub fn new(target: SocketAddr, wire: Wire) -> Self {
        Self {
            target,
            wire,
            mode: Mode::Closed { inflight: 64 },
            connections: 1,
            inflight_max: 4096,
            duration: Some(Duration::from_secs(5)),
            requests: None,
            warmup: Duration::ZERO,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(5),
            traffic: TrafficSpec::default(),
            sign_on: true,
            cpus: None,
            progress: false,
        }
    }

    /// Checks every bound.
    ///
    /// # Errors
    ///
    /// The first bound broken, named.
    pub fn check(&self) -> Result<(), String> {
        if self.duration.is_none() && self.requests.is_none() {
            return Err("a run needs a duration or a request count (it is always bounded)".into());
        }
        if let Some(d) = self.duration {
            if d.is_zero() || d > DURATION_MAX {
                return Err(format!("duration must be above 0 and at most {} s", DURATION_MAX.as_secs()));
            }
            if self.warmup >= d {
                return Err("the warm-up must be shorter than the duration".into());
            }
        }
        if self.requests.is_some_and(|n| n == 0 || n > REQUESTS_MAX) {
            return Err(format!("the request count must be 1 to {REQUESTS_MAX}"));
        }
        if self.connections == 0 || self.connections > CONNECTIONS_MAX {
            return Err(format!("connections must be 1 to {CONNECTIONS_MAX}"));
        }
        if self.inflight_max == 0 || self.inflight_max > INFLIGHT_MAX {
            return Err(format!("the in-flight maximum must be 1 to {INFLIGHT_MAX}"));
        }
        match self.mode {
            Mode::Open { rate, .. } if !(rate > 0.0 && rate <= RATE_MAX) => {
                return Err(format!("the rate must be above 0 and at most {RATE_MAX}/s"));
            }
            Mode::Closed { inflight } if inflight == 0 || inflight > INFLIGHT_MAX => {
                return Err(format!("requests in flight must be 1 to {INFLIGHT_MAX}"));
            }
            _ => {}
        }
        for (name, d) in [
            ("connect timeout", self.connect_timeout),
            ("request timeout", self.request_timeout),
            ("drain timeout", self.drain_timeout),
        ] {
            if d.is_zero() || d > Duration::from_secs(600) {
                return Err(format!("the {name} must be above 0 and at most 600 s"));
            }
        }
        self.traffic.check()
    }

    /// The setup as the report states it (the measured window is filled in at the end).
    fn info(&self) -> RunInfo {
        let (mode, inflight, arrivals, pacing, rate) = match self.mode {
            Mode::Open { rate, arrivals, pacing } => (
                "open",
                self.inflight_max,
                Some(format!("{arrivals:?}").to_lowercase()),
                Some(match pacing {
                    Pacing::Hybrid { spin } => format!("hybrid (spin the last {} µs)", spin.as_micros()),
                    p => format!("{p:?}").to_lowercase(),
                }),
                Some(rate),
            ),
            Mode::Closed { inflight } => ("closed", inflight, None, None, None),
        };
        RunInfo {
            target: self.target.to_string(),
            wire: self.wire.to_string(),
            mode: mode.into(),
            connections: self.connections,
            inflight,
            arrivals,
            pacing,
            rate_target: rate,
            mix: self.traffic.mix.to_string(),
            warmup_s: self.warmup.as_secs_f64(),
            measured_s: 0.0,
            cpus: self.cpus.as_ref().map(ToString::to_string),
        }
    }
}

/// What a finished run measured.
#[derive(Debug)]
pub struct Outcome {
    /// Every connection's recorder, merged.
    pub recorder: Recorder,
    /// One row a second.
    pub timeline: Vec<Row>,
    /// The setup and measured window.
    pub info: RunInfo,
}

impl Outcome {
    /// The summary, with `thresholds` checked against the corrected latency.
    #[must_use]
    pub fn summary(&self, thresholds: &[Threshold]) -> Summary {
        let verdicts = thresholds.iter().map(|t| t.check(&self.recorder.corrected)).collect();
        Summary::new(self.info.clone(), &self.recorder, self.timeline.clone(), verdicts)
    }
}

/// A request in flight.
#[derive(Clone, Copy, Debug)]
struct Pending {
    seq: u64,
    kind: Kind,
    intended: Instant,
    sent: Instant,
    measured: bool,
}

struct State {
    traffic: crate::traffic::Traffic,
    pending: FxHashMap<u64, Pending>,
    /// Send order is deadline order (one timeout for all), so expiry looks at the front only.
    deadlines: std::collections::VecDeque<(Instant, u64, u64)>,
    recorder: Recorder,
    out: BytesMut,
    seq: u64,
    lost: bool,
}

struct Conn {
    state: Mutex<State>,
    writer: Mutex<TcpStream>,
}

/// What every thread of a run shares.
struct Ctx {
    wire: Wire,
    measure_from: Instant,
    timeout: Duration,
    cap: usize,
    /// Sends left for a counted run (`u64::MAX` when only a duration bounds it).
    budget: AtomicU64,
    sending_done: AtomicBool,
    /// When sending stopped, ns after `measure_from` (saturating at 0).
    sending_ended_ns: AtomicU64,
    /// Readers give up on open requests at this instant, ns after `measure_from` (0: not yet).
    drain_deadline_ns: AtomicU64,
    origin: Instant,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panicking reader would have ended the run; the state is still consistent enough to
    // report, so a poisoned lock is taken as is.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Ctx {
    fn since_measure(&self, t: Instant) -> Duration {
        t.saturating_duration_since(self.measure_from)
    }

    fn claim(&self) -> bool {
        self.budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1)).is_ok()
    }

    fn finish_sending(&self, now: Instant) {
        if !self.sending_done.swap(true, Ordering::AcqRel) {
            self.sending_ended_ns.store(
                u64::try_from(self.since_measure(now).as_nanos()).unwrap_or(u64::MAX),
                Ordering::Release,
            );
        }
    }

    fn ns(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX)
    }
}

impl State {
    /// Writes one request into the batch and opens it. `false`: not sent (lost connection
    /// or in-flight maximum).
    fn send(&mut self, ctx: &Ctx, intended: Instant, now: Instant, window: usize) -> bool {
        let measured = intended >= ctx.measure_from;
        if self.lost {
            return false;
        }
        if self.pending.len() >= window {
            if measured {
                self.recorder.skipped();
            }
            return false;
        }
        let kind = self.traffic.next_kind();
        // On classic links DE 11 correlates: skip a STAN still in flight (at most the
        // in-flight maximum of them, far below the 999 999 STANs).
        let mut stan = self.traffic.next_stan();
        let native = ctx.wire.framing == Framing::Native;
        while !native && self.pending.contains_key(&u64::from(stan.value())) {
            stan = self.traffic.next_stan();
        }
        self.seq += 1;
        let key = if native { self.seq } else { u64::from(stan.value()) };
        let (traffic, dialect) = (&mut self.traffic, ctx.wire.dialect);
        if ctx.wire.frame(key, &mut self.out, |out| traffic.write(kind, stan, dialect, now, out)).is_err() {
            // The templates encode (unit-tested); this would be a generator bug.
            self.recorder.error(ctx.since_measure(now));
            return false;
        }
        self.pending.insert(key, Pending { seq: self.seq, kind, intended, sent: now, measured });
        self.deadlines.push_back((now + ctx.timeout, key, self.seq));
        if measured {
            self.recorder.sent(ctx.since_measure(now), now.saturating_duration_since(intended));
        }
        true
    }

    /// Handles one frame from the target.
    fn receive(&mut self, ctx: &Ctx, correlation: u64, body: bytes::Bytes, now: Instant) {
        let at = ctx.since_measure(now);
        let Ok(m) = Message::parse(ctx.wire.dialect, body) else {
            self.recorder.error(at);
            return;
        };
        if m.mti().is_request() {
            // The target's own network management (echo, sign-on): answer it approved.
            if m.mti().class() == 8 {
                let resp = m.mti().response().unwrap_or(Mti::NETWORK_RESPONSE);
                let _ = ctx.wire.frame(correlation, &mut self.out, |out| {
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
                    self.recorder.error(at);
                    return;
                }
            },
        };
        let Some(p) = self.pending.remove(&key) else {
            // Late (after its timeout) or never sent.
            self.recorder.error(at);
            return;
        };
        if Some(m.mti()) != p.kind.mti().response() {
            self.recorder.error(at);
        }
        if p.measured {
            let code = m.response_code().map(|c| c.0);
            self.recorder.answered(at, code, now - p.intended, now - p.sent);
        }
    }

    /// Times out the requests whose deadline passed.
    fn expire(&mut self, ctx: &Ctx, now: Instant) {
        while let Some(&(deadline, key, seq)) = self.deadlines.front() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_front();
            if self.pending.get(&key).is_some_and(|p| p.seq == seq) {
                if let Some(p) = self.pending.remove(&key) {
                    if p.measured {
                        self.recorder.timed_out(ctx.since_measure(now));
                    }
                }
            }
        }
        // Entries already answered are dropped from the front as they come due; the queue
        // never holds more than the sends of one timeout.
    }

    /// Gives up on every open request (end of the run, or the connection is gone).
    fn abandon(&mut self) {
        for p in self.pending.values() {
            if p.measured {
                self.recorder.unanswered();
            }
        }
        self.pending.clear();
        self.deadlines.clear();
    }
}

impl Conn {
    /// Writes what the state's batch holds, outside the state lock.
    fn flush(&self, mut st: MutexGuard<'_, State>, ctx: &Ctx) {
        if st.out.is_empty() {
            return;
        }
        let bytes = st.out.split();
        drop(st);
        let result = self.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner).write_all(&bytes);
        if result.is_err() {
            let mut st = lock(&self.state);
            if !st.lost {
                st.lost = true;
                st.recorder.error(ctx.since_measure(Instant::now()));
                st.abandon();
            }
        }
    }
}

/// Connects, signs on, and returns the stream with whatever was read past the sign-on answer.
fn open(spec: &RunSpec, index: usize) -> Result<(TcpStream, BytesMut)> {
    let stream = TcpStream::connect_timeout(&spec.target, spec.connect_timeout)
        .with_context(|| format!("connection {index}: cannot connect to {}", spec.target))?;
    stream.set_nodelay(true).ok();
    let mut buf = BytesMut::new();
    if !spec.sign_on {
        return Ok((stream, buf));
    }
    let mut m = OwnedMessage::new(Mti::NETWORK_REQUEST);
    let time = crate::traffic::wall_clock().transmission_time(Instant::now());
    m.set(de::TRANSMISSION_TIME, time.to_vec())
        .and_then(|m| m.set(de::STAN, b"000000".to_vec()))
        .and_then(|m| m.set(de::NETWORK_CODE, b"001".to_vec()))
        .context("sign-on message")?;
    let mut out = BytesMut::new();
    spec.wire.frame(0, &mut out, |o| m.encode(spec.wire.dialect, o)).context("sign-on frame")?;
    (&stream).write_all(&out).with_context(|| format!("connection {index}: cannot send the sign-on"))?;
    let deadline = Instant::now() + spec.connect_timeout;
    let mut decoder = spec.wire.decoder();
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    loop {
        while let Some((_, body)) =
            decoder.decode(&mut buf).context("the sign-on answer broke the framing")?
        {
            let r = Message::parse(spec.wire.dialect, body).context("the sign-on answer does not decode")?;
            if r.mti() == Mti::NETWORK_RESPONSE && r.network_code().map(|c| c.0) == Some(1) {
                match r.response_code() {
                    Some(c) if c.is_approval() => return Ok((stream, buf)),
                    c => bail!(
                        "connection {index}: sign-on refused with response code {}",
                        c.map_or("none".into(), |c| c.as_str().to_owned())
                    ),
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("connection {index}: no sign-on answer within {:?}", spec.connect_timeout);
        }
        stream.set_read_timeout(Some(left)).ok();
        match (&stream).read(&mut chunk) {
            Ok(0) => bail!("connection {index}: the target closed the connection during sign-on"),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => bail!("connection {index}: sign-on failed: {e}"),
        }
    }
}

/// The reader of one connection; in closed loop it also keeps the window full.
fn read_loop(conn: &Conn, ctx: &Ctx, mut stream: TcpStream, mut buf: BytesMut, window: Option<usize>) {
    let mut decoder: Decoder = ctx.wire.decoder();
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    stream.set_read_timeout(Some(READ_WAKE)).ok();
    let mut first = true;
    loop {
        let read = if first {
            first = false;
            Ok(None)
        } else {
            match stream.read(&mut chunk) {
                Ok(0) => Err(()),
                Ok(n) => Ok(Some(n)),
                Err(e)
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
                {
                    Ok(None)
                }
                Err(_) => Err(()),
            }
        };
        let now = Instant::now();
        let mut st = lock(&conn.state);
        match read {
            Ok(Some(n)) => {
                buf.extend_from_slice(&chunk[..n]);
                loop {
                    match decoder.decode(&mut buf) {
                        Ok(Some((corr, body))) => st.receive(ctx, corr, body, now),
                        Ok(None) => break,
                        Err(_) => {
                            st.recorder.error(ctx.since_measure(now));
                            st.lost = true;
                            break;
                        }
                    }
                }
            }
            Ok(None) => {}
            Err(()) => {
                if !st.lost {
                    st.lost = true;
                    if !st.pending.is_empty() || !ctx.sending_done.load(Ordering::Acquire) {
                        st.recorder.error(ctx.since_measure(now));
                    }
                }
            }
        }
        st.expire(ctx, now);
        if st.lost {
            st.abandon();
            return;
        }
        if let Some(window) = window {
            while !ctx.sending_done.load(Ordering::Acquire) && st.pending.len() < window {
                if !ctx.claim() {
                    ctx.finish_sending(now);
                    break;
                }
                st.send(ctx, now, now, window);
            }
        }
        let done = ctx.sending_done.load(Ordering::Acquire);
        if done && st.pending.is_empty() {
            conn.flush(st, ctx);
            return;
        }
        let deadline = ctx.drain_deadline_ns.load(Ordering::Acquire);
        if done && deadline != 0 && ctx.ns(now) >= deadline {
            st.abandon();
            return;
        }
        conn.flush(st, ctx);
    }
}

/// Runs the load described by `spec` and returns what it measured.
///
/// # Errors
///
/// A spec that breaks a bound, a CPU set that cannot be pinned, or a connection that cannot
/// be opened or signed on.
pub fn run(spec: &RunSpec) -> Result<Outcome> {
    spec.check().map_err(anyhow::Error::msg)?;
    if let Some(cpus) = &spec.cpus {
        cpus.pin_current_thread()?;
    }
    let clock = crate::traffic::wall_clock();
    let mut conns = Vec::with_capacity(spec.connections);
    let mut readers = Vec::with_capacity(spec.connections);
    for i in 0..spec.connections {
        let (stream, buf) = open(spec, i)?;
        let writer = stream.try_clone().context("cannot clone a socket")?;
        readers.push((stream, buf));
        let traffic =
            crate::traffic::Traffic::new(&spec.traffic, i as u32, clock).map_err(anyhow::Error::msg)?;
        conns.push(Conn {
            state: Mutex::new(State {
                traffic,
                pending: FxHashMap::default(),
                deadlines: std::collections::VecDeque::new(),
                recorder: Recorder::new(),
                out: BytesMut::with_capacity(64 * 1024),
                seq: 0,
                lost: false,
            }),
            writer: Mutex::new(writer),
        });
    }
    let origin = Instant::now();
    let ctx = Ctx {
        wire: spec.wire,
        measure_from: origin + spec.warmup,
        timeout: spec.request_timeout,
        cap: spec.inflight_max,
        budget: AtomicU64::new(spec.requests.unwrap_or(u64::MAX)),
        sending_done: AtomicBool::new(false),
        sending_ended_ns: AtomicU64::new(0),
        drain_deadline_ns: AtomicU64::new(0),
        origin,
    };
    let end = spec.duration.map(|d| origin + d);
    let mut timeline = Timeline::default();
    std::thread::scope(|s| {
        let window = match spec.mode {
            Mode::Closed { inflight } => Some(inflight),
            Mode::Open { .. } => None,
        };
        let mut handles = Vec::new();
        for (conn, (stream, buf)) in conns.iter().zip(readers) {
            let ctx = &ctx;
            handles.push(s.spawn(move || read_loop(conn, ctx, stream, buf, window)));
        }
        if let Mode::Open { rate, arrivals, pacing } = spec.mode {
            let (ctx, conns) = (&ctx, &conns);
            let seed = spec.traffic.seed;
            handles.push(s.spawn(move || {
                tighten_timer_slack();
                let mut schedule = Schedule::new(rate, arrivals, seed);
                let mut i = 0usize;
                loop {
                    let at = origin + schedule.next_offset();
                    if end.is_some_and(|e| at >= e) || !ctx.claim() {
                        break;
                    }
                    pacing.wait_until(at);
                    let c = &conns[i % conns.len()];
                    i += 1;
                    let mut st = lock(&c.state);
                    if st.send(ctx, at, Instant::now(), ctx.cap) {
                        c.flush(st, ctx);
                    }
                    if conns.iter().all(|c| lock(&c.state).lost) {
                        break;
                    }
                }
                ctx.finish_sending(end.map_or_else(Instant::now, |e| e.min(Instant::now())));
            }));
        }
        // The calling thread: progress, the end of sending, the drain deadline, the timeline.
        let mut last_print = ctx.measure_from;
        let mut prev_sent = 0u64;
        let mut agg = crate::recorder::histogram(crate::limits::HISTOGRAM_SIGFIG);
        loop {
            let now = Instant::now();
            if end.is_some_and(|e| now >= e) {
                ctx.finish_sending(now.min(end.unwrap_or(now)));
            }
            if ctx.sending_done.load(Ordering::Acquire) && ctx.drain_deadline_ns.load(Ordering::Acquire) == 0
            {
                ctx.drain_deadline_ns.store(ctx.ns(now + spec.drain_timeout).max(1), Ordering::Release);
            }
            if handles.iter().all(|h| h.is_finished()) {
                break;
            }
            if now >= ctx.measure_from && now.duration_since(last_print) >= Duration::from_secs(1) {
                last_print = now;
                let upto = ctx.since_measure(now).as_secs();
                let mut guards: Vec<_> = conns.iter().map(|c| lock(&c.state)).collect();
                timeline.collect(upto, guards.iter_mut().map(|g| &mut g.recorder));
                if spec.progress {
                    agg.reset();
                    let (mut sent, mut timeouts, mut errors) = (0, 0, 0);
                    for g in &guards {
                        let _ = agg.add(&g.recorder.corrected);
                        sent += g.recorder.counts.sent;
                        timeouts += g.recorder.counts.timeouts;
                        errors += g.recorder.counts.errors;
                    }
                    drop(guards);
                    let q =
                        |q| if agg.is_empty() { f64::NAN } else { agg.value_at_quantile(q) as f64 / 1000.0 };
                    eprintln!(
                        "[{upto:>4} s] sent {:>8}/s  p50 {:>9}  p99 {:>9}  answered {:>10}  timeouts {timeouts}  errors {errors}",
                        sent - prev_sent,
                        crate::report::us(q(0.5)),
                        crate::report::us(q(0.99)),
                        agg.len(),
                    );
                    prev_sent = sent;
                }
            }
            #[allow(clippy::disallowed_methods)] // The run's own thread, not a runtime task.
            std::thread::sleep(Duration::from_millis(10));
        }
        for h in handles {
            let _ = h.join();
        }
    });
    let mut recorders: Vec<Recorder> = conns
        .into_iter()
        .map(|c| c.state.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner).recorder)
        .collect();
    let ended = Duration::from_nanos(ctx.sending_ended_ns.load(Ordering::Acquire));
    timeline.collect(crate::limits::DURATION_MAX.as_secs() + 1, recorders.iter_mut());
    // Keep the rows up to the last one with anything in it.
    let keep = timeline
        .rows
        .iter()
        .rposition(|r| r.sent + r.answered + r.timeouts + r.errors > 0)
        .map_or(0, |i| i + 1);
    timeline.rows.truncate(keep);
    let mut recorder = Recorder::new();
    for r in &recorders {
        recorder.merge(r);
    }
    let mut info = spec.info();
    info.measured_s = ended.as_secs_f64();
    Ok(Outcome { recorder, timeline: timeline.rows, info })
}

/// Waits until one request for a PAN of `bin` through `target` is approved: the target is up
/// and, through a switch, so is the route behind it.
///
/// # Errors
///
/// Not approved within `wait`; the error says what came instead.
pub fn wait_approved(target: SocketAddr, wire: Wire, bin: &str, wait: Duration) -> Result<()> {
    let deadline = Instant::now() + wait;
    let mut probe = RunSpec::new(target, wire);
    probe.mode = Mode::Closed { inflight: 1 };
    probe.duration = None;
    probe.requests = Some(1);
    probe.request_timeout = Duration::from_secs(2);
    probe.connect_timeout = Duration::from_secs(2);
    probe.traffic.bins = vec![bin.to_owned()];
    let mut last = String::new();
    while Instant::now() < deadline {
        match run(&probe) {
            Ok(o) if o.recorder.counts.approved() == 1 => return Ok(()),
            Ok(o) => last = format!("answered {:?}", o.recorder.counts.codes),
            Err(e) => last = format!("{e:#}"),
        }
        #[allow(clippy::disallowed_methods)] // The caller's thread, between probes.
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{target} did not approve a request for BIN {bin} within {wait:?}: {last}")
}
