//! Runs whole transactions through the engine a fixed number of times (native on both
//! sides, no I/O): a steady workload for instruction counts.
//!
//! ```sh
//! cargo build --release -p corridor-benches --example engine_loop
//! valgrind --tool=callgrind target/release/examples/engine_loop            # metrics on (the default)
//! valgrind --tool=callgrind target/release/examples/engine_loop no-metrics # [switch] metrics = false
//! valgrind --tool=callgrind target/release/examples/engine_loop qr         # QR payments instead
//! valgrind --tool=callgrind target/release/examples/engine_loop qr-fx      # ... with currencies
//! valgrind --tool=callgrind target/release/examples/engine_loop journal    # the journal on
//! target/release/examples/engine_loop reads 32 [journal]                    # timed, see below
//! ```
//!
//! `reads N` times the engine instead, in the steady state of a full duplicate window: three
//! million transactions (the window holds a million), each read of the acquirer's link
//! holding `N` requests and each of the issuer's their `N` answers, as a loaded link's reads
//! do (with `journal`, each read's records journaled as above, a batch a read); it prints the nanoseconds a transaction of the last two million took. Its index
//! misses the cache as the switch's does: what a read of many frames does about them
//! (`benches/README.md`, the tenth pass) is seen here, not in an instruction count.
//!
//! With `journal`, every record is journaled as the switch journals it (each request sealed,
//! its records encoded and checksummed into the batch); each batch is taken and counted
//! durable at once, as if its write and sync took no time — the switch thread's own share of
//! the journal's cost, without the writer's or the checkpointer's.
//!
//! It allocates with mimalloc, as `corridor serve` does (the system allocator's `free` alone
//! counted some 800 instructions a transaction here).

#![allow(clippy::expect_used, clippy::unwrap_used)] // a benchmark tool: a panic is a broken fixture

use std::time::Instant;

use bytes::BytesMut;
use corridor_benches::{engine_config, frame, qr_0200, qr_config, typical_0200};
use corridor_engine::{Engine, Framing, LinkId, WallClock};
use corridor_wire::{de, Dialect, Mti};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Transactions per run.
const ITERATIONS: u32 = 100_000;

fn main() {
    let native = (Framing::Native, Dialect::Native);
    let now = Instant::now();
    let mode = std::env::args().nth(1).unwrap_or_default();
    let mut config = match mode.as_str() {
        "qr" => qr_config(native, native, false),
        "qr-fx" => qr_config(native, native, true),
        _ => engine_config(native, native),
    };
    config.settings.metrics = mode != "no-metrics";
    let clock = WallClock { at: now, unix_secs: 1_795_644_930 };
    // `reads N journal`: the reads mode, journaled.
    let journaled = mode == "journal" || std::env::args().nth(3).as_deref() == Some("journal");
    let mut engine = if journaled {
        let key = corridor_journal::request::PanKey::new(1, &[0x5A; 32]).expect("a 32-byte key");
        let journal =
            corridor_engine::Journal::new(corridor_journal::GroupCommit::default(), 1, None, key, [7; 8]);
        Engine::with_journal(config, clock, journal)
    } else {
        Engine::new(config, clock)
    };
    // The batch due (at once: a frame waits for it), written and synced in no time; its
    // bytes counted.
    let journal_bytes = std::cell::Cell::new(0usize);
    let sync = |engine: &mut Engine| {
        if let Some(batch) = engine.poll_journal(now, 1_795_644_930_000) {
            journal_bytes.set(journal_bytes.get() + batch.bytes.len());
            engine.handle_journal_synced(batch.last_seq);
            engine.recycle_journal_buffer(batch.bytes);
        }
    };
    let a = engine.link_up(0, now).unwrap();
    let i = engine.link_up(1, now).unwrap();
    if mode == "reads" {
        let n = std::env::args().nth(2).and_then(|n| n.parse().ok()).unwrap_or(32);
        return reads(&mut engine, a, i, n, now, &sync);
    }
    let req = if mode.starts_with("qr") { qr_0200() } else { typical_0200() };
    let mut resp = req.clone();
    resp.set_mti(Mti::FINANCIAL_RESPONSE);
    resp.remove(de::PIN_BLOCK);
    resp.set(de::RESPONSE_CODE, "00").unwrap();
    let mut req_wire = frame(Framing::Native, Dialect::Native, 7, &req).to_vec();
    let mut resp_wire = frame(Framing::Native, Dialect::Native, 0, &resp).to_vec();
    // Each transaction its own STAN (the same request again would be a repeat, answered from
    // the duplicate window and not forwarded), patched in place in the request and in the
    // response (which must echo it).
    let (req_stan, resp_stan) = (stan_at(&req), stan_at(&resp));
    let mut bytes = 0usize;
    for n in 0..ITERATIONS {
        let stan = bcd_stan(n);
        req_wire[req_stan..req_stan + 3].copy_from_slice(&stan);
        resp_wire[resp_stan..resp_stan + 3].copy_from_slice(&stan);
        let mut wire = BytesMut::from(&req_wire[..]);
        engine.handle_read(a, &mut wire, now);
        sync(&mut engine);
        let out = engine.take_output(i).expect("forwarded");
        let corr = corridor_wire::NativeHeader::peek(&out).unwrap().correlation();
        resp_wire[12..20].copy_from_slice(&corr.to_be_bytes());
        let mut back = BytesMut::from(&resp_wire[..]);
        engine.handle_read(i, &mut back, now);
        sync(&mut engine);
        let relayed = engine.take_output(a).expect("relayed").len();
        engine.handle_written(a, relayed);
        bytes += relayed;
    }
    assert_eq!(engine.requests_pending(), 0);
    if journaled {
        let durable = engine.journal_durable().unwrap_or(0);
        // Two records a transaction: the request accepted and forwarded, its answer.
        assert!(durable >= u64::from(ITERATIONS) * 2, "every transaction's records journaled: {durable}");
        let journaled = journal_bytes.get();
        let each = journaled / ITERATIONS as usize;
        println!(
            "{ITERATIONS} transactions, {bytes} bytes relayed, {journaled} journaled ({each} a transaction)"
        );
        return;
    }
    println!("{ITERATIONS} transactions, {bytes} bytes relayed");
}

