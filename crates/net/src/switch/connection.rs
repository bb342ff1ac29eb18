//! One connection: its reader and writer driving the engine, and the linger of a close
//! the switch decided.

#[allow(clippy::wildcard_imports)] // the module's own parts
use super::*;

/// The handles a connection task waits on: woken to write or to read again, told to close
/// (and whether to linger).
pub(crate) struct Handles {
    pub(crate) writable: Rc<Notify>,
    pub(crate) resume: Rc<Notify>,
    pub(crate) closed: CancellationToken,
    pub(crate) linger: Rc<Cell<bool>>,
}

/// Hands what `buf` holds to the engine as read on `link`; while the engine holds the link's
/// reading back (at its in-flight limit), waits for `resume` and hands it again. `false`
/// once the engine closed the link.
pub(crate) async fn hand_over(shared: &Shared, link: LinkId, buf: &mut BytesMut, resume: &Notify) -> bool {
    let mut state = shared.input(|e| e.handle_read(link, buf, Instant::now()));
    while state == ReadState::Paused {
        resume.notified().await;
        state = shared.input(|e| e.handle_read(link, buf, Instant::now()));
    }
    state != ReadState::Closed
}

/// Records a new connection of link `spec` with the switch.
pub(crate) fn register(shared: &Shared, link: LinkId, spec: usize) -> Handles {
    let writable = Rc::new(Notify::new());
    let resume = Rc::new(Notify::new());
    let closed = CancellationToken::new();
    let linger = Rc::new(Cell::new(true));
    let open = {
        let mut conns = shared.conns.borrow_mut();
        conns.insert(
            link,
            Conn {
                writable: Rc::clone(&writable),
                resume: Rc::clone(&resume),
                closed: closed.clone(),
                linger: Rc::clone(&linger),
                spec,
            },
        );
        conns.len()
    };
    shared.conns_peak.set(shared.conns_peak.get().max(open));
    Handles { writable, resume, closed, linger }
}

/// When a connection's written bytes count as delivered to the socket.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Reports {
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
pub(super) async fn linger<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(rd: &mut R, wr: &mut W) {
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
pub(super) async fn connection<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
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
            // Paused: the originator is at its in-flight limit with requests waiting; read
            // nothing more (TCP flow control holds the peer) until the engine says so.
            if !hand_over(&shared, link, &mut buf, &resume).await {
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
    shared.input(|e| e.link_down(link, Instant::now()));
    shared.connection_gone();
}
