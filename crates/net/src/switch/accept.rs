//! Listening links: binding, accepting within the link's connection limit (displacing a
//! squatter), and each accepted connection's handshake (TCP, TLS, QUIC).

#[allow(clippy::wildcard_imports)] // the module's own parts
use super::*;

/// Binds a listening link's address.
pub(super) async fn bind_listener(l: &Listen) -> io::Result<Listener> {
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
    Ok(listener)
}

pub(super) fn spawn_listen(shared: &Rc<Shared>, l: Listen, listener: Listener) {
    let quic = match &listener {
        Listener::Quic(e) => Some(e.clone()),
        Listener::Tcp(_) => None,
    };
    let spec = l.spec;
    let settings = Rc::new(RefCell::new(l));
    let cancel = CancellationToken::new();
    shared.loops.borrow_mut().insert(spec, LoopCtl::Listen(Rc::clone(&settings), cancel.clone(), quic));
    tokio::task::spawn_local(accept_loop(Rc::clone(shared), settings, cancel, listener));
}

/// Socket options every TCP link gets: no Nagle delay, a bounded kernel send buffer.
pub(super) fn tune(stream: &TcpStream, link: &str) {
    if let Err(e) = stream.set_nodelay(true) {
        debug!(link, error = %e, "cannot set TCP_NODELAY");
    }
    if let Err(e) = socket2::SockRef::from(stream).set_send_buffer_size(TCP_SEND_BUFFER_BYTES) {
        debug!(link, error = %e, "cannot set SO_SNDBUF");
    }
}

/// A warning a peer can trigger, printed at most once an interval with the count of those
/// left out since.
#[derive(Default)]
pub(crate) struct LogEvery {
    since: Option<Instant>,
    left_out: u64,
}

impl LogEvery {
    /// Whether to print now: `Some(left out before this one)`.
    pub(crate) fn hit(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self.since.is_some_and(|at| now.duration_since(at) < REFUSED_LOG_INTERVAL) {
            self.left_out += 1;
            return None;
        }
        self.since = Some(now);
        Some(std::mem::take(&mut self.left_out))
    }
}

/// The throttled warnings of one listening link.
#[derive(Default)]
pub(super) struct AcceptLog {
    at_limit: LogEvery,
    displaced: LogEvery,
    wrong_participant: LogEvery,
    link_limit: LogEvery,
}

/// What a listener accepted.
pub(super) enum Incoming {
    Tcp(TcpStream, SocketAddr),
    // Boxed: a QUIC handshake's state is large next to a TCP stream.
    Quic(Box<quinn::Incoming>),
}

impl Listener {
    /// The next connection; `None` once the listener is closed.
    async fn accept(&self) -> Option<io::Result<Incoming>> {
        match self {
            Self::Tcp(l) => Some(l.accept().await.map(|(s, peer)| Incoming::Tcp(s, peer))),
            Self::Quic(e) => e.accept().await.map(|i| Ok(Incoming::Quic(Box::new(i)))),
        }
    }
}

