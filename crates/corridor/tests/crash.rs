//! `kill -9` of a journaling switch with requests in flight, then a restart on the same
//! journal: every request the issuer approved and the acquirer never heard of is reversed
//! toward the issuer — no ambiguous outcome. Real processes, loopback sockets.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::disallowed_methods)] // test code: threads and sleeps

mod common;

use std::{
    collections::HashSet,
    io::Read,
    net::{TcpListener, TcpStream},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::{send, serve};

use bytes::BytesMut;
use corridor_wire::{de, Dialect, Message, Mti, NativeFramer, OwnedMessage, FRAME_BYTES_MAX};

/// What the issuer saw: the STANs it approved, and the original STANs (DE 90) reversed.
#[derive(Default)]
struct Seen {
    approved: HashSet<String>,
    reversed: HashSet<String>,
    requests: usize,
}

fn answer(m: &Message<bytes::Bytes>, code: &str) -> OwnedMessage {
    common::answer(&OwnedMessage::from(m), code)
}

/// An issuer that approves each purchase 300 ms after it came and acknowledges reversals
/// at once; it serves one connection after another, for at most 60 s.
fn issuer(listener: TcpListener, seen: Arc<Mutex<Seen>>) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let Ok((mut s, _)) = listener.accept() else { return };
        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let mut buf = BytesMut::new();
        let mut held: Vec<(Instant, u64, OwnedMessage)> = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            let now = Instant::now();
            for (_, corr, m) in held.iter().filter(|(at, _, _)| *at <= now) {
                send(&mut s, *corr, m);
            }
            held.retain(|(at, _, _)| *at > now);
            match s.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
            while let Some(f) = NativeFramer::new(FRAME_BYTES_MAX).decode(&mut buf).unwrap() {
                let corr = f.correlation();
                let m = Message::parse(Dialect::Native, f.into_body()).unwrap();
                match m.mti() {
                    Mti::NETWORK_REQUEST => {
                        send(&mut s, corr, &answer(&m, "00"));
                    }
                    Mti::FINANCIAL_REQUEST => {
                        // Approved as it arrives (its answer leaves 300 ms later, if the
                        // connection is still there).
                        let stan = String::from_utf8(OwnedMessage::from(&m).get(de::STAN).unwrap().to_vec())
                            .unwrap();
                        let mut seen = seen.lock().unwrap();
                        seen.approved.insert(stan);
                        seen.requests += 1;
                        held.push((Instant::now() + Duration::from_millis(300), corr, answer(&m, "00")));
                    }
                    mti if mti.class() == 4 => {
                        let owned = OwnedMessage::from(&m);
                        let de90 = String::from_utf8(owned.get(de::ORIGINAL_DATA).unwrap().to_vec()).unwrap();
                        seen.lock().unwrap().reversed.insert(de90[4..10].to_owned());
                        send(&mut s, corr, &answer(&m, "00"));
                    }
                    _ => {}
                }
            }
        }
    }
}

#[test]
fn kill_9_with_requests_in_flight_leaves_no_ambiguous_outcome() {
    crash_and_restart("cards", false);
}

/// The same with requests that carry no PAN (a wallet's QR payments: the journal keeps them
/// whole, nothing sealed, and reverses them after the restart like any).
#[test]
fn kill_9_with_pan_less_requests_in_flight_reverses_them_too() {
    crash_and_restart("qr", true);
}

