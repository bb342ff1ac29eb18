//! Simple blocking peers for end-to-end tests: an acquirer client and an issuer simulator
//! speaking any framing and dialect over loopback TCP. Every wait is bounded.

// These peers are plain threads with blocking sockets, not runtime tasks: sleeping is how
// they wait.
#![allow(clippy::disallowed_methods)]

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread,
    time::{Duration, Instant},
};

use bytes::BytesMut;
use corridor_wire::{de, Message, Mti, OwnedMessage};

/// Longest any test peer waits for anything.
pub const WAIT_MAX: Duration = Duration::from_secs(10);

/// How a peer frames and encodes: `corridor-wire`'s framing and dialect pair.
pub use corridor_wire::Wire;

/// Frames `m` for `wire` with `correlation` (native only).
///
/// # Panics
///
/// If `m` does not encode: a test bug.
#[must_use]
pub fn frame(wire: Wire, correlation: u64, m: &OwnedMessage) -> Vec<u8> {
    let mut out = BytesMut::new();
    wire.frame(correlation, &mut out, |b| m.encode(wire.dialect, b)).expect("test messages fit a frame");
    out.to_vec()
}

/// One connection speaking the protocol, blocking.
pub struct Conn {
    stream: TcpStream,
    wire: Wire,
    buf: BytesMut,
    eof: bool,
}

impl Conn {
    /// Connects to `addr`.
    ///
    /// # Panics
    ///
    /// If the connection fails.
    #[must_use]
    pub fn connect(addr: SocketAddr, wire: Wire) -> Self {
        let stream = TcpStream::connect_timeout(&addr, WAIT_MAX).expect("connect");
        Self::new(stream, wire)
    }

    fn new(stream: TcpStream, wire: Wire) -> Self {
        stream.set_nodelay(true).ok();
        Self { stream, wire, buf: BytesMut::new(), eof: false }
    }

    /// Sends `m`.
    ///
    /// # Panics
    ///
    /// If the write fails.
    pub fn send(&mut self, correlation: u64, m: &OwnedMessage) {
        let bytes = frame(self.wire, correlation, m);
        self.stream.write_all(&bytes).expect("write");
    }

    /// Sends `m`; whether it could (a peer behind a fault-injecting proxy sees its
    /// connection cut under it).
    pub fn try_send(&mut self, correlation: u64, m: &OwnedMessage) -> bool {
        let bytes = frame(self.wire, correlation, m);
        self.stream.write_all(&bytes).is_ok()
    }

    /// Writes raw bytes.
    ///
    /// # Panics
    ///
    /// If the write fails.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// The next message, or `None` if none comes within `wait` (or the peer closed).
    ///
    /// # Panics
    ///
    /// If the switch sends a frame or message that does not decode.
    pub fn recv_within(&mut self, wait: Duration) -> Option<(u64, OwnedMessage)> {
        let deadline = Instant::now() + wait;
        loop {
            let frame = self.wire.decoder().decode(&mut self.buf).expect("valid frame");
            if let Some((c, body)) = frame {
                let m = Message::parse(self.wire.dialect, body).expect("the switch sends valid messages");
                return Some((c, OwnedMessage::from(&m)));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.stream.set_read_timeout(Some(left.min(Duration::from_millis(100)))).ok();
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.eof = true;
                    return None;
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => {
                    self.eof = true;
                    return None;
                }
            }
        }
    }

