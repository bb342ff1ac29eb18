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
use corridor_engine::{Engine, Event, LinkCounts, LinkId, Stats};
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
    limits::{DRAIN_POLL, FLUSH_WAIT_MAX, READ_CHUNK_BYTES, TLS_HANDSHAKE_MAX},
    quic::{endpoint, QuicLink},
    tls::LinkTls,
};

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
    /// Most connections open at once on it (TLS handshakes in progress included).
    pub connections_max: usize,
    /// Mutual TLS, when the link has it.
    pub tls: Option<LinkTls>,
    /// QUIC instead of TCP (its own mutual TLS), when the link has it.
    pub quic: Option<QuicLink>,
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
    /// Mutual TLS, when the link has it.
    pub tls: Option<LinkTls>,
    /// QUIC instead of TCP (its own mutual TLS), when the link has it.
    pub quic: Option<QuicLink>,
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
    closed: CancellationToken,
    spec: usize,
}

struct Shared {
    engine: RefCell<Engine>,
    conns: RefCell<FxHashMap<LinkId, Conn>>,
    timer: Notify,
    timer_at: Cell<Option<Instant>>,
    stop: CancellationToken,
}

impl Shared {
    /// After every engine call: wake the writers of links with output, close the links the
    /// engine gave up on, and wake the timer if the next deadline moved earlier.
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
                    tracing::debug!(%link, ?reason, "closing connection");
                    if let Some(c) = conns.get(&link) {
                        c.closed.cancel();
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
            let bound = match &l.quic {
                None => TcpListener::bind(l.address).await.map(Listener::Tcp),
                Some(q) => endpoint(l.address, q.server.clone()).map(Listener::Quic),
            };
            let listener = bound.map_err(|e| {
                io::Error::new(e.kind(), format!("link {}: cannot listen on {}: {e}", l.name, l.address))
            })?;
            let transport = if l.quic.is_some() { "quic" } else { "tcp" };
            info!(link = %l.name, address = %listener.local_addr()?, transport, "listening");
            listeners.push((l, listener));
        }
        let shared = Rc::new(Shared {
            engine: RefCell::new(engine),
            conns: RefCell::new(FxHashMap::default()),
            timer: Notify::new(),
            timer_at: Cell::new(None),
            stop: CancellationToken::new(),
        });
        Ok(Self { shared, listeners, dials: net.dials, drain_timeout: net.drain_timeout })
    }

    /// The address each listening link is bound to, by link name (port 0 becomes the real
    /// port).
    #[must_use]
    pub fn local_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.listeners.iter().filter_map(|(l, s)| Some((l.name.clone(), s.local_addr().ok()?))).collect()
    }

    /// Runs the switch until `shutdown` completes, then drains: stops accepting and
    /// reconnecting, signs off, declines new requests, waits up to the drain timeout for the
    /// requests in flight, flushes, and closes every connection.
    ///
    /// # Errors
    ///
    /// Never for network trouble (links come and go); only if the runtime fails.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<Report> {
        let local = LocalSet::new();
        let Self { shared, listeners, dials, drain_timeout } = self;
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
                    if d.quic.is_some() {
                        tokio::task::spawn_local(quic_dial_loop(Rc::clone(&shared), d));
                    } else {
                        tokio::task::spawn_local(dial_loop(Rc::clone(&shared), d));
                    }
                }
                tokio::task::spawn_local(timer_loop(Rc::clone(&shared)));
                shutdown.await;
                drain(&shared, drain_timeout).await;
            })
            .await;
        let engine = engine.engine.borrow();
        let names = engine.config().links.iter().map(|l| l.name.clone());
        Ok(Report { stats: engine.stats().clone(), links: names.zip(engine.link_counts()).collect() })
    }
}

