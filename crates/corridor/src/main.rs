//! `corridor`: the payment message switch's command-line binary.
//!
//! A thin binary: it parses the command line and wires the library crates together.
//!
//! # Layout
//!
//! - `main.rs`: the command line and exit codes.
//! - `msg.rs`: `corridor msg`, the operator's tool to look at and craft messages.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod msg;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Corridor, a payment message switch for cross-border QR payments.
#[derive(Parser)]
#[command(name = "corridor", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Look at and craft protocol messages.
    Msg {
        #[command(subcommand)]
        command: msg::MsgCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Msg { command } => msg::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("corridor: {e:#}");
            ExitCode::FAILURE
        }
    }
}
