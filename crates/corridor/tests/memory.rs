//! A switch's resident size after a flood of connections: 1,000 connections, each holding
//! a partial frame of almost 16 KB, then closed. The memory they took must go back to the
//! system, not stay with the process (found from outside: +43 MiB that stayed). The real
//! binary (its allocator is the one that matters), real sockets, `/proc` for the size.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::disallowed_methods)] // test code: threads and sleeps

mod common;

use std::{
    io::Write,
    net::{TcpListener, TcpStream},
    sync::atomic::AtomicBool,
    time::{Duration, Instant},
};

use common::{config, free_port, purchase, send, serve, serve_peer, state};

/// Connections in the flood.
const FLOOD: usize = 1_000;
/// Each one's partial frame: a native header declaring a body of `BODY` bytes, and all of
/// it but the last byte.
const BODY: usize = 16 * 1024 - 20 - 1;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn partial_frame() -> Vec<u8> {
    let mut f = vec![0x85, 0x83, 1, 0, 0, 20, 0, 0];
    f.extend_from_slice(&u32::try_from(BODY).unwrap().to_be_bytes());
    f.extend_from_slice(&7u64.to_be_bytes());
    f.extend(std::iter::repeat_n(b'0', BODY - 1));
    f
}

/// Polls the resident size until `ok` holds or `wait` passed; the last size read.
fn rss_until(pid: u32, wait: Duration, ok: impl Fn(u64) -> bool) -> u64 {
    let deadline = Instant::now() + wait;
    loop {
        let rss = rss_kib(pid);
        if ok(rss) || Instant::now() >= deadline {
            return rss;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Reads answers from `acq` until `n` came or 10 s passed; how many came.
fn answers(acq: &mut TcpStream, buf: &mut bytes::BytesMut, n: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = 0;
    while got < n && Instant::now() < deadline {
        got += common::read_frames(acq, buf).map_or(0, |f| f.len());
    }
    got
}

#[test]
fn memory_taken_by_a_flood_of_connections_goes_back_after_they_close() {
    let dir = state("memory");
    let issuer = TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer_addr = issuer.local_addr().unwrap();
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            serve_peer(issuer, &stop, |m, _| Some((Duration::ZERO, common::answer(m, "00"))));
        });
        // The issuer stops however the test ends (a failed assertion included).
        struct StopOnDrop<'a>(&'a AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let _stop = StopOnDrop(&stop);
        let port = free_port();
        let text = config(port, issuer_addr, "").replacen(
            "inflight_max = 1024\n",
            "inflight_max = 1024\n  connections_max = 2000\n  frame_timeout_ms = 60000\n",
            1,
        );
        std::fs::write(dir.join("corridor.toml"), text).unwrap();
        let switch = serve(&dir.join("corridor.toml"));
        let pid = switch.child.id();
        let addr = format!("127.0.0.1:{port}");
        // Warm: a few payments, so what every payment allocates is in the baseline.
        let mut acq = TcpStream::connect(&addr).unwrap();
        acq.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let mut buf = bytes::BytesMut::new();
        for stan in 1..=50 {
            assert!(send(&mut acq, u64::from(stan), &purchase(stan, &format!("{stan:012}"))));
        }
        assert_eq!(answers(&mut acq, &mut buf, 50), 50);
        std::thread::sleep(Duration::from_millis(500));
        let before = rss_kib(pid);

        let frame = partial_frame();
        let flood: Vec<TcpStream> = (0..FLOOD)
            .map(|_| {
                let mut s = TcpStream::connect(&addr).unwrap();
                s.write_all(&frame).unwrap();
                s
            })
            .collect();
        // The flood is in: the switch holds ~16 MiB of partial frames.
        let held = (FLOOD * BODY / 1024) as u64;
        let peak = rss_until(pid, Duration::from_secs(20), |rss| rss > before + held / 2);
        assert!(peak > before + held / 2, "the flood took memory: {before} KiB, then {peak} KiB");
        drop(flood);
        // Within a few seconds of their close, the size falls back to within a quarter of
        // what the flood took.
        let after = rss_until(pid, Duration::from_secs(20), |rss| rss < before + (peak - before) / 4);
        eprintln!("resident: {before} KiB before, {peak} KiB with {FLOOD} partial frames, {after} KiB after");
        assert!(
            after < before + (peak - before) / 4,
            "resident size stayed up: {before} KiB before, {peak} KiB in the flood, {after} KiB after"
        );
        // And the switch still serves.
        assert!(send(&mut acq, 99, &purchase(99, "000000000099")));
        assert_eq!(answers(&mut acq, &mut buf, 1), 1);
        drop(switch);
    });
}