/// What a switch did, as it stopped.
#[derive(Clone, Debug)]
pub struct Report {
    /// Switch-wide counters.
    pub stats: Stats,
    /// Per configured link, by name.
    pub links: Vec<(String, LinkCounts)>,
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

async fn accept_loop(shared: Rc<Shared>, l: Listen, listener: TcpListener) {
    // Handshakes in progress count against the link's connection limit too.
    let handshaking = Rc::new(Cell::new(0usize));
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
            warn!(link = %l.name, %peer, max = l.connections_max, "connection refused: link at its connection limit");
            drop(stream);
            continue;
        }
        if let Err(e) = stream.set_nodelay(true) {
            warn!(link = %l.name, error = %e, "cannot set TCP_NODELAY");
        }
        let Some(tls) = l.tls.clone() else {
            let Some(link) = shared.engine.borrow_mut().link_up(l.spec, Instant::now()) else {
                warn!(link = %l.name, %peer, "connection refused: switch at its link limit");
                continue;
            };
            info!(link = %l.name, %peer, id = %link, "connection accepted");
            // Registered before the task runs, so the next accept already counts it.
            let conn = register(&shared, link, l.spec);
            let (rd, wr) = stream.into_split();
            tokio::task::spawn_local(connection(Rc::clone(&shared), link, conn, rd, wr));
            continue;
        };
        // A handshake runs in its own task: a peer that stalls in it holds up nobody else.
        handshaking.set(handshaking.get() + 1);
        let (shared, handshaking, name, spec) =
            (Rc::clone(&shared), Rc::clone(&handshaking), l.name.clone(), l.spec);
        tokio::task::spawn_local(async move {
            let acceptor = tls.acceptor.clone();
            let result = match acceptor {
                Some(a) => tokio::time::timeout(TLS_HANDSHAKE_MAX, a.accept(stream)).await,
                None => {
                    handshaking.set(handshaking.get() - 1);
                    return;
                }
            };
            handshaking.set(handshaking.get() - 1);
            let tls_stream = match result {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return warn!(link = %name, %peer, error = %e, "TLS handshake refused"),
                Err(_) => return warn!(link = %name, %peer, "TLS handshake timed out"),
            };
            let who = match tls.authorize(tls_stream.get_ref().1.peer_certificates()) {
                Ok(who) => who,
                Err(e) => {
                    return warn!(link = %name, %peer, error = %e, "connection refused: wrong participant")
                }
            };
            let Some(link) = shared.engine.borrow_mut().link_up(spec, Instant::now()) else {
                return warn!(link = %name, %peer, "connection refused: switch at its link limit");
            };
            info!(link = %name, %peer, id = %link, certificate = %who, "TLS connection accepted");
            let conn = register(&shared, link, spec);
            let (rd, wr) = tokio::io::split(tls_stream);
            connection(shared, link, conn, rd, wr).await;
        });
    }
}

