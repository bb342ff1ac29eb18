//! `corridor-load respond`: the issuer/wallet simulator. Listens or dials, speaks any framing
//! and dialect, answers network management (sign-on, echo, sign-off), answers requests with
//! a configurable approval rate, decline-code mix and latency, leaves a share unanswered,
//! acknowledges reversals (0420/0421) with 0430, stalls on demand, and counts — and, when
//! asked, records — everything it saw, so a test can check what reached the issuer.
//!
//! One thread with a current-thread tokio runtime; one task per connection, which reads a
//! batch, answers what is due and writes the answers with one syscall.

use std::{
    cmp::Reverse,
    collections::{BTreeMap, BinaryHeap},
    io,
    net::SocketAddr,
    str::FromStr,
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use corridor_wire::{de, FieldSet, Message, ResponseCode};
use rand::{rngs::SmallRng, Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use serde::Serialize;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
    time::Instant,
};

use crate::{
    limits::{DELAYED_MAX, READ_CHUNK_BYTES, RECORD_MAX, RESPOND_CONNECTIONS_MAX},
    threshold::parse_duration,
    wire::Wire,
};

/// How long the simulator takes to answer a request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Latency {
    /// Always the same (zero: at once, in the batch it came in).
    Fixed(Duration),
    /// Uniform between the two.
    Uniform(Duration, Duration),
    /// Log-normal with this median and shape (the σ of the underlying normal).
    LogNormal {
        /// The median.
        median: Duration,
        /// The shape.
        sigma: f64,
    },
}

impl FromStr for Latency {
    type Err = String;

    /// `0`, `2ms`, `fixed:2ms`, `uniform:1ms..5ms`, `lognormal:2ms,0.5`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("latency `{s}`: expected 0, 2ms, uniform:1ms..5ms or lognormal:MEDIAN,SIGMA");
        let d = |v: &str| parse_duration(v).filter(|d| *d <= Duration::from_secs(600)).ok_or_else(bad);
        if s == "0" {
            return Ok(Self::Fixed(Duration::ZERO));
        }
        if let Some(r) = s.strip_prefix("uniform:") {
            let (a, b) = r.split_once("..").ok_or_else(bad)?;
            let (a, b) = (d(a)?, d(b)?);
            return if a <= b { Ok(Self::Uniform(a, b)) } else { Err(bad()) };
        }
        if let Some(r) = s.strip_prefix("lognormal:") {
            let (m, sigma) = r.split_once(',').ok_or_else(bad)?;
            let sigma: f64 = sigma.parse().ok().filter(|x: &f64| (0.0..=5.0).contains(x)).ok_or_else(bad)?;
            return Ok(Self::LogNormal { median: d(m)?, sigma });
        }
        Ok(Self::Fixed(d(s.strip_prefix("fixed:").unwrap_or(s))?))
    }
}

impl Latency {
    /// One draw.
    pub fn sample(&self, rng: &mut SmallRng) -> Duration {
        match *self {
            Self::Fixed(d) => d,
            Self::Uniform(a, b) if a == b => a,
            Self::Uniform(a, b) => rng.random_range(a..=b),
            Self::LogNormal { median, sigma } => {
                let mu = median.as_secs_f64().max(1e-9).ln();
                LogNormal::new(mu, sigma)
                    .map(|l| Duration::from_secs_f64(l.sample(rng).min(600.0)))
                    .unwrap_or(median)
            }
        }
    }
}

/// The weighted decline codes, e.g. `05=3,51=1`.
///
/// # Errors
///
/// A code that is not two letters or digits, or a weight that is not a whole number.
pub fn parse_codes(s: &str) -> Result<Vec<(ResponseCode, u32)>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (code, w) = part.split_once('=').unwrap_or((part, "1"));
        let c: [u8; 2] = code
            .as_bytes()
            .try_into()
            .ok()
            .filter(|c: &[u8; 2]| c.iter().all(u8::is_ascii_alphanumeric) && c != b"00")
            .ok_or_else(|| format!("decline code `{code}` must be two letters or digits, not 00"))?;
        let w: u32 = w.parse().map_err(|_| format!("decline weight `{w}` must be a whole number"))?;
        out.push((ResponseCode(c), w));
    }
    if out.iter().map(|(_, w)| w).sum::<u32>() == 0 {
        return Err(format!("decline codes `{s}` have no weight above zero"));
    }
    Ok(out)
}

