//! The journal's checkpointer without its files: `TRANSACTIONS` card transactions (or the
//! count its first argument gives: a million outcomes is a switch's full window) journaled
//! as the switch journals them (accepted and forwarded in one record, and answered 1,024
//! transactions later; with `pairs` after the count, as it journaled them before: accepted
//! and forwarded in a record each), written as 64 MiB segments in memory, then folded one
//! segment at a time (`Recovery::apply_segment`, what a checkpoint does with each closed
//! segment), the state written as a checkpoint (`Recovery::checkpoint`) and read back as a
//! restart reads it (`Recovery::from_checkpoint`) and as a node checks one it hands on
//! (`Recovery::check_checkpoint`). Deterministic, for callgrind:
//!
//! ```sh
//! cargo build --release -p corridor-benches --example checkpoint_loop
//! valgrind --tool=callgrind --toggle-collect='checkpoint_loop::fold' target/release/examples/checkpoint_loop
//! ```
//!
//! It prints what it folded and wrote, and how long each took; with `--toggle-collect` as
//! above callgrind counts the fold alone (not the journaling that makes the segments), and
//! its total over `TRANSACTIONS` is the fold's instructions a transaction. With
//! `CHECKPOINT_OUT=path` in its environment it writes the checkpoint there too (to see what
//! compression makes of it, as a cluster's stream carries it).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stdout)] // a measuring tool

use std::time::Instant;

use corridor_journal::{
    entry::{Accepted, Answered, Entry, Forwarded, Key, Sent},
    recovery::Recovery,
    scan_segment, Appender, GroupCommit, SegmentHeader,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TRANSACTIONS: u64 = 200_000;

/// Transactions between a request's records and its answer's (a switch's in-flight count).
const IN_FLIGHT: usize = 1_024;

fn main() {
    let n = std::env::args().nth(1).map_or(TRANSACTIONS, |a| a.parse().expect("a count of transactions"));
    let pairs = std::env::args().nth(2).as_deref() == Some("pairs");
    let segments = journal(n, pairs);
    let began = Instant::now();
    let state = fold(&segments);
    let folded = began.elapsed();
    let mut out = Vec::new();
    state.checkpoint(&mut out);
    let written = began.elapsed() - folded;
    if let Ok(path) = std::env::var("CHECKPOINT_OUT") {
        std::fs::write(path, &out).expect("written");
    }
    // Read back: as a restart folds it (its state made), and as a node checks one it hands on.
    let t = Instant::now();
    let back = Recovery::from_checkpoint(&out).expect("it reads back");
    let read = t.elapsed();
    let t = Instant::now();
    let covers = Recovery::check_checkpoint(&out).expect("it checks");
    let checked = t.elapsed();
    assert_eq!((back.last_seq, back.outcomes.len()), (covers, state.outcomes.len()));
    println!(
        "{n} transactions in {} segments folded in {folded:?}: {} outcomes, {} open; checkpoint of {} bytes in {written:?}, read back in {read:?}, checked in {checked:?}",
        segments.len(),
        state.outcomes.len(),
        state.requests.len(),
        out.len(),
    );
}

/// The segments' bytes, each with its first record's sequence number.
fn journal(n: u64, pairs: bool) -> Vec<(u64, Vec<u8>)> {
    let policy = GroupCommit { records_max: 1_024, ..GroupCommit::default() };
    let mut a = Appender::new(policy, 1, None);
    let t = Instant::now();
    let mut segments: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut payload = Vec::new();
    let mut put = |a: &mut Appender, e: &Entry| {
        payload.clear();
        e.encode(&mut payload);
        a.append(e.kind(), &payload, t)
    };
    let cut = |a: &mut Appender, segments: &mut Vec<(u64, Vec<u8>)>, last: bool| {
        if a.buffered() >= 1_000 || (last && a.buffered() > 0) {
            let b = a.poll_batch(t + GroupCommit::default().wait, 0).expect("a batch is due");
            if let Some(h) = b.new_segment {
                segments.push((h.first_seq, h.to_bytes().to_vec()));
            }
            segments.last_mut().expect("a segment begun").1.extend_from_slice(&b.bytes);
            a.handle_synced(b.last_seq);
        }
    };
    let mut in_flight = std::collections::VecDeque::new();
    for i in 0..n {
        let stan = u32::try_from(i % 1_000_000).unwrap();
        let key = Key {
            stan,
            time: 1_206_153_000 + i / 1_000_000,
            terminal: *b"TERM0001",
            acquirer: 12_345_678,
            ..corridor_journal::entry::key("acq", 2, 0)
        };
        // A sealed purchase is about 230 bytes.
        let accepted =
            Accepted { key, link: "acq-1".into(), correlation: i, request: vec![7; 230], at_unix_ms: 0 };
        let seq = if pairs {
            let seq = put(&mut a, &Entry::Accepted(accepted));
            let f = Forwarded {
                request: seq,
                destination: "iss".into(),
                link: "iss-1".into(),
                key: i,
                sent_stan: *b"000001",
            };
            put(&mut a, &Entry::Forwarded(f));
            seq
        } else {
            let sent = Sent {
                accepted,
                destination: "iss".into(),
                out_link: "iss-1".into(),
                out_key: i,
                sent_stan: *b"000001",
            };
            put(&mut a, &Entry::Sent(sent))
        };
        // Answered `IN_FLIGHT` transactions later, as under load: the last ones stay open.
        in_flight.push_back(seq);
        if in_flight.len() > IN_FLIGHT {
            let request = in_flight.pop_front().expect("one in flight");
            let answered =
                Answered { request, code: *b"00", auth: Some(*b"AUTH01"), switch_made: false, at_unix_ms: 0 };
            put(&mut a, &Entry::Answered(answered));
        }
        cut(&mut a, &mut segments, false);
    }
    cut(&mut a, &mut segments, true);
    // Every segment begins with its header.
    assert!(segments.iter().all(|(first, s)| SegmentHeader::parse(&s[..32]).unwrap().first_seq == *first));
    segments
}

/// A checkpoint's fold of every segment, from an empty state.
#[inline(never)]
fn fold(segments: &[(u64, Vec<u8>)]) -> Recovery {
    let mut state = Recovery::default();
    for (first, bytes) in segments {
        let scan = scan_segment(bytes, *first, false).expect("a segment as written");
        state.apply_segment(&scan.records, 0).expect("entries as written");
    }
    state
}
