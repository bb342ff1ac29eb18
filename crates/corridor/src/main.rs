//! `corridor`: the payment message switch's command-line binary.
//!
//! A thin binary: it parses the command line and wires the library crates together.
//!
//! # Layout
//!
//! - `main.rs`: the command line and exit codes.
//! - `msg.rs`: `corridor msg`, the operator's tool to look at and craft messages.
//! - `journal.rs`: `corridor journal`, to look at, check and cut a journal directory.
//! - `qr.rs`: `corridor qr`, to read and write EMV QR payloads.
//! - `saf.rs`: `corridor saf`, the store-and-forward and exception queues of a journal.
//! - `cluster.rs`: `corridor cluster status`, the cluster as NATS sees it.
//! - `oneline.rs`: the text log's fields, one line an event.
//! - what it runs comes from the library crates: `corridor-ops` (the serve loop, the admin
//!   API), `corridor-clearing` (clearing and reconciliation), `corridor-config` (the file),
//!   `corridor-cluster` (the cluster's status).

// One call into the allocator's C API (`release_memory`) is the binary's only unsafe code.
#![deny(unsafe_code)]

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};
use corridor_config as config;
use corridor_ops::serve;

mod cluster;
mod journal;
mod msg;
mod oneline;
mod qr;
mod saf;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Asks mimalloc to free what the calling thread's heap holds unused and return it to the
/// system: the network layer calls it on a shard's thread after a burst of connections
/// closed (`corridor_net::memory`).
#[allow(unsafe_code)]
fn release_memory() {
    // SAFETY: `mi_collect` has no preconditions: it may be called from any thread at any
    // time, and only walks and trims the calling thread's own heap.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

/// Corridor, a payment message switch for cross-border QR payments.
#[derive(Parser)]
#[command(name = "corridor", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the switch.
    Serve {
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Log lines as text (for people) or JSON (one object a line, for collectors).
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
        /// Engine shards, each on a thread of its own (over `[switch] shards`; default: the
        /// CPUs the process may use).
        #[arg(long)]
        shards: Option<usize>,
        /// In a cluster: this node's name (over `[cluster] node`; its own settings are in
        /// `[cluster.nodes.<name>]`, so one file serves every node).
        #[arg(long, env = "CORRIDOR_NODE")]
        node: Option<String>,
    },
    /// Check a configuration file and print a summary of it.
    CheckConfig {
        /// The configuration file.
        config: PathBuf,
        /// In a cluster: check it as this node's (see `serve --node`).
        #[arg(long, env = "CORRIDOR_NODE")]
        node: Option<String>,
    },
    /// Development certificates for TLS and QUIC links.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// Look at, check and (deliberately) cut a journal directory.
    Journal {
        #[command(subcommand)]
        command: journal::JournalCommand,
    },
    /// The store-and-forward queue and the exception queue: list, retry, drop.
    Saf {
        #[command(subcommand)]
        command: saf::SafCommand,
    },
    /// Look at and craft protocol messages.
    Msg {
        #[command(subcommand)]
        command: msg::MsgCommand,
    },
    /// Write the clearing file of a business day from the journal: every approved financial
    /// transaction not reversed, totals, and net positions (CSV or JSON on stdout).
    Clearing {
        /// The configuration file (its journal, cut-over, participants' markets).
        #[arg(long)]
        config: PathBuf,
        /// The business day, YYYY-MM-DD.
        #[arg(long)]
        date: String,
        /// Only this participant's transactions and positions.
        #[arg(long)]
        participant: Option<String>,
        /// csv or json.
        #[arg(long, default_value = "csv")]
        format: String,
        /// Where the records are read: `journal` (this node's journal directory) or `stream`
        /// (a cluster's stream: every shard, whichever node ran it). Default: the stream
        /// when the configuration names a cluster.
        #[arg(long)]
        source: Option<String>,
        /// In a cluster: the node whose file it is (see `serve --node`).
        #[arg(long, env = "CORRIDOR_NODE")]
        node: Option<String>,
    },
    /// Compare our clearing file with a partner's: matched, missing on either side, amount
    /// mismatches, reversals without their original, with totals. Exits 1 on any break.
    Reconcile {
        /// Our clearing file (CSV or JSON).
        ours: PathBuf,
        /// The partner's (CSV or JSON, the same columns).
        theirs: PathBuf,
        /// Print every line as JSON instead of a table of the breaks.
        #[arg(long)]
        json: bool,
    },
    /// Read and write EMV QR payloads (merchant- and consumer-presented).
    Qr {
        #[command(subcommand)]
        command: qr::QrCommand,
    },
    /// The cluster this switch is a node of, as NATS sees it.
    Cluster {
        #[command(subcommand)]
        command: cluster::ClusterCommand,
    },
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Write a development CA, a switch certificate and one per participant (never for
    /// production: the CA key is written too).
    Dev {
        /// Where to write them.
        #[arg(long)]
        out: PathBuf,
        /// Take the participants from this configuration.
        #[arg(long)]
        config: Option<PathBuf>,
        /// A participant id (repeatable; added to those of --config).
        #[arg(long = "participant")]
        participants: Vec<String>,
        /// Days of validity.
        #[arg(long, default_value_t = corridor_config::certs::DEV_DAYS)]
        days: i64,
    },
    /// Print the SHA-256 pin of a certificate's public key (for tls_spki_sha256).
    Pin {
        /// A PEM certificate.
        cert: PathBuf,
    },
}

fn run_certs(c: CertsCommand) -> anyhow::Result<()> {
    match c {
        CertsCommand::Dev { out, config, mut participants, days } => {
            if !(1..=3650).contains(&days) {
                anyhow::bail!("--days must be 1 to 3650");
            }
            if let Some(path) = config {
                // Only the ids are needed: the file may name certificates not written yet.
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let ids =
                    corridor_config::participant_ids(&text).with_context(|| format!("{}", path.display()))?;
                participants.splice(0..0, ids);
            }
            let mut seen = std::collections::HashSet::new();
            participants.retain(|p| seen.insert(p.clone()));
            print!("{}", corridor_config::certs::dev(&out, &participants, days)?);
            Ok(())
        }
        CertsCommand::Pin { cert } => {
            let pin = corridor_net::tls::pin_of(&cert).map_err(anyhow::Error::msg)?;
            println!("{}", corridor_net::tls::hex(&pin));
            Ok(())
        }
    }
}

fn run_serve(
    path: &std::path::Path,
    format: LogFormat,
    shards: Option<usize>,
    node: Option<&str>,
) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        // One line an event: its fields' line breaks escaped.
        LogFormat::Text => fmt
            .fmt_fields(oneline::OneLineFields::default())
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        // One JSON object a line: the event's fields at the top level, with its target.
        LogFormat::Json => fmt.json().flatten_event(true).with_current_span(false).init(),
    }
    let mut loaded = config::load_as(path, node)?;
    if let Some(n) = shards {
        anyhow::ensure!(
            (1..=corridor_engine::shards::SHARDS_MAX).contains(&n),
            "--shards must be 1-{}, not {n}",
            corridor_engine::shards::SHARDS_MAX
        );
        loaded.shards = n;
    }
    // Shard 0 runs here, each other shard on a thread of its own: an engine is never shared
    // or locked.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let source = serve::Source { path: path.to_owned(), shards };
    Ok(runtime.block_on(serve::run(loaded, Some(source), serve::signals()))?)
}

