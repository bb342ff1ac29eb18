//! `corridor-load run`: the acquirer side. Opens connections, signs on, sends the traffic in
//! open loop (a fixed schedule, paced by a dedicated thread) or closed loop (a window of
//! requests in flight per connection), matches every response to its request, and records.
//!
//! Threads: the connections are shared among `threads` event loops (one by default; see
//! [`crate::driver`]), each pacing its share of the schedule and doing its own I/O with no
//! lock; the calling thread prints progress once a second.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use bytes::BytesMut;
use corridor_wire::{Message, Mti};

use crate::{
    driver::{drive, Collected, Conn, Ctx},
    limits::{
        CONNECTIONS_MAX, DURATION_MAX, INFLIGHT_MAX, RATE_MAX, READ_CHUNK_BYTES, REQUESTS_MAX, THREADS_MAX,
    },
    placement::Cpus,
    recorder::{Recorder, Row},
    report::{RunInfo, Summary},
    schedule::{Arrivals, Pacing, Schedule},
    secure::Transport,
    threshold::Threshold,
    traffic::TrafficSpec,
    wire::Wire,
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
    /// Event-loop threads the connections are shared among (TCP; TLS and QUIC use one).
    pub threads: usize,
    /// TCP, TLS or QUIC.
    pub transport: Transport,
    /// Several targets, each an acquirer of its own (TCP): connection `i` goes to target
    /// `i % n` and sends as it (its DE 32 and its BINs). Empty: every connection to
    /// `target` with the traffic's own. How a switch of several shards is given traffic
    /// from several participants.
    pub targets: Vec<Target>,
    /// Other nodes of the same switch (TCP): a connection that goes is re-made to the next
    /// of `target` and these, in turn, and every request it had in flight is repeated there
    /// (its repeat MTI, the same fields), as a partner does when a node dies. Empty: a
    /// connection that goes stays gone, and what it had in flight counts unanswered.
    pub failover: Vec<SocketAddr>,
    /// A reversing partner: each authorization or purchase that gets no answer within the
    /// request timeout is reversed (0420 naming it in DE 90), and the reversal repeated
    /// (0421) after each timeout without its acknowledgement — on the next node when its
    /// connection fails over — until acknowledged or [`REVERSAL_TRIES_MAX`] tries.
    ///
    /// [`REVERSAL_TRIES_MAX`]: crate::limits::REVERSAL_TRIES_MAX
    pub reverse: bool,
}