/// How the simulator behaves.
#[derive(Clone, Debug)]
pub struct RespondSpec {
    /// Listen here (port 0 picks one; see [`Responder::local_addr`]).
    pub listen: Option<SocketAddr>,
    /// Or dial here, reconnecting with backoff.
    pub dial: Option<SocketAddr>,
    /// Dialing: other nodes of the same switch — when a connection goes or cannot be made,
    /// the next address is dialed in turn (a partner keeps links to every node).
    pub dial_also: Vec<SocketAddr>,
    /// Framing and dialect.
    pub wire: Wire,
    /// Share of requests approved (0-1); the rest are declined with `declines`.
    pub approve: f64,
    /// Decline codes and their weights.
    pub declines: Vec<(ResponseCode, u32)>,
    /// Time to answer.
    pub latency: Latency,
    /// Share of requests (0100/0200) never answered.
    pub drop: f64,
    /// Dialing: sign on (0800/001) after connecting.
    pub sign_on: bool,
    /// Seed of the random draws.
    pub seed: u64,
    /// Keep a record of every message seen (up to [`RECORD_MAX`]).
    pub record: bool,
    /// Listening: plain TCP, or TLS or QUIC with client certificates required.
    pub secure: Option<ServeSecure>,
}

/// The simulator as a TLS or QUIC server: its certificate, and the CA its clients'
/// certificates must chain to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServeSecure {
    /// QUIC (lanes of native frames) rather than TLS over TCP.
    pub quic: bool,
    /// The CA (PEM) of the clients.
    pub ca: std::path::PathBuf,
    /// Our certificate (PEM).
    pub cert: std::path::PathBuf,
    /// Its key (PEM).
    pub key: std::path::PathBuf,
}

impl RespondSpec {
    /// An always-approving, instant simulator listening on `listen`.
    #[must_use]
    pub fn listen(listen: SocketAddr, wire: Wire) -> Self {
        Self {
            listen: Some(listen),
            dial: None,
            dial_also: Vec::new(),
            wire,
            approve: 1.0,
            declines: vec![(ResponseCode::DO_NOT_HONOUR, 1)],
            latency: Latency::Fixed(Duration::ZERO),
            drop: 0.0,
            sign_on: true,
            seed: 1,
            record: false,
            secure: None,
        }
    }

    /// Checks the shares.
    ///
    /// # Errors
    ///
    /// A share outside 0-1, neither or both of listen and dial.
    pub fn check(&self) -> Result<(), String> {
        if self.listen.is_some() == self.dial.is_some() {
            return Err("give exactly one of --listen and --dial".into());
        }
        if self.dial_also.len() > crate::limits::FAILOVER_NODES_MAX {
            return Err(format!("at most {} other nodes to dial", crate::limits::FAILOVER_NODES_MAX));
        }
        if !(0.0..=1.0).contains(&self.approve) || !(0.0..=1.0).contains(&self.drop) {
            return Err("approval and drop shares must be between 0 and 1".into());
        }
        if self.declines.iter().map(|(_, w)| w).sum::<u32>() == 0 {
            return Err("at least one decline code needs a weight".into());
        }
        if self.secure.is_some() && self.listen.is_none() {
            return Err("TLS and QUIC are for --listen".into());
        }
        if self.secure.as_ref().is_some_and(|s| s.quic) && self.wire != Wire::NATIVE {
            return Err("QUIC carries native frames".into());
        }
        Ok(())
    }
}

/// What the simulator saw and did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RespondCounts {
    /// Connections accepted or made.
    pub connections: u64,
    /// Messages received, by MTI.
    pub received: BTreeMap<String, u64>,
    /// Requests (0100/0200) answered approved.
    pub approved: u64,
    /// Requests answered declined, by code.
    pub declined: BTreeMap<String, u64>,
    /// Requests never answered (the drop share).
    pub dropped: u64,
    /// Reversals (0420/0421) acknowledged with 0430.
    pub reversals_acked: u64,
    /// Network management requests answered.
    pub network_answered: u64,
    /// Frames whose body did not decode.
    pub malformed: u64,
}

impl RespondCounts {
    fn add(&mut self, o: &Self) {
        self.connections += o.connections;
        for (k, v) in &o.received {
            *self.received.entry(k.clone()).or_default() += v;
        }
        self.approved += o.approved;
        for (k, v) in &o.declined {
            *self.declined.entry(k.clone()).or_default() += v;
        }
        self.dropped += o.dropped;
        self.reversals_acked += o.reversals_acked;
        self.network_answered += o.network_answered;
        self.malformed += o.malformed;
    }

