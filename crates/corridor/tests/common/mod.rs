//! What the real-process tests share: a `corridor serve` child killed on drop, native
//! framing over blocking loopback sockets, and answers made from requests.

#![allow(dead_code, unreachable_pub, clippy::expect_used, clippy::unwrap_used, clippy::disallowed_methods)] // test code

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::BytesMut;
use corridor_config::fixture::{two_participants, FixtureLink};
use corridor_wire::{de, Dialect, Message, NativeFramer, OwnedMessage, FRAME_BYTES_MAX};

/// A switch process, killed when dropped (a failed test leaves none behind). Its stderr
/// lines are kept.
pub struct Switch {
    pub child: Child,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Switch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Switch {
    /// `kill -9`.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, and the exit status once it has drained.
    pub fn term(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        self.child.wait().unwrap()
    }

    /// Whether a line of its log contains `text`.
    pub fn logged(&self, text: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(text))
    }

    /// The lines of its log that contain `text` (for a failure's message).
    pub fn lines_with(&self, text: &str) -> Vec<String> {
        self.log.lock().unwrap().iter().filter(|l| l.contains(text)).cloned().collect()
    }

    /// Waits (bounded by `wait`) until `times` lines of its log contain `text`; whether they
    /// did.
    pub fn wait_logged(&self, text: &str, times: usize, wait: Duration) -> bool {
        let deadline = std::time::Instant::now() + wait;
        while std::time::Instant::now() < deadline {
            if self.log.lock().unwrap().iter().filter(|l| l.contains(text)).count() >= times {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

/// Starts `corridor serve --config config`, ready once a dialed link has signed on.
pub fn serve(config: &std::path::Path) -> Switch {
    serve_within(config, Duration::from_secs(15))
}

/// [`serve`], signed on within `wait` (a node of a cluster first takes its leases and reads
/// the stream, which a cluster of NATS servers just started may keep waiting for its
/// elections).
pub fn serve_within(config: &std::path::Path, wait: Duration) -> Switch {
    let (child, signed_on) = spawn(config);
    if let Err(e) = signed_on.recv_timeout(wait) {
        // (Disconnected: the switch exited. Its last lines say why.)
        let log = child.log.lock().unwrap();
        let tail: Vec<&String> = log.iter().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect();
        panic!("the switch did not sign on to the issuer ({e}); its last lines: {tail:#?}");
    }
    child
}

/// Starts `corridor serve --config config`; what says when a dialed link has signed on.
pub fn spawn(config: &std::path::Path) -> (Switch, std::sync::mpsc::Receiver<()>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_corridor"))
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let log = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("sign-on answered") {
                let _ = tx.send(());
            }
            kept.lock().unwrap().push(line);
        }
    });
    (Switch { child, log }, rx)
}

/// Runs `corridor args…` with `stdin` written to its input; its output. A command that
/// refuses before it reads its input (a broken file named on the command line) closes it:
/// the write then fails, and the exit status and stderr say why.
pub fn corridor_with_stdin(args: &[&str], stdin: &[u8]) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_corridor"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("corridor runs");
    if let Err(e) = child.stdin.take().expect("stdin").write_all(stdin) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
    }
    child.wait_with_output().expect("corridor exits")
}

/// The `corridor-load` binary, beside this package's `corridor` (the workspace builds both
/// into one target directory; the switch's crates never link the load generator, so the
/// tests drive it as a process).
///
/// # Panics
///
/// When it is not built: a test that needs it must not pass without it.
pub fn corridor_load() -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_BIN_EXE_corridor")).with_file_name("corridor-load");
    assert!(path.is_file(), "no {} (build it: cargo build -p corridor-load)", path.display());
    path
}

