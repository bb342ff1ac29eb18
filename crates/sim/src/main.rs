//! `corridor-sim`: runs seeds of the deterministic simulation and prints seeds per second,
//! or, for a seed that breaks an invariant, what broke, at which step, its history and the
//! command that replays it.
//!
//! ```text
//! corridor-sim --seeds 1000 [--from 1]
//! corridor-sim --seed 42 [--without 0,3]   replay (with faults 0 and 3 of its plan left out)
//! corridor-sim --seed 42 --shrink          the fewest faults that still break the same invariant
//! ```

#![forbid(unsafe_code)]

use std::{io::Write, process::ExitCode};

use corridor_sim::{Sim, Violation};

/// Prints to stdout; a reader that went (`| head`) is no error.
macro_rules! out {
    ($($t:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// Prints to stderr, likewise.
macro_rules! err {
    ($($t:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

fn value(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn arg(name: &str) -> Option<u64> {
    value(name).and_then(|v| v.parse().ok())
}

/// Leaves faults out of the seed's plan one at a time, keeping each removal after which the
/// same invariant still breaks (the plan has a few dozen faults at most: bounded).
fn shrink(seed: u64, first: &Violation) -> Violation {
    let mut best = first.clone();
    let mut left_out: Vec<usize> = Vec::new();
    for i in 0..Sim::plan_len(seed) {
        let mut trial = left_out.clone();
        trial.push(i);
        if let Err(v) = Sim::without(seed, &trial).run() {
            if v.kind() == first.kind() {
                left_out = trial;
                best = v;
            }
        }
    }
    best
}

fn main() -> ExitCode {
    if std::env::args().any(|a| a == "--shrink") {
        let Some(seed) = arg("--seed") else {
            err!("--shrink needs --seed S");
            return ExitCode::FAILURE;
        };
        let Err(first) = Sim::new(seed).run() else {
            out!("seed {seed} keeps every invariant: nothing to shrink");
            return ExitCode::SUCCESS;
        };
        let small = shrink(seed, &first);
        err!(
            "{small}\nshrunk: {} of {} faults left out, {} steps (from {})",
            small.without.len(),
            Sim::plan_len(seed),
            small.step,
            first.step
        );
        return ExitCode::FAILURE;
    }
    if let Some(seed) = arg("--seed") {
        let without: Vec<usize> = value("--without")
            .map(|w| w.split(',').filter_map(|x| x.trim().parse().ok()).collect())
            .unwrap_or_default();
        return match Sim::without(seed, &without).run() {
            Ok(o) => {
                out!("seed {seed}: every invariant held ({o:?})");
                ExitCode::SUCCESS
            }
            Err(v) => {
                err!("{v}");
                ExitCode::FAILURE
            }
        };
    }
    let (from, n) = (arg("--from").unwrap_or(1), arg("--seeds").unwrap_or(100));
    let started = std::time::Instant::now();
    match corridor_sim::run_seeds(from, n) {
        Ok(outcomes) => {
            let secs = started.elapsed().as_secs_f64();
            let simulated: f64 = outcomes.iter().map(|o| o.simulated.as_secs_f64()).sum();
            out!(
                "{n} seeds ({from}..{}) in {secs:.2} s: {:.0} seeds/s, {:.0}x real time; every invariant held",
                from + n,
                n as f64 / secs,
                simulated / secs
            );
            for (k, v) in corridor_sim::totals(&outcomes) {
                out!("  {k}: {v}");
            }
            ExitCode::SUCCESS
        }
        Err(v) => {
            err!("{v}");
            ExitCode::FAILURE
        }
    }
}