/// Where `corridor clearing` reads its records.
struct ClearingSource<'a> {
    /// `journal` or `stream` (`None`: the stream in a cluster, else the journal).
    from: Option<&'a str>,
    /// The node whose file it is.
    node: Option<&'a str>,
}

fn run_clearing(
    path: &std::path::Path,
    date: &str,
    participant: Option<&str>,
    format: &str,
    source: &ClearingSource<'_>,
) -> anyhow::Result<()> {
    use corridor_clearing as clearing;
    let loaded = config::load_as(path, source.node)?;
    let Some(journal) = &loaded.journal else {
        anyhow::bail!("{}: no [journal]: nothing to clear from", path.display())
    };
    let from_stream = match (source.from, &loaded.cluster) {
        (None, c) => c.is_some(),
        (Some("journal"), _) => false,
        (Some("stream"), Some(_)) => true,
        (Some("stream"), None) => anyhow::bail!("--source stream: {} names no [cluster]", path.display()),
        (Some(other), _) => anyhow::bail!("--source {other:?}: journal or stream"),
    };
    let parts: Vec<&str> = date.split('-').collect();
    let window = match parts[..] {
        [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2 => {
            match (y.parse(), m.parse(), d.parse()) {
                (Ok(y), Ok(m), Ok(d)) => loaded.clearing.window(y, m, d),
                _ => None,
            }
        }
        _ => None,
    };
    let Some(window) = window else { anyhow::bail!("--date {date:?}: a calendar date, YYYY-MM-DD") };
    if let Some(p) = participant {
        if !loaded.engine.participants.iter().any(|q| q.id == p) {
            anyhow::bail!("--participant {p:?}: no such participant");
        }
    }
    let markets =
        loaded.engine.participants.iter().filter_map(|p| Some((p.id.clone(), p.directory.market?))).collect();
    let setup = clearing::Setup {
        dir: &journal.dir,
        window,
        date,
        participant,
        markets,
        home: loaded.engine.interop.market,
    };
    let mut rows = match &loaded.cluster {
        Some(c) if from_stream => {
            clearing::transactions_of_records(&setup, &cluster::every_shards_records(c, loaded.shards)?)?
        }
        _ => clearing::transactions(&setup)?,
    };
    let summary = clearing::summary(&rows, participant);
    rows.extend(summary);
    let stdout = std::io::stdout().lock();
    match format {
        "csv" => Ok(clearing::write_csv(&rows, stdout)?),
        "json" => {
            use std::io::Write as _;
            let mut out = stdout;
            writeln!(out, "{}", serde_json::to_string_pretty(&clearing::to_json(date, participant, &rows))?)?;
            Ok(())
        }
        other => anyhow::bail!("--format {other:?}: csv or json"),
    }
}

fn run_reconcile(ours: &std::path::Path, theirs: &std::path::Path, json: bool) -> anyhow::Result<()> {
    use std::io::Write as _;
    let r = corridor_clearing::reconcile(corridor_clearing::read(ours)?, corridor_clearing::read(theirs)?);
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&r)?)?;
    } else {
        for l in r.lines.iter().filter(|l| l.kind != "matched") {
            let amount = l.amount.map_or_else(String::new, |a| a.to_string());
            writeln!(
                out,
                "{:<16} rrn {:<12} de7 {:<10} de32 {:<11} {:>14} {:<3}  {}",
                l.kind, l.rrn, l.transmission_time, l.acquirer_id, amount, l.currency, l.detail
            )?;
        }
        for (kind, (count, amounts)) in &r.totals {
            let sums: Vec<String> = amounts.iter().map(|(c, a)| format!("{a} {c}")).collect();
            writeln!(out, "total {kind:<16} {count:>8}  {}", sums.join(", "))?;
        }
    }
    match r.breaks() {
        0 => Ok(()),
        n => anyhow::bail!("{n} breaks"),
    }
}

