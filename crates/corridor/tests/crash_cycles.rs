//! The crash harness: a journaling `corridor serve` killed with `kill -9` at random points
//! under load, and restarted on the same journal, again and again. Real processes, loopback
//! sockets.
//!
//! The issuer approves each purchase 300 ms after it arrives, with an approval code of its
//! own, and acknowledges reversals at once. The terminal sends a few hundred purchases a
//! second; like a real one, it reverses every purchase it got no answer to (repeating its
//! reversal until acknowledged, across reconnects) and repeats some answered purchases,
//! which must be answered as they were the first time. At the end:
//!
//! - 0 ambiguous: every approval the issuer made reached the terminal or was reversed at
//!   the issuer;
//! - 0 forwarded twice: the issuer saw each purchase at most once, and each reversal's
//!   first transmission (0420) at most once;
//! - 0 reversals lost: every reversal the switch acknowledged to the terminal reached the
//!   issuer, and every one the terminal made was acknowledged.
//!
//! `cargo test` runs 5 crashes; the full count is
//! `CORRIDOR_CRASHES=100 cargo test --release -p corridor --test crash_cycles -- --nocapture`.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::disallowed_methods, clippy::print_stdout)] // test code

mod common;

use std::{
    collections::{HashMap, HashSet, VecDeque},
    net::{TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use bytes::BytesMut;
use common::*;
use corridor_wire::{de, Mti, OwnedMessage};

/// What the issuer saw, by RRN.
#[derive(Default)]
struct IssuerSeen {
    /// Purchases: how many times each arrived, and the approval code given.
    purchases: HashMap<String, (u32, String)>,
    /// Reversals: first transmissions (0420) and repeats (0421) per original RRN.
    reversals: HashMap<String, (u32, u32)>,
}

/// The issuer: approves each purchase 300 ms after it came, with an approval code of its
/// own; acknowledges reversals at once.
fn issuer(listener: TcpListener, seen: Arc<Mutex<IssuerSeen>>, stop: Arc<AtomicBool>) {
    let mut auth = 0u32;
    serve_peer(listener, &stop, |m, _| match m.mti().value() {
        200 => {
            let rrn = text(m, de::RRN);
            auth += 1;
            let code = format!("A{auth:05}");
            let mut seen = seen.lock().unwrap();
            let e = seen.purchases.entry(rrn).or_insert((0, code));
            e.0 += 1;
            let mut r = answer(m, "00");
            r.set(de::AUTH_ID, e.1.clone()).unwrap();
            Some((Duration::from_millis(300), r))
        }
        420 | 421 => {
            let rrn = text(m, de::RRN);
            let mut seen = seen.lock().unwrap();
            let e = seen.reversals.entry(rrn).or_default();
            if m.mti().value() == 420 {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
            Some((Duration::ZERO, answer(m, "00")))
        }
        _ => None,
    });
}

/// What the terminal knows at the end.
#[derive(Default)]
struct TerminalSeen {
    /// First answers, by RRN: code and approval code.
    answers: HashMap<String, (String, String)>,
    /// Every approval received (first answer or repeat's), by RRN and approval code.
    approvals: HashSet<(String, String)>,
    /// Purchases it reversed (no answer came), acknowledged by the switch.
    reversed_acked: HashSet<String>,
    /// Reversals still waiting for their acknowledgement.
    reversals_open: usize,
    /// Repeats answered differently from the first answer.
    repeat_mismatches: Vec<String>,
    repeats_answered: usize,
    sent: usize,
}

fn purchase(i: u32) -> OwnedMessage {
    common::purchase(i, &format!("CR{i:010}"))
}

/// The terminal's reversal of purchase `i` (its own STAN from another range, DE 90 naming
/// the original), first as 0420, then as 0421.
fn reversal(i: u32, repeat: bool) -> OwnedMessage {
    let mut m = purchase(i);
    m.set_mti(if repeat { Mti::REVERSAL_ADVICE_REPEAT } else { Mti::REVERSAL_ADVICE });
    m.set(de::STAN, format!("{:06}", 500_000 + i)).unwrap();
    m.set(de::TRANSMISSION_TIME, "1201103100").unwrap();
    m.set(de::ORIGINAL_DATA, format!("0200{i:06}120110300000012345678{:011}", 0)).unwrap();
    m
}

enum Sent {
    Purchase(u32, Instant),
    Repeat(u32),
    Reversal(u32),
}

impl Sent {
    fn number(&self) -> u32 {
        match self {
            Self::Purchase(i, _) | Self::Repeat(i) | Self::Reversal(i) => *i,
        }
    }
}

/// Declines the switch makes as a request arrives, before it takes it (nothing journaled,
/// nothing forwarded): not outcomes a repeat is answered from.
const ADMISSION_DECLINES: [&str; 5] = ["91", "92", "94", "63", "30"];

/// The terminal: `rate` purchases a second while `load` is set, reconnecting to the switch
/// whenever it is gone, until `stop`; reversals and repeats as the module docs say.
fn terminal(
    port: u16,
    rate: u32,
    load: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<TerminalSeen>>,
) {
    let mut next = 1u32;
    let mut corr = 1u64;
    let mut to_reverse: VecDeque<u32> = VecDeque::new();
    let mut reversal_tries: HashMap<u32, u32> = HashMap::new();
    let mut answered: Vec<u32> = Vec::new();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let started = Instant::now();
    while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(900) {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        s.set_read_timeout(Some(Duration::from_millis(2))).unwrap();
        let mut buf = BytesMut::new();
        let mut inflight: HashMap<u64, Sent> = HashMap::new();
        let mut last_send = Instant::now();
        let mut reversal_at = Instant::now();
        let alive = loop {
            if stop.load(Ordering::Relaxed) {
                break true;
            }
            let now = Instant::now();
            // Reversals first: up to 32 outstanding, each repeated until acknowledged.
            if now >= reversal_at {
                reversal_at = now + Duration::from_millis(20);
                let out: HashSet<u32> = inflight
                    .values()
                    .filter_map(|x| if let Sent::Reversal(j) = x { Some(*j) } else { None })
                    .collect();
                let due: Vec<u32> = to_reverse
                    .iter()
                    .copied()
                    .filter(|i| !out.contains(i))
                    .take(32 - out.len().min(32))
                    .collect();
                let mut gone = false;
                for i in due {
                    let tries = reversal_tries.entry(i).or_insert(0);
                    *tries += 1;
                    corr += 1;
                    if !send(&mut s, corr, &reversal(i, *tries > 1)) {
                        gone = true;
                        break;
                    }
                    inflight.insert(corr, Sent::Reversal(i));
                }
                if gone {
                    break false;
                }
            }
            if load.load(Ordering::Relaxed) && now.duration_since(last_send) >= Duration::from_secs(1) / rate
            {
                last_send = now;
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                corr += 1;
                if rng.is_multiple_of(10) && !answered.is_empty() {
                    // A repeat of an answered purchase.
                    let i = answered[usize::try_from(rng >> 8).unwrap() % answered.len()];
                    if !send(&mut s, corr, &purchase(i)) {
                        break false;
                    }
                    inflight.insert(corr, Sent::Repeat(i));
                } else {
                    let i = next;
                    next += 1;
                    if !send(&mut s, corr, &purchase(i)) {
                        break false;
                    }
                    seen.lock().unwrap().sent += 1;
                    inflight.insert(corr, Sent::Purchase(i, now));
                }
            }
            // A purchase unanswered for 2 s is given up on and reversed.
            let late: Vec<u64> = inflight
                .iter()
                .filter(|(_, x)| matches!(x, Sent::Purchase(_, at) if now.duration_since(*at) > Duration::from_secs(2)))
                .map(|(c, _)| *c)
                .collect();
            for c in late {
                if let Some(Sent::Purchase(i, _)) = inflight.remove(&c) {
                    to_reverse.push_back(i);
                }
            }
            let Some(frames) = read_frames(&mut s, &mut buf) else { break false };
            for (c, m) in frames {
                let Some(what) = inflight.remove(&c) else { continue };
                let code = text(&m, de::RESPONSE_CODE);
                let auth = text(&m, de::AUTH_ID);
                let mut t = seen.lock().unwrap();
                if code == "00" && !matches!(what, Sent::Reversal(_)) {
                    t.approvals.insert((format!("CR{:010}", what.number()), auth.clone()));
                }
                match what {
                    Sent::Purchase(i, _) => {
                        t.answers.insert(format!("CR{i:010}"), (code, auth));
                        answered.push(i);
                    }
                    Sent::Repeat(i) => {
                        t.repeats_answered += 1;
                        let rrn = format!("CR{i:010}");
                        let first = t.answers.get(&rrn).cloned();
                        // A decline the switch made before taking the request (the issuer's
                        // link not up yet after a restart, say) is no outcome: its repeat is
                        // a new try. Every other answer is what the repeat must get again.
                        let outcome =
                            first.as_ref().is_some_and(|(c, _)| !ADMISSION_DECLINES.contains(&c.as_str()));
                        if outcome && first.as_ref() != Some(&(code.clone(), auth.clone())) {
                            t.repeat_mismatches.push(format!("{rrn}: first {first:?}, repeat {code}/{auth}"));
                        }
                    }
                    Sent::Reversal(i) => {
                        if code == "00" {
                            t.reversed_acked.insert(format!("CR{i:010}"));
                            to_reverse.retain(|&j| j != i);
                        }
                    }
                }
            }
            seen.lock().unwrap().reversals_open = to_reverse.len();
        };
        // The connection is gone: every purchase without an answer is reversed; a reversal
        // in flight goes again (as a repeat).
        for (_, what) in inflight.drain() {
            if let Sent::Purchase(i, _) = what {
                to_reverse.push_back(i);
            }
        }
        seen.lock().unwrap().reversals_open = to_reverse.len();
        if alive {
            break;
        }
    }
}

/// The fewest requests a second of the killed runs the terminal must have sent for the
/// harness to count as under load.
const LOAD_FLOOR_PER_S: f64 = 25.0;

#[test]
fn kill_9_again_and_again_under_load_leaves_nothing_ambiguous_doubled_or_lost() {
    let crashes: u32 = std::env::var("CORRIDOR_CRASHES").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let state = state("crash-cycles");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer_addr = listener.local_addr().unwrap();
    let acq_port = free_port();
    let config = state.join("switch.toml");
    std::fs::write(&config, config_text(acq_port, issuer_addr)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let load = Arc::new(AtomicBool::new(true));
    let iss_seen = Arc::new(Mutex::new(IssuerSeen::default()));
    let term_seen = Arc::new(Mutex::new(TerminalSeen::default()));
    let issuer_thread = {
        let (seen, stop) = (Arc::clone(&iss_seen), Arc::clone(&stop));
        std::thread::spawn(move || issuer(listener, seen, stop))
    };
    let terminal_thread = {
        let (seen, stop, load) = (Arc::clone(&term_seen), Arc::clone(&stop), Arc::clone(&load));
        std::thread::spawn(move || terminal(acq_port, 300, load, stop, seen))
    };
    let seed = u64::from(std::process::id()) ^ 0x9E37_79B9_7F4A_7C15;
    println!("crash harness: {crashes} crashes, seed {seed:#x}");
    let mut rng = seed;
    let started = Instant::now();
    // How long the killed runs served, together: the load they carried is measured by it
    // (the runs' lengths are drawn, so a seed of short ones sends less).
    let mut served = Duration::ZERO;
    for n in 0..crashes {
        let switch = serve(&config);
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // Anywhere from a few requests in to more than a timeout's worth.
        let run = Duration::from_millis(100 + rng % 1_200);
        std::thread::sleep(run);
        served += run;
        switch.kill9();
        if n % 10 == 9 {
            println!("  {} crashes, {:.0} s", n + 1, started.elapsed().as_secs_f64());
        }
    }
    // A last run: the load stops, and everything owed settles.
    let switch = serve(&config);
    std::thread::sleep(Duration::from_millis(500));
    load.store(false, Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let settled = {
            let t = term_seen.lock().unwrap();
            let i = iss_seen.lock().unwrap();
            let ambiguous = ambiguous(&i, &t);
            t.reversals_open == 0 && ambiguous.is_empty()
        };
        if settled || Instant::now() > deadline {
            break;
        }
    }
    // Every reversal the switch still owes is acknowledged by now: drain and stop.
    std::thread::sleep(Duration::from_millis(800));
    let status = switch.term();
    stop.store(true, Ordering::Relaxed);
    terminal_thread.join().unwrap();
    issuer_thread.join().unwrap();

    let t = term_seen.lock().unwrap();
    let i = iss_seen.lock().unwrap();
    let approved = i.purchases.len();
    let delivered = t.approvals.len();
    let reversed_at_issuer = i.reversals.len();
    println!(
        "crash harness: {crashes} crashes in {:.0} s; terminal sent {} purchases, got {} answers ({delivered} approvals), \
         reversed {} itself, {} repeats answered; issuer approved {approved}, received reversals for {reversed_at_issuer}",
        started.elapsed().as_secs_f64(),
        t.sent,
        t.answers.len(),
        t.reversed_acked.len(),
        t.repeats_answered,
    );
    assert!(status.success(), "the last run drained and stopped cleanly");
    // A floor far below what one request at a time through two syncs a transaction
    // carries (70–100 a second, in CI too), far above nothing.
    let floor = (LOAD_FLOOR_PER_S * served.as_secs_f64()) as usize;
    assert!(
        t.sent > floor && !t.answers.is_empty(),
        "load was carried: {} sent in {served:?} of killed runs (at least {floor}), {} answered",
        t.sent,
        t.answers.len()
    );
    let amb = ambiguous(&i, &t);
    assert!(amb.is_empty(), "approved at the issuer, never delivered, never reversed: {amb:?}");
    let twice: Vec<_> = i.purchases.iter().filter(|(_, (n, _))| *n > 1).map(|(r, _)| r.clone()).collect();
    assert!(twice.is_empty(), "forwarded twice: {twice:?}");
    let rev_twice: Vec<_> =
        i.reversals.iter().filter(|(_, (first, _))| *first > 1).map(|(r, _)| r.clone()).collect();
    assert!(rev_twice.is_empty(), "a reversal's first transmission twice: {rev_twice:?}");
    let lost: Vec<_> = t.reversed_acked.iter().filter(|r| !i.reversals.contains_key(*r)).cloned().collect();
    assert!(
        lost.is_empty(),
        "reversals acknowledged to the terminal that never reached the issuer: {lost:?}"
    );
    assert_eq!(t.reversals_open, 0, "every reversal the terminal made was acknowledged");
    assert!(
        t.repeat_mismatches.is_empty(),
        "repeats answered otherwise than the first time: {:?}",
        t.repeat_mismatches
    );
    // The journal agrees: nothing owed after the drain.
    let (ok, verify) = corridor(&["journal", "verify", state.join("journal").to_str().unwrap()]);
    assert!(ok, "{verify}");
    assert!(verify.contains("0 requests forwarded without an answer"), "{verify}");
}

/// RRNs the issuer approved that the terminal never got approved and the issuer never got a
/// reversal for.
fn ambiguous(i: &IssuerSeen, t: &TerminalSeen) -> Vec<String> {
    i.purchases
        .iter()
        .filter(|(rrn, (_, auth))| {
            let delivered = t.approvals.contains(&((*rrn).clone(), auth.clone()));
            !delivered && !i.reversals.contains_key(*rrn)
        })
        .map(|(r, _)| r.clone())
        .collect()
}

fn config_text(acq_port: u16, issuer: std::net::SocketAddr) -> String {
    let mut c = config(acq_port, issuer, "reversal_retry_ms = 500\nreversal_repeats_max = 1000");
    // Small segments, so checkpoints and retention run during the harness too.
    c.push_str("segment_bytes = 1048576\ncheckpoint_segments = 1\nretain_hours = 0\n");
    c
}