/// Runs `corridor args…`; its exit success and stdout+stderr.
pub fn corridor(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_corridor")).args(args).output().unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

pub fn send(s: &mut TcpStream, corr: u64, m: &OwnedMessage) -> bool {
    let body = m.to_bytes(Dialect::Native).unwrap();
    let mut out = BytesMut::new();
    NativeFramer::new(FRAME_BYTES_MAX).encode(0, corr, &body, &mut out).unwrap();
    s.write_all(&out).is_ok()
}

/// Reads whatever whole frames arrive within the socket's read timeout into `buf`,
/// returning them; `None` once the connection is gone.
pub fn read_frames(s: &mut TcpStream, buf: &mut BytesMut) -> Option<Vec<(u64, OwnedMessage)>> {
    let mut chunk = [0u8; 16384];
    match s.read(&mut chunk) {
        Ok(0) => return None,
        Ok(n) => buf.extend_from_slice(&chunk[..n]),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
        Err(_) => return None,
    }
    let mut out = Vec::new();
    while let Ok(Some(f)) = NativeFramer::new(FRAME_BYTES_MAX).decode(buf) {
        let corr = f.correlation();
        let m = Message::parse(Dialect::Native, f.into_body()).unwrap();
        out.push((corr, OwnedMessage::from(&m)));
    }
    Some(out)
}

pub fn answer(m: &OwnedMessage, code: &str) -> OwnedMessage {
    let mut r = m.clone();
    r.set_mti(m.mti().response().unwrap());
    r.set(de::RESPONSE_CODE, code).unwrap();
    r.remove(de::PIN_BLOCK);
    r
}

pub fn text(m: &OwnedMessage, f: corridor_wire::FieldId) -> String {
    m.get(f).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default()
}

/// A configuration: acquirer `acq` listening on `acq_port` (native), issuer `iss` dialed
/// at `issuer`, a default route, a journal in `journal/` under the config's directory, and
/// `extra` lines for `[switch]`.
pub fn config(acq_port: u16, issuer: std::net::SocketAddr, switch: &str) -> String {
    let participants = two_participants(
        &FixtureLink::native(format!("127.0.0.1:{acq_port}"))
            .with("sign_on_required = false")
            .with("inflight_max = 1024"),
        &FixtureLink::native(issuer)
            .with("inflight_max = 1024")
            .with("reconnect_min_ms = 20")
            .with("reconnect_max_ms = 100"),
    );
    format!(
        "[switch]\n{switch}\n{participants}[[route]]\ndefault = true\ndestination = \"iss\"\ntimeout_ms = 5000\n\n\
         [journal]\ndir = \"journal\"\nkey_file = \"pan.key\"\n"
    )
}

/// A fresh state directory with a PAN key.
pub fn state(name: &str) -> corridor_tests::scratch::Scratch {
    corridor_tests::scratch::Scratch::with_pan_key(name)
}

/// A free loopback port for another process to listen on ([`corridor_tests::free_port`]:
/// below the kernel's ephemeral range).
pub fn free_port() -> u16 {
    corridor_tests::free_port()
}

/// A peer the switch dials: it serves one connection after another on `listener` until
/// `stop`, hands each message that comes to `handle` with the time it came, and sends the
/// answers `handle` returns when each is due (network management is answered at once).
pub fn serve_peer(
    listener: std::net::TcpListener,
    stop: &std::sync::atomic::AtomicBool,
    mut handle: impl FnMut(&OwnedMessage, std::time::Instant) -> Option<(Duration, OwnedMessage)>,
) {
    use std::sync::atomic::Ordering;
    listener.set_nonblocking(true).unwrap();
    while !stop.load(Ordering::Relaxed) {
        let Ok((mut s, _)) = listener.accept() else {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        };
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
        let mut buf = BytesMut::new();
        let mut held: std::collections::VecDeque<(std::time::Instant, u64, OwnedMessage)> =
            std::collections::VecDeque::new();
        while !stop.load(Ordering::Relaxed) {
            let now = std::time::Instant::now();
            while held.front().is_some_and(|(at, _, _)| *at <= now) {
                let (_, corr, m) = held.pop_front().unwrap();
                send(&mut s, corr, &m);
            }
            let Some(frames) = read_frames(&mut s, &mut buf) else { break };
            for (corr, m) in frames {
                if m.mti() == corridor_wire::Mti::NETWORK_REQUEST {
                    send(&mut s, corr, &answer(&m, "00"));
                } else if let Some((after, r)) = handle(&m, now) {
                    // Kept in the order they are due.
                    let due = now + after;
                    let at = held.partition_point(|(t, _, _)| *t <= due);
                    held.insert(at, (due, corr, r));
                }
            }
        }
    }
}

/// A purchase from acquirer 12345678 (terminal TERM0001, DE 7 1201103000) with `stan`
/// (six digits) and RRN `rrn`.
/// The terminal's reversal (0420, or 0421 when `repeat`) of [`purchase`] `stan`: a STAN of
/// its own (`rev_stan`), DE 90 naming the original.
pub fn reversal(stan: u32, rrn: &str, rev_stan: u32, repeat: bool) -> OwnedMessage {
    let mut m = purchase(stan, rrn);
    m.set_mti(if repeat {
        corridor_wire::Mti::REVERSAL_ADVICE_REPEAT
    } else {
        corridor_wire::Mti::REVERSAL_ADVICE
    });
    m.set(de::STAN, format!("{rev_stan:06}")).unwrap();
    m.set(de::TRANSMISSION_TIME, "1201103100").unwrap();
    m.set(de::ORIGINAL_DATA, format!("0200{stan:06}120110300000012345678{:011}", 0)).unwrap();
    m
}

pub fn purchase(stan: u32, rrn: &str) -> OwnedMessage {
    let mut m = OwnedMessage::new(corridor_wire::Mti::FINANCIAL_REQUEST);
    for (f, v) in [
        (de::PAN, "4761739001010010".to_owned()),
        (de::PROCESSING_CODE, "000000".to_owned()),
        (de::AMOUNT, "000000012500".to_owned()),
        (de::TRANSMISSION_TIME, "1201103000".to_owned()),
        (de::STAN, format!("{stan:06}")),
        (de::ACQUIRER_ID, "12345678".to_owned()),
        (de::RRN, rrn.to_owned()),
        (de::TERMINAL_ID, "TERM0001".to_owned()),
    ] {
        m.set(f, v).unwrap();
    }
    m
}

/// One HTTP/1.1 exchange (the connection closed after it): status and body.
pub fn http(addr: std::net::SocketAddr, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let status = raw.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}