/// The one accept loop, for every transport: the link's connection limit (TLS handshakes in
/// progress count, and on QUIC every connection, whatever its lanes), refusals closed at
/// once with one log line an interval, and each handshake in a task of its own, so a peer
/// that stalls in it holds up nobody else.
pub(super) async fn accept_loop(
    shared: Rc<Shared>,
    settings: Rc<RefCell<Listen>>,
    cancel: CancellationToken,
    listener: Listener,
) {
    if let Listener::Quic(e) = &listener {
        shared.endpoints.borrow_mut().push(e.clone());
    }
    // A node of a cluster takes connections once its shards' journals are replicated and
    // their first appends of this start are in (see `journaling` and `StartGate`).
    tokio::select! {
        () = shared.start.opened() => {}
        () = cancel.cancelled() => return,
        () = shared.stop.cancelled() => return,
    }
    let held = Rc::new(Cell::new(0usize));
    let log = Rc::new(RefCell::new(AcceptLog::default()));
    loop {
        // At the stop it accepts no more; the connections it has stay up through the drain.
        // A reload that removed the link (or moved its address) stops it the same way.
        // Biased: once stopped or removed, no connection waiting in the backlog is taken.
        let next = tokio::select! {
            biased;
            () = shared.stop.cancelled() => return,
            () = cancel.cancelled() => {
                if let Listener::Quic(e) = &listener {
                    // No new connections; those it has drain and close as retired links.
                    e.set_server_config(None);
                }
                return info!(link = %settings.borrow().name, "listener closed by a reload");
            }
            i = listener.accept() => i,
        };
        let l = settings.borrow().clone();
        let incoming = match next {
            None => return,
            Some(Ok(i)) => i,
            Some(Err(e)) => {
                // Out of descriptors and the like: back off briefly rather than spin.
                warn!(link = %l.name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let links = if matches!(incoming, Incoming::Tcp(..)) { shared.open_on(l.spec) } else { 0 };
        if links + held.get() >= l.connections_max {
            // A TCP or TLS connection displaces the oldest one that never signed on or
            // stalled mid-frame (its close is at once, without lingering); QUIC connections
            // carry many lanes and are not displaced.
            let displaced = match incoming {
                Incoming::Tcp(..) => shared.input(|e| e.displace(l.spec, Instant::now())),
                Incoming::Quic(_) => None,
            };
            if let Some(old) = displaced {
                if let Some(left_out) = log.borrow_mut().displaced.hit() {
                    info!(link = %l.name, max = l.connections_max, displaced = %old, left_out, "link at its connection limit: the oldest connection not signed on or stalled mid-frame made room");
                }
            } else {
                if let Incoming::Quic(i) = incoming {
                    i.refuse();
                }
                if let Some(left_out) = log.borrow_mut().at_limit.hit() {
                    warn!(link = %l.name, max = l.connections_max, left_out, "connection refused: link at its connection limit");
                }
                continue;
            }
        }
        let task = Accepted {
            shared: Rc::clone(&shared),
            held: Rc::clone(&held),
            log: Rc::clone(&log),
            spec: l.spec,
            name: l.name.clone(),
        };
        match (incoming, &l.transport) {
            (Incoming::Tcp(stream, peer), Transport::Tls(tls)) => {
                tune(&stream, &l.name);
                held.set(held.get() + 1);
                tokio::task::spawn_local(task.tls(stream, peer, tls.clone()));
            }
            (Incoming::Tcp(stream, peer), _) => {
                tune(&stream, &l.name);
                task.tcp(stream, peer);
            }
            (Incoming::Quic(incoming), Transport::Quic(quic)) => {
                held.set(held.get() + 1);
                tokio::task::spawn_local(task.quic(*incoming, quic.clone()));
            }
            (Incoming::Quic(incoming), _) => incoming.refuse(),
        }
    }
}

/// A connection a listening link accepted, on its way to becoming links.
pub(super) struct Accepted {
    shared: Rc<Shared>,
    /// The link's count of connections not yet links (see [`accept_loop`]).
    held: Rc<Cell<usize>>,
    log: Rc<RefCell<AcceptLog>>,
    spec: usize,
    name: String,
}

impl Accepted {
    /// A link for the connection, or `None` (and a throttled warning) at the engine's limit.
    fn link_up(&self) -> Option<LinkId> {
        let up = self.shared.input(|e| e.link_up(self.spec, Instant::now()));
        if up.is_none() {
            if let Some(left_out) = self.log.borrow_mut().link_limit.hit() {
                warn!(link = %self.name, left_out, "connection refused: switch at its link limit");
            }
        }
        up
    }

    fn wrong_participant(&self, peer: SocketAddr, e: &LinkError) {
        if let Some(left_out) = self.log.borrow_mut().wrong_participant.hit() {
            warn!(link = %self.name, %peer, error = %e, left_out, "connection refused: wrong participant");
        }
    }

    fn tcp(self, stream: TcpStream, peer: SocketAddr) {
        let Some(link) = self.link_up() else { return };
        debug!(link = %self.name, %peer, id = %link, "connection accepted");
        // Registered before the task runs, so the next accept already counts it.
        let conn = register(&self.shared, link, self.spec);
        let (rd, wr) = stream.into_split();
        tokio::task::spawn_local(connection(self.shared, link, conn, rd, wr, Reports::OnWrite));
    }

    async fn tls(self, stream: TcpStream, peer: SocketAddr, tls: LinkTls) {
        let TlsSide::Accept(acceptor) = &tls.side else {
            unreachable!("a listening TLS link has an acceptor (the configuration builds it so)")
        };
        let result = tokio::time::timeout(TLS_HANDSHAKE_MAX, acceptor.accept(stream)).await;
        self.held.set(self.held.get() - 1);
        let tls_stream = match result {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return debug!(link = %self.name, %peer, error = %e, "TLS handshake refused"),
            Err(_) => return debug!(link = %self.name, %peer, "TLS handshake timed out"),
        };
        let who = match tls.authorize(tls_stream.get_ref().1.peer_certificates()) {
            Ok(who) => who,
            Err(e) => {
                // A certificate of somebody else: close_notify, then the close, before any
                // application data (SPEC §2.3, refusals).
                self.wrong_participant(peer, &e);
                let mut s = tls_stream;
                s.get_mut().1.send_close_notify();
                let _ = s.shutdown().await;
                return;
            }
        };
        let Some(link) = self.link_up() else { return };
        debug!(link = %self.name, %peer, id = %link, certificate = %who, "TLS connection accepted");
        let conn = register(&self.shared, link, self.spec);
        let (rd, wr) = tokio::io::split(tls_stream);
        connection(self.shared, link, conn, rd, wr, Reports::OnFlush).await;
    }

    /// Authenticates a QUIC connection, then runs every lane its peer opens (up to the link's
    /// lane limit, which the transport enforces) as a link of its own.
    async fn quic(self, incoming: quinn::Incoming, quic: QuicLink) {
        let peer = incoming.remote_address();
        let handshake = tokio::time::timeout(TLS_HANDSHAKE_MAX, async { incoming.accept()?.await }).await;
        let conn = match handshake {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                self.held.set(self.held.get() - 1);
                return debug!(link = %self.name, %peer, error = %e, "QUIC handshake refused");
            }
            Err(_) => {
                self.held.set(self.held.get() - 1);
                return debug!(link = %self.name, %peer, "QUIC handshake timed out");
            }
        };
        match quic.authorize(&conn) {
            Ok(who) => debug!(link = %self.name, %peer, certificate = %who, "QUIC connection accepted"),
            Err(e) => {
                conn.close(VarInt::from_u32(1), b"wrong participant");
                self.held.set(self.held.get() - 1);
                return self.wrong_participant(peer, &e);
            }
        }
        loop {
            let (send, recv) = tokio::select! {
                r = conn.accept_bi() => match r {
                    Ok(s) => s,
                    Err(e) => {
                        debug!(link = %self.name, reason = %e, "QUIC connection closed");
                        break;
                    }
                },
                () = self.shared.stop.cancelled() => {
                    // Keep the connection until its lanes are drained (or it ends).
                    tokio::select! {
                        _ = conn.closed() => {}
                        () = lanes_drained(&self.shared, self.spec) => {}
                    }
                    break;
                }
            };
            let Some(link) = self.link_up() else { continue };
            debug!(link = %self.name, id = %link, lane = %send.id(), "QUIC lane open");
            let handles = register(&self.shared, link, self.spec);
            tokio::task::spawn_local(connection(
                Rc::clone(&self.shared),
                link,
                handles,
                recv,
                send,
                Reports::OnWrite,
            ));
        }
        self.held.set(self.held.get() - 1);
    }
}
