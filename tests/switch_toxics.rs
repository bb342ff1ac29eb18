//! The I/O layer under toxiproxy's toxics: a fault-injecting proxy (`toxics.rs`) between the
//! switch and a real peer — on the issuer side (the switch dials the proxy) or on the
//! acquirer side (the acquirer connects through it) — while an acquirer sends purchases and
//! reverses what it got no answer to, as ISO 8583 says. For each toxic, one at a time and
//! combined, the exact counts: sent, answered once, answered twice (must be 0), reversed at
//! the issuer, lost (an approval neither delivered nor reversed: must be 0). Meanwhile a
//! second acquirer and issuer pair, untouched, carries its own traffic: its p99 stays within
//! a stated factor of a calm run of the same pair in the same test (the isolation check:
//! one bad link never disturbs the rest). Loopback only; every loop bounded in count and
//! time.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::disallowed_methods, clippy::print_stderr)] // test code; threads, not tasks

use std::{
    collections::{BTreeMap, BTreeSet},
    io::{ErrorKind, Read, Write},
    net::{SocketAddr, TcpStream},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use bytes::BytesMut;
use corridor_tests::{
    peer::{purchase, Behaviour, Issuer, Wire},
    switch::TestSwitch,
    toxics::{Dir, Placed, Proxy, Toxic},
};
use corridor_wire::{de, Dialect, Message, Mti, NativeFramer, OwnedMessage, FRAME_BYTES_MAX};

/// Purchases per scenario.
const PURCHASES: u32 = 240;
/// The gap between two purchases.
const PACE: Duration = Duration::from_millis(3);
/// Requests of the calm pair's baseline.
const CALM_REQUESTS: usize = 150;
/// The calm pair's p99 during a toxic may be this many times its calm p99 …
const CALM_FACTOR: u32 = 10;
/// … or this, whichever is larger (a 2-vCPU machine's scheduling noise; a calm round trip
/// is about 0.1 ms at p50 and a few at p99 here).
const CALM_FLOOR: Duration = Duration::from_millis(10);
/// Longest the acquirer works at reversing what it got no answer to.
const REVERSING_MAX: Duration = Duration::from_secs(12);
const PAN: &str = "4761739001010010";
const PAN_CALM: &str = "4761749001010010";

fn config(issuer: SocketAddr, calm_issuer: SocketAddr) -> String {
    let acquirer = |id: &str, acq_id: &str| {
        format!(
            "[[participant]]\nid = \"{id}\"\nroles = [\"acquirer\"]\nacquirer_ids = [\"{acq_id}\"]\n  \
             [[participant.link]]\n  name = \"{id}-1\"\n  mode = \"listen\"\n  address = \"127.0.0.1:0\"\n  \
             framing = \"native\"\n  dialect = \"native\"\n  sign_on_required = false\n\n"
        )
    };
    let dialed = |id: &str, addr: SocketAddr| {
        format!(
            "[[participant]]\nid = \"{id}\"\nroles = [\"issuer\"]\n  [[participant.link]]\n  name = \"{id}-1\"\n  \
             mode = \"dial\"\n  address = \"{addr}\"\n  framing = \"native\"\n  dialect = \"native\"\n  \
             reconnect_min_ms = 20\n  reconnect_max_ms = 200\n\n"
        )
    };
    format!(
        "[switch]\nreversal_retry_ms = 100\nlate_window_ms = 5000\n\n{}{}{}{}\
         [[route]]\npan_prefix = \"476173\"\ndestination = \"iss\"\ntimeout_ms = 300\n\n\
         [[route]]\npan_prefix = \"476174\"\ndestination = \"iss-calm\"\ntimeout_ms = 2000\n",
        acquirer("acq", "12345678"),
        acquirer("acq-calm", "87654321"),
        dialed("iss", issuer),
        dialed("iss-calm", calm_issuer),
    )
}

fn request(pan: &str, acq: &str, i: u32) -> OwnedMessage {
    let mut m = purchase(pan, &format!("{:06}", i % 1_000_000), acq);
    m.set(de::RRN, format!("{i:012}").into_bytes()).unwrap();
    m
}

/// The acquirer's reversal of purchase `i` (0420, or 0421 when `repeat`).
fn reversal(i: u32, repeat: bool) -> OwnedMessage {
    let mut m = request(PAN, "12345678", i);
    m.set_mti(if repeat { Mti::REVERSAL_ADVICE_REPEAT } else { Mti::REVERSAL_ADVICE });
    m.set(de::STAN, format!("{:06}", 500_000 + i).into_bytes()).unwrap();
    m.set(de::ORIGINAL_DATA, format!("0200{:06}1125221530{:0>11}{:011}", i, "12345678", 0).into_bytes())
        .unwrap();
    m
}

fn framed(corr: u64, m: &OwnedMessage) -> Vec<u8> {
    let body = m.to_bytes(Dialect::Native).unwrap();
    let mut out = BytesMut::new();
    NativeFramer::new(FRAME_BYTES_MAX).encode(0, corr, &body, &mut out).unwrap();
    out.to_vec()
}

/// A connection that never panics: a write or read that fails marks it gone.
struct Link {
    stream: Option<TcpStream>,
    buf: BytesMut,
}

impl Link {
    fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok();
        if let Some(s) = &stream {
            s.set_nodelay(true).ok();
            s.set_read_timeout(Some(Duration::from_millis(1))).ok();
        }
        Self { stream, buf: BytesMut::new() }
    }

    fn up(&self) -> bool {
        self.stream.is_some()
    }

    fn send(&mut self, bytes: &[u8]) {
        if let Some(s) = self.stream.as_mut() {
            if s.write_all(bytes).is_err() {
                self.stream = None;
            }
        }
    }

    /// Messages that arrived by now (network requests answered on the way).
    fn recv(&mut self) -> Vec<(u64, OwnedMessage)> {
        let mut out = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        // One read (waiting at most its 1 ms timeout): reading on until a read times out
        // would add that timeout, rounded up to the kernel's tick, to every answer.
        if let Some(s) = self.stream.as_mut() {
            match s.read(&mut chunk) {
                Ok(0) => self.stream = None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => self.stream = None,
            }
        }
        let mut framer = NativeFramer::new(FRAME_BYTES_MAX);
        while let Ok(Some(f)) = framer.decode(&mut self.buf) {
            let corr = f.correlation();
            let Ok(m) = Message::parse(Dialect::Native, f.into_body()) else { continue };
            let m = OwnedMessage::from(&m);
            if m.mti() == Mti::NETWORK_REQUEST {
                let mut r = m.clone();
                r.set_mti(Mti::NETWORK_RESPONSE);
                r.set(de::RESPONSE_CODE, b"00".to_vec()).unwrap();
                self.send(&framed(corr, &r));
            } else if m.mti().class() != 8 {
                out.push((corr, m));
            }
        }
        out
    }
}