async fn dial_loop(shared: Rc<Shared>, d: Dial) {
    let mut backoff = d.backoff_min;
    // A small xorshift for jitter, seeded per link: reconnecting links spread out.
    let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ (d.spec as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    loop {
        if shared.stop.is_cancelled() {
            return;
        }
        let attempt = tokio::time::timeout(d.connect_timeout, TcpStream::connect(d.address));
        let connected = tokio::select! {
            r = attempt => r,
            () = shared.stop.cancelled() => return,
        };
        match connected {
            Ok(Ok(stream)) => {
                if let Err(e) = stream.set_nodelay(true) {
                    warn!(link = %d.name, error = %e, "cannot set TCP_NODELAY");
                }
                let started = Instant::now();
                match &d.tls {
                    None => {
                        let up = shared.engine.borrow_mut().link_up(d.spec, Instant::now());
                        if let Some(link) = up {
                            info!(link = %d.name, address = %d.address, id = %link, "connected");
                            let conn = register(&shared, link, d.spec);
                            let (rd, wr) = stream.into_split();
                            connection(Rc::clone(&shared), link, conn, rd, wr).await;
                        }
                    }
                    Some(tls) => {
                        if let Some(tls_stream) = dial_tls(&d, tls, stream).await {
                            let up = shared.engine.borrow_mut().link_up(d.spec, Instant::now());
                            if let Some(link) = up {
                                let conn = register(&shared, link, d.spec);
                                let (rd, wr) = tokio::io::split(tls_stream);
                                connection(Rc::clone(&shared), link, conn, rd, wr).await;
                            }
                        }
                    }
                }
                if started.elapsed() > d.backoff_max {
                    backoff = d.backoff_min;
                }
            }
            Ok(Err(e)) => warn!(link = %d.name, address = %d.address, error = %e, "connect failed"),
            Err(_) => warn!(link = %d.name, address = %d.address, "connect timed out"),
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // Full jitter on the upper half: wait between backoff/2 and backoff.
        let half = backoff / 2;
        let jitter = Duration::from_nanos(seed % (half.as_nanos().max(1) as u64));
        tokio::select! {
            () = tokio::time::sleep(half + jitter) => {}
            () = shared.stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(d.backoff_max);
    }
}

/// A QUIC listening link: each connection is authenticated, then every lane its peer opens
/// (up to the link's lane limit, which the transport enforces) becomes a link of its own.
async fn quic_accept_loop(shared: Rc<Shared>, l: Listen, endpoint: quinn::Endpoint) {
    let Some(quic) = l.quic.clone() else { return };
    let open = Rc::new(Cell::new(0usize));
    loop {
        let incoming = tokio::select! {
            i = endpoint.accept() => i,
            () = shared.stop.cancelled() => {
                endpoint.close(VarInt::from_u32(0), b"switch stopping");
                return;
            }
        };
        let Some(incoming) = incoming else { return };
        if open.get() >= l.connections_max {
            warn!(link = %l.name, peer = %incoming.remote_address(), max = l.connections_max, "QUIC connection refused: link at its connection limit");
            incoming.refuse();
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
                    return warn!(link = %name, %peer, error = %e, "QUIC handshake refused");
                }
                Err(_) => {
                    open.set(open.get() - 1);
                    return warn!(link = %name, %peer, "QUIC handshake timed out");
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
        tokio::task::spawn_local(connection(Rc::clone(shared), link, handles, recv, send));
    }
}

/// A QUIC dialed link: connect, authenticate the server, open the lanes (each signs on as a
/// link of its own), wait for the connection to end, and redial with backoff.
async fn quic_dial_loop(shared: Rc<Shared>, d: Dial) {
    let Some(quic) = d.quic.clone() else { return };
    let Some((client, server_name)) = quic.client.clone() else { return };
    let bind: SocketAddr =
        if d.address.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" }.parse().unwrap_or(d.address);
    let endpoint = match endpoint(bind, None) {
        Ok(mut e) => {
            e.set_default_client_config(client);
            e
        }
        Err(e) => return warn!(link = %d.name, error = %e, "cannot open a QUIC endpoint"),
    };
    let mut backoff = d.backoff_min;
    while !shared.stop.is_cancelled() {
        let started = Instant::now();
        let attempt = async {
            let connecting = endpoint.connect(d.address, &server_name).map_err(|e| e.to_string())?;
            tokio::time::timeout(d.connect_timeout, connecting)
                .await
                .map_err(|_| "timed out".to_owned())?
                .map_err(|e| e.to_string())
        };
        let conn = tokio::select! {
            r = attempt => r,
            () = shared.stop.cancelled() => return,
        };
        match conn {
            Err(e) => warn!(link = %d.name, address = %d.address, error = %e, "QUIC connect failed"),
            Ok(conn) => match quic.authorize(&conn) {
                Err(e) => {
                    conn.close(VarInt::from_u32(1), b"wrong participant");
                    warn!(link = %d.name, address = %d.address, error = %e, "disconnecting: wrong participant");
                }
                Ok(who) => {
                    info!(link = %d.name, address = %d.address, certificate = %who, lanes = quic.settings.lanes, "connected over QUIC");
                    for _ in 0..quic.settings.lanes {
                        let Ok((send, recv)) = conn.open_bi().await else { break };
                        let Some(link) = shared.engine.borrow_mut().link_up(d.spec, Instant::now()) else {
                            break;
                        };
                        let handles = register(&shared, link, d.spec);
                        tokio::task::spawn_local(connection(Rc::clone(&shared), link, handles, recv, send));
                    }
                    tokio::select! {
                        e = conn.closed() => info!(link = %d.name, reason = %e, "QUIC connection closed"),
                        () = shared.stop.cancelled() => {
                            conn.close(VarInt::from_u32(0), b"switch stopping");
                            return;
                        }
                    }
                }
            },
        }
        if started.elapsed() > d.backoff_max {
            backoff = d.backoff_min;
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shared.stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(d.backoff_max);
    }
}

/// The TLS handshake of a dialed link, and the check of who answered.
async fn dial_tls(
    d: &Dial,
    tls: &LinkTls,
    stream: TcpStream,
) -> Option<tokio_rustls::client::TlsStream<TcpStream>> {
    let (connector, name) = tls.connector.as_ref()?;
    let s = match tokio::time::timeout(TLS_HANDSHAKE_MAX, connector.connect(name.clone(), stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            warn!(link = %d.name, address = %d.address, error = %e, "TLS handshake failed");
            return None;
        }
        Err(_) => {
            warn!(link = %d.name, address = %d.address, "TLS handshake timed out");
            return None;
        }
    };
    match tls.authorize(s.get_ref().1.peer_certificates()) {
        Ok(who) => {
            info!(link = %d.name, address = %d.address, certificate = %who, "connected over TLS");
            Some(s)
        }
        Err(e) => {
            warn!(link = %d.name, address = %d.address, error = %e, "disconnecting: wrong participant");
            None
        }
    }
}

/// The handles a connection task waits on: woken to write, told to close.
struct Handles {
    writable: Rc<Notify>,
    closed: CancellationToken,
}

/// Records a new connection of link `spec` with the switch.
fn register(shared: &Shared, link: LinkId, spec: usize) -> Handles {
    let writable = Rc::new(Notify::new());
    let closed = CancellationToken::new();
    shared
        .conns
        .borrow_mut()
        .insert(link, Conn { writable: Rc::clone(&writable), closed: closed.clone(), spec });
    Handles { writable, closed }
}

/// Drives one connection until either side closes it or the engine gives up on it.
async fn connection<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    shared: Rc<Shared>,
    link: LinkId,
    handles: Handles,
    mut rd: R,
    mut wr: W,
) {
    let Handles { writable, closed } = handles;
    // The engine may already have written to the link (a sign-on): flush it.
    shared.flush();
    writable.notify_one();

    let reader = async {
        let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
        loop {
            buf.reserve(READ_CHUNK_BYTES);
            match rd.read_buf(&mut buf).await {
                Ok(0) => return "peer closed",
                Ok(_) => {
                    shared.engine.borrow_mut().handle_read(link, &mut buf, Instant::now());
                    shared.flush();
                }
                Err(_) => return "read error",
            }
        }
    };
    let writer = async {
        loop {
            writable.notified().await;
            loop {
                let out = shared.engine.borrow_mut().take_output(link);
                let Some(out) = out else { break };
                if wr.write_all(&out).await.is_err() {
                    return "write error";
                }
            }
        }
    };
    let why = tokio::select! {
        why = reader => why,
        why = writer => why,
        () = closed.cancelled() => "closed by the switch",
    };
    info!(%link, why, "connection closed");
    shared.conns.borrow_mut().remove(&link);
    shared.engine.borrow_mut().link_down(link, Instant::now());
    shared.flush();
}