/// `kill -9` of a node of a cluster with requests in flight, and its disk lost; another node,
/// on an empty disk, takes its shards over from the stream (three real `nats-server`
/// processes): every request the issuer approved and the acquirer never heard of is reversed,
/// once, and a repeat is answered from the journal the new node took over.
#[test]
fn kill_9_of_a_node_whose_disk_is_lost_another_takes_over_with_no_ambiguous_outcome() {
    let nats = corridor_tests::nats::NatsCluster::start(3);
    let dir = std::env::temp_dir().join(format!("corridor-crash-cluster-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("pan.key"), "5a".repeat(32)).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer_addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s2 = Arc::clone(&seen);
    std::thread::spawn(move || issuer(listener, s2));
    let servers: Vec<String> = nats.urls().iter().map(|u| format!("\"{u}\"")).collect();
    let node = |name: &str, acq_port: u16| {
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "{}\n[cluster]\nnode = \"{name}\"\nnats = [{}]\n",
                common::config(acq_port, issuer_addr, "shards = 2")
                    .replace("dir = \"journal\"", &format!("dir = \"journal-{name}\"")),
                servers.join(", ")
            ),
        )
        .unwrap();
        let switch = serve(&config);
        assert!(
            switch.wait_logged("the journal is replicated", 2, Duration::from_secs(30)),
            "node {name} replicates both shards' journals"
        );
        switch
    };
    let acq_a = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let a = node("a", acq_a);
    let mut acq = TcpStream::connect(("127.0.0.1", acq_a)).unwrap();
    for i in 1..=20u64 {
        send(&mut acq, i, &common::purchase(u32::try_from(i).unwrap(), &format!("NODE{i:08}")));
    }
    // Every request reaches the issuer (it holds them 300 ms); then the node dies, its disk
    // with it.
    std::thread::sleep(Duration::from_millis(150));
    a.kill9();
    std::fs::remove_dir_all(dir.join("journal-a")).unwrap();
    std::thread::sleep(Duration::from_millis(400));

    let started = Instant::now();
    let acq_b = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let b = node("b", acq_b);
    let serving = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(15);
    let ambiguous = loop {
        let s = seen.lock().unwrap();
        let ambiguous: Vec<String> = s.approved.difference(&s.reversed).cloned().collect();
        if ambiguous.is_empty() || Instant::now() > deadline {
            break ambiguous;
        }
        drop(s);
        std::thread::sleep(Duration::from_millis(50));
    };
    let s = seen.lock().unwrap();
    assert_eq!(s.approved.len(), 20, "the issuer approved every request");
    assert!(ambiguous.is_empty(), "approved, never delivered, never reversed: {ambiguous:?}");
    assert_eq!(s.reversed.len(), 20, "each reversed once");
    drop(s);
    // The terminal fails over to node b and repeats a request it got no answer to: answered
    // from the journal node b took over (68: reversed), never forwarded again.
    let mut acq = TcpStream::connect(("127.0.0.1", acq_b)).unwrap();
    acq.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    send(&mut acq, 7, &common::purchase(7, "NODE00000007"));
    let mut buf = BytesMut::new();
    let mut chunk = [0u8; 4096];
    let answer = loop {
        if let Some(f) = NativeFramer::new(FRAME_BYTES_MAX).decode(&mut buf).unwrap() {
            break OwnedMessage::from(&Message::parse(Dialect::Native, f.into_body()).unwrap());
        }
        let n = acq.read(&mut chunk).expect("an answer to the repeat");
        assert!(n > 0, "the switch closed instead of answering");
        buf.extend_from_slice(&chunk[..n]);
    };
    assert_eq!(answer.get(de::RESPONSE_CODE), Some(&b"68"[..]));
    assert_eq!(seen.lock().unwrap().requests, 20, "not forwarded again");
    eprintln!("node b served {serving:?} after it started (node a's leases expiring, the stream read)");
    let _ = b.term();
    let _ = std::fs::remove_dir_all(&dir);
}

