//! `corridor-sim`: runs seeds of the deterministic simulation and prints seeds per second,
//! or, for a seed that breaks an invariant, what broke, its history and the command that
//! replays it.
//!
//! ```text
//! corridor-sim --seeds 1000 [--from 1]
//! corridor-sim --seed 42
//! ```

#![forbid(unsafe_code)]
#![allow(clippy::print_stdout, clippy::print_stderr)] // a command-line tool

use std::process::ExitCode;

fn arg(name: &str) -> Option<u64> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok())
}

fn main() -> ExitCode {
    let (from, n) = match arg("--seed") {
        Some(s) => (s, 1),
        None => (arg("--from").unwrap_or(1), arg("--seeds").unwrap_or(100)),
    };
    let started = std::time::Instant::now();
    match corridor_sim::run_seeds(from, n) {
        Ok(outcomes) => {
            let secs = started.elapsed().as_secs_f64();
            let simulated: f64 = outcomes.iter().map(|o| o.simulated.as_secs_f64()).sum();
            println!(
                "{n} seeds ({from}..{}) in {secs:.2} s: {:.0} seeds/s, {:.0}x real time; every invariant held",
                from + n,
                n as f64 / secs,
                simulated / secs
            );
            for (k, v) in corridor_sim::totals(&outcomes) {
                println!("  {k}: {v}");
            }
            ExitCode::SUCCESS
        }
        Err(v) => {
            eprintln!("{v}");
            ExitCode::FAILURE
        }
    }
}
