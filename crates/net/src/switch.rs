//! The switch's I/O: listeners, connectors, connections, timers and shutdown.

use std::{
    cell::{Cell, RefCell},
    future::Future,
    io,
    net::SocketAddr,
    rc::Rc,
    time::{Duration, Instant},
};

use bytes::BytesMut;
use corridor_engine::{Engine, Event, LinkCounts, LinkId, ReadState, Stats};
use quinn::VarInt;
use rustc_hash::FxHashMap;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::Notify,
    task::LocalSet,
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::{
    backoff::Backoff,
    error::{DialError, LinkError},
    handle::{Command, Handle, LinkSnapshot, Shutdown},
    limits::{
        CLOSE_LINGER, CLOSE_LINGER_BYTES_MAX, DRAIN_POLL, FLUSH_WAIT_MAX, HANDLE_QUEUE_MAX, READ_CHUNK_BYTES,
        READ_MIN_BYTES, REFUSED_LOG_INTERVAL, TCP_SEND_BUFFER_BYTES, TLS_HANDSHAKE_MAX,
    },
    quic::{endpoint, QuicLink, QuicSide},
    tls::{LinkTls, TlsSide},
};

/// How a link's bytes travel.
#[derive(Clone, Debug)]
pub enum Transport {
    /// Plain TCP.
    Tcp,
    /// TCP with mutual TLS.
    Tls(LinkTls),
    /// QUIC (its own mutual TLS 1.3), native frames on lanes.
    Quic(QuicLink),
}

impl Transport {
    /// Its name, as configurations spell it.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Tls(_) => "tls",
            Self::Quic(_) => "quic",
        }
    }
}

/// What a listening link listens with.
enum Listener {
    Tcp(TcpListener),
    Quic(quinn::Endpoint),
}

impl Listener {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Self::Tcp(l) => l.local_addr(),
            Self::Quic(e) => e.local_addr(),
        }
    }
}

/// A link the switch listens on: its peers dial in.
#[derive(Clone, Debug)]
pub struct Listen {
    /// Index of the link in the engine's configuration.
    pub spec: usize,
    /// Its name, for logs.
    pub name: String,
    /// Where to listen.
    pub address: SocketAddr,
    /// Most connections open at once on it (handshakes in progress included).
    pub connections_max: usize,
    /// TCP, TLS or QUIC.
    pub transport: Transport,
}

/// A link the switch dials, and redials with exponential backoff and jitter.
#[derive(Clone, Debug)]
pub struct Dial {
    /// Index of the link in the engine's configuration.
    pub spec: usize,
    /// Its name, for logs.
    pub name: String,
    /// Where to connect.
    pub address: SocketAddr,
    /// Longest wait for a connection to be accepted.
    pub connect_timeout: Duration,
    /// First delay before reconnecting.
    pub backoff_min: Duration,
    /// Longest delay before reconnecting.
    pub backoff_max: Duration,
    /// TCP, TLS or QUIC.
    pub transport: Transport,
}

/// The network side of the configuration.
#[derive(Clone, Debug, Default)]
pub struct NetConfig {
    /// Links to listen on.
    pub listens: Vec<Listen>,
    /// Links to dial.
    pub dials: Vec<Dial>,
    /// Longest a graceful shutdown waits for requests in flight.
    pub drain_timeout: Duration,
}

struct Conn {
    writable: Rc<Notify>,
    resume: Rc<Notify>,
    closed: CancellationToken,
    /// Whether a close by the switch lingers (see [`linger`]).
    linger: Rc<Cell<bool>>,
    spec: usize,
}

struct Shared {
    engine: RefCell<Engine>,
    conns: RefCell<FxHashMap<LinkId, Conn>>,
    /// Every QUIC endpoint, closed once the drain is over.
    endpoints: RefCell<Vec<quinn::Endpoint>>,
    timer: Notify,
    timer_at: Cell<Option<Instant>>,
    stop: CancellationToken,
}

