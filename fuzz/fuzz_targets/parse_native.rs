//! The native message parser on arbitrary bytes (see `parse_check.rs`).
#![no_main]

#[path = "parse_check.rs"]
mod parse_check;

use corridor_wire::Dialect;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| parse_check::check(Dialect::Native, data));
