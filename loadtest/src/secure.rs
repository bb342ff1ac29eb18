//! The generator over TLS and QUIC: mutual TLS with a client certificate (rustls), and QUIC
//! lanes (quinn) with ALPN `corridor/1`, each lane a stream of native frames with its own
//! requests in flight. One thread runs a current-thread tokio runtime: a reader and a writer
//! task per lane, the pacing task (open loop) waiting on a timerfd for nanosecond-exact send
//! times, and a ticker that expires requests and hands seconds over. The rules — what to
//! send, how to match, when a request has timed out — are the epoll driver's, on the same
//! [`Lane`]s.

use std::{
    cell::RefCell,
    net::SocketAddr,
    os::fd::OwnedFd,
    path::PathBuf,
    rc::Rc,
    sync::{atomic::Ordering, Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context, Result};
use bytes::BytesMut;
use corridor_engine::WallClock;
use corridor_wire::{Message, Mti};
use rustls::{pki_types::ServerName, ClientConfig};
use tokio::{
    io::{unix::AsyncFd, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    sync::Notify,
};

use crate::{
    driver::{abandon, decode_all, expire, lose, send, Collected, Ctx, Lane},
    limits::{DURATION_MAX, READ_CHUNK_BYTES, READ_WAKE},
    recorder::Recorder,
    run::RunSpec,
    schedule::{Pacing, Schedule},
    traffic::Traffic,
    wire::Wire,
};

/// The ALPN of a Corridor QUIC connection.
pub use corridor_net::quic::ALPN;

/// The files of a client certificate and the CA the target's certificate chains to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientTls {
    /// CA certificate (PEM) of the target.
    pub ca: PathBuf,
    /// Our certificate (PEM).
    pub cert: PathBuf,
    /// Its key (PEM).
    pub key: PathBuf,
    /// The name the target's certificate must carry.
    pub server_name: String,
}

/// How the generator reaches its target.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Transport {
    /// Plain TCP (the epoll driver).
    #[default]
    Tcp,
    /// TLS over TCP, with a client certificate.
    Tls(ClientTls),
    /// QUIC with a client certificate, `lanes` lanes a connection.
    Quic {
        /// Certificates.
        tls: ClientTls,
        /// Lanes (bidirectional streams) per connection.
        lanes: u16,
    },
}

