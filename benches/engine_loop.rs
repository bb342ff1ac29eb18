//! Runs whole transactions through the engine a fixed number of times (native on both
//! sides, no I/O): a steady workload for instruction counts.
//!
//! ```sh
//! cargo build --release -p corridor-benches --example engine_loop
//! valgrind --tool=callgrind target/release/examples/engine_loop
//! ```

#![allow(clippy::expect_used, clippy::unwrap_used)] // a benchmark tool: a panic is a broken fixture

use std::time::Instant;

use bytes::BytesMut;
use corridor_benches::{engine_config, frame, typical_0200};
use corridor_engine::{Engine, Framing, WallClock};
use corridor_wire::{de, Dialect, Mti};

/// Transactions per run.
const ITERATIONS: u32 = 100_000;

fn main() {
    let native = (Framing::Native, Dialect::Native);
    let now = Instant::now();
    let mut engine =
        Engine::new(engine_config(native, native), WallClock { at: now, unix_secs: 1_795_644_930 });
    let a = engine.link_up(0, now).unwrap();
    let i = engine.link_up(1, now).unwrap();
    let req = typical_0200();
    let mut resp = typical_0200();
    resp.set_mti(Mti::FINANCIAL_RESPONSE);
    resp.remove(de::PIN_BLOCK);
    resp.set(de::RESPONSE_CODE, "00").unwrap();
    let req_wire = frame(Framing::Native, Dialect::Native, 7, &req).to_vec();
    let mut resp_wire = frame(Framing::Native, Dialect::Native, 0, &resp).to_vec();
    let mut bytes = 0usize;
    for _ in 0..ITERATIONS {
        let mut wire = BytesMut::from(&req_wire[..]);
        engine.handle_read(a, &mut wire, now);
        let out = engine.take_output(i).expect("forwarded");
        let corr = corridor_wire::NativeHeader::peek(&out).unwrap().correlation();
        resp_wire[12..20].copy_from_slice(&corr.to_be_bytes());
        let mut back = BytesMut::from(&resp_wire[..]);
        engine.handle_read(i, &mut back, now);
        let relayed = engine.take_output(a).expect("relayed").len();
        engine.handle_written(a, relayed);
        bytes += relayed;
    }
    assert_eq!(engine.requests_pending(), 0);
    println!("{ITERATIONS} transactions, {bytes} bytes relayed");
}