fn main() -> ExitCode {
    let _ = corridor_net::memory::set_release(release_memory);
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Msg { command } => msg::run(command),
        Command::Qr { command } => qr::run(command),
        Command::Cluster { command } => cluster::run(command),
        Command::Clearing { config, date, participant, format, source, node } => {
            let source = ClearingSource { from: source.as_deref(), node: node.as_deref() };
            run_clearing(&config, &date, participant.as_deref(), &format, &source)
        }
        Command::Reconcile { ours, theirs, json } => run_reconcile(&ours, &theirs, json),
        Command::Journal { command } => journal::run(command),
        Command::Saf { command } => saf::run(command),
        Command::CheckConfig { config, node } => config::load_as(&config, node.as_deref())
            .map(|c| print!("{}", config::summary(&c)))
            .map_err(anyhow::Error::from),
        Command::Serve { config, log_format, shards, node } => {
            run_serve(&config, log_format, shards, node.as_deref())
        }
        Command::Certs { command } => run_certs(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that stopped reading (`corridor clearing … | head`) is not an error:
        // what it wanted went out, as with any Unix filter.
        Err(e) if broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("corridor: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Whether `e` is standard output's reader gone.
fn broken_pipe(e: &anyhow::Error) -> bool {
    let pipe = |io: &std::io::Error| io.kind() == std::io::ErrorKind::BrokenPipe;
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(pipe)
            || c.downcast_ref::<csv::Error>()
                .is_some_and(|e| matches!(e.kind(), csv::ErrorKind::Io(io) if pipe(io)))
    })
}