impl Shared {
    /// After every engine call: wake the writers of links with output, the readers the
    /// engine lets read again, close the links the engine gave up on, and wake the timer if
    /// the next deadline moved earlier.
    fn flush(&self) {
        let mut engine = self.engine.borrow_mut();
        let conns = self.conns.borrow();
        while let Some(link) = engine.poll_dirty() {
            if let Some(c) = conns.get(&link) {
                c.writable.notify_one();
            }
        }
        while let Some(event) = engine.poll_event() {
            match event {
                Event::Close { link, reason } => {
                    // The engine logged why; this only acts on it.
                    debug!(%link, ?reason, "closing connection");
                    if let Some(c) = conns.get(&link) {
                        // A peer that never signed on was sent no financial answer: nothing
                        // of its is on the way, and it does not keep its slot while lingering.
                        c.linger.set(!matches!(reason, corridor_engine::CloseReason::NoSignOn));
                        c.closed.cancel();
                    }
                }
                Event::Resume { link } => {
                    if let Some(c) = conns.get(&link) {
                        c.resume.notify_one();
                    }
                }
                other => warn!(?other, "unhandled engine event"),
            }
        }
        if let Some(next) = engine.poll_timeout() {
            if self.timer_at.get().is_none_or(|at| next < at) {
                self.timer.notify_one();
            }
        }
    }

    fn open_on(&self, spec: usize) -> usize {
        self.conns.borrow().values().filter(|c| c.spec == spec).count()
    }
}

/// A bound switch, ready to run.
pub struct Switch {
    shared: Rc<Shared>,
    listeners: Vec<(Listen, Listener)>,
    dials: Vec<Dial>,
    drain_timeout: Duration,
    commands: tokio::sync::mpsc::Receiver<Command>,
    handle: Handle,
}

impl Switch {
    /// Binds every listening link. Must be called inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// The first address that cannot be bound, named.
    pub async fn bind(engine: Engine, net: NetConfig) -> io::Result<Self> {
        let mut listeners = Vec::new();
        for l in net.listens {
            let bound = match &l.transport {
                Transport::Quic(QuicLink { side: QuicSide::Server(server), .. }) => {
                    endpoint(l.address, Some(server.clone())).map(Listener::Quic)
                }
                Transport::Quic(_) => {
                    return Err(io::Error::other(format!(
                        "link {}: a listening QUIC link needs a server side",
                        l.name
                    )))
                }
                Transport::Tcp | Transport::Tls(_) => TcpListener::bind(l.address).await.map(Listener::Tcp),
            };
            let listener = bound.map_err(|e| {
                io::Error::new(e.kind(), format!("link {}: cannot listen on {}: {e}", l.name, l.address))
            })?;
            info!(link = %l.name, address = %listener.local_addr()?, transport = l.transport.name(), "listening");
            listeners.push((l, listener));
        }
        let (tx, commands) = tokio::sync::mpsc::channel(HANDLE_QUEUE_MAX);
        let handle = Handle::new(tx, engine.routes(), Shutdown::default());
        let shared = Rc::new(Shared {
            engine: RefCell::new(engine),
            conns: RefCell::new(FxHashMap::default()),
            endpoints: RefCell::new(Vec::new()),
            timer: Notify::new(),
            timer_at: Cell::new(None),
            stop: CancellationToken::new(),
        });
        Ok(Self { shared, listeners, dials: net.dials, drain_timeout: net.drain_timeout, commands, handle })
    }

    /// The address each listening link is bound to, by link name (port 0 becomes the real
    /// port).
    #[must_use]
    pub fn local_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.listeners.iter().filter_map(|(l, s)| Some((l.name.clone(), s.local_addr().ok()?))).collect()
    }

    /// A handle to the switch once it runs: snapshots, the route table, shutdown. It may be
    /// sent to other threads.
    #[must_use]
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Runs the switch until `shutdown` completes or the handle's [`Shutdown`] is
    /// triggered, then drains: stops accepting and reconnecting, signs off, declines new
    /// requests, waits up to the drain timeout for the requests in flight, flushes, and
    /// closes every connection.
    ///
    /// # Errors
    ///
    /// Never for network trouble (links come and go); only if the runtime fails.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<Report> {
        let local = LocalSet::new();
        let Self { shared, listeners, dials, drain_timeout, commands, handle } = self;
        let engine = Rc::clone(&shared);
        local
            .run_until(async move {
                for (l, listener) in listeners {
                    match listener {
                        Listener::Tcp(t) => tokio::task::spawn_local(accept_loop(Rc::clone(&shared), l, t)),
                        Listener::Quic(e) => {
                            tokio::task::spawn_local(quic_accept_loop(Rc::clone(&shared), l, e))
                        }
                    };
                }
                for d in dials {
                    tokio::task::spawn_local(dial_loop(Rc::clone(&shared), d));
                }
                tokio::task::spawn_local(timer_loop(Rc::clone(&shared)));
                tokio::task::spawn_local(command_loop(Rc::clone(&shared), commands));
                let triggered = handle.shutdown();
                tokio::select! {
                    () = shutdown => {}
                    () = triggered.wait() => {}
                }
                drain(&shared, drain_timeout).await;
            })
            .await;
        let engine = engine.engine.borrow();
        Ok(report(&engine))
    }
}