/// One of a run's several targets (see [`RunSpec::targets`]).
#[derive(Clone, Debug)]
pub struct Target {
    /// Where its connections go.
    pub address: SocketAddr,
    /// The DE 32 they send.
    pub acquirer_id: String,
    /// The BINs of their PANs.
    pub bins: Vec<String>,
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
            threads: 1,
            transport: Transport::Tcp,
            targets: Vec::new(),
            failover: Vec::new(),
            reverse: false,
        }
    }

    /// Connection `i`'s address and traffic.
    fn target_of(&self, i: usize) -> (SocketAddr, std::borrow::Cow<'_, TrafficSpec>) {
        match self.targets.get(i % self.targets.len().max(1)) {
            None => (self.target, std::borrow::Cow::Borrowed(&self.traffic)),
            Some(t) => {
                let mut traffic = self.traffic.clone();
                traffic.acquirer_id.clone_from(&t.acquirer_id);
                traffic.bins.clone_from(&t.bins);
                (t.address, std::borrow::Cow::Owned(traffic))
            }
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
        if self.threads == 0 || self.threads > THREADS_MAX {
            return Err(format!("threads must be 1 to {THREADS_MAX}"));
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
        if !self.failover.is_empty()
            && (!matches!(self.transport, Transport::Tcp) || !self.targets.is_empty())
        {
            return Err("failing over to other nodes is for plain TCP to one target".into());
        }
        if self.failover.len() > crate::limits::FAILOVER_NODES_MAX {
            return Err(format!("at most {} nodes to fail over to", crate::limits::FAILOVER_NODES_MAX));
        }
        if matches!(self.transport, Transport::Quic { .. }) && self.wire != Wire::NATIVE {
            return Err("QUIC carries native frames: --framing native --dialect native".into());
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
        let transport = match &self.transport {
            Transport::Tcp => String::new(),
            Transport::Tls(_) => " over TLS".to_owned(),
            Transport::Quic { lanes, .. } => format!(" over QUIC, {lanes} lanes a connection"),
        };
        RunInfo {
            target: self.target.to_string(),
            wire: format!("{}{transport}", self.wire),
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
    /// Per second that received answers: its number and their corrected latency (ns).
    pub intervals: Vec<(u64, hdrhistogram::Histogram<u64>)>,
    /// The wall-clock time of second 0 (the end of the warm-up).
    pub started_at: std::time::SystemTime,
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

/// Connects, signs on, and returns the stream with whatever was read past the sign-on answer.
fn open(spec: &RunSpec, index: usize) -> Result<(TcpStream, BytesMut)> {
    let (target, _) = spec.target_of(index);
    open_at(spec, index, target, spec.connect_timeout)
}

/// [`open`] to `target`, within `timeout`.
fn open_at(
    spec: &RunSpec,
    index: usize,
    target: SocketAddr,
    timeout: Duration,
) -> Result<(TcpStream, BytesMut)> {
    let spec = &RunSpec { connect_timeout: timeout, ..spec.clone() };
    let stream = TcpStream::connect_timeout(&target, spec.connect_timeout)
        .with_context(|| format!("connection {index}: cannot connect to {target}"))?;
    stream.set_nodelay(true).ok();
    let mut buf = BytesMut::new();
    if !spec.sign_on {
        return Ok((stream, buf));
    }
    let mut out = BytesMut::new();
    crate::traffic::sign_on(spec.wire, 0, &mut out).context("sign-on frame")?;
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
    let clock = corridor_engine::WallClock::now();
    let mut secure = match spec.transport {
        Transport::Tcp => None,
        _ => Some(crate::secure::connect(spec, clock)?),
    };
    let threads = if secure.is_some() { 1 } else { spec.threads.min(spec.connections) };
    let mut groups: Vec<Vec<Conn>> = (0..threads).map(|_| Vec::new()).collect();
    for i in (0..spec.connections).filter(|_| secure.is_none()) {
        let (stream, buf) = open(spec, i)?;
        let (_, traffic_spec) = spec.target_of(i);
        let traffic =
            crate::traffic::Traffic::new(&traffic_spec, i as u32, clock).map_err(anyhow::Error::msg)?;
        groups[i % threads]
            .push(Conn::new(stream, buf, spec.wire, traffic).context("cannot set up a connection")?);
    }
    let origin = Instant::now();
    let started_at = std::time::SystemTime::now() + spec.warmup;
    let (window, closed, pacing) = match spec.mode {
        Mode::Closed { inflight } => (inflight, true, Pacing::Sleep),
        Mode::Open { pacing, .. } => (spec.inflight_max, false, pacing),
    };
    let ctx = Arc::new(Ctx {
        wire: spec.wire,
        origin,
        measure_from: origin + spec.warmup,
        end: spec.duration.map(|d| origin + d),
        timeout: spec.request_timeout,
        drain: spec.drain_timeout,
        window,
        closed,
        pacing,
        budget: AtomicU64::new(spec.requests.unwrap_or(u64::MAX)),
        sending_ended_ns: AtomicU64::new(0),
        failover: (!spec.failover.is_empty()).then(|| {
            let nodes: Vec<SocketAddr> =
                std::iter::once(spec.target).chain(spec.failover.iter().copied()).collect();
            let again = spec.clone();
            crate::driver::Failover {
                nodes,
                open: Box::new(move |to| open_at(&again, 0, to, crate::limits::FAILOVER_CONNECT_MAX)),
            }
        }),
        reverse: spec.reverse,
    });
    let collected = Mutex::new(Collected { snapshots: vec![None; threads], ..Collected::default() });
    let recorders: Vec<std::io::Result<Recorder>> = std::thread::scope(|s| {
        let mut handles = Vec::with_capacity(threads);
        for (t, mut group) in groups.into_iter().enumerate() {
            // Thread t of n sends every n-th request: a constant schedule at rate/n shifted by
            // t/rate, or an independent Poisson stream at rate/n (their sum is Poisson at rate).
            let (schedule, offset) = match spec.mode {
                Mode::Open { rate, arrivals, .. } => (
                    Some(Schedule::new(rate / threads as f64, arrivals, spec.traffic.seed ^ t as u64)),
                    match arrivals {
                        Arrivals::Constant => Duration::from_secs_f64(t as f64 / rate),
                        Arrivals::Poisson => Duration::ZERO,
                    },
                ),
                Mode::Closed { .. } => (None, Duration::ZERO),
            };
            let collected = &collected;
            match secure.take() {
                Some(sec) => {
                    let ctx = Arc::clone(&ctx);
                    handles.push(s.spawn(move || sec.drive(t, ctx, schedule, offset, collected)));
                }
                None => {
                    let ctx = &*ctx;
                    handles.push(s.spawn(move || drive(t, ctx, &mut group, schedule, offset, collected)));
                }
            }
        }
        // The calling thread: one progress line a second.
        let mut next = ctx.measure_from + Duration::from_secs(1);
        let mut prev_sent = 0u64;
        while !handles.iter().all(|h| h.is_finished()) {
            let now = Instant::now();
            if spec.progress && now >= next {
                next += Duration::from_secs(1);
                if let Ok(c) = collected.lock() {
                    prev_sent = progress_line(&c, ctx.since_measure(now).as_secs(), prev_sent);
                }
            }
            #[allow(clippy::disallowed_methods)] // The run's own thread, not a runtime task.
            std::thread::sleep(Duration::from_millis(20));
        }
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(std::io::Error::other("a driver thread panicked"))))
            .collect()
    });
    let mut recorder = Recorder::new();
    for r in recorders {
        recorder.merge(&r.context("the load generator's event loop failed")?);
    }
    let collected = collected.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    let (rows, intervals) = collected.seconds.into_rows();
    let mut info = spec.info();
    info.measured_s = Duration::from_nanos(ctx.sending_ended_ns.load(Ordering::Acquire)).as_secs_f64();
    Ok(Outcome { recorder, timeline: rows, intervals, started_at, info })
}

/// Prints one progress line from the drivers' latest snapshots; returns the sends so far.
fn progress_line(c: &Collected, second: u64, prev_sent: u64) -> u64 {
    let mut agg = crate::recorder::histogram(crate::limits::HISTOGRAM_SIGFIG);
    let (mut sent, mut timeouts, mut errors) = (0, 0, 0);
    for (counts, h) in c.snapshots.iter().flatten() {
        let _ = agg.add(h);
        sent += counts.sent;
        timeouts += counts.timeouts;
        errors += counts.errors;
    }
    let q = |q| if agg.is_empty() { f64::NAN } else { agg.value_at_quantile(q) as f64 / 1000.0 };
    eprintln!(
        "[{second:>4} s] sent {:>8}/s  p50 {:>9}  p99 {:>9}  answered {:>10}  timeouts {timeouts}  errors {errors}",
        sent.saturating_sub(prev_sent),
        crate::report::us(q(0.5)),
        crate::report::us(q(0.99)),
        agg.len(),
    );
    sent
}

/// Waits until one request for a PAN of `bin` through `target` is approved: the target is up
/// and, through a switch, so is the route behind it.
///
/// # Errors
///
/// Not approved within `wait`; the error says what came instead.
pub fn wait_approved(target: SocketAddr, wire: Wire, bin: &str, wait: Duration) -> Result<()> {
    wait_approved_over(target, wire, bin, wait, &Transport::Tcp)
}

/// [`wait_approved`] over `transport`.
///
/// # Errors
///
/// As [`wait_approved`].
pub fn wait_approved_over(
    target: SocketAddr,
    wire: Wire,
    bin: &str,
    wait: Duration,
    transport: &Transport,
) -> Result<()> {
    let deadline = Instant::now() + wait;
    let mut probe = RunSpec::new(target, wire);
    probe.transport = transport.clone();
    if let Transport::Quic { tls, .. } = transport {
        probe.transport = Transport::Quic { tls: tls.clone(), lanes: 1 };
    }
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
