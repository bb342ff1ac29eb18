//! Dialed links: connecting with backoff over TCP, TLS or QUIC, and redialing.

#[allow(clippy::wildcard_imports)] // the module's own parts
use super::*;

pub(super) fn spawn_dial(shared: &Rc<Shared>, d: Dial) {
    let spec = d.spec;
    let settings = Rc::new(RefCell::new(d));
    let cancel = CancellationToken::new();
    shared.loops.borrow_mut().insert(spec, LoopCtl::Dial(Rc::clone(&settings), cancel.clone()));
    tokio::task::spawn_local(dial_loop(Rc::clone(shared), settings, cancel));
}

/// What one connection attempt of a dialed link ended with.
pub(super) enum Attempt {
    /// It never came up.
    Failed(DialError),
    /// It came up and later ended.
    Ended,
}

pub(super) async fn dial_loop(shared: Rc<Shared>, settings: Rc<RefCell<Dial>>, cancel: CancellationToken) {
    let d = settings.borrow().clone();
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
    while !shared.stop.is_cancelled() && !cancel.is_cancelled() {
        // Timings and certificates a reload changed apply from the next attempt.
        let d = settings.borrow().clone();
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
            () = cancel.cancelled() => return,
        }
    }
}

/// One TCP (or TLS) connection of a dialed link, until it ends.
pub(super) async fn dial_tcp(shared: &Rc<Shared>, d: &Dial) -> Attempt {
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
            let Some(link) = shared.input(|e| e.link_up(d.spec, Instant::now())) else {
                return Attempt::Failed(DialError::LinkLimit);
            };
            let conn = register(shared, link, d.spec);
            let (rd, wr) = tokio::io::split(s);
            connection(Rc::clone(shared), link, conn, rd, wr, Reports::OnFlush).await;
        }
        _ => {
            let Some(link) = shared.input(|e| e.link_up(d.spec, Instant::now())) else {
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
pub(super) async fn dial_quic(
    shared: &Rc<Shared>,
    d: &Dial,
    endpoint: &quinn::Endpoint,
    q: &QuicLink,
) -> Attempt {
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
        let Some(link) = shared.input(|e| e.link_up(d.spec, Instant::now())) else { break };
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
pub(super) async fn lanes_drained(shared: &Shared, spec: usize) {
    shared.stop.cancelled().await;
    while shared.open_on(spec) > 0 {
        tokio::time::sleep(DRAIN_POLL).await;
    }
}

/// The TLS handshake of a dialed link, and the check of who answered.
pub(super) async fn dial_tls(
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