fn report(engine: &Engine) -> Report {
    let names = engine.config().links.iter().map(|l| l.name.clone());
    Report {
        stats: engine.stats().clone(),
        links: names.zip(engine.link_counts()).collect(),
        requests_pending: engine.requests_pending(),
        reversals_pending: engine.reversals_pending(),
    }
}

/// What a switch did, as it stopped (or now, from [`Handle::report`]).
#[derive(Clone, Debug)]
pub struct Report {
    /// Switch-wide counters.
    pub stats: Stats,
    /// Per configured link, by name.
    pub links: Vec<(String, LinkCounts)>,
    /// Requests forwarded and not yet answered.
    pub requests_pending: usize,
    /// Reversals not yet acknowledged.
    pub reversals_pending: usize,
}

async fn command_loop(shared: Rc<Shared>, mut commands: tokio::sync::mpsc::Receiver<Command>) {
    while let Some(c) = commands.recv().await {
        let engine = shared.engine.borrow();
        match c {
            Command::Report(tx) => {
                let _ = tx.send(report(&engine));
            }
            Command::Links(tx) => {
                let names = &engine.config().links;
                let links = engine
                    .open_links()
                    .into_iter()
                    .filter_map(|id| {
                        let status = engine.link_status(id)?;
                        Some(LinkSnapshot { id, name: names[status.spec].name.clone(), status })
                    })
                    .collect();
                let _ = tx.send(links);
            }
        }
    }
}

