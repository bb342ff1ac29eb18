//! A small fault-injecting TCP proxy, after toxiproxy's toxics: it sits between the switch
//! and a real peer on loopback and, per connection and per direction, delays, throttles,
//! slices, cuts, resets, stalls or slowly closes the stream. Plain threads with blocking
//! sockets; every wait is bounded and every thread ends when its connection or the proxy
//! does.

// Threads with blocking sockets, not runtime tasks: sleeping is how a toxic waits.
#![allow(clippy::disallowed_methods)]

use std::{
    io::{ErrorKind, Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

/// Which way through the proxy a toxic acts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// From the connecting side to the upstream.
    Up,
    /// From the upstream back to the connecting side.
    Down,
    /// Both ways.
    Both,
}

/// One fault, as toxiproxy names them.
#[derive(Clone, Copy, Debug)]
pub enum Toxic {
    /// Every chunk waits `ms` ± `jitter_ms`.
    Latency {
        /// Base delay.
        ms: u64,
        /// Spread either way.
        jitter_ms: u64,
    },
    /// At most `kb_per_s` kilobytes a second.
    Bandwidth {
        /// The rate.
        kb_per_s: u64,
    },
    /// Chunks cut into pieces of about `bytes` (±half), `delay_us` between them.
    Slicer {
        /// Average piece.
        bytes: usize,
        /// Pause between pieces.
        delay_us: u64,
    },
    /// The connection closes once `bytes` went this way (mid-frame, as it falls).
    LimitData {
        /// Bytes let through per connection.
        bytes: u64,
    },
    /// The connection is reset (RST, both ends) `after_ms` after it opened.
    ResetPeer {
        /// Its life.
        after_ms: u64,
    },
    /// After `after_bytes`, nothing more gets through, and the connection closes `ms` later.
    Timeout {
        /// Bytes let through first.
        after_bytes: u64,
        /// How long it stalls before closing.
        ms: u64,
    },
    /// When one end closes, the other is closed only `ms` later.
    SlowClose {
        /// The delay.
        ms: u64,
    },
}

/// A toxic and the direction it acts in.
pub type Placed = (Toxic, Dir);

/// Longest a proxied connection lives (a bound on every thread here).
const CONNECTION_MAX: Duration = Duration::from_secs(60);
/// The read timeout each pump polls its stop flags with.
const POLL: Duration = Duration::from_millis(20);

/// A running proxy.
pub struct Proxy {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Connections it accepted.
    pub connections: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    /// While set, nothing passes either way and no connection is accepted: a partition.
    cut: Arc<AtomicBool>,
}

impl Proxy {
    /// Listens on loopback and proxies each connection to `upstream` with `toxics`.
    ///
    /// # Panics
    ///
    /// If it cannot listen on loopback.
    #[must_use]
    pub fn start(upstream: SocketAddr, toxics: &[Placed]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let cut = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicU64::new(0));
        let (stop2, count, cut2) = (Arc::clone(&stop), Arc::clone(&connections), Arc::clone(&cut));
        let toxics = toxics.to_vec();
        thread::spawn(move || {
            let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
            while !stop2.load(Ordering::Relaxed) {
                if cut2.load(Ordering::Relaxed) {
                    // Partitioned: a connection waits in the backlog, unanswered.
                    thread::sleep(POLL);
                    continue;
                }
                match listener.accept() {
                    Ok((client, _)) => {
                        count.fetch_add(1, Ordering::Relaxed);
                        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                        let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(2)) else {
                            let _ = client.shutdown(Shutdown::Both);
                            continue;
                        };
                        proxy_connection(client, server, &toxics, seed, &stop2, &cut2);
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self { addr, connections, stop, cut }
    }

    /// Partitions (`true`) or heals (`false`) the path: while cut, nothing passes either way
    /// — what is sent waits, as TCP's retransmissions wait out a partition, and arrives in
    /// order once healed — and new connections wait unanswered.
    pub fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::Relaxed);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn acts(dir: Dir, up: bool) -> bool {
    matches!((dir, up), (Dir::Both, _) | (Dir::Up, true) | (Dir::Down, false))
}

fn proxy_connection(
    client: TcpStream,
    server: TcpStream,
    toxics: &[Placed],
    seed: u64,
    stop: &Arc<AtomicBool>,
    cut: &Arc<AtomicBool>,
) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let opened = Instant::now();
    let closed = Arc::new(AtomicBool::new(false));
    let reset = Arc::new(AtomicBool::new(false));
    let reset_after =
        toxics
            .iter()
            .find_map(|(t, _)| if let Toxic::ResetPeer { after_ms } = t { Some(*after_ms) } else { None });
    for up in [true, false] {
        let (Ok(from), Ok(to)) = (
            if up { client.try_clone() } else { server.try_clone() },
            if up { server.try_clone() } else { client.try_clone() },
        ) else {
            return;
        };
        let mine: Vec<Toxic> = toxics.iter().filter(|(_, d)| acts(*d, up)).map(|(t, _)| *t).collect();
        let (closed, reset, stop, cut) =
            (Arc::clone(&closed), Arc::clone(&reset), Arc::clone(stop), Arc::clone(cut));
        let (c, s) = (client.try_clone(), server.try_clone());
        thread::spawn(move || {
            if pump(from, to, &mine, seed ^ u64::from(up), opened, reset_after, &closed, &stop, &cut) {
                reset.store(true, Ordering::Relaxed);
            }
            // Whichever way ends first ends the connection: with a FIN, or for a reset with
            // the RST the last close of a socket set to linger zero sends.
            closed.store(true, Ordering::Relaxed);
            if !reset.load(Ordering::Relaxed) {
                for sock in [c, s].into_iter().flatten() {
                    let _ = sock.shutdown(Shutdown::Both);
                }
            }
        });
    }
}

#[allow(clippy::too_many_arguments)] // one pump's whole state
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    toxics: &[Toxic],
    mut seed: u64,
    opened: Instant,
    reset_after: Option<u64>,
    closed: &AtomicBool,
    stop: &AtomicBool,
    cut: &AtomicBool,
) -> bool {
    let mut rand = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        if n == 0 {
            0
        } else {
            seed % n
        }
    };
    let _ = from.set_read_timeout(Some(POLL));
    let mut passed: u64 = 0;
    let mut buf = vec![0u8; 16 * 1024];
    // What the slicer and the bandwidth toxic ask, looked up once per connection.
    let slicer = toxics.iter().find_map(|t| {
        if let Toxic::Slicer { bytes, delay_us } = t {
            Some((*bytes, *delay_us))
        } else {
            None
        }
    });
    let bandwidth =
        toxics.iter().find_map(
            |t| {
                if let Toxic::Bandwidth { kb_per_s } = t {
                    Some(*kb_per_s)
                } else {
                    None
                }
            },
        );
    let slow_close = toxics
        .iter()
        .find_map(|t| if let Toxic::SlowClose { ms } = t { Some(*ms) } else { None })
        .unwrap_or(0);
    while opened.elapsed() < CONNECTION_MAX
        && !stop.load(Ordering::Relaxed)
        && !closed.load(Ordering::Relaxed)
    {
        if reset_after.is_some_and(|ms| opened.elapsed() >= Duration::from_millis(ms)) {
            // RST: linger zero, then close.
            for s in [&from, &to] {
                let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
            }
            return true;
        }
        if cut.load(Ordering::Relaxed) {
            thread::sleep(POLL);
            continue;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => {
                thread::sleep(Duration::from_millis(slow_close));
                return false;
            }
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => return false,
        };
        // Cut while the read waited: what it read waits too, until the path heals (else a
        // partition would let through what was sent just after it began).
        while cut.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) && !closed.load(Ordering::Relaxed)
        {
            thread::sleep(POLL);
        }
        let mut chunk = &buf[..n];
        for t in toxics {
            match *t {
                Toxic::LimitData { bytes } => {
                    let room = bytes.saturating_sub(passed) as usize;
                    if room < chunk.len() {
                        let _ = to.write_all(&chunk[..room]);
                        return false;
                    }
                }
                Toxic::Timeout { after_bytes, ms } => {
                    let room = after_bytes.saturating_sub(passed) as usize;
                    if room < chunk.len() {
                        let _ = to.write_all(&chunk[..room]);
                        // Nothing more gets through; then the connection closes.
                        let until = Instant::now() + Duration::from_millis(ms);
                        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                            let _ = from.read(&mut buf);
                        }
                        return false;
                    }
                }
                Toxic::Latency { ms, jitter_ms } => {
                    let d = (ms + rand(2 * jitter_ms + 1)).saturating_sub(jitter_ms);
                    thread::sleep(Duration::from_millis(d));
                }
                _ => {}
            }
        }
        passed += chunk.len() as u64;
        while !chunk.is_empty() {
            let k = match slicer {
                Some((bytes, _)) => {
                    let half = (bytes / 2).max(1) as u64;
                    (bytes as u64 - half / 2 + rand(half + 1)).max(1) as usize
                }
                None => chunk.len(),
            }
            .min(chunk.len());
            if to.write_all(&chunk[..k]).is_err() {
                return false;
            }
            chunk = &chunk[k..];
            if let Some((_, delay_us)) = slicer {
                thread::sleep(Duration::from_micros(delay_us));
            }
            if let Some(rate) = bandwidth {
                thread::sleep(Duration::from_micros(k as u64 * 1000 / rate.max(1)));
            }
        }
    }
    false
}
