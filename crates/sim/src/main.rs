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

/// The deterministic simulator: seeds of the switch, its peers, disks and faults.
#[derive(clap::Parser)]
#[command(name = "corridor-sim", version, about)]
struct Args {
    /// Run this many seeds (from `--from`).
    #[arg(long, default_value_t = 100, conflicts_with = "seed")]
    seeds: u64,
    /// The first seed of a run of seeds.
    #[arg(long, default_value_t = 1, conflicts_with = "seed")]
    from: u64,
    /// Replay one seed, printing what broke, its history and how to replay it.
    #[arg(long)]
    seed: Option<u64>,
    /// With `--seed`: leave these faults of its plan out (indices, comma-separated).
    #[arg(long, value_delimiter = ',', requires = "seed")]
    without: Vec<usize>,
    /// With `--seed`: the fewest faults that still break the same invariant.
    #[arg(long, requires = "seed", conflicts_with = "without")]
    shrink: bool,
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
    let args = <Args as clap::Parser>::parse();
    if let (Some(seed), true) = (args.seed, args.shrink) {
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
    if let Some(seed) = args.seed {
        return match Sim::without(seed, &args.without).run() {
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
    let (from, n) = (args.from, args.seeds);
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
