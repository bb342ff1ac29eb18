//! Parses the typical 0200 a fixed number of times: a steady workload for instruction
//! counting, which is repeatable where wall-clock time on this machine is not.
//!
//! ```sh
//! cargo build --release -p corridor-benches --example parse_loop
//! valgrind --tool=callgrind target/release/examples/parse_loop native
//! ```
//!
//! Divide the total by the iteration count (200,000) for instructions per message.

#![allow(clippy::expect_used)] // a benchmark tool: a panic is a broken fixture

use corridor_wire::{Dialect, MessageIndex};

/// Parses per run.
const ITERATIONS: u32 = 200_000;

fn main() {
    let dialect: Dialect =
        std::env::args().nth(1).as_deref().unwrap_or("native").parse().expect("a dialect name");
    let body = corridor_benches::typical_0200().to_bytes(dialect).expect("the fixture encodes");
    let mut sum = 0u64;
    for _ in 0..ITERATIONS {
        let index =
            MessageIndex::parse(dialect, std::hint::black_box(&body[..])).expect("the fixture parses");
        sum += u64::from(std::hint::black_box(&index).mti().value());
    }
    println!("{ITERATIONS} parses of {} bytes ({dialect}), checksum {sum}", body.len());
}