async fn drain(shared: &Rc<Shared>, drain_timeout: Duration) {
    info!("shutting down: draining");
    shared.stop.cancel();
    shared.engine.borrow_mut().begin_drain(Instant::now());
    shared.flush();
    let deadline = Instant::now() + drain_timeout;
    while !shared.engine.borrow().is_drained() && Instant::now() < deadline {
        tokio::time::sleep(DRAIN_POLL).await;
    }
    let left = shared.engine.borrow().requests_pending();
    if left > 0 {
        warn!(left, "drain timeout: answering the requests still in flight with 68");
        shared.engine.borrow_mut().expire_requests(Instant::now());
        shared.flush();
    }
    // Let the writers put the last answers on the wire.
    let flush_deadline = Instant::now() + FLUSH_WAIT_MAX;
    loop {
        let busy = {
            let engine = shared.engine.borrow();
            shared.conns.borrow().keys().any(|l| engine.has_output(*l))
        };
        if !busy || Instant::now() >= flush_deadline {
            break;
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
    for c in shared.conns.borrow().values() {
        c.closed.cancel();
    }
    // Give the connection tasks a turn to close their sockets.
    tokio::task::yield_now().await;
    // QUIC connections close with CONNECTION_CLOSE rather than by the peer's idle timeout.
    let endpoints: Vec<quinn::Endpoint> = shared.endpoints.borrow_mut().drain(..).collect();
    for e in &endpoints {
        e.close(VarInt::from_u32(0), b"switch stopping");
    }
    for e in &endpoints {
        let _ = tokio::time::timeout(FLUSH_WAIT_MAX, e.wait_idle()).await;
    }
    info!("stopped");
}

async fn timer_loop(shared: Rc<Shared>) {
    loop {
        let next = shared.engine.borrow().poll_timeout();
        shared.timer_at.set(next);
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => {
                shared.engine.borrow_mut().handle_timeout(Instant::now());
                shared.flush();
            }
            () = shared.timer.notified() => {}
        }
    }
}

/// Socket options every TCP link gets: no Nagle delay, a bounded kernel send buffer.
fn tune(stream: &TcpStream, link: &str) {
    if let Err(e) = stream.set_nodelay(true) {
        debug!(link, error = %e, "cannot set TCP_NODELAY");
    }
    if let Err(e) = socket2::SockRef::from(stream).set_send_buffer_size(TCP_SEND_BUFFER_BYTES) {
        debug!(link, error = %e, "cannot set SO_SNDBUF");
    }
}

/// Connections a listening link refused at its limit, logged at most once an interval.
struct Refusals {
    since: Option<Instant>,
    count: u64,
}

impl Refusals {
    fn refused(&mut self, link: &str, max: usize) {
        self.count += 1;
        let now = Instant::now();
        if self.since.is_none_or(|at| now.duration_since(at) >= REFUSED_LOG_INTERVAL) {
            warn!(link, max, refused = self.count, "connections refused: link at its connection limit");
            self.since = Some(now);
            self.count = 0;
        }
    }
}

async fn accept_loop(shared: Rc<Shared>, l: Listen, listener: TcpListener) {
    // Handshakes in progress count against the link's connection limit too.
    let handshaking = Rc::new(Cell::new(0usize));
    let mut refusals = Refusals { since: None, count: 0 };
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = shared.stop.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of descriptors and the like: back off briefly rather than spin.
                warn!(link = %l.name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if shared.open_on(l.spec) + handshaking.get() >= l.connections_max {
            drop(stream);
            refusals.refused(&l.name, l.connections_max);
            continue;
        }
        tune(&stream, &l.name);
        let acceptor = match &l.transport {
            Transport::Tls(LinkTls { side: TlsSide::Accept(a), .. }) => a.clone(),
            _ => {
                let Some(link) = shared.engine.borrow_mut().link_up(l.spec, Instant::now()) else {
                    refusals.refused(&l.name, l.connections_max);
                    continue;
                };
                debug!(link = %l.name, %peer, id = %link, "connection accepted");
                // Registered before the task runs, so the next accept already counts it.
                let conn = register(&shared, link, l.spec);
                let (rd, wr) = stream.into_split();
                tokio::task::spawn_local(connection(
                    Rc::clone(&shared),
                    link,
                    conn,
                    rd,
                    wr,
                    Reports::OnWrite,
                ));
                continue;
            }
        };
        let Transport::Tls(tls) = l.transport.clone() else { unreachable!("matched a TLS acceptor") };
        // A handshake runs in its own task: a peer that stalls in it holds up nobody else.
        handshaking.set(handshaking.get() + 1);
        let (shared, handshaking, name, spec) =
            (Rc::clone(&shared), Rc::clone(&handshaking), l.name.clone(), l.spec);
        tokio::task::spawn_local(async move {
            let result = tokio::time::timeout(TLS_HANDSHAKE_MAX, acceptor.accept(stream)).await;
            handshaking.set(handshaking.get() - 1);
            let tls_stream = match result {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return debug!(link = %name, %peer, error = %e, "TLS handshake refused"),
                Err(_) => return debug!(link = %name, %peer, "TLS handshake timed out"),
            };
            let who = match tls.authorize(tls_stream.get_ref().1.peer_certificates()) {
                Ok(who) => who,
                Err(e) => {
                    // A certificate of somebody else: the switch closes with close_notify, so the
                    // peer sees a clean TLS close before any application data (SPEC §2.2).
                    warn!(link = %name, %peer, error = %e, "connection refused: wrong participant");
                    let mut s = tls_stream;
                    s.get_mut().1.send_close_notify();
                    let _ = s.shutdown().await;
                    return;
                }
            };
            let Some(link) = shared.engine.borrow_mut().link_up(spec, Instant::now()) else {
                return warn!(link = %name, %peer, "connection refused: switch at its link limit");
            };
            info!(link = %name, %peer, id = %link, certificate = %who, "TLS connection accepted");
            let conn = register(&shared, link, spec);
            let (rd, wr) = tokio::io::split(tls_stream);
            connection(shared, link, conn, rd, wr, Reports::OnFlush).await;
        });
    }
}

/// What one connection attempt of a dialed link ended with.
enum Attempt {
    /// It never came up.
    Failed(DialError),
    /// It came up and later ended.
    Ended,
}

async fn dial_loop(shared: Rc<Shared>, d: Dial) {
    let mut backoff = Backoff::new(d.backoff_min, d.backoff_max, d.spec as u64);
    // A QUIC link keeps one endpoint for all its attempts.
    let quic = match &d.transport {
        Transport::Quic(q) => {
            let bind: SocketAddr =
                if d.address.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" }.parse().unwrap_or(d.address);
            match endpoint(bind, None) {
                Ok(e) => {
                    shared.endpoints.borrow_mut().push(e.clone());
                    Some((e, q.clone()))
                }
                Err(e) => return warn!(link = %d.name, error = %e, "cannot open a QUIC endpoint"),
            }
        }
        _ => None,
    };
    while !shared.stop.is_cancelled() {
        let started = Instant::now();
        // Not raced against the stop: a connection that is up must stay up through the drain
        // (sign-off, answers in flight) until the drain closes it; connecting is bounded by
        // the connect timeout and the handshake limit.
        let outcome = match (&d.transport, &quic) {
            (Transport::Quic(_), Some((endpoint, q))) => dial_quic(&shared, &d, endpoint, q).await,
            _ => dial_tcp(&shared, &d).await,
        };
        if let Attempt::Failed(why) = outcome {
            warn!(link = %d.name, address = %d.address, error = %why, "connect failed");
        }
        if backoff.healthy(started.elapsed()) {
            backoff.reset();
        }
        tokio::select! {
            () = tokio::time::sleep(backoff.next_delay()) => {}
            () = shared.stop.cancelled() => return,
        }
    }
}

/// One TCP (or TLS) connection of a dialed link, until it ends.
async fn dial_tcp(shared: &Rc<Shared>, d: &Dial) -> Attempt {
    let stream = match tokio::time::timeout(d.connect_timeout, TcpStream::connect(d.address)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Attempt::Failed(DialError::Connect(e)),
        Err(_) => return Attempt::Failed(DialError::TimedOut),
    };
    tune(&stream, &d.name);
    match &d.transport {
        Transport::Tls(tls) => {
            let s = match dial_tls(d, tls, stream).await {
                Ok(s) => s,
                Err(e) => return Attempt::Failed(e),
            };
            let Some(link) = shared.engine.borrow_mut().link_up(d.spec, Instant::now()) else {
                return Attempt::Failed(DialError::LinkLimit);
            };
            let conn = register(shared, link, d.spec);
            let (rd, wr) = tokio::io::split(s);
            connection(Rc::clone(shared), link, conn, rd, wr, Reports::OnFlush).await;
        }
        _ => {
            let Some(link) = shared.engine.borrow_mut().link_up(d.spec, Instant::now()) else {
                return Attempt::Failed(DialError::LinkLimit);
            };
            info!(link = %d.name, address = %d.address, id = %link, "connected");
            let conn = register(shared, link, d.spec);
            let (rd, wr) = stream.into_split();
            connection(Rc::clone(shared), link, conn, rd, wr, Reports::OnWrite).await;
        }
    }
    Attempt::Ended
}

/// One QUIC connection of a dialed link: authenticate the server, open the lanes (each
/// signs on as a link of its own), and wait for the connection to end.
async fn dial_quic(shared: &Rc<Shared>, d: &Dial, endpoint: &quinn::Endpoint, q: &QuicLink) -> Attempt {
    let QuicSide::Client(client, server_name) = &q.side else {
        return Attempt::Failed(DialError::Link(LinkError::Settings(
            "a dialed QUIC link needs a client side".into(),
        )));
    };
    let connecting = match endpoint.connect_with(client.clone(), d.address, server_name) {
        Ok(c) => c,
        Err(e) => return Attempt::Failed(DialError::QuicConnect(e)),
    };
    let conn = match tokio::time::timeout(d.connect_timeout, connecting).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Attempt::Failed(DialError::QuicConnection(e)),
        Err(_) => return Attempt::Failed(DialError::TimedOut),
    };
    let who = match q.authorize(&conn) {
        Ok(who) => who,
        Err(e) => {
            conn.close(VarInt::from_u32(1), b"wrong participant");
            return Attempt::Failed(e.into());
        }
    };
    info!(link = %d.name, address = %d.address, certificate = %who, lanes = q.settings.lanes, "connected over QUIC");
    for _ in 0..q.settings.lanes {
        let Ok((send, recv)) = conn.open_bi().await else { break };
        let Some(link) = shared.engine.borrow_mut().link_up(d.spec, Instant::now()) else { break };
        let handles = register(shared, link, d.spec);
        tokio::task::spawn_local(connection(Rc::clone(shared), link, handles, recv, send, Reports::OnWrite));
    }
    tokio::select! {
        e = conn.closed() => info!(link = %d.name, reason = %e, "QUIC connection closed"),
        () = lanes_drained(shared, d.spec) => conn.close(VarInt::from_u32(0), b"switch stopping"),
    }
    Attempt::Ended
}