fn crash_and_restart(name: &str, pan_less: bool) {
    let dir = std::env::temp_dir().join(format!("corridor-crash-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("pan.key"), "5a".repeat(32)).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer_addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s2 = Arc::clone(&seen);
    std::thread::spawn(move || issuer(listener, s2));
    let acq_port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = dir.join("switch.toml");
    std::fs::write(
        &config,
        format!(
            "[[participant]]\nid = \"acq\"\nroles = [\"acquirer\"]\nacquirer_ids = [\"12345678\"]\n  [[participant.link]]\n  \
             name = \"acq-1\"\n  mode = \"listen\"\n  address = \"127.0.0.1:{acq_port}\"\n  framing = \"native\"\n  \
             dialect = \"native\"\n  sign_on_required = false\n\n[[participant]]\nid = \"iss\"\nroles = [\"issuer\"]\n  \
             [[participant.link]]\n  name = \"iss-1\"\n  mode = \"dial\"\n  address = \"{issuer_addr}\"\n  framing = \"native\"\n  \
             dialect = \"native\"\n  reconnect_min_ms = 50\n  reconnect_max_ms = 200\n\n[[route]]\ndefault = true\n\
             destination = \"iss\"\ntimeout_ms = 5000\n\n[journal]\ndir = \"journal\"\nkey_file = \"pan.key\"\n"
        ),
    )
    .unwrap();

    let switch = serve(&config);
    let mut acq = TcpStream::connect(("127.0.0.1", acq_port)).unwrap();
    let purchase = |i: u64| {
        let mut m = common::purchase(u32::try_from(i).unwrap(), &format!("CRASH{i:07}"));
        if pan_less {
            m.remove(de::PAN);
        }
        m
    };
    for i in 1..=20u64 {
        send(&mut acq, i, &purchase(i));
    }
    // Every request reaches the issuer (it holds them 300 ms); then the switch dies.
    let deadline = Instant::now() + Duration::from_secs(10);
    std::thread::sleep(Duration::from_millis(150));
    assert!(Instant::now() < deadline);
    switch.kill9();
    // The issuer approves all 20 into a dead connection; the acquirer heard nothing.
    std::thread::sleep(Duration::from_millis(400));
    acq.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut got = [0u8; 64];
    assert!(!matches!(acq.read(&mut got), Ok(n) if n > 0), "the acquirer got no answer before the crash");

    // Restart on the same journal: everything approved and never delivered is reversed.
    let switch = serve(&config);
    let deadline = Instant::now() + Duration::from_secs(15);
    let ambiguous = loop {
        let s = seen.lock().unwrap();
        let ambiguous: Vec<String> = s.approved.difference(&s.reversed).cloned().collect();
        if ambiguous.is_empty() || Instant::now() > deadline {
            break ambiguous;
        }
        drop(s);
        std::thread::sleep(Duration::from_millis(50));
    };
    let s = seen.lock().unwrap();
    assert_eq!(s.approved.len(), 20, "the issuer approved every request");
    assert!(ambiguous.is_empty(), "approved, never delivered, never reversed: {ambiguous:?}");
    assert_eq!(s.reversed.len(), 20, "each reversed once");
    drop(s);
    // The terminal repeats a request it got no answer to: the switch answers it from the
    // journal (68: it was reversed), and the issuer never sees it again.
    let mut acq = TcpStream::connect(("127.0.0.1", acq_port)).unwrap();
    acq.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    send(&mut acq, 7, &purchase(7));
    let mut buf = BytesMut::new();
    let mut chunk = [0u8; 4096];
    let answer = loop {
        if let Some(f) = NativeFramer::new(FRAME_BYTES_MAX).decode(&mut buf).unwrap() {
            break OwnedMessage::from(&Message::parse(Dialect::Native, f.into_body()).unwrap());
        }
        let n = acq.read(&mut chunk).expect("an answer to the repeat");
        assert!(n > 0, "the switch closed instead of answering");
        buf.extend_from_slice(&chunk[..n]);
    };
    assert_eq!(answer.get(de::RESPONSE_CODE), Some(&b"68"[..]));
    assert_eq!(seen.lock().unwrap().requests, 20, "not forwarded again");
    let _ = switch.term();
    let _ = std::fs::remove_dir_all(&dir);
}