fn code(m: &OwnedMessage) -> String {
    m.get(de::RESPONSE_CODE).map(|c| String::from_utf8_lossy(c).into_owned()).unwrap_or_default()
}

fn rrn_number(m: &OwnedMessage) -> Option<u32> {
    m.get(de::RRN).and_then(|r| std::str::from_utf8(r).ok()).and_then(|r| r.parse().ok())
}

/// What one scenario counted.
#[derive(Debug, Default)]
struct Counts {
    sent: u32,
    answered_once: u32,
    answered_twice: u32,
    /// Unanswered, reversed by the acquirer, the reversal acknowledged.
    reversed_by_acquirer: u32,
    /// Unanswered and not acknowledged as reversed in time.
    unresolved: u32,
    /// Purchases whose reversal reached the issuer (the switch's or the acquirer's).
    reversed_at_issuer: u32,
    /// Approvals neither delivered nor reversed.
    lost: u32,
    declined: u32,
    connections_acq: u64,
    connections_iss: u64,
    calm_p99: Duration,
    during_p99: Duration,
}

/// The calm pair: sequential purchases, one in flight; their latencies.
fn calm_run(addr: SocketAddr, from: u32, max: usize, stop: Option<&AtomicBool>) -> Vec<Duration> {
    let mut link = Link::connect(addr);
    let mut lat = Vec::new();
    for i in 0..max as u32 {
        if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            break;
        }
        let t = Instant::now();
        link.send(&framed(u64::from(i), &request(PAN_CALM, "87654321", from + i)));
        let deadline = t + Duration::from_secs(3);
        let mut got = false;
        while !got && Instant::now() < deadline && link.up() {
            got = !link.recv().is_empty();
        }
        if got {
            lat.push(t.elapsed());
        }
    }
    lat
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get((v.len() * 99 / 100).min(v.len().saturating_sub(1))).copied().unwrap_or_default()
}