/// The rustls client configuration for `tls`: the switch's own, so the generator verifies
/// and presents certificates exactly as a dialing link does.
///
/// # Errors
///
/// A file that cannot be read or parsed.
pub fn client_config(tls: &ClientTls, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>> {
    let files = corridor_net::TlsFiles {
        cert: tls.cert.clone(),
        key: tls.key.clone(),
        ca: vec![tls.ca.clone()],
        crl: vec![],
        server_name: Some(tls.server_name.clone()),
    };
    corridor_net::tls::client_config(&files, alpn).map(|(config, _)| config).map_err(anyhow::Error::msg)
}

type Reader = Box<dyn AsyncRead + Unpin + Send>;
type Writer = Box<dyn AsyncWrite + Unpin + Send>;

/// Connected, signed-on lanes and the runtime that owns their sockets.
pub(crate) struct Secure {
    rt: tokio::runtime::Runtime,
    lanes: Vec<(Lane, Reader, Writer)>,
    // Kept open for the run.
    _quic: Vec<(quinn::Endpoint, quinn::Connection)>,
}

async fn sign_on(rd: &mut Reader, wr: &mut Writer, wire: Wire, wait: Duration) -> Result<BytesMut> {
    let mut out = BytesMut::new();
    crate::traffic::sign_on(wire, 0, &mut out)?;
    wr.write_all(&out).await.context("cannot send the sign-on")?;
    let mut buf = BytesMut::new();
    let mut decoder = wire.decoder();
    let mut chunk = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        while let Some((_, body)) =
            decoder.decode(&mut buf).context("the sign-on answer broke the framing")?
        {
            let r = Message::parse(wire.dialect, body).context("the sign-on answer does not decode")?;
            if r.mti() == Mti::NETWORK_RESPONSE {
                return match r.response_code() {
                    Some(c) if c.is_approval() => Ok(buf),
                    c => Err(anyhow!(
                        "sign-on refused with {}",
                        c.map_or("no code".into(), |c| c.as_str().to_owned())
                    )),
                };
            }
        }
        let n = tokio::time::timeout_at(deadline, rd.read(&mut chunk))
            .await
            .map_err(|_| anyhow!("no sign-on answer within {wait:?}"))?
            .context("the connection failed during sign-on")?;
        if n == 0 {
            bail!("the target closed the connection during sign-on");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Opens the run's connections (and lanes) over TLS or QUIC and signs each lane on.
///
/// # Errors
///
/// Certificates that do not load, a connection or handshake that fails, a refused sign-on.
pub(crate) fn connect(spec: &RunSpec, clock: WallClock) -> Result<Secure> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let wait = spec.connect_timeout;
    let (lanes, quic) = rt.block_on(async {
        let mut lanes: Vec<(Lane, Reader, Writer)> = Vec::new();
        let mut quic = Vec::new();
        match &spec.transport {
            Transport::Tcp => bail!("plain TCP runs on the epoll driver"),
            Transport::Tls(tls) => {
                let connector = tokio_rustls::TlsConnector::from(client_config(tls, &[])?);
                let name = ServerName::try_from(tls.server_name.clone())?;
                for i in 0..spec.connections {
                    let tcp = tokio::time::timeout(wait, tokio::net::TcpStream::connect(spec.target))
                        .await
                        .map_err(|_| anyhow!("connection {i}: connect timed out"))?
                        .with_context(|| format!("connection {i}: cannot connect to {}", spec.target))?;
                    tcp.set_nodelay(true).ok();
                    let s = tokio::time::timeout(wait, connector.connect(name.clone(), tcp))
                        .await
                        .map_err(|_| anyhow!("connection {i}: TLS handshake timed out"))?
                        .with_context(|| format!("connection {i}: TLS handshake failed"))?;
                    let (r, w) = tokio::io::split(s);
                    let (mut r, mut w): (Reader, Writer) = (Box::new(r), Box::new(w));
                    let buf = if spec.sign_on {
                        sign_on(&mut r, &mut w, spec.wire, wait).await?
                    } else {
                        BytesMut::new()
                    };
                    let traffic = Traffic::new(&spec.traffic, i as u32, clock).map_err(anyhow::Error::msg)?;
                    lanes.push((Lane::new(buf, spec.wire, traffic), r, w));
                }
            }
            Transport::Quic { tls, lanes: per } => {
                let crypto = Arc::new(
                    quinn::crypto::rustls::QuicClientConfig::try_from(client_config(tls, &[ALPN])?)
                        .map_err(|e| anyhow!("QUIC client: {e}"))?,
                );
                let bind: SocketAddr = if spec.target.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" }.parse()?;
                // Acknowledge every 16 ack-eliciting packets rather than every other one: the
                // same tuning as the switch's QUIC links and the simulator's.
                let mut ack = quinn::AckFrequencyConfig::default();
                ack.ack_eliciting_threshold(quinn::VarInt::from_u32(16));
                let mut transport = quinn::TransportConfig::default();
                transport.ack_frequency_config(Some(ack));
                let transport = Arc::new(transport);
                for i in 0..spec.connections {
                    let mut endpoint = quinn::Endpoint::client(bind)?;
                    let mut client = quinn::ClientConfig::new(crypto.clone());
                    client.transport_config(Arc::clone(&transport));
                    endpoint.set_default_client_config(client);
                    let conn = tokio::time::timeout(wait, endpoint.connect(spec.target, &tls.server_name)?)
                        .await
                        .map_err(|_| anyhow!("connection {i}: QUIC handshake timed out"))?
                        .with_context(|| format!("connection {i}: QUIC handshake failed"))?;
                    for j in 0..*per {
                        let (s, r) = conn
                            .open_bi()
                            .await
                            .with_context(|| format!("connection {i}: cannot open lane {j}"))?;
                        let (mut r, mut w): (Reader, Writer) = (Box::new(r), Box::new(s));
                        // Every lane signs on: its first frame is what opens it for the peer.
                        let buf = sign_on(&mut r, &mut w, spec.wire, wait).await?;
                        let n = i * usize::from(*per) + usize::from(j);
                        let traffic =
                            Traffic::new(&spec.traffic, n as u32, clock).map_err(anyhow::Error::msg)?;
                        lanes.push((Lane::new(buf, spec.wire, traffic), r, w));
                    }
                    quic.push((endpoint, conn));
                }
            }
        }
        Ok::<_, anyhow::Error>((lanes, quic))
    })?;
    Ok(Secure { rt, lanes, _quic: quic })
}

/// A timerfd the runtime waits on: nanosecond-exact wake-ups (tokio's timer has millisecond
/// resolution).
struct Alarm {
    fd: AsyncFd<OwnedFd>,
}

impl Alarm {
    fn new() -> std::io::Result<Self> {
        let fd = crate::schedule::timerfd()?;
        // Deprecated for I/O safety (tokio #8587: a descriptor closed elsewhere while still
        // registered). The OwnedFd is moved in and owned by the AsyncFd until it is dropped,
        // so nothing else can close it.
        #[allow(deprecated)]
        let fd = AsyncFd::new(fd)?;
        Ok(Self { fd })
    }

    async fn sleep_until(&self, at: Instant) {
        let now = Instant::now();
        if at <= now || crate::schedule::arm_timerfd(self.fd.get_ref(), at - now).is_err() {
            return;
        }
        while Instant::now() < at {
            let Ok(mut guard) = self.fd.readable().await else { return };
            crate::schedule::clear_timerfd(self.fd.get_ref());
            guard.clear_ready();
        }
    }
}

struct State {
    lanes: Vec<Lane>,
    rec: Recorder,
    sending: bool,
    drain_until: Option<Instant>,
}

impl State {
    fn stop_sending(&mut self, ctx: &Ctx, now: Instant) {
        if self.sending {
            self.sending = false;
            let ended = u64::try_from(ctx.since_measure(now).as_nanos()).unwrap_or(u64::MAX);
            ctx.sending_ended_ns.fetch_max(ended, Ordering::AcqRel);
            self.drain_until = Some(now + ctx.drain);
        }
    }

    /// Closed loop: keeps lane `i`'s window full while sending.
    fn refill(&mut self, i: usize, ctx: &Ctx, now: Instant) {
        while self.sending && ctx.closed && self.lanes[i].pending.len() < ctx.window && !self.lanes[i].lost {
            if !ctx.claim() {
                self.stop_sending(ctx, now);
                break;
            }
            let (lane, rec) = (&mut self.lanes[i], &mut self.rec);
            send(lane, rec, ctx, now, now);
        }
    }
}

impl Secure {
    /// Runs the load on these lanes; see [`crate::driver::drive`] for the contract.
    pub(crate) fn drive(
        self,
        index: usize,
        ctx: Arc<Ctx>,
        schedule: Option<Schedule>,
        offset: Duration,
        collected: &Mutex<Collected>,
    ) -> std::io::Result<Recorder> {
        crate::schedule::tighten_timer_slack();
        let Self { rt, lanes, _quic } = self;
        let local = tokio::task::LocalSet::new();
        let result = local.block_on(&rt, drive(index, ctx, lanes, schedule, offset, collected));
        drop(_quic);
        result
    }
}

async fn drive(
    index: usize,
    ctx: Arc<Ctx>,
    lanes: Vec<(Lane, Reader, Writer)>,
    mut schedule: Option<Schedule>,
    offset: Duration,
    collected: &Mutex<Collected>,
) -> std::io::Result<Recorder> {
    let n = lanes.len();
    let mut readers = Vec::with_capacity(n);
    let mut writers = Vec::with_capacity(n);
    let mut states = Vec::with_capacity(n);
    for (lane, r, w) in lanes {
        states.push(lane);
        readers.push(r);
        writers.push(w);
    }
    let st = Rc::new(RefCell::new(State {
        lanes: states,
        rec: Recorder::new(),
        sending: true,
        drain_until: None,
    }));
    let wake: Vec<Rc<Notify>> = (0..n).map(|_| Rc::new(Notify::new())).collect();
    let mut tasks = Vec::new();
    for (i, mut w) in writers.into_iter().enumerate() {
        let (st, wake, ctx) = (Rc::clone(&st), Rc::clone(&wake[i]), Arc::clone(&ctx));
        tasks.push(tokio::task::spawn_local(async move {
            loop {
                wake.notified().await;
                loop {
                    let bytes = st.borrow_mut().lanes[i].out.split();
                    if bytes.is_empty() {
                        break;
                    }
                    if w.write_all(&bytes).await.is_err() {
                        let mut s = st.borrow_mut();
                        let s = &mut *s;
                        lose(&mut s.lanes[i], &mut s.rec, &ctx, Instant::now());
                        return;
                    }
                }
            }
        }));
    }
    for (i, mut r) in readers.into_iter().enumerate() {
        let (st, wake, ctx) = (Rc::clone(&st), Rc::clone(&wake[i]), Arc::clone(&ctx));
        tasks.push(tokio::task::spawn_local(async move {
            let mut chunk = vec![0u8; READ_CHUNK_BYTES];
            loop {
                let read = r.read(&mut chunk).await;
                let now = Instant::now();
                let mut s = st.borrow_mut();
                let s = &mut *s;
                match read {
                    Ok(0) | Err(_) => {
                        if !s.lanes[i].pending.is_empty() {
                            lose(&mut s.lanes[i], &mut s.rec, &ctx, now);
                        }
                        s.lanes[i].lost = true;
                        return;
                    }
                    Ok(k) => s.lanes[i].rbuf.extend_from_slice(&chunk[..k]),
                }
                decode_all(&mut s.lanes[i], &mut s.rec, &ctx, now);
                s.refill(i, &ctx, now);
                if !s.lanes[i].out.is_empty() {
                    wake.notify_one();
                }
            }
        }));
    }
    // Closed loop: fill every window.
    {
        let now = Instant::now();
        let mut s = st.borrow_mut();
        for (i, w) in wake.iter().enumerate() {
            s.refill(i, &ctx, now);
            w.notify_one();
        }
    }
    // Open loop: the pacing task.
    if let Some(mut sched) = schedule.take() {
        let (st, wake, ctx) = (Rc::clone(&st), wake.clone(), Arc::clone(&ctx));
        let alarm = Alarm::new()?;
        tasks.push(tokio::task::spawn_local(async move {
            let mut rr = 0usize;
            loop {
                let at = ctx.origin + offset + sched.next_offset();
                if ctx.end.is_some_and(|e| at >= e) || !ctx.claim() {
                    st.borrow_mut().stop_sending(&ctx, Instant::now().min(at));
                    return;
                }
                match ctx.pacing {
                    Pacing::Spin => {}
                    Pacing::Sleep => alarm.sleep_until(at).await,
                    Pacing::Hybrid { spin } => alarm.sleep_until(at.checked_sub(spin).unwrap_or(at)).await,
                }
                while Instant::now() < at {
                    tokio::task::yield_now().await;
                }
                let now = Instant::now();
                let mut s = st.borrow_mut();
                let s = &mut *s;
                let Some(i) = (0..n).map(|k| (rr + k) % n).find(|&i| !s.lanes[i].lost) else {
                    s.stop_sending(&ctx, now);
                    return;
                };
                rr = i + 1;
                send(&mut s.lanes[i], &mut s.rec, &ctx, at, now);
                wake[i].notify_one();
            }
        }));
    }
    // The ticker: expiry, the end, the seconds handed over.
    let mut next_deposit = ctx.measure_from;
    loop {
        tokio::time::sleep(READ_WAKE.min(Duration::from_millis(10))).await;
        let now = Instant::now();
        let mut s = st.borrow_mut();
        let s = &mut *s;
        if ctx.end.is_some_and(|e| now >= e) {
            s.stop_sending(&ctx, now);
        }
        for (i, w) in wake.iter().enumerate() {
            expire(&mut s.lanes[i], &mut s.rec, &ctx, now);
            s.refill(i, &ctx, now);
            if !s.lanes[i].out.is_empty() {
                w.notify_one();
            }
        }
        if now >= next_deposit {
            if let Ok(mut c) = collected.lock() {
                c.deposit(index, &mut s.rec, ctx.since_measure(now).as_secs());
            }
            next_deposit = now + Duration::from_secs(1);
        }
        let idle = s.lanes.iter().all(|l| l.pending.is_empty() || l.lost);
        if !s.sending && (idle || s.drain_until.is_some_and(|d| now >= d)) {
            break;
        }
    }
    for t in &tasks {
        t.abort();
    }
    let mut s = st.borrow_mut();
    let s = &mut *s;
    for l in &mut s.lanes {
        abandon(l, &mut s.rec);
    }
    if let Ok(mut c) = collected.lock() {
        c.deposit(index, &mut s.rec, DURATION_MAX.as_secs() + 1);
    }
    Ok(std::mem::take(&mut s.rec))
}