    /// Messages received with MTI `mti` (e.g. "0200").
    #[must_use]
    pub fn received(&self, mti: &str) -> u64 {
        self.received.get(mti).copied().unwrap_or(0)
    }
}

/// One message the simulator saw (card data masked).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Seen {
    /// Its MTI.
    pub mti: String,
    /// DE 11.
    pub stan: Option<u32>,
    /// DE 37.
    pub rrn: Option<String>,
    /// DE 2, first six and last four digits only.
    pub pan: Option<String>,
    /// DE 90's original STAN (reversals).
    pub original_stan: Option<u32>,
    /// DE 70 (network management).
    pub network_code: Option<u16>,
    /// The answer given: a response code, or `None` when it was not answered (dropped, or a
    /// response).
    pub answer: Option<String>,
}

struct Shared {
    counts: Mutex<RespondCounts>,
    seen: Mutex<Vec<Seen>>,
    record: bool,
}

/// A running simulator.
pub struct Responder {
    local_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    stall: watch::Sender<bool>,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl Responder {
    /// Binds (when listening) and starts the simulator on its own thread.
    ///
    /// # Errors
    ///
    /// A spec that fails [`RespondSpec::check`], or an address that cannot be bound.
    pub fn start(spec: RespondSpec) -> io::Result<Self> {
        spec.check().map_err(io::Error::other)?;
        let tls = match &spec.secure {
            None => None,
            Some(sec) => {
                let files = corridor_net::TlsFiles {
                    cert: sec.cert.clone(),
                    key: sec.key.clone(),
                    ca: vec![sec.ca.clone()],
                    crl: vec![],
                    server_name: None,
                };
                let alpn: &[&[u8]] = if sec.quic { &[crate::secure::ALPN] } else { &[] };
                Some(corridor_net::tls::server_config(&files, alpn).map_err(io::Error::other)?)
            }
        };
        let quic = spec.secure.as_ref().is_some_and(|s| s.quic);
        let listener = match spec.listen {
            Some(a) if !quic => {
                let l = std::net::TcpListener::bind(a)
                    .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {a}: {e}")))?;
                l.set_nonblocking(true)?;
                Some(l)
            }
            _ => None,
        };
        let udp = match spec.listen {
            Some(a) if quic => Some(
                std::net::UdpSocket::bind(a)
                    .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {a}: {e}")))?,
            ),
            _ => None,
        };
        let local_addr = listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .or_else(|| udp.as_ref().and_then(|u| u.local_addr().ok()));
        let shared = Arc::new(Shared {
            counts: Mutex::new(RespondCounts::default()),
            seen: Mutex::new(Vec::new()),
            record: spec.record,
        });
        let (stall, stall_rx) = watch::channel(false);
        let (stop, stop_rx) = watch::channel(false);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let shared2 = Arc::clone(&shared);
        let thread = std::thread::Builder::new().name("respond".into()).spawn(move || {
            rt.block_on(async move {
                let spec = Arc::new(spec);
                if let (Some(udp), Some(tls)) = (udp, tls.clone()) {
                    return quic_loop(udp, tls, spec, shared2, stall_rx, stop_rx).await;
                }
                match listener.map(TcpListener::from_std) {
                    Some(Ok(l)) => accept_loop(l, tls, spec, shared2, stall_rx, stop_rx).await,
                    Some(Err(_)) => {}
                    None => dial_loop(spec, shared2, stall_rx, stop_rx).await,
                }
            });
        })?;
        Ok(Self { local_addr, shared, stall, stop, thread: Some(thread) })
    }

    /// Where it listens.
    #[must_use]
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// What it has counted so far.
    #[must_use]
    pub fn counts(&self) -> RespondCounts {
        self.shared.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// What it has recorded so far (empty unless `record` was set).
    #[must_use]
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Stops (or resumes) reading and answering on every connection.
    pub fn set_stalled(&self, stalled: bool) {
        self.stall.send_replace(stalled);
    }

    /// Whether it is stalled.
    #[must_use]
    pub fn is_stalled(&self) -> bool {
        *self.stall.borrow()
    }

    /// Stops, closing every connection, and returns the final counts.
    pub fn stop(mut self) -> RespondCounts {
        self.shutdown();
        self.counts()
    }

    fn shutdown(&mut self) {
        self.stop.send_replace(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    spec: Arc<RespondSpec>,
    shared: Arc<Shared>,
    stall: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let open = Arc::new(tokio::sync::Semaphore::new(RESPOND_CONNECTIONS_MAX));
    let mut index = 0u64;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            r = listener.accept() => {
                let Ok((stream, _)) = r else { continue };
                // Beyond the bound a connection is closed at once.
                let Ok(permit) = Arc::clone(&open).try_acquire_owned() else { continue };
                index += 1;
                let (spec, shared, stall, stop) = (Arc::clone(&spec), Arc::clone(&shared), stall.clone(), stop.clone());
                stream.set_nodelay(true).ok();
                let acceptor = tls.clone().map(tokio_rustls::TlsAcceptor::from);
                tokio::spawn(async move {
                    match acceptor {
                        None => {
                            let (r, w) = stream.into_split();
                            serve(r, w, &spec, &shared, stall, stop, index, false).await;
                        }
                        Some(a) => {
                            if let Ok(Ok(t)) = tokio::time::timeout(Duration::from_secs(10), a.accept(stream)).await {
                                let (r, w) = tokio::io::split(t);
                                serve(r, w, &spec, &shared, stall, stop, index, false).await;
                            }
                        }
                    }
                    drop(permit);
                });
            }
        }
    }
}

async fn dial_loop(
    spec: Arc<RespondSpec>,
    shared: Arc<Shared>,
    stall: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let Some(first) = spec.dial else { return };
    let addrs: Vec<SocketAddr> = std::iter::once(first).chain(spec.dial_also.iter().copied()).collect();
    let mut backoff = Duration::from_millis(100);
    let (mut index, mut at, mut failed) = (0u64, 0usize, 0usize);
    while !*stop.borrow() {
        match TcpStream::connect(addrs[at]).await {
            Ok(stream) => {
                (backoff, failed) = (Duration::from_millis(100), 0);
                index += 1;
                stream.set_nodelay(true).ok();
                let (r, w) = stream.into_split();
                serve(r, w, &spec, &shared, stall.clone(), stop.clone(), index, spec.sign_on).await;
            }
            Err(_) => {
                failed += 1;
                // Every node tried once: wait before the next round.
                if failed.is_multiple_of(addrs.len()) {
                    tokio::select! {
                        _ = stop.changed() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
        // The connection went, or could not be made: the next node.
        at = (at + 1) % addrs.len();
    }
}

/// QUIC: every connection's lanes are served like connections of their own.
async fn quic_loop(
    udp: std::net::UdpSocket,
    tls: Arc<rustls::ServerConfig>,
    spec: Arc<RespondSpec>,
    shared: Arc<Shared>,
    stall: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let Ok(crypto) = quinn::crypto::rustls::QuicServerConfig::try_from(tls) else { return };
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(quinn::VarInt::from_u32(64))
        .max_concurrent_uni_streams(quinn::VarInt::from_u32(0));
    config.transport_config(Arc::new(transport));
    let Some(runtime) = quinn::default_runtime() else { return };
    let Ok(endpoint) = quinn::Endpoint::new(quinn::EndpointConfig::default(), Some(config), udp, runtime)
    else {
        return;
    };
    let mut index = 0u64;
    loop {
        let incoming = tokio::select! {
            _ = stop.changed() => return,
            i = endpoint.accept() => i,
        };
        let Some(incoming) = incoming else { return };
        let (spec, shared, stall, stop) =
            (Arc::clone(&spec), Arc::clone(&shared), stall.clone(), stop.clone());
        index += 1;
        let base = index << 16;
        tokio::spawn(async move {
            let Ok(Ok(conn)) =
                tokio::time::timeout(Duration::from_secs(10), async { incoming.accept()?.await }).await
            else {
                return;
            };
            let mut lane = 0u64;
            while let Ok((send, recv)) = conn.accept_bi().await {
                lane += 1;
                let (spec, shared, stall, stop) =
                    (Arc::clone(&spec), Arc::clone(&shared), stall.clone(), stop.clone());
                tokio::spawn(async move {
                    serve(recv, send, &spec, &shared, stall, stop, base + lane, false).await;
                });
            }
        });
    }
}

/// One connection (or QUIC lane): read a batch, answer what is due, write once.
#[allow(clippy::too_many_arguments)]
async fn serve<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    mut rd: R,
    mut wr: W,
    spec: &RespondSpec,
    shared: &Shared,
    mut stall: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
    index: u64,
    sign_on: bool,
) {
    let mut local = RespondCounts { connections: 1, ..RespondCounts::default() };
    let mut rng = SmallRng::seed_from_u64(spec.seed ^ index.rotate_left(32));
    let mut decoder = spec.wire.decoder();
    let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    let mut out = BytesMut::with_capacity(READ_CHUNK_BYTES);
    let mut delayed: BinaryHeap<Reverse<(Instant, u64, Bytes)>> = BinaryHeap::new();
    let mut delayed_seq = 0u64;
    let mut seen = Vec::new();
    if sign_on {
        // Fails only for a frame too small for a sign-on, which no wire has.
        let _ = crate::traffic::sign_on(spec.wire, 1, &mut out);
    }
    loop {
        if !out.is_empty() {
            if wr.write_all(&out).await.is_err() {
                break;
            }
            out.clear();
        }
        flush_counts(shared, &mut local, &mut seen);
        let stalled = *stall.borrow();
        let next_due = delayed.peek().map(|Reverse((at, _, _))| *at);
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            _ = stall.changed() => {}
            () = sleep_until(next_due), if next_due.is_some() && !stalled => {
                let now = Instant::now();
                while let Some(Reverse((at, _, _))) = delayed.peek() {
                    if *at > now {
                        break;
                    }
                    if let Some(Reverse((_, _, bytes))) = delayed.pop() {
                        out.extend_from_slice(&bytes);
                    }
                }
            }
            r = rd.read_buf(&mut buf), if !stalled => {
                match r {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                loop {
                    let (corr, body) = match decoder.decode(&mut buf) {
                        Ok(Some(f)) => f,
                        Ok(None) => break,
                        // The framing is broken: nothing after it can be trusted.
                        Err(_) => {
                            local.malformed += 1;
                            flush_counts(shared, &mut local, &mut seen);
                            return;
                        }
                    };
                    // The answer is written straight into the batch; one held back for its
                    // latency is split off it again.
                    let start = out.len();
                    let Some(delay) = handle(spec, &mut rng, &mut local, &mut seen, shared.record, corr, body, &mut out) else {
                        continue;
                    };
                    if !delay.is_zero() && delayed.len() < DELAYED_MAX {
                        let answer = out.split_off(start).freeze();
                        delayed_seq += 1;
                        delayed.push(Reverse((Instant::now() + delay, delayed_seq, answer)));
                    }
                }
                buf.reserve(READ_CHUNK_BYTES);
            }
        }
    }
    flush_counts(shared, &mut local, &mut seen);
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

fn flush_counts(shared: &Shared, local: &mut RespondCounts, seen: &mut Vec<Seen>) {
    if *local != RespondCounts::default() {
        if let Ok(mut c) = shared.counts.lock() {
            c.add(local);
        }
        *local = RespondCounts::default();
    }
    if !seen.is_empty() {
        if let Ok(mut s) = shared.seen.lock() {
            let room = RECORD_MAX.saturating_sub(s.len());
            s.extend(seen.drain(..).take(room));
        }
        seen.clear();
    }
}

/// Adds one to `map[key]`, allocating the key only the first time it is seen.
fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    match map.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            map.insert(key.to_owned(), 1);
        }
    }
}

/// One frame in; its framed answer appended to `out` and the answer's delay returned, if it
/// is answered.
#[allow(clippy::too_many_arguments)]
fn handle(
    spec: &RespondSpec,
    rng: &mut SmallRng,
    counts: &mut RespondCounts,
    seen: &mut Vec<Seen>,
    record: bool,
    correlation: u64,
    body: Bytes,
    out: &mut BytesMut,
) -> Option<Duration> {
    let Ok(m) = Message::parse(spec.wire.dialect, body) else {
        counts.malformed += 1;
        return None;
    };
    let mti = m.mti();
    let mti_ascii = mti.to_ascii();
    bump(&mut counts.received, std::str::from_utf8(&mti_ascii).unwrap_or("????"));
    let mut entry = record.then(|| Seen {
        mti: String::from_utf8_lossy(&mti_ascii).into_owned(),
        stan: m.stan().map(|s| s.value()),
        rrn: m.rrn().map(|r| String::from_utf8_lossy(r).into_owned()),
        pan: m.pan().map(|p| p.to_string()),
        original_stan: m
            .field(de::ORIGINAL_DATA)
            .and_then(|f| std::str::from_utf8(&f.to_vec()[4..10]).ok().and_then(|s| s.parse().ok())),
        network_code: m.network_code().map(|c| c.0),
        answer: None,
    });
    let result = if !mti.is_request() {
        None
    } else {
        let (code, delay): ([u8; 2], Duration) = match mti.class() {
            8 => {
                counts.network_answered += 1;
                (*b"00", Duration::ZERO)
            }
            4 => {
                counts.reversals_acked += 1;
                (*b"00", Duration::ZERO)
            }
            _ if rng.random_bool(spec.drop) => {
                counts.dropped += 1;
                return finish(seen, entry, None);
            }
            _ => {
                let code = if rng.random_bool(spec.approve) {
                    counts.approved += 1;
                    *b"00"
                } else {
                    let c = pick(&spec.declines, rng);
                    bump(&mut counts.declined, c.as_str());
                    c.0
                };
                (code, spec.latency.sample(rng))
            }
        };
        let resp = mti.response().unwrap_or(mti);
        // An approved authorization or purchase also gets an authorization id (DE 38).
        let set: [(corridor_wire::FieldId, &[u8]); 2] =
            [(de::RESPONSE_CODE, &code), (de::AUTH_ID, b"A1B2C3")];
        let set = if code == *b"00" && matches!(mti.class(), 1 | 2) { &set[..] } else { &set[..1] };
        let keep = FieldSet::VALUES.without(FieldSet::SECRETS);
        let framed = spec.wire.frame(correlation, out, |o| m.derive(resp, keep, set, spec.wire.dialect, o));
        if let Some(e) = entry.as_mut() {
            e.answer = Some(String::from_utf8_lossy(&code).into_owned());
        }
        framed.ok().map(|()| delay)
    };
    finish(seen, entry, result)
}

fn finish(seen: &mut Vec<Seen>, entry: Option<Seen>, r: Option<Duration>) -> Option<Duration> {
    if let Some(e) = entry {
        seen.push(e);
    }
    r
}

fn pick(codes: &[(ResponseCode, u32)], rng: &mut SmallRng) -> ResponseCode {
    let total: u32 = codes.iter().map(|(_, w)| w).sum();
    let mut x = rng.random_range(0..total.max(1));
    for &(c, w) in codes {
        if x < w {
            return c;
        }
        x -= w;
    }
    ResponseCode::DO_NOT_HONOUR
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_parse_and_draw_in_range() {
        assert_eq!("0".parse(), Ok(Latency::Fixed(Duration::ZERO)));
        assert_eq!("2ms".parse(), Ok(Latency::Fixed(Duration::from_millis(2))));
        assert_eq!(
            "uniform:1ms..5ms".parse(),
            Ok(Latency::Uniform(Duration::from_millis(1), Duration::from_millis(5)))
        );
        assert!("uniform:5ms..1ms".parse::<Latency>().is_err());
        assert!("lognormal:2ms".parse::<Latency>().is_err());
        assert!("soon".parse::<Latency>().is_err());
        let mut rng = SmallRng::seed_from_u64(1);
        let u = Latency::Uniform(Duration::from_millis(1), Duration::from_millis(5));
        assert!((0..1000).map(|_| u.sample(&mut rng)).all(|d| (1..=5).contains(&d.as_millis())));
        let l: Latency = "lognormal:2ms,0.5".parse().unwrap();
        let mut draws: Vec<Duration> = (0..10_001).map(|_| l.sample(&mut rng)).collect();
        draws.sort();
        let median = draws[5000].as_secs_f64() * 1000.0;
        assert!((1.8..2.2).contains(&median), "median {median} ms");
        assert!(draws[9900] > Duration::from_millis(5), "a long tail");
    }

    #[test]
    fn decline_codes_parse() {
        let c = parse_codes("05=3, 51").unwrap();
        assert_eq!(c, vec![(ResponseCode(*b"05"), 3), (ResponseCode(*b"51"), 1)]);
        assert!(parse_codes("00").is_err());
        assert!(parse_codes("5").is_err());
        assert!(parse_codes("05=x").is_err());
        assert!(parse_codes("05=0").is_err());
    }

    #[test]
    fn specs_need_one_endpoint_and_sane_shares() {
        let a: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut s = RespondSpec::listen(a, Wire::NATIVE);
        assert!(s.check().is_ok());
        s.dial = Some(a);
        assert!(s.check().is_err());
        s.dial = None;
        s.drop = 1.5;
        assert!(s.check().is_err());
    }
}
