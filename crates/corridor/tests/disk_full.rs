//! A disk that really fills: the journal on a small tmpfs this test mounts (it needs root,
//! which CI has), a `corridor serve` process on it, and a file that takes the rest of the
//! space. New requests are declined 96 while the one in flight is answered; once the file
//! is gone the switch takes new requests again. Real process, loopback sockets.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::disallowed_methods)] // test code

mod common;

use std::{
    io::Write,
    net::{TcpListener, TcpStream},
    process::Command,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use bytes::BytesMut;
use common::*;
use corridor_wire::{de, OwnedMessage};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// An issuer that approves each purchase 2 s after it came; counts purchases.
fn issuer(listener: TcpListener, purchases: Arc<AtomicUsize>, stop: Arc<AtomicBool>) {
    serve_peer(listener, &stop, |m, _| {
        (m.mti().value() == 200).then(|| {
            purchases.fetch_add(1, Ordering::Relaxed);
            (Duration::from_secs(2), answer(m, "00"))
        })
    });
}

fn purchase(stan: u32) -> OwnedMessage {
    common::purchase(stan, &format!("DF{stan:010}"))
}

/// Sends purchases `stans` and waits for each one's response code; every answer that
/// comes meanwhile is kept in `got`, by STAN.
fn ask(
    acq: &mut TcpStream,
    buf: &mut BytesMut,
    got: &mut std::collections::BTreeMap<u32, String>,
    stans: &[u32],
) {
    for &s in stans {
        assert!(send(acq, u64::from(s), &purchase(s)));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !stans.iter().all(|s| got.contains_key(s)) {
        assert!(Instant::now() < deadline, "answers to {stans:?}: got {got:?}");
        for (_, m) in read_frames(acq, buf).expect("the switch stays up") {
            got.insert(text(&m, de::STAN).parse().unwrap(), text(&m, de::RESPONSE_CODE));
        }
    }
}

#[test]
fn a_full_tmpfs_declines_new_requests_answers_the_one_in_flight_and_recovers() {
    if !root() {
        eprintln!("disk_full: skipped, mounting a tmpfs needs root (CI runs as root)");
        return;
    }
    let state = state("disk-full");
    let mnt = state.join("journal");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "corridor-test", mnt.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(mounted.success(), "mount a 4 MiB tmpfs");
    let _tmpfs = Tmpfs(mnt.clone());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer_addr = listener.local_addr().unwrap();
    let (purchases, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
    let t = {
        let (p, s) = (Arc::clone(&purchases), Arc::clone(&stop));
        std::thread::spawn(move || issuer(listener, p, s))
    };
    let acq_port = free_port();
    let path = state.join("switch.toml");
    let mut text = config(acq_port, issuer_addr, "");
    // Segments not prepared ahead: a prepared one would hold space the filler cannot take,
    // and the disk would be met full only at the next segment (the journal's unit tests
    // cover that a prepared segment is used, and begun empty when it cannot be made).
    text.push_str("segment_bytes = 1048576\nreserve_bytes = 262144\npreallocate = false\n");
    std::fs::write(&path, text).unwrap();
    let switch = serve(&path);
    let mut acq = TcpStream::connect(("127.0.0.1", acq_port)).unwrap();
    acq.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
    let mut buf = BytesMut::new();
    let mut got = std::collections::BTreeMap::new();
    ask(&mut acq, &mut buf, &mut got, &[1]);
    assert_eq!(got[&1], "00");

    // One purchase in flight at the issuer; then the rest of the disk is taken.
    assert!(send(&mut acq, 2, &purchase(2)));
    let deadline = Instant::now() + Duration::from_secs(5);
    while purchases.load(Ordering::Relaxed) < 2 {
        assert!(Instant::now() < deadline, "the second reached the issuer");
        std::thread::sleep(Duration::from_millis(5));
    }
    let filler = mnt.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0xEEu8; 4096];
    let mut taken = 0usize;
    while f.write_all(&chunk).is_ok() {
        taken += chunk.len();
        assert!(taken < 8 << 20, "the tmpfs fills");
    }
    drop(f);
    // The next records meet the full disk (a burst, so they need pages the file does not
    // have yet): they go through on the reserve, and the ones after them are declined; the
    // one in flight is answered.
    let burst: Vec<u32> = (100..140).collect();
    ask(&mut acq, &mut buf, &mut got, &burst);
    // Those taken before the switch learnt of it go through on the reserve; from the first
    // decline on, every one is declined.
    let taken = burst.iter().take_while(|s| got[*s] == "00").count();
    assert!(burst[taken..].iter().all(|s| got[s] == "96"), "approved, then declined: {got:?}");
    assert!(switch.logged("the disk is full"), "logged");
    ask(&mut acq, &mut buf, &mut got, &[200, 201]);
    assert_eq!((got[&200].as_str(), got[&201].as_str()), ("96", "96"), "declined while the disk is full");
    assert_eq!(got[&2], "00", "the one in flight when the disk filled: answered");
    assert_eq!(purchases.load(Ordering::Relaxed), 2 + taken, "the declined ones never left");

    // Room again: within a second or so the switch takes new requests.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stan = 10;
    loop {
        stan += 1;
        ask(&mut acq, &mut buf, &mut got, &[stan]);
        if got[&stan] == "00" {
            break;
        }
        assert!(Instant::now() < deadline, "new requests taken again");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(switch.logged("disk space is back"));
    assert!(switch.term().success(), "a full disk is not fatal");
    stop.store(true, Ordering::Relaxed);
    t.join().unwrap();
    drop(_tmpfs);
}