fn scenario(name: &str, on_acquirer: &[Placed], on_issuer: &[Placed]) -> Counts {
    let issuer = Issuer::start(Wire::NATIVE, Behaviour::Approve);
    let calm_issuer = Issuer::start(Wire::NATIVE, Behaviour::Approve);
    let iss_proxy = Proxy::start(issuer.addr, on_issuer);
    let switch = TestSwitch::start(&config(iss_proxy.addr, calm_issuer.addr));
    switch.wait_signed_on(&["iss-calm-1"]);
    // The toxic link signs on once before the load (its toxics may cut it after).
    let _ = switch.wait_until(|links, _| links.iter().any(|l| l.name == "iss-1" && l.status.signed_on));
    let acq_proxy = Proxy::start(switch.addr("acq-1"), on_acquirer);
    let calm_addr = switch.addr("acq-calm-1");

    let mut counts =
        Counts { calm_p99: p99(calm_run(calm_addr, 1_000_000, CALM_REQUESTS, None)), ..Counts::default() };
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let calm = thread::spawn(move || calm_run(calm_addr, 2_000_000, 5_000, Some(&stop2)));

    // The load: purchases paced on one connection, reconnecting when it goes; what was sent
    // on a connection that went without its answer is owed a reversal.
    let mut link = Link::connect(acq_proxy.addr);
    let mut corr_of: BTreeMap<u64, u32> = BTreeMap::new();
    let mut answers: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    let mut open: BTreeSet<u32> = BTreeSet::new();
    let mut owed: BTreeSet<u32> = BTreeSet::new();
    let mut next_corr = 0u64;
    let take = |msgs: Vec<(u64, OwnedMessage)>,
                corr_of: &BTreeMap<u64, u32>,
                answers: &mut BTreeMap<u32, Vec<String>>,
                open: &mut BTreeSet<u32>| {
        for (c, m) in msgs {
            if let Some(&i) = corr_of.get(&c) {
                answers.entry(i).or_default().push(code(&m));
                open.remove(&i);
            }
        }
    };
    for i in 1..=PURCHASES {
        let t = Instant::now();
        for _ in 0..50 {
            if link.up() {
                break;
            }
            // The connection went: what it carried unanswered is owed a reversal.
            owed.append(&mut open);
            thread::sleep(Duration::from_millis(20));
            link = Link::connect(acq_proxy.addr);
        }
        next_corr += 1;
        corr_of.insert(next_corr, i);
        open.insert(i);
        counts.sent += 1;
        link.send(&framed(next_corr, &request(PAN, "12345678", i)));
        while t.elapsed() < PACE {
            take(link.recv(), &corr_of, &mut answers, &mut open);
        }
    }
    // The last answers (the route's timeout is 300 ms; toxics add their delays).
    let deadline = Instant::now() + Duration::from_secs(4);
    while !open.is_empty() && Instant::now() < deadline && link.up() {
        take(link.recv(), &corr_of, &mut answers, &mut open);
    }
    owed.append(&mut open);

    // Reversals for everything without an answer, repeated until acknowledged.
    let mut acked: BTreeSet<u32> = BTreeSet::new();
    let mut tries: BTreeMap<u32, u32> = BTreeMap::new();
    let mut rev_corr: BTreeMap<u64, u32> = BTreeMap::new();
    let started = Instant::now();
    while acked.len() < owed.len() && started.elapsed() < REVERSING_MAX {
        if !link.up() {
            thread::sleep(Duration::from_millis(20));
            link = Link::connect(acq_proxy.addr);
            continue;
        }
        for &i in owed.iter().filter(|i| !acked.contains(i)) {
            let n = tries.entry(i).or_default();
            *n += 1;
            next_corr += 1;
            rev_corr.insert(next_corr, i);
            link.send(&framed(next_corr, &reversal(i, *n > 1)));
        }
        let until = Instant::now() + Duration::from_millis(400);
        while Instant::now() < until && link.up() {
            for (c, m) in link.recv() {
                if let (Some(&i), "00") = (rev_corr.get(&c), code(&m).as_str()) {
                    acked.insert(i);
                } else if let Some(&i) = corr_of.get(&c) {
                    // A late answer to a purchase on this connection: still one answer.
                    answers.entry(i).or_default().push(code(&m));
                }
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    counts.during_p99 = p99(calm.join().unwrap());
    switch.wait_quiet();

    for i in 1..=PURCHASES {
        match answers.get(&i).map_or(0, Vec::len) {
            0 if acked.contains(&i) => counts.reversed_by_acquirer += 1,
            0 => counts.unresolved += 1,
            1 => counts.answered_once += 1,
            _ => counts.answered_twice += 1,
        }
        if answers.get(&i).is_some_and(|a| a.iter().any(|c| c != "00")) {
            counts.declined += 1;
        }
    }
    let seen = issuer.seen();
    let forwarded: BTreeSet<u32> =
        seen.iter().filter(|m| m.mti().value() == 200).filter_map(rrn_number).collect();
    let reversed: BTreeSet<u32> =
        seen.iter().filter(|m| m.mti().class() == 4).filter_map(rrn_number).collect();
    counts.reversed_at_issuer = reversed.len() as u32;
    let delivered: BTreeSet<u32> =
        answers.iter().filter(|(_, a)| a.iter().any(|c| c == "00")).map(|(i, _)| *i).collect();
    counts.lost = forwarded.iter().filter(|i| !delivered.contains(i) && !reversed.contains(i)).count() as u32;
    counts.connections_acq = acq_proxy.connections.load(Ordering::Relaxed);
    counts.connections_iss = iss_proxy.connections.load(Ordering::Relaxed);
    eprintln!("{name}: {counts:?}");
    drop(switch);
    counts
}

/// The checks every scenario makes.
fn check(name: &str, c: &Counts) {
    assert_eq!(c.sent, PURCHASES, "{name}: {c:?}");
    assert_eq!(c.answered_twice, 0, "{name}: nothing answered twice: {c:?}");
    assert_eq!(c.lost, 0, "{name}: no approval lost: {c:?}");
    assert_eq!(c.unresolved, 0, "{name}: every purchase answered, or reversed and acknowledged: {c:?}");
    assert_eq!(c.answered_once + c.reversed_by_acquirer, c.sent, "{name}: {c:?}");
    let bound = (c.calm_p99 * CALM_FACTOR).max(CALM_FLOOR);
    assert!(c.during_p99 <= bound, "{name}: the calm pair's p99 {:?} within {bound:?}: {c:?}", c.during_p99);
}

fn toxic_latency() -> Toxic {
    Toxic::Latency { ms: 40, jitter_ms: 30 }
}
fn toxic_bandwidth() -> Toxic {
    Toxic::Bandwidth { kb_per_s: 24 }
}
fn toxic_slicer() -> Toxic {
    Toxic::Slicer { bytes: 3, delay_us: 200 }
}
fn toxic_limit_data() -> Toxic {
    // Past the sign-on, then mid-frame.
    Toxic::LimitData { bytes: 4_111 }
}
fn toxic_reset_peer() -> Toxic {
    Toxic::ResetPeer { after_ms: 350 }
}
fn toxic_timeout() -> Toxic {
    Toxic::Timeout { after_bytes: 3_333, ms: 600 }
}
fn toxic_slow_close() -> Toxic {
    Toxic::SlowClose { ms: 400 }
}

macro_rules! toxic_tests {
    ($($name:ident: $toxic:expr, $dir:expr;)*) => {
        mod issuer_side {
            use super::*;
            $(
                #[test]
                fn $name() {
                    let c = scenario(concat!("issuer side: ", stringify!($name)), &[], &[($toxic, $dir)]);
                    check(stringify!($name), &c);
                }
            )*
        }
        mod acquirer_side {
            use super::*;
            $(
                #[test]
                fn $name() {
                    let c = scenario(concat!("acquirer side: ", stringify!($name)), &[($toxic, $dir)], &[]);
                    check(stringify!($name), &c);
                }
            )*
        }
    };
}

toxic_tests! {
    latency_and_jitter: toxic_latency(), Dir::Both;
    bandwidth: toxic_bandwidth(), Dir::Both;
    slicer: toxic_slicer(), Dir::Both;
    limit_data_cuts_mid_frame: toxic_limit_data(), Dir::Down;
    reset_peer: toxic_reset_peer(), Dir::Both;
    timeout_stalls_then_closes: toxic_timeout(), Dir::Down;
    slow_close: toxic_slow_close(), Dir::Both;
}

#[test]
fn combined_on_both_sides() {
    let c = scenario(
        "combined",
        &[
            (toxic_latency(), Dir::Both),
            (toxic_slicer(), Dir::Up),
            (toxic_limit_data(), Dir::Down),
            (toxic_slow_close(), Dir::Both),
        ],
        &[
            (toxic_latency(), Dir::Up),
            (toxic_bandwidth(), Dir::Down),
            (toxic_reset_peer(), Dir::Both),
            (toxic_slow_close(), Dir::Both),
        ],
    );
    check("combined", &c);
}

#[test]
fn a_calm_run_counts_every_purchase_answered_once() {
    // The baseline the counts are read against: no toxic, every purchase approved once.
    let c = scenario("calm", &[], &[]);
    check("calm", &c);
    assert_eq!((c.answered_once, c.declined, c.reversed_at_issuer), (PURCHASES, 0, 0), "{c:?}");
}