    /// Whether a read found the connection closed.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.eof
    }

    /// The next message that is not network management (echoes are answered on the way).
    pub fn recv_app_within(&mut self, wait: Duration) -> Option<(u64, OwnedMessage)> {
        let deadline = Instant::now() + wait;
        loop {
            let (c, m) = self.recv_within(deadline.saturating_duration_since(Instant::now()))?;
            if m.mti() == Mti::NETWORK_REQUEST {
                self.send(c, &answer(&m, "00"));
                continue;
            }
            return Some((c, m));
        }
    }

    /// Whether the switch closed the connection within `wait`.
    pub fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            self.stream.set_read_timeout(Some(Duration::from_millis(50))).ok();
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e)
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => return true,
            }
        }
        false
    }

    /// Signs on (0800/001) and checks the 0810 approves it.
    ///
    /// # Panics
    ///
    /// If the switch does not approve.
    pub fn sign_on(&mut self) {
        let mut m = OwnedMessage::new(Mti::NETWORK_REQUEST);
        m.set(de::TRANSMISSION_TIME, "1125221500")
            .and_then(|m| m.set(de::STAN, "000001"))
            .and_then(|m| m.set(de::NETWORK_CODE, "001"))
            .expect("valid");
        self.send(1, &m);
        let (_, r) = self.recv_within(WAIT_MAX).expect("sign-on answered");
        assert_eq!(r.mti(), Mti::NETWORK_RESPONSE);
        assert_eq!(r.get(de::RESPONSE_CODE), Some(&b"00"[..]));
    }

    /// Shuts the connection down.
    pub fn close(self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// The response to `req` with response code `code`, echoing its fields (PIN block dropped).
///
/// # Panics
///
/// If `req` is not a request.
#[must_use]
pub fn answer(req: &OwnedMessage, code: &str) -> OwnedMessage {
    let mut m = req.clone();
    m.set_mti(req.mti().response().expect("a request"));
    m.remove(de::PIN_BLOCK);
    m.set(de::RESPONSE_CODE, code.as_bytes().to_vec()).expect("valid code");
    m
}

/// How a simulated issuer treats financial requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Approve at once.
    Approve,
    /// Never answer financial requests, nor acknowledge reversals.
    Silent,
    /// Never answer financial requests; acknowledge reversals after `n` of them.
    SilentAckAfter(usize),
    /// Hold each financial request; when a reversal comes, acknowledge it, then send the
    /// held approval (late).
    LateApproval,
    /// Answer everything but echoes (so the switch marks the link down).
    IgnoreEchoes,
    /// Approve each financial request this long after it came.
    ApproveAfter(Duration),
    /// Approve at once, with a 999-character DE 48 in each answer.
    ApproveLarge,
}

/// A simulated issuer: listens on loopback, accepts connections, answers by `Behaviour`, and
/// records every message it receives.
pub struct Issuer {
    /// Where it listens.
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<OwnedMessage>>>,
    stop: Arc<AtomicBool>,
    kill: Arc<AtomicBool>,
}

