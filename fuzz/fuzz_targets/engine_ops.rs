//! The engine with its journal, driven by an arbitrary sequence of operations (peers
//! connecting and going, purchases, reversals, echoes, garbage, frames split anywhere, slow
//! readers, the issuer answering late, twice or on the wrong link, the clock, the disk's
//! syncs), checked after every operation and at the end by the simulator's invariants.

#![no_main]

use corridor_sim::ops::{run, Op};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|ops: Vec<Op>| {
    if let Err(b) = run(&ops) {
        panic!("{b}");
    }
});