/// Transactions `reads` runs; the last `READS_TIMED` of them are timed.
const READS_TRANSACTIONS: u32 = 3_000_000;
const READS_TIMED: u32 = 2_000_000;

/// The `reads` mode: requests `per_read` to a read of link `a`, their answers as many to a
/// read of link `i`, each transaction its own key (STAN and DE 7's seconds).
fn reads(engine: &mut Engine, a: LinkId, i: LinkId, per_read: u32, now: Instant, sync: &dyn Fn(&mut Engine)) {
    let per_read = per_read.clamp(1, 1024);
    let req = typical_0200();
    let mut resp = req.clone();
    resp.set_mti(Mti::FINANCIAL_RESPONSE);
    resp.remove(de::PIN_BLOCK);
    resp.set(de::RESPONSE_CODE, "00").unwrap();
    let (mut req_wire, mut resp_wire) = (
        frame(Framing::Native, Dialect::Native, 7, &req).to_vec(),
        frame(Framing::Native, Dialect::Native, 0, &resp).to_vec(),
    );
    let (req_stan, resp_stan) = (stan_at(&req), stan_at(&resp));
    let (req_secs, resp_secs) = (seconds_at(&req), seconds_at(&resp));
    let (mut wire, mut back) = (BytesMut::new(), BytesMut::new());
    let mut began = now;
    let mut n = 0;
    while n < READS_TRANSACTIONS {
        if n == READS_TRANSACTIONS - READS_TIMED {
            began = Instant::now();
        }
        let first = n;
        for k in first..first + per_read {
            let (stan, secs) = (bcd_stan(k), bcd_pair(k / 1_000_000 % 60));
            req_wire[req_stan..req_stan + 3].copy_from_slice(&stan);
            req_wire[req_secs] = secs;
            wire.extend_from_slice(&req_wire);
        }
        engine.handle_read(a, &mut wire, now);
        sync(engine);
        let mut out = engine.take_output(i).expect("forwarded");
        for k in first..first + per_read {
            let header = corridor_wire::NativeHeader::peek(&out).unwrap();
            let len = usize::from(header.header_len()) + header.body_len() as usize;
            let _ = out.split_to(len);
            resp_wire[12..20].copy_from_slice(&header.correlation().to_be_bytes());
            resp_wire[resp_stan..resp_stan + 3].copy_from_slice(&bcd_stan(k));
            resp_wire[resp_secs] = bcd_pair(k / 1_000_000 % 60);
            back.extend_from_slice(&resp_wire);
        }
        engine.handle_read(i, &mut back, now);
        sync(engine);
        let relayed = engine.take_output(a).expect("relayed").len();
        engine.handle_written(a, relayed);
        n += per_read;
    }
    assert_eq!(engine.requests_pending(), 0);
    let ns = began.elapsed().as_nanos() / u128::from(READS_TIMED);
    println!("{READS_TRANSACTIONS} transactions, {per_read} a read: {ns} ns a transaction (the last {READS_TIMED})");
}

/// Where DE 7's last BCD byte (its seconds) sits in `m`'s native frame.
fn seconds_at(m: &corridor_wire::OwnedMessage) -> usize {
    let (at, other) = first_difference(m, de::TRANSMISSION_TIME, "1125221559");
    assert_eq!(other[at], 0x59, "DE 7's seconds are one BCD byte");
    at
}

/// `p` (below 100) as one BCD byte.
fn bcd_pair(p: u32) -> u8 {
    ((((p / 10) % 10) << 4) | (p % 10)) as u8
}

/// STAN `n` (mod 10^6) as the native dialect's three BCD bytes.
fn bcd_stan(n: u32) -> [u8; 3] {
    let n = n % 1_000_000;
    [bcd_pair(n / 10_000), bcd_pair(n / 100), bcd_pair(n)]
}

/// Where DE 11's three BCD bytes sit in `m`'s native frame: the one run of bytes that
/// differs between two encodings that differ only in the STAN.
fn stan_at(m: &corridor_wire::OwnedMessage) -> usize {
    let (first, other) = first_difference(m, de::STAN, "999999");
    assert_eq!(&other[first..first + 3], &bcd_stan(999_999), "DE 11 is three BCD bytes");
    first
}

/// The first byte at which `m`'s native frame and the frame of `m` with `field` set to
/// `value` differ (they are as long), and that other frame.
fn first_difference(
    m: &corridor_wire::OwnedMessage,
    field: corridor_wire::FieldId,
    value: &str,
) -> (usize, BytesMut) {
    let mut other = m.clone();
    other.set(field, value).unwrap();
    let (a, b) =
        (frame(Framing::Native, Dialect::Native, 0, m), frame(Framing::Native, Dialect::Native, 0, &other));
    assert_eq!(a.len(), b.len());
    let at = a.iter().zip(b.iter()).position(|(x, y)| x != y).expect("the field is encoded");
    (at, b)
}