impl Issuer {
    /// Starts an issuer speaking `wire`.
    ///
    /// # Panics
    ///
    /// If it cannot listen on loopback.
    #[must_use]
    pub fn start(wire: Wire, behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let kill = Arc::new(AtomicBool::new(false));
        let (seen2, stop2, kill2) = (Arc::clone(&seen), Arc::clone(&stop), Arc::clone(&kill));
        thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        s.set_nonblocking(false).ok();
                        let (seen3, stop3, kill3) =
                            (Arc::clone(&seen2), Arc::clone(&stop2), Arc::clone(&kill2));
                        thread::spawn(move || {
                            serve_issuer(Conn::new(s, wire), behaviour, &seen3, &stop3, &kill3)
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Self { addr, seen, stop, kill }
    }

    /// Every message received so far.
    ///
    /// # Panics
    ///
    /// If a peer thread panicked holding the lock.
    #[must_use]
    pub fn seen(&self) -> Vec<OwnedMessage> {
        self.seen.lock().expect("lock").clone()
    }

    /// Messages received with MTI `mti`.
    #[must_use]
    pub fn seen_mti(&self, mti: u16) -> Vec<OwnedMessage> {
        self.seen().into_iter().filter(|m| m.mti().value() == mti).collect()
    }

    /// Waits until `pred` holds of what was received, up to `wait`.
    pub fn wait_for(&self, wait: Duration, pred: impl Fn(&[OwnedMessage]) -> bool) -> bool {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if pred(&self.seen()) {
                return true;
            }
            thread::sleep(Duration::from_millis(10));
        }
        pred(&self.seen())
    }

    /// Drops every open connection now (the listener stays, so the switch reconnects).
    pub fn kill_connections(&self) {
        self.kill.store(true, Ordering::Relaxed);
        thread::sleep(Duration::from_millis(150));
        self.kill.store(false, Ordering::Relaxed);
    }
}

impl Drop for Issuer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve_issuer(
    mut c: Conn,
    behaviour: Behaviour,
    seen: &Mutex<Vec<OwnedMessage>>,
    stop: &AtomicBool,
    kill: &AtomicBool,
) {
    let mut held: Vec<(u64, OwnedMessage)> = Vec::new();
    let mut delayed: std::collections::VecDeque<(Instant, u64, OwnedMessage)> = Default::default();
    let mut reversals = 0usize;
    let started = Instant::now();
    // Bounded: a test never runs this long.
    while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(120) {
        if kill.load(Ordering::Relaxed) {
            c.close();
            return;
        }
        while delayed.front().is_some_and(|(at, _, _)| *at <= Instant::now()) {
            if let Some((_, corr, m)) = delayed.pop_front() {
                c.try_send(corr, &answer(&m, "00"));
            }
        }
        let wait = if delayed.is_empty() { 50 } else { 5 };
        let Some((corr, m)) = c.recv_within(Duration::from_millis(wait)) else {
            if c.is_closed() {
                return;
            }
            continue;
        };
        if let Ok(mut s) = seen.lock() {
            s.push(m.clone());
        }
        let class = m.mti().class();
        if m.mti() == Mti::NETWORK_REQUEST {
            let echo = m.get(de::NETWORK_CODE) == Some(&b"301"[..]);
            if !(echo && behaviour == Behaviour::IgnoreEchoes) {
                c.try_send(corr, &answer(&m, "00"));
            }
        } else if class == 4 {
            reversals += 1;
            match behaviour {
                Behaviour::Silent => {}
                Behaviour::SilentAckAfter(n) if reversals < n => {}
                _ => {
                    c.try_send(corr, &answer(&m, "00"));
                    for (hc, h) in held.drain(..) {
                        c.try_send(hc, &answer(&h, "00"));
                    }
                }
            }
        } else if m.mti().is_request() {
            match behaviour {
                Behaviour::Approve | Behaviour::IgnoreEchoes => {
                    c.try_send(corr, &answer(&m, "00"));
                }
                Behaviour::ApproveLarge => {
                    let mut a = answer(&m, "00");
                    a.set(corridor_wire::FieldId::new(48).expect("DE 48"), vec![b'x'; 999]).expect("fits");
                    c.try_send(corr, &a);
                }
                Behaviour::LateApproval => held.push((corr, m)),
                Behaviour::ApproveAfter(d) => delayed.push_back((Instant::now() + d, corr, m)),
                Behaviour::Silent | Behaviour::SilentAckAfter(_) => {}
            }
        }
    }
}

/// A purchase request for `pan` with `stan` from acquirer id `acq`.
///
/// # Panics
///
/// Never for valid arguments: a test bug otherwise.
#[must_use]
pub fn purchase(pan: &str, stan: &str, acq: &str) -> OwnedMessage {
    let mut m = OwnedMessage::new(Mti::FINANCIAL_REQUEST);
    for (f, v) in [
        (de::PAN, pan.as_bytes()),
        (de::PROCESSING_CODE, b"000000"),
        (de::AMOUNT, b"000000012500"),
        (de::TRANSMISSION_TIME, b"1125221530"),
        (de::STAN, stan.as_bytes()),
        (de::ACQUIRER_ID, acq.as_bytes()),
        (de::RRN, b"533022000042"),
        (de::TERMINAL_ID, b"TERM0001"),
        (de::CURRENCY, b"702"),
    ] {
        m.set(f, v.to_vec()).expect("valid test field");
    }
    m
}