/// Completes once the switch is stopping and no connection (lane) of link `spec` is left:
/// the drain has signed them off and answered what was in flight.
async fn lanes_drained(shared: &Shared, spec: usize) {
    shared.stop.cancelled().await;
    while shared.open_on(spec) > 0 {
        tokio::time::sleep(DRAIN_POLL).await;
    }
}

/// A QUIC listening link: each connection is authenticated, then every lane its peer opens
/// (up to the link's lane limit, which the transport enforces) becomes a link of its own.
async fn quic_accept_loop(shared: Rc<Shared>, l: Listen, endpoint: quinn::Endpoint) {
    let Transport::Quic(quic) = l.transport.clone() else { return };
    shared.endpoints.borrow_mut().push(endpoint.clone());
    let open = Rc::new(Cell::new(0usize));
    let mut refusals = Refusals { since: None, count: 0 };
    loop {
        // At the stop it accepts no more; the connections it has stay up through the drain
        // (their lanes are signed off and answered), and the endpoint closes after it.
        let incoming = tokio::select! {
            i = endpoint.accept() => i,
            () = shared.stop.cancelled() => return,
        };
        let Some(incoming) = incoming else { return };
        if open.get() >= l.connections_max {
            incoming.refuse();
            refusals.refused(&l.name, l.connections_max);
            continue;
        }
        open.set(open.get() + 1);
        let (shared, open, quic, name, spec) =
            (Rc::clone(&shared), Rc::clone(&open), quic.clone(), l.name.clone(), l.spec);
        tokio::task::spawn_local(async move {
            let peer = incoming.remote_address();
            let conn = match tokio::time::timeout(TLS_HANDSHAKE_MAX, async { incoming.accept()?.await }).await
            {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    open.set(open.get() - 1);
                    return debug!(link = %name, %peer, error = %e, "QUIC handshake refused");
                }
                Err(_) => {
                    open.set(open.get() - 1);
                    return debug!(link = %name, %peer, "QUIC handshake timed out");
                }
            };
            match quic.authorize(&conn) {
                Ok(who) => info!(link = %name, %peer, certificate = %who, "QUIC connection accepted"),
                Err(e) => {
                    conn.close(VarInt::from_u32(1), b"wrong participant");
                    open.set(open.get() - 1);
                    return warn!(link = %name, %peer, error = %e, "QUIC connection refused: wrong participant");
                }
            }
            lanes_accepted(&shared, spec, &name, &conn).await;
            open.set(open.get() - 1);
        });
    }
}

/// Runs every lane the peer of `conn` opens until the connection ends.
async fn lanes_accepted(shared: &Rc<Shared>, spec: usize, name: &str, conn: &quinn::Connection) {
    loop {
        let (send, recv) = tokio::select! {
            r = conn.accept_bi() => match r {
                Ok(s) => s,
                Err(e) => return info!(link = %name, reason = %e, "QUIC connection closed"),
            },
            () = shared.stop.cancelled() => return,
        };
        let Some(link) = shared.engine.borrow_mut().link_up(spec, Instant::now()) else {
            warn!(link = %name, "QUIC lane refused: switch at its link limit");
            continue;
        };
        debug!(link = %name, id = %link, lane = %send.id(), "QUIC lane open");
        let handles = register(shared, link, spec);
        tokio::task::spawn_local(connection(Rc::clone(shared), link, handles, recv, send, Reports::OnWrite));
    }
}

/// The TLS handshake of a dialed link, and the check of who answered.
async fn dial_tls(
    d: &Dial,
    tls: &LinkTls,
    stream: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, DialError> {
    let TlsSide::Connect(connector, name) = &tls.side else {
        return Err(LinkError::Settings("a dialed TLS link needs a client side".into()).into());
    };
    let s = match tokio::time::timeout(TLS_HANDSHAKE_MAX, connector.connect(name.clone(), stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(DialError::Handshake(e)),
        Err(_) => return Err(DialError::TimedOut),
    };
    let who = tls.authorize(s.get_ref().1.peer_certificates())?;
    info!(link = %d.name, address = %d.address, certificate = %who, "connected over TLS");
    Ok(s)
}

/// The handles a connection task waits on: woken to write or to read again, told to close
/// (and whether to linger).
struct Handles {
    writable: Rc<Notify>,
    resume: Rc<Notify>,
    closed: CancellationToken,
    linger: Rc<Cell<bool>>,
}

/// Records a new connection of link `spec` with the switch.
fn register(shared: &Shared, link: LinkId, spec: usize) -> Handles {
    let writable = Rc::new(Notify::new());
    let resume = Rc::new(Notify::new());
    let closed = CancellationToken::new();
    let linger = Rc::new(Cell::new(true));
    shared.conns.borrow_mut().insert(
        link,
        Conn {
            writable: Rc::clone(&writable),
            resume: Rc::clone(&resume),
            closed: closed.clone(),
            linger: Rc::clone(&linger),
            spec,
        },
    );
    Handles { writable, resume, closed, linger }
}

/// When a connection's written bytes count as delivered to the socket.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reports {
    /// As each write returns (TCP, and QUIC streams, which keep what they accepted until
    /// the peer acknowledges it).
    OnWrite,
    /// Once a flush returns (TLS: a write only reaches the session's buffer).
    OnFlush,
}

/// A close the switch decided: shut the sending side after what was written (FIN), then
/// read and discard what the peer still sends until it closes too, for a bounded time and
/// size. Closing a socket with unread input would reset the connection instead, and a reset
/// makes the peer's kernel drop the answers it had received but not yet read.
async fn linger<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(rd: &mut R, wr: &mut W) {
    let drain = async {
        let _ = wr.shutdown().await;
        let mut sink = vec![0u8; 16 * 1024];
        let mut total = 0usize;
        while total < CLOSE_LINGER_BYTES_MAX {
            match rd.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_LINGER, drain).await;
}

/// Drives one connection until either side closes it or the engine gives up on it.
async fn connection<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    shared: Rc<Shared>,
    link: LinkId,
    handles: Handles,
    mut rd: R,
    mut wr: W,
    reports: Reports,
) {
    let Handles { writable, resume, closed, linger: lingers } = handles;
    // The engine may already have written to the link (a sign-on): flush it.
    shared.flush();
    writable.notify_one();

    let reader = async {
        let mut buf = BytesMut::new();
        // What the next read asks for: doubles while reads fill it, halves while they come in
        // well under it; an idle link keeps READ_MIN_BYTES.
        let mut want = READ_MIN_BYTES;
        loop {
            buf.reserve(want);
            let room = buf.capacity() - buf.len();
            let n = match rd.read_buf(&mut buf).await {
                Ok(0) => return "peer closed",
                Ok(n) => n,
                Err(_) => return "read error",
            };
            if n >= room {
                want = (want * 2).min(READ_CHUNK_BYTES);
            } else if n < want / 4 {
                want = (want / 2).max(READ_MIN_BYTES);
            }
            let mut state = shared.engine.borrow_mut().handle_read(link, &mut buf, Instant::now());
            shared.flush();
            // Paused: the originator is at its in-flight limit with requests waiting; read
            // nothing more (TCP flow control holds the peer) until the engine says so.
            while state == ReadState::Paused {
                resume.notified().await;
                state = shared.engine.borrow_mut().handle_read(link, &mut buf, Instant::now());
                shared.flush();
            }
            if state == ReadState::Closed {
                return "closed by the switch";
            }
            if buf.is_empty() && buf.capacity() > 4 * want {
                // A burst is over: give its buffer back.
                buf = BytesMut::new();
            }
        }
    };
    let writer = async {
        loop {
            writable.notified().await;
            let mut unreported = 0usize;
            loop {
                let out = shared.engine.borrow_mut().take_output(link);
                let Some(out) = out else { break };
                let mut at = 0;
                while at < out.len() {
                    match wr.write(&out[at..]).await {
                        Ok(0) | Err(_) => return "write error",
                        Ok(n) => {
                            at += n;
                            match reports {
                                Reports::OnWrite => shared.engine.borrow_mut().handle_written(link, n),
                                Reports::OnFlush => unreported += n,
                            }
                        }
                    }
                }
            }
            // Every transport is flushed after each batch: TLS keeps records buffered until
            // then.
            if wr.flush().await.is_err() {
                return "write error";
            }
            if unreported > 0 {
                shared.engine.borrow_mut().handle_written(link, unreported);
            }
        }
    };
    let why = tokio::select! {
        why = reader => why,
        why = writer => why,
        () = closed.cancelled() => "closed by the switch",
    };
    if why == "closed by the switch" && lingers.get() {
        linger(&mut rd, &mut wr).await;
    }
    debug!(%link, why, "connection closed");
    shared.conns.borrow_mut().remove(&link);
    shared.engine.borrow_mut().link_down(link, Instant::now());
    shared.flush();
}
